"""Training worker started as a subprocess by the trainer tests.

Modes:
* default: train the tiny two-task model for ``--steps`` steps in ``--model-dir``
  (resuming from it), optionally under ``MultiWorkerMirroredStrategy`` (``TF_CONFIG``
  set by the test), and save the final weights to ``--out``.npz; prints the step it
  starts at, and exits 2 with the ``TrainingError`` message when a worker is lost.
* ``--determinism-check``: train three times in this process with op determinism
  (seed 0 twice, seed 1) and save the three weight vectors.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def _flat(model):
    return np.concatenate([np.ravel(v.numpy()).astype("float64") for v in model.weights])


def _phases(steps):
    from keras_facemt.training.schedule import LearningRate, Phase

    first = steps // 3
    return [
        Phase("pre_landmarks", first, ("landmarks",), loss_terms=("landmarks",),
              trainable=("backbone_*", "decoder_landmarks_*"), learning_rate=LearningRate(1e-2)),
        Phase("alternate", steps - first, ("landmarks", "emotion"), learning_rate=LearningRate(1e-2, 1e-3)),
    ]


def _streams():
    from tests import trainer_fixtures as fx

    return {"landmarks": fx.stream("landmarks", global_batch=4, seed=1, labelled_every=3),
            "emotion": fx.stream("emotion", global_batch=4, seed=2)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--steps-per-loop", type=int, default=2)
    parser.add_argument("--strategy", default="default")
    parser.add_argument("--eval-sleep", type=float, default=0.0)
    # SGD for comparisons across strategies: Adam turns the rounding noise of a
    # gradient that is zero in exact arithmetic (a bias before BatchNorm) into
    # full-size steps, and hides a wrong overall loss scale.
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--determinism-check", action="store_true")
    args = parser.parse_args()

    from keras_facemt.training.strategy import get_strategy

    # MultiWorkerMirroredStrategy must exist before any other TensorFlow work.
    strategy = get_strategy(args.strategy)
    from keras_facemt.training.trainer import Trainer, TrainerConfig
    from tests import trainer_fixtures as fx

    if args.determinism_check:
        results = {}
        for key, seed in (("seed0_a", 0), ("seed0_b", 0), ("seed1", 1)):
            cfg = TrainerConfig(os.path.join(args.model_dir, key), steps_per_loop=3, seed=seed, deterministic=True,
                                optimizer="adam", progress=False, summaries=False)
            trainer = Trainer(fx.tiny_model, fx.loss_terms(), _streams(), _phases(6), config=cfg, strategy=strategy)
            trainer.train()
            results[key] = _flat(trainer.model)
        np.savez(args.out, **results)
        return 0

    def eval_fn(trainer, step, phase):
        time.sleep(args.eval_sleep)
        return {"step_seen": float(step)}

    cfg = TrainerConfig(args.model_dir, steps_per_loop=args.steps_per_loop, optimizer=args.optimizer, seed=3,
                        deterministic=True, progress=False, summaries=True, eval_every_steps=args.steps_per_loop)
    from keras_facemt.errors import TrainingError
    from keras_facemt.training import strategy as strategy_lib
    from keras_facemt.training.checkpointing import checkpoint_step, latest_checkpoint

    # Every worker runs the same command: each writes its own weights.
    out = f"{args.out}_w{strategy_lib.worker_index()}" if strategy_lib.cluster_size() > 1 else args.out

    trainer = Trainer(fx.tiny_model, fx.loss_terms(), _streams(), _phases(args.steps), config=cfg, strategy=strategy,
                      eval_fn=eval_fn)
    latest = latest_checkpoint(args.model_dir)
    print(f"starting at step {checkpoint_step(latest) if latest else 0}", flush=True)
    try:
        history = trainer.train()
        trainer.save_checkpoint()  # as the recipes do after their final evaluation
        own = os.path.join(args.model_dir, ".workers", f"worker_{strategy_lib.worker_index()}")
        print(f"worker files after the final save: {os.path.exists(own)}", flush=True)
        np.savez(out, weights=_flat(trainer.model), global_step=history["global_step"],
                 optimizer_iterations=int(trainer.optimizer.iterations.numpy()))
        trainer.finish()
    except TrainingError as e:
        print(f"trainer_worker: error: {e}", flush=True)
        return 2
    print(f"finished global_step={history['global_step']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
