"""Mixing several dataset streams into one by a sampling schedule.

Each ``DataConfig`` stream (one dataset, its own tasks and BN domain) is built by
``pipeline.build_dataset``. ``mix_streams`` serves them as one dataset:

* ``weights=None``: deterministic round-robin (``choose_from_datasets``), so every
  stream, and therefore every task, contributes the same number of samples;
* ``weights={name: w}``: random choice with probabilities ``w / sum(w)``
  (``sample_from_datasets``, seeded).

Streams carry different label keys (a landmark stream has no ``attr/emotion``).
Mixing needs one structure, so a key one stream lacks is filled with zeros there:
its presence flag (``has_*``) is then 0, i.e. "not labelled", which masks the
loss of that task for those samples, never "negative". With ``batch_size`` the
inputs are unbatched, mixed per example and re-batched, so one batch holds samples
of several streams and domains (what per-dataset BatchNorm gathers per example);
without it, whole batches are interleaved.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

import tensorflow as tf

from keras_facemt.data import batch as B
from keras_facemt.errors import ConfigError


def _union_spec(specs: Mapping[str, Dict[str, tf.TensorSpec]]) -> Dict[str, tf.TensorSpec]:
    """Union of the streams' element specs; a key must agree on dtype and shape."""
    union: Dict[str, tf.TensorSpec] = {}
    owner: Dict[str, str] = {}
    for name, spec in specs.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"stream {name!r} does not yield dict elements. Received: element_spec={spec}")
        for key, s in spec.items():
            if key not in union:
                union[key], owner[key] = s, name
                continue
            u = union[key]
            if u.dtype != s.dtype or not u.shape.is_compatible_with(s.shape):
                raise ConfigError(
                    f"streams {owner[key]!r} and {name!r} disagree on key {key!r} "
                    f"({u.dtype.name}{u.shape.as_list()} vs {s.dtype.name}{s.shape.as_list()}); mixed streams need "
                    f"the same mode, image_size, landmark_scheme and embedding_dim. Received: key={key!r}"
                )
            union[key] = tf.TensorSpec(u.shape.most_specific_compatible_shape(s.shape), u.dtype)
    return union


def _fill_missing(ds: tf.data.Dataset, union: Dict[str, tf.TensorSpec]) -> tf.data.Dataset:
    spec = ds.element_spec
    missing = [k for k in union if k not in spec]
    if not missing:
        return ds

    def fill(ex):
        out = dict(ex)
        ref = ex[B.IMAGE] if B.IMAGE in ex else next(iter(ex.values()))
        for key in missing:
            s = union[key]
            dims = [tf.shape(ref)[i] if d is None else d for i, d in enumerate(s.shape.as_list())]
            out[key] = tf.zeros(tf.stack(dims) if dims else [], s.dtype)
        return {k: out[k] for k in union}

    return ds.map(fill, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def mix_streams(
    datasets: Mapping[str, tf.data.Dataset],
    weights: Optional[Mapping[str, float]] = None,
    seed: int = 0,
    batch_size: Optional[int] = None,
) -> tf.data.Dataset:
    """Mixes named streams into one dataset.

    Args:
        datasets: stream name -> dataset of dict elements (batches from
            ``build_dataset``). Streams are taken in sorted name order.
        weights: stream name -> non-negative sampling weight, or None for
            round-robin (equal samples per stream).
        seed: seed of the weighted choice (same seed: same sequence).
        batch_size: if given, the inputs are unbatched, mixed per example and
            re-batched to this size (``drop_remainder=True``); else their elements
            (whole batches) are interleaved.

    Returns:
        The mixed dataset; every element has the union of the streams' keys, with
        zeros (and zero presence) where a stream lacks a key.

    Raises:
        ConfigError: no streams, weights naming unknown/missing streams or not
            positive in total, or streams whose shared keys disagree in shape/dtype.
    """
    if not datasets:
        raise ConfigError("mix_streams needs at least one stream. Received: datasets={}")
    names = sorted(datasets)
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    streams = {n: datasets[n].unbatch() if batch_size is not None else datasets[n] for n in names}
    union = _union_spec({n: streams[n].element_spec for n in names})
    parts = [_fill_missing(streams[n], union) for n in names]
    if weights is None:
        choice = tf.data.Dataset.range(len(parts)).repeat()
        mixed = tf.data.Dataset.choose_from_datasets(parts, choice, stop_on_empty_dataset=True)
    else:
        unknown = sorted(set(weights) - set(names))
        missing = sorted(set(names) - set(weights))
        if unknown or missing:
            raise ConfigError(
                f"weights must name exactly the streams {names}; unknown: {unknown}, missing: {missing}. "
                f"Received: weights={dict(weights)}"
            )
        w = [float(weights[n]) for n in names]
        if min(w) < 0 or sum(w) <= 0:
            raise ConfigError(f"weights must be >= 0 with a positive sum. Received: weights={dict(weights)}")
        probs = [x / sum(w) for x in w]
        mixed = tf.data.Dataset.sample_from_datasets(parts, probs, seed=seed, stop_on_empty_dataset=False)
    if batch_size is not None:
        mixed = mixed.batch(batch_size, drop_remainder=True)
    return mixed.prefetch(tf.data.AUTOTUNE)
