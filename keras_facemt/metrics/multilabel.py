"""Multi-label binary attribute accuracy and its majority-class baseline (e.g. MTFR Table 4)."""

from __future__ import annotations

import numpy as np


def attribute_accuracy(scores, labels, presence=None, threshold: float = 0.5) -> np.ndarray:
    """Per-attribute accuracy of ``score >= threshold`` against 0/1 labels, ``[M]`` (NaN where unlabelled)."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels).astype(bool)
    m = np.ones_like(y, bool) if presence is None else np.asarray(presence) > 0
    hit = ((s >= threshold) == y) & m
    n = m.sum(0)
    return np.where(n > 0, hit.sum(0) / np.maximum(n, 1), np.nan)


def majority_baseline(train_labels, test_labels, train_presence=None, test_presence=None) -> np.ndarray:
    """Per-attribute accuracy of always predicting the training majority, ``[M]``."""
    tr = np.asarray(train_labels).astype(np.float64)
    pm = np.ones_like(tr, bool) if train_presence is None else np.asarray(train_presence) > 0
    rate = (tr * pm).sum(0) / np.maximum(pm.sum(0), 1)
    majority = (rate >= 0.5).astype(np.float64)
    return attribute_accuracy(np.broadcast_to(majority, np.asarray(test_labels).shape), test_labels, test_presence)
