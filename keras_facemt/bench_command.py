"""``facemt bench NAME``: run one of the repository's ``bench/bench_NAME.py`` tables."""

from __future__ import annotations

import os

from keras_facemt import repo_scripts
from keras_facemt.errors import ConfigError, DataError


def run(args) -> int:
    bench_dir = repo_scripts.script_dir("bench")
    if not os.path.isdir(bench_dir):
        raise DataError(f"{bench_dir}: benchmark scripts ship with the source checkout (pip install -e .).")
    names = repo_scripts.available("bench", "bench_")
    if args.name not in names:
        raise ConfigError(f"Unknown benchmark {args.name!r}; available: {names}. Received: name={args.name!r}")
    repo_scripts.run_script(os.path.join(bench_dir, f"bench_{args.name}.py"), args.bench_args)
    return 0


def register(subparsers) -> None:
    names = repo_scripts.available("bench", "bench_")
    p = subparsers.add_parser("bench", help="run a benchmark table from bench/ (e.g. pipeline, inference)")
    p.add_argument("name", help=f"benchmark name: {', '.join(names) or 'bench/bench_<name>.py'}")
    p.add_argument("bench_args", nargs="*", help="arguments passed to the benchmark script (after --)")
    p.set_defaults(func=run)
