"""Command line of ``recipes/train_mtfr.py`` (the code lives in the package)."""

from __future__ import annotations

import argparse
import os
import sys

from keras_facemt.errors import ConfigError, FaceMTError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Trains and evaluates MTFR (Wang et al., ICMR 2017).")
    p.add_argument("--experiment", default="mtfr", help="mtfr, mtfr_smoke or mtfr_paper")
    p.add_argument("--model-dir", default=None, help="output directory (default runs/<experiment>)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --model-dir")
    p.add_argument("--deterministic", action="store_true", help="TensorFlow op determinism")
    p.add_argument("--data", action="append", default=[], metavar="train=DIR",
                   help="train on a converted dataset (aligned crops, identity + celeba/<name> labels)")
    p.add_argument("--cache-dir", default=None, help="where rendered SynthFace data is kept between runs")
    p.add_argument("--strategy", default="auto", help="auto, default, mirrored, multi_worker or tpu")
    p.add_argument("--preset", default=None, help="model preset: paper, small or tiny")
    p.add_argument("--steps", default=None, help="STAGE1,STAGE2 updates, e.g. 1400,600")
    p.add_argument("--seed", type=int, default=None)
    return p


def parse_steps(text: str) -> dict:
    """``"STAGE1,STAGE2"`` -> experiment overrides."""
    try:
        s1, s2 = (int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--steps must be STAGE1,STAGE2. Received: --steps={text!r}") from None
    return {"stage1_steps": s1, "stage2_steps": s2}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from keras_facemt.models.mtfr.experiments import get_experiment
    from keras_facemt.models.mtfr.job import run_experiment
    from keras_facemt.training.strategy import get_strategy

    overrides = {}
    for key in ("preset", "seed"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    try:
        if args.steps:
            overrides.update(parse_steps(args.steps))
        train_data = None
        for item in args.data:
            task, sep, path = item.partition("=")
            if task != "train" or not sep or not path:
                raise ConfigError(f"--data takes train=DIR. Received: --data={item!r}")
            if not os.path.isdir(path):
                raise ConfigError(f"--data train: {path} is not a directory. Received: --data={item!r}")
            train_data = path
        exp = get_experiment(args.experiment, **overrides)
        out = args.model_dir or os.path.join("runs", exp.name)
        strategy = get_strategy(args.strategy)
        results = run_experiment(exp, out, cache_dir=args.cache_dir, strategy=strategy, resume=args.resume,
                                 deterministic=args.deterministic, train_data=train_data)
    except FaceMTError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"results: {os.path.join(out, 'results.md')} ({results['timings_seconds']['total']:.0f}s)")
    return 0
