"""Command line of ``recipes/train_tfn.py`` (the code lives in the package)."""

from __future__ import annotations

import argparse
import os
import sys

from keras_facemt.errors import ConfigError, FaceMTError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Trains and evaluates TFN (Lin et al., IEEE TCYB 2019).")
    p.add_argument("--experiment", default="tfn", help="tfn, tfn_smoke or tfn_paper")
    p.add_argument("--model-dir", default=None, help="output directory (default runs/<experiment>)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --model-dir")
    p.add_argument("--deterministic", action="store_true", help="TensorFlow op determinism")
    p.add_argument("--data", action="append", default=[], metavar="train=DIR",
                   help="train on a converted scenes dataset (boxes, ibug68, age_class, gender, ethnicity)")
    p.add_argument("--cache-dir", default=None, help="where rendered SynthFace scenes are kept between runs")
    p.add_argument("--strategy", default="auto", help="auto, default, mirrored, multi_worker or tpu")
    p.add_argument("--preset", default=None, help="model preset: paper, small or tiny")
    p.add_argument("--steps", default=None, help="S1,S2,S3,S4 updates of the four stages, e.g. 1500,300,200,200")
    p.add_argument("--partial-labels", action="store_true", help="JFA-like partial landmark / attribute labels")
    p.add_argument("--seed", type=int, default=None)
    return p


def parse_steps(text: str) -> dict:
    """``"S1,S2,S3,S4"`` -> experiment overrides."""
    try:
        steps = tuple(int(v) for v in text.split(","))
    except ValueError:
        steps = ()
    if len(steps) != 4:
        raise ConfigError(f"--steps must be S1,S2,S3,S4. Received: --steps={text!r}")
    return {"stage_steps": steps}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from keras_facemt.models.tfn.experiments import get_experiment
    from keras_facemt.models.tfn.job import resolve_strategy, run_experiment

    overrides = {}
    for key in ("preset", "seed"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.partial_labels:
        overrides["partial_labels"] = True
    try:
        if args.steps:
            overrides.update(parse_steps(args.steps))
        train_data = None
        for item in args.data:
            name, sep, path = item.partition("=")
            if name != "train" or not sep or not path:
                raise ConfigError(f"--data takes train=DIR. Received: --data={item!r}")
            if not os.path.isdir(path):
                raise ConfigError(f"--data train: {path} is not a directory. Received: --data={item!r}")
            train_data = path
        exp = get_experiment(args.experiment, **overrides)
        out = args.model_dir or os.path.join("runs", exp.name)
        results = run_experiment(exp, out, cache_dir=args.cache_dir, strategy=resolve_strategy(args.strategy),
                                 resume=args.resume, deterministic=args.deterministic, train_data=train_data)
    except FaceMTError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"results: {os.path.join(out, 'results.md')} ({results['timings_seconds']['total']:.0f}s)")
    return 0
