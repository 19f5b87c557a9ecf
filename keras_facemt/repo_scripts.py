"""The source checkout's script folders (``recipes/``, ``bench/``) that ``facemt`` subcommands run.

``facemt train SYSTEM`` runs ``recipes/train_SYSTEM.py`` and ``facemt bench NAME``
runs ``bench/bench_NAME.py``: the scripts stay plain files beside the package, and
these helpers find and run them with the remaining command-line arguments.
"""

from __future__ import annotations

import os
import runpy
import sys
from typing import List, Sequence

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def script_dir(folder: str) -> str:
    """``<checkout>/<folder>``."""
    return os.path.join(REPO_ROOT, folder)


def available(folder: str, prefix: str) -> List[str]:
    """Names ``X`` of the ``<folder>/<prefix>X.py`` scripts (empty without a checkout)."""
    d = script_dir(folder)
    if not os.path.isdir(d):
        return []
    return sorted(f[len(prefix):-3] for f in os.listdir(d) if f.startswith(prefix) and f.endswith(".py"))


def run_script(path: str, argv: Sequence[str]) -> None:
    """Runs ``path`` as ``__main__`` with ``sys.argv = [path, *argv]`` (restored afterwards)."""
    old = sys.argv
    sys.argv = [path] + list(argv)
    try:
        runpy.run_path(path, run_name="__main__")
    finally:
        sys.argv = old
