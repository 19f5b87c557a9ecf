"""Atomic writes: a file or directory is either absent, the old one, or complete.

Every writer in keras-facemt (shards' ``dataset.json``, results, reports, drawings,
model files, exports, converted datasets) goes through these functions: the content
is written under a temporary name in the destination's directory (same file system)
and moved into place with ``os.replace``, so a killed process or a full disk never
leaves a truncated file where a complete one is expected, and a failed write leaves
the previous version untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Iterator, Optional

import numpy as np


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def finite_json(obj):
    """``obj`` with every non-finite float as None (strict JSON has no NaN), numpy values as Python ones."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return finite_json(obj.tolist())
    if isinstance(obj, np.generic):
        return finite_json(obj.item())
    return obj


def to_json_text(obj, indent: Optional[int] = 2) -> str:
    """``obj`` as JSON text; numpy scalars and arrays become numbers and lists."""
    return json.dumps(obj, indent=indent, sort_keys=True, default=_json_default)


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = "") -> Iterator[str]:
    """A temporary path beside ``path`` that becomes ``path`` when the block succeeds.

    The block writes the temporary file (by any means: ``model.save``, a converter);
    on success it replaces ``path``, on any exception it is deleted and ``path`` is
    left as it was. ``suffix`` keeps an extension writers insist on (``.keras``).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text_atomic(path: str, text: str) -> None:
    """Writes UTF-8 ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str, obj) -> None:
    """Writes ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    write_text_atomic(path, to_json_text(obj))


def swap_directory(finished: str, destination: str) -> None:
    """Moves the complete directory ``finished`` to ``destination``, replacing what is there.

    The old destination is moved aside first and deleted only after the new one is
    in place, so at every moment ``destination`` is either the old or the new
    directory (never a mix); both must be on one file system.
    """
    if os.path.exists(destination):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(destination)}.old-", dir=os.path.dirname(destination))
        os.rmdir(old)
        os.replace(destination, old)
        os.replace(finished, destination)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(finished, destination)


@contextlib.contextmanager
def exclusive_lock(path: str) -> Iterator[None]:
    """Holds an exclusive advisory lock on the file ``path`` (created if absent).

    Processes that would produce the same output (two runs rendering one cached
    dataset) take the lock around the work, so the second waits and then finds the
    first one's result instead of repeating it. The lock is released when the block
    ends or the process dies; where ``fcntl`` is missing (Windows) the block runs
    unlocked, which the atomic writes keep correct, only slower.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
