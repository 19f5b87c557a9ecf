"""``facemt train SYSTEM [ARGS...]``: run the system's recipe (``recipes/train_SYSTEM.py``).

The recipes are the training entry points (one per paper); this subcommand only
finds and runs them with the remaining arguments, e.g.
``facemt train ifan --experiment ifan_3t_smoke --model-dir runs/smoke``.
"""

from __future__ import annotations

import os
import runpy
import sys

from keras_facemt.errors import ConfigError, DataError


def recipes_dir() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "recipes")


def available() -> list:
    d = recipes_dir()
    if not os.path.isdir(d):
        return []
    return sorted(f[len("train_"):-3] for f in os.listdir(d) if f.startswith("train_") and f.endswith(".py"))


def run(args) -> int:
    if not os.path.isdir(recipes_dir()):
        raise DataError(f"{recipes_dir()}: recipes ship with the source checkout (pip install -e .).")
    if args.system not in available():
        raise ConfigError(f"No training recipe for {args.system!r}; available: {available()}. "
                          f"Received: system={args.system!r}")
    path = os.path.join(recipes_dir(), f"train_{args.system}.py")
    old = sys.argv
    sys.argv = [path] + list(args.recipe_args)
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    finally:
        sys.argv = old
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a system with its recipe (e.g. facemt train ifan --experiment ...)")
    p.add_argument("system", help=f"system: {', '.join(available()) or 'recipes/train_<system>.py'}")
    p.add_argument("recipe_args", nargs="*", help="arguments for the recipe (put them after --)")
    p.set_defaults(func=run)
