"""Landmark visibility: accuracy of per-point visible / occluded predictions.

HyperFace (Ranjan et al., TPAMI 2017) and All-in-One regress one visibility score
per point; a point is predicted visible when its score exceeds 0.5. Accuracy is
reported over all points and per point, next to the trivial "every point visible"
predictor (most points are visible, so plain accuracy flatters a model) and the
per-point majority of the training labels.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from keras_facemt.errors import ConfigError


def visibility_accuracy(scores, visible, threshold: float = 0.5, train_visible: Optional[np.ndarray] = None,
                        defined: Optional[np.ndarray] = None) -> Dict[str, object]:
    """Per-point and overall accuracy of ``score > threshold`` meaning visible.

    Args:
        scores: ``[N, K]`` regressed visibilities.
        visible: ``[N, K]`` 1 visible, 0 occluded.
        threshold: decision threshold.
        train_visible: optional ``[M, K]`` training labels: adds the per-point
            training-majority baseline.
        defined: optional ``[K]`` bool, points that can be labelled at all
            (others are left out everywhere).

    Returns:
        ``accuracy``, ``per_point`` ``[K]`` (NaN for undefined points),
        ``all_visible_accuracy``, ``visible_rate``, ``balanced_accuracy`` (mean of
        the visible and occluded recalls), and ``train_majority_accuracy`` when
        ``train_visible`` is given.

    Raises:
        ConfigError: for mismatched shapes.
    """
    s = np.asarray(scores, np.float64)
    v = np.asarray(visible, np.float64) > 0.5
    if s.shape != v.shape or s.ndim != 2:
        raise ConfigError(f"scores and visible must both be [N, K]. Received: {s.shape} and {v.shape}")
    k = s.shape[1]
    d = np.ones(k, bool) if defined is None else np.asarray(defined, bool).reshape(-1)
    if d.shape != (k,):
        raise ConfigError(f"defined must be [K={k}]. Received: defined.shape={d.shape}")
    pred = s > threshold
    right = (pred == v)[:, d]
    per_point = np.full(k, np.nan)
    per_point[d] = right.mean(0)
    vd, pd = v[:, d], pred[:, d]
    recalls = [float(pd[vd].mean()) if vd.any() else float("nan"),
               float((~pd[~vd]).mean()) if (~vd).any() else float("nan")]
    out = {"accuracy": float(right.mean()), "per_point": per_point.tolist(),
           "all_visible_accuracy": float(vd.mean()), "visible_rate": float(vd.mean()),
           "balanced_accuracy": float(np.nanmean(recalls))}
    if train_visible is not None:
        tv = np.asarray(train_visible, np.float64) > 0.5
        if tv.ndim != 2 or tv.shape[1] != k:
            raise ConfigError(f"train_visible must be [M, {k}]. Received: train_visible.shape={tv.shape}")
        majority = tv.mean(0) >= 0.5
        out["train_majority_accuracy"] = float((v == majority[None])[:, d].mean())
    return out
