"""``facemt bench NAME``: run one of the repository's ``bench/bench_NAME.py`` tables."""

from __future__ import annotations

import os
import runpy
import sys

from keras_facemt.errors import ConfigError, DataError


def bench_dir() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


def available() -> list:
    d = bench_dir()
    if not os.path.isdir(d):
        return []
    return sorted(f[len("bench_"):-3] for f in os.listdir(d) if f.startswith("bench_") and f.endswith(".py"))


def run(args) -> int:
    if not os.path.isdir(bench_dir()):
        raise DataError(f"{bench_dir()}: benchmark scripts ship with the source checkout (pip install -e .).")
    names = available()
    if args.name not in names:
        raise ConfigError(f"Unknown benchmark {args.name!r}; available: {names}. Received: name={args.name!r}")
    path = os.path.join(bench_dir(), f"bench_{args.name}.py")
    old = sys.argv
    sys.argv = [path] + list(args.bench_args)
    try:
        runpy.run_path(path, run_name="__main__")
    finally:
        sys.argv = old
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="run a benchmark table from bench/ (e.g. pipeline, inference)")
    p.add_argument("name", help=f"benchmark name: {', '.join(available()) or 'bench/bench_<name>.py'}")
    p.add_argument("bench_args", nargs="*", help="arguments passed to the benchmark script (after --)")
    p.set_defaults(func=run)
