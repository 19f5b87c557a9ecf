"""Batched host-side prediction of the All-in-One training graph on uint8 crops."""

from __future__ import annotations

from typing import Dict

import numpy as np


def predict(model, images: np.ndarray, batch_size: int = 256, domain: int = 0) -> Dict[str, np.ndarray]:
    """Every output of the training graph on uint8 crops ``[N, S, S, 3]``.

    ``domain``: the BN domain of a per-dataset-BN model (0: SynthFace, whose held-out
    sets every evaluation scores).
    """
    takes_domain = isinstance(model.input, dict) and "domain" in model.input
    chunks = []
    for s in range(0, len(images), batch_size):
        inputs = {"image": images[s:s + batch_size].astype(np.float32) / 255.0}
        if takes_domain:
            inputs["domain"] = np.full(len(inputs["image"]), domain, np.int32)
        out = model(inputs, training=False)
        chunks.append({k: np.asarray(v) for k, v in out.items()})
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits ``[N, C]``."""
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)
