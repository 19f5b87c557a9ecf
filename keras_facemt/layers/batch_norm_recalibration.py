"""Recomputing per-domain BatchNorm statistics before evaluation ("precise BN").

A ``DomainBatchNorm`` layer's moving statistics are an exponential average
(momentum 0.99) that starts at mean 0 / variance 1. After a short run (a few hundred
updates, and per domain only the updates of that domain's dataset) the average is
still dominated by its initial value, so inference-mode outputs are far from the
training-mode ones. iFAN also calls its backbone once per interaction iteration
with shared layers, so one layer's statistics mix all iterations.

``recalibrate_batch_norm`` replaces every ``DomainBatchNorm``'s moving statistics,
per domain, by the plain average of the batch moments seen over a few training
batches, every call of the layer counting equally (so all unrolled iterations
contribute, as they do to the moving average of a long run). The forward passes run
in training mode (batch statistics), the mode the network was trained in. Only
non-trainable statistics change; trainable weights and the optimizer do not, so
recalibrating between training phases does not alter training.
"""

from __future__ import annotations

from typing import Dict, Iterable, Mapping

import numpy as np
import tensorflow as tf

from keras_facemt.data import batch as B
from keras_facemt.layers.domain_batch_norm import DomainBatchNorm


def domain_batch_norm_layers(model) -> list:
    """Every ``DomainBatchNorm`` in ``model`` (nested layers included), each once."""
    seen, out = set(), []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, DomainBatchNorm) and id(layer) not in seen:
            seen.add(id(layer))
            out.append(layer)
    return out


def recalibrate_batch_norm(model, batches: Iterable[Mapping[str, np.ndarray]]) -> int:
    """Sets the moving statistics of ``model``'s ``DomainBatchNorm`` layers from ``batches``.

    Args:
        model: Keras model with inputs ``{image, domain}``.
        batches: numpy batches with ``image`` ``[B, S, S, 3]`` and ``domain`` ``[B]``;
            a domain no batch carries keeps its statistics.

    Returns:
        The number of batches used.
    """
    layers = domain_batch_norm_layers(model)
    if not layers:
        return 0
    acc: Dict[int, list] = {}
    originals = {}

    def wrap(layer, original):
        def call(x, domain=None, training=None):
            xf = tf.cast(x, tf.float32)
            ids = layer._domain_ids(xf, domain)
            mean, var, counts = layer._domain_moments(xf, ids)
            w = counts.numpy()[:, None]
            # Sums of E[x] and E[x^2] weighted by examples, per domain.
            sums = acc.setdefault(id(layer), [0.0, 0.0, 0.0])
            sums[0] = sums[0] + w * mean.numpy()
            sums[1] = sums[1] + w * (var.numpy() + np.square(mean.numpy()))
            sums[2] = sums[2] + w
            return original(x, domain=domain, training=True)

        return call

    used = 0
    try:
        for layer in layers:
            originals[id(layer)] = layer.call
            layer.call = wrap(layer, layer.call)
        for batch in batches:
            model({B.IMAGE: tf.constant(batch[B.IMAGE]), B.DOMAIN: tf.constant(batch[B.DOMAIN])}, training=True)
            used += 1
    finally:
        for layer in layers:
            # Restores the class's call (the instance attribute only shadowed it).
            del layer.call
    for layer in layers:
        if id(layer) not in acc:
            continue
        s1, s2, n = acc[id(layer)]
        seen = n[:, 0] > 0
        if not seen.any():
            continue
        mean = s1 / np.maximum(n, 1)
        var = np.maximum(s2 / np.maximum(n, 1) - np.square(mean), 0.0)
        old_mean = layer.moving_mean.numpy()
        old_var = layer.moving_variance.numpy()
        layer.moving_mean.assign(np.where(seen[:, None], mean, old_mean).astype(np.float32))
        layer.moving_variance.assign(np.where(seen[:, None], var, old_var).astype(np.float32))
    return used
