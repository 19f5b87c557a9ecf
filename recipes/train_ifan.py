"""Trains iFAN (Li et al., MM'17) by cross-dataset hybrid training (Algorithm 1).

With no arguments it runs the ``ifan_3t`` experiment: three disjoint SynthFace
datasets in three domains (parsing, 5-point landmarks, emotion) are rendered into a
cache on first use, the 3-task model with ITER=2 is pre-trained task by task and
fine-tuned with tasks alternating batch by batch, every task is evaluated at every
interaction iteration on held-out data, and ``--model-dir`` (default
``runs/ifan_3t``) receives checkpoints, TensorBoard logs (``logs/``),
``results.json``, ``results.md`` (the paper's Tables 1-3), ``curves.png`` (Fig. 7)
and ``predictions.png``.

Real data: convert each dataset with ``tfrecords_tools`` (Helen for parsing, MTFL
for landmarks, BNU-LSVED for emotion; each output directory needs ``train`` and
``test`` splits) and pass them per task::

    python recipes/train_ifan.py --experiment ifan_3t_paper \\
        --data parsing=/data/helen_tfr --data landmarks=/data/mtfl_tfr \\
        --data emotion=/data/bnu_tfr --model-dir runs/ifan_real

Examples::

    python recipes/train_ifan.py                                  # the main job
    python recipes/train_ifan.py --experiment ifan_3t_smoke --model-dir /tmp/smoke
    python recipes/train_ifan.py --tasks parsing,landmarks --iter 1
    python recipes/train_ifan.py --resume                         # continue a killed run
    python recipes/train_ifan.py --deterministic                  # a repeatable run (same machine)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_facemt.errors import ConfigError, FaceMTError  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--experiment", default="ifan_3t", help="named experiment (models/ifan/experiments.py); default ifan_3t")
    p.add_argument("--data", action="append", default=[], metavar="TASK=DIR",
                   help="user shards for a task (repeatable); replaces that task's synthetic data")
    p.add_argument("--tasks", default=None, help="comma-separated tasks, in stage-1 order (default: the experiment's)")
    p.add_argument("--iter", type=int, default=None, help="ITER, task-interaction iterations (>= 0)")
    p.add_argument("--preset", default=None, help="model preset: paper, small or tiny")
    p.add_argument("--model-dir", default=None, help="output directory (default runs/<experiment>)")
    p.add_argument("--strategy", default="auto", help="auto, default, mirrored, multi_worker or tpu")
    p.add_argument("--epochs", default=None,
                   help="fine-tuning epochs, or PRETRAIN,FINETUNE epochs (e.g. 30,200)")
    p.add_argument("--resume", action="store_true", help="continue the run in --model-dir from its checkpoint")
    p.add_argument("--deterministic", action="store_true",
                   help="TensorFlow op determinism: a rerun on the same machine and thread count gives the same "
                        "weights and results")
    p.add_argument("--cache-dir", default=None, help="SynthFace cache root (default $FACEMT_CACHE_DIR or "
                                                     "~/.cache/keras_facemt/synth)")
    return p


def parse_data_flags(values):
    """``["task=dir", ...]`` -> ``{task: dir}``.

    Raises:
        ConfigError: for a value without ``=`` or a task given twice.
    """
    out = {}
    for v in values:
        task, sep, path = v.partition("=")
        if not sep or not task or not path:
            raise ConfigError(f"--data expects TASK=DIR. Received: --data {v!r}")
        if task in out:
            raise ConfigError(f"--data names task {task!r} twice. Received: --data {v!r}")
        out[task] = path
    return out


def experiment_from_args(args):
    """The experiment the flags describe, fully validated (nothing is trained or rendered here).

    Raises:
        ConfigError: unknown experiment, task or preset, a negative --iter, a bad
            --epochs or --data value, a task without data.
    """
    from keras_facemt.models.ifan.experiments import get_experiment
    from keras_facemt.models.ifan.hybrid import check_tasks

    exp = get_experiment(args.experiment)
    if args.iter is not None:
        if args.iter < 0:
            raise ConfigError(f"--iter must be >= 0 (ITER, the task-interaction iterations). Received: --iter {args.iter}")
        exp = dataclasses.replace(exp, iterations=args.iter)
    data = parse_data_flags(args.data)
    if data:
        check_tasks(tuple(data))
    tasks = exp.tasks
    if args.tasks is not None:
        tasks = check_tasks(tuple(t.strip() for t in args.tasks.split(",") if t.strip()))
    for task, path in data.items():
        if task not in tasks:
            raise ConfigError(f"--data names task {task!r}, which is not trained (tasks: {list(tasks)}). "
                              f"Received: --data {task}={path}")
        exp = exp.with_data_dir(task, path)
    missing = [t for t in tasks if t not in exp.tasks]
    if missing:
        raise ConfigError(f"Task(s) {missing} have no data in experiment {exp.name!r} (it has data for "
                          f"{list(exp.tasks)}): pass --data TASK=DIR for each. Received: --tasks {','.join(tasks)}")
    exp = exp.with_tasks(tasks)
    if args.preset is not None:
        exp = dataclasses.replace(exp, model_preset=args.preset)
    if args.epochs is not None:
        try:
            parts = [float(x) for x in str(args.epochs).split(",")]
        except ValueError:
            parts = []
        if len(parts) not in (1, 2) or min(parts) < 0:
            raise ConfigError(f"--epochs expects FINETUNE or PRETRAIN,FINETUNE (numbers >= 0). Received: --epochs {args.epochs}")
        exp = dataclasses.replace(exp, finetune_epochs=parts[-1], **({"pretrain_epochs": parts[0]} if len(parts) == 2 else {}))
    if args.deterministic:
        exp = dataclasses.replace(exp, deterministic=True)
    exp.model_config()  # validates the preset and the model overrides now, not after data generation
    return exp


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        exp = experiment_from_args(args)
        from keras_facemt.models.ifan.job import run_ifan_experiment
        from keras_facemt.training.strategy import get_strategy

        model_dir = args.model_dir or os.path.join("runs", exp.name)
        print(f"{exp.name}: {exp.description}", flush=True)
        results = run_ifan_experiment(exp, model_dir, cache_dir=args.cache_dir, strategy=get_strategy(args.strategy),
                                      resume=args.resume)
    except FaceMTError as e:
        print(f"train_ifan: error: {e}", file=sys.stderr)
        return 2
    paths = results["paths"]
    print(f"\nDone in {results['timing']['total_s']:.0f} s. Outputs:")
    print(f"  checkpoints:     {os.path.join(paths['model_dir'], 'checkpoints')}")
    print(f"  TensorBoard:     tensorboard --logdir {os.path.join(paths['model_dir'], 'logs')}")
    for key in ("model_keras", "results_json", "results_md", "curves_png", "predictions_png"):
        print(f"  {key.replace('_', '.', 1):<16} {paths[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
