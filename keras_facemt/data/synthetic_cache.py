"""A cache of SynthFace datasets, generated on first use and reused afterwards.

Recipes that run on synthetic data ask for a dataset by its generation settings;
the first call renders it through ``synthetic.write_synthetic`` into
``<root>/<spec-hash>/<name>`` and later calls (any process) find it there. The root
is, in order: the ``cache_dir`` argument, ``$FACEMT_CACHE_DIR``, or
``~/.cache/keras_facemt/synth``.

A dataset is rendered into a temporary directory next to its final place and moved
there with ``os.replace``, so a killed run never leaves a half-written dataset that
a later run would take for complete. Rendering holds a lock per dataset key, so a
second process asking for the same dataset waits for the first and reuses its copy
(parallel test workers, two runs started together).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from typing import Callable, Optional, Tuple

from keras_facemt.data.shards import read_manifest
from keras_facemt.io import exclusive_lock, write_json_atomic
from keras_facemt.errors import DataError

CACHE_ENV = "FACEMT_CACHE_DIR"
# Part of every key: bump when SynthFace's rendering changes what a seed produces.
CACHE_FORMAT = 2  # 2: cheekbones, nose tip and chin drawn (MTFR attributes)


def cache_root(cache_dir: Optional[str] = None) -> str:
    """The cache root directory (not created)."""
    root = cache_dir or os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache",
                                                                    "keras_facemt", "synth")
    return os.path.abspath(root)


def spec_hash(spec: dict) -> str:
    """Stable 16-hex-digit key of generation settings (JSON with sorted keys)."""
    text = json.dumps({"format": CACHE_FORMAT, **spec}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _complete(path: str) -> bool:
    try:
        read_manifest(path)
        return True
    except DataError:
        return False


def cached_synthetic(
    name: str,
    *,
    tasks: Tuple[str, ...],
    domain: str,
    splits: Tuple[Tuple[str, int], ...],
    seed: int,
    image_size: int,
    kind: str = "crops",
    shards: int = 2,
    dataset_name: Optional[str] = None,
    cache_dir: Optional[str] = None,
    log: Optional[Callable[[str], None]] = None,
) -> str:
    """The directory of a SynthFace dataset, rendering it on first use.

    Args:
        name: the dataset's directory name under its key (e.g. the task).
        tasks: labels the records carry (disjoint datasets: one task each).
        domain: SynthFace domain (``synth_domains.DOMAINS``).
        splits: ``(split, count)`` pairs with exact example counts.
        seed: SynthFace seed (different seeds give disjoint images).
        image_size: rendered side in pixels.
        kind, shards, dataset_name: as ``write_synthetic``.
        cache_dir: cache root override.
        log: called with one line when a dataset is rendered.

    Returns:
        The dataset directory (``dataset.json`` and shards).
    """
    from keras_facemt.data.synthetic import write_synthetic

    splits = tuple((str(s), int(n)) for s, n in splits)
    total = sum(n for _, n in splits)
    spec = {"name": name, "tasks": list(tasks), "domain": domain, "splits": [list(p) for p in splits],
            "seed": int(seed), "image_size": int(image_size), "kind": kind, "shards": int(shards),
            "dataset_name": dataset_name}
    parent = os.path.join(cache_root(cache_dir), spec_hash(spec))
    final = os.path.join(parent, name)
    if _complete(final):
        return final
    os.makedirs(parent, exist_ok=True)
    with exclusive_lock(os.path.join(parent, f".{name}.lock")):
        if _complete(final):  # rendered by another process while this one waited
            return final
        if log:
            log(f"Rendering SynthFace {name!r} ({total} {kind} in domain {domain!r}, labels {list(tasks)}) into "
                f"{final}")
        tmp = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=parent)
        try:
            out = os.path.join(tmp, name)
            write_synthetic(out, kind=kind, tasks=tuple(tasks), domain=domain, count=total, shards=shards, seed=seed,
                            image_size=image_size, dataset_name=dataset_name,
                            splits=tuple((s, n / total) for s, n in splits))
            write_json_atomic(os.path.join(parent, "spec.json"), spec)
            if os.path.isdir(final):
                # Left by an older, interrupted layout: nothing in it is trusted.
                shutil.rmtree(final)
            os.replace(out, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final
