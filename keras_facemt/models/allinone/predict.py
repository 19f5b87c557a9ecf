"""Batched host-side prediction of the All-in-One training graph on uint8 crops."""

from __future__ import annotations

from typing import Dict

import numpy as np


def predict(model, images: np.ndarray, batch_size: int = 256) -> Dict[str, np.ndarray]:
    """Every output of the training graph on uint8 crops ``[N, S, S, 3]``."""
    chunks = []
    for s in range(0, len(images), batch_size):
        out = model({"image": images[s:s + batch_size].astype(np.float32) / 255.0}, training=False)
        chunks.append({k: np.asarray(v) for k, v in out.items()})
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits ``[N, C]``."""
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)
