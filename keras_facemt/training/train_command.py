"""``facemt train SYSTEM [ARGS...]``: run the system's recipe (``recipes/train_SYSTEM.py``).

The recipes are the training entry points (one per paper); this subcommand only
finds and runs them with the remaining arguments, e.g.
``facemt train ifan --experiment ifan_3t_smoke --model-dir runs/smoke``.
"""

from __future__ import annotations

import os

from keras_facemt import repo_scripts
from keras_facemt.errors import ConfigError, DataError


def run(args) -> int:
    recipes_dir = repo_scripts.script_dir("recipes")
    if not os.path.isdir(recipes_dir):
        raise DataError(f"{recipes_dir}: recipes ship with the source checkout (pip install -e .).")
    systems = repo_scripts.available("recipes", "train_")
    if args.system not in systems:
        raise ConfigError(f"No training recipe for {args.system!r}; available: {systems}. "
                          f"Received: system={args.system!r}")
    try:
        repo_scripts.run_script(os.path.join(recipes_dir, f"train_{args.system}.py"), args.recipe_args)
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    return 0


def register(subparsers) -> None:
    systems = repo_scripts.available("recipes", "train_")
    p = subparsers.add_parser("train", help="train a system with its recipe (e.g. facemt train ifan --experiment ...)")
    p.add_argument("system", help=f"system: {', '.join(systems) or 'recipes/train_<system>.py'}")
    p.add_argument("recipe_args", nargs="*", help="arguments for the recipe (put them after --)")
    p.set_defaults(func=run)
