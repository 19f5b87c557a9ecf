"""Training worker started as a subprocess by the trainer tests.

Modes:
* default: train the tiny two-task model for ``--steps`` steps in ``--model-dir``
  (resuming from it), optionally under ``MultiWorkerMirroredStrategy`` (``TF_CONFIG``
  set by the test), and save the final weights to ``--out``.npz (``--out``_w<i> per
  worker in a cluster); prints the step it starts at, and exits 2 with the
  ``TrainingError`` message when a worker is lost. Prints the trainer's
  "Resumed from ... at step N" log line when it restored a checkpoint, and
  with ``--count-updates``, ``updates_this_process=U``, the optimizer updates this process itself ran (counted
  by a variable the checkpoint does not hold). ``--kill-at POINT:STEP`` SIGKILLs the
  process inside the checkpoint write of STEP: ``before_index`` after the checkpoint's
  files are written and before the ``checkpoint`` index names them, ``before_sweep``
  after the index update and before old checkpoints are deleted.
* ``--determinism-check``: train once with op determinism and ``--seed``, and save
  the weights (the determinism test starts one process per run).
"""

import argparse
import copy
import logging
import os
import signal
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


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _install_kill(point: str, step: int):
    """SIGKILL this process at ``point`` of the checkpoint write of ``step``."""
    import tensorflow as tf

    if point == "before_index":
        write = tf.train.Checkpoint._write

        def _write(self, prefix, options=None, **kwargs):
            if prefix.endswith(f"-{step}") and options is not None and options.experimental_write_callbacks:
                # The manager's callback records the new index; die in its place.
                options = copy.copy(options)
                options.experimental_write_callbacks = [lambda save_path: _die()]
            return write(self, prefix, options=options, **kwargs)

        tf.train.Checkpoint._write = _write
    elif point == "before_sweep":
        sweep = tf.train.CheckpointManager._sweep

        def _sweep(self):
            if self._latest_checkpoint and self._latest_checkpoint.endswith(f"-{step}"):
                _die()
            return sweep(self)

        tf.train.CheckpointManager._sweep = _sweep
    else:
        raise ValueError(f"unknown kill point {point!r}")


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
    parser.add_argument("--seed", type=int, default=0, help="with --determinism-check")
    parser.add_argument("--kill-at", help="POINT:STEP (before_index, before_sweep)")
    parser.add_argument("--count-updates", action="store_true", help="default strategy only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")

    from keras_facemt.training.strategy import get_strategy

    # MultiWorkerMirroredStrategy must exist before any other TensorFlow work.
    strategy = get_strategy(args.strategy)
    from keras_facemt.training.trainer import Trainer, TrainerConfig
    from tests import trainer_fixtures as fx

    if args.determinism_check:
        cfg = TrainerConfig(args.model_dir, steps_per_loop=3, seed=args.seed, deterministic=True, optimizer="adam",
                            progress=False, summaries=False)
        trainer = Trainer(fx.tiny_model, fx.loss_terms(), _streams(), _phases(6), config=cfg, strategy=strategy)
        trainer.train()
        np.savez(args.out, weights=_flat(trainer.model))
        return 0

    def eval_fn(trainer, step, phase):
        time.sleep(args.eval_sleep)
        return {"step_seen": float(step)}

    if args.kill_at:
        point, step = args.kill_at.split(":")
        _install_kill(point, int(step))
    import tensorflow as tf

    build = fx.tiny_model
    if args.count_updates:
        import functools

        updates = tf.Variable(0, dtype=tf.int64, trainable=False)
        build = functools.partial(fx.tiny_model, step_counter=updates)
    cfg = TrainerConfig(args.model_dir, steps_per_loop=args.steps_per_loop, optimizer=args.optimizer, seed=3,
                        deterministic=True, progress=False, summaries=True, eval_every_steps=args.steps_per_loop)
    from keras_facemt.errors import TrainingError
    from keras_facemt.training import strategy as strategy_lib
    from keras_facemt.training.checkpointing import checkpoint_step, latest_checkpoint

    # Every worker runs the same command: each writes its own weights.
    out = f"{args.out}_w{strategy_lib.worker_index()}" if strategy_lib.cluster_size() > 1 else args.out

    trainer = Trainer(build, fx.loss_terms(), _streams(), _phases(args.steps), config=cfg,
                      strategy=strategy, eval_fn=eval_fn)
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
    if args.count_updates:
        print(f"updates_this_process={int(updates.numpy())}", flush=True)
    print(f"finished global_step={history['global_step']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
