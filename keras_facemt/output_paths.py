"""Up-front checks of the places a command will write, before any work is done.

A command that would fail only at its last step (a JSON report, an export moved
into place) checks here first, so a bad ``--out`` costs no minutes of work and
leaves nothing behind. Nothing is created by these checks.
"""

from __future__ import annotations

import os

from keras_facemt.errors import DataError


def _creatable_parent(path: str, flag: str) -> None:
    """The nearest existing ancestor of ``path`` must be a writable directory."""
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise DataError(f"{parent}: is a file, so {flag} {path} cannot be created under it.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DataError(f"{parent}: not writable, so {flag} {path} cannot be created.")


def check_output_file(path: str, flag: str) -> None:
    """Raises DataError naming ``path`` if a file cannot be written there.

    Args:
        path: the file a command will write (atomically).
        flag: the option that named it (``--out``), for the message.
    """
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory; {flag} needs a file path.")
    _creatable_parent(path, flag)


def check_output_dir(path: str, flag: str) -> None:
    """Raises DataError naming ``path`` if a directory cannot be created or used there."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise DataError(f"{path}: is a file; {flag} needs a directory path.")
    if os.path.isdir(path):
        if not os.access(path, os.W_OK | os.X_OK):
            raise DataError(f"{path}: directory is not writable ({flag}).")
        return
    _creatable_parent(path, flag)
