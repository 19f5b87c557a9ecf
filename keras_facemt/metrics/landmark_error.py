"""Landmark localisation error: NME, failure rate, CED curve and its AUC.

The normalised mean error (NME) of one face is the mean, over its visible points,
of the Euclidean point error divided by a face-size distance:

* ``inter_ocular``: distance between the outer eye corners (300-W); for ``mtfl5``,
  whose only eye points are the centres, this is the eye-centre distance, which is
  the MTFL/MTFE protocol iFAN reports (Sec. 4.1.3, Table 1).
* ``inter_pupil``: distance between the eye centres (mean of each eye's points).
* ``box``: ``sqrt(w * h)`` of the face box (the ground-truth points' extent when
  no box is given).

A failure is a face whose NME exceeds a threshold (10% in iFAN Sec. 4.1.3); the
per-point failure rate (iFAN Fig. 5) applies the same threshold to each point's
normalised error. The cumulative error distribution (CED) is the fraction of faces
with NME at most ``x``; its AUC up to a cut-off is normalised to [0, 1].

Every function is numpy and host-side; ``LandmarkErrorEvaluator`` accumulates
per-batch values so a whole test set never has to be held as predictions.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from keras_facemt.data.landmarks import eye_centers, eye_outer_corners, get_scheme
from keras_facemt.errors import ConfigError

NORMALIZATIONS = ("inter_ocular", "inter_pupil", "box")


def _check_points(pred: np.ndarray, target: np.ndarray, scheme: str) -> Tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, np.float64)
    target = np.asarray(target, np.float64)
    k = get_scheme(scheme).num_points
    if pred.shape != target.shape or pred.ndim != 3 or pred.shape[1:] != (k, 2):
        raise ConfigError(
            f"Landmark predictions and targets must both be [batch, {k}, 2] for scheme "
            f"{scheme!r}. Received: pred.shape={pred.shape}, target.shape={target.shape}"
        )
    return pred, target


def normalizing_distance(
    target: np.ndarray,
    scheme: str,
    normalization: str = "inter_ocular",
    boxes: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Per-face normalising distance ``[batch]``.

    Args:
        target: ground-truth points ``[batch, K, 2]``.
        scheme: landmark scheme of the points (``ibug68``, ``aflw21``, ``mtfl5``).
        normalization: one of ``NORMALIZATIONS``.
        boxes: ``[batch, 4]`` (xmin, ymin, xmax, ymax) for ``box``; ``None`` uses the
            extent of the ground-truth points.

    Raises:
        ConfigError: on an unknown normalisation.
    """
    target = np.asarray(target, np.float64)
    if normalization == "inter_ocular":
        left, right = eye_outer_corners(target, scheme)
    elif normalization == "inter_pupil":
        left, right = eye_centers(target, scheme)
    elif normalization == "box":
        if boxes is None:
            lo, hi = target.min(axis=1), target.max(axis=1)
        else:
            boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
            lo, hi = boxes[:, :2], boxes[:, 2:]
        wh = np.maximum(hi - lo, 0.0)
        return np.sqrt(wh[:, 0] * wh[:, 1])
    else:
        raise ConfigError(
            f"Unknown landmark normalisation {normalization!r}; expected one of "
            f"{list(NORMALIZATIONS)}. Received: normalization={normalization!r}"
        )
    return np.linalg.norm(left - right, axis=-1)


def point_errors(
    pred: np.ndarray,
    target: np.ndarray,
    scheme: str,
    normalization: str = "inter_ocular",
    boxes: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Normalised per-point errors ``[batch, K]``.

    Args:
        pred: predicted points ``[batch, K, 2]``.
        target: ground-truth points ``[batch, K, 2]``.
        scheme: the points' landmark scheme.
        normalization: see ``normalizing_distance``.
        boxes: optional face boxes ``[batch, 4]`` for ``box`` normalisation.
    """
    pred, target = _check_points(pred, target, scheme)
    dist = normalizing_distance(target, scheme, normalization, boxes)
    # A degenerate face (both eyes on one spot) has no scale: its error is infinite,
    # so it counts as a failure instead of silently vanishing from the mean.
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.linalg.norm(pred - target, axis=-1) / dist[:, None]
    return np.where(np.isfinite(err), err, np.inf)


def _visible(visible: Optional[np.ndarray], shape: Tuple[int, int]) -> np.ndarray:
    if visible is None:
        return np.ones(shape, np.float64)
    vis = np.asarray(visible, np.float64)
    if vis.shape != shape:
        raise ConfigError(f"visible must be [batch, K] = {list(shape)}. Received: visible.shape={vis.shape}")
    return (vis > 0).astype(np.float64)


def nme_per_face(
    pred: np.ndarray,
    target: np.ndarray,
    scheme: str,
    visible: Optional[np.ndarray] = None,
    normalization: str = "inter_ocular",
    boxes: Optional[np.ndarray] = None,
) -> np.ndarray:
    """NME of each face ``[batch]`` over its visible points (NaN with none visible).

    Args:
        pred, target: ``[batch, K, 2]``.
        scheme: the points' landmark scheme.
        visible: ``[batch, K]`` visibility (1 counts, 0 ignored); None: all visible.
        normalization: ``inter_ocular``, ``inter_pupil`` or ``box``.
        boxes: optional face boxes ``[batch, 4]``.
    """
    err = point_errors(pred, target, scheme, normalization, boxes)
    vis = _visible(visible, err.shape)
    count = vis.sum(axis=1)
    total = np.where(vis > 0, err, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def nme(pred, target, scheme, visible=None, normalization="inter_ocular", boxes=None) -> float:
    """Mean NME over faces with at least one visible point (a fraction, not %)."""
    per_face = nme_per_face(pred, target, scheme, visible, normalization, boxes)
    per_face = per_face[~np.isnan(per_face)]
    return float(per_face.mean()) if per_face.size else float("nan")


def failure_rate(per_face_nme: np.ndarray, threshold: float = 0.1) -> float:
    """Fraction of faces whose NME is above ``threshold`` (NaN faces excluded)."""
    v = np.asarray(per_face_nme, np.float64)
    v = v[~np.isnan(v)]
    return float((v > threshold).mean()) if v.size else float("nan")


def ced_curve(per_face_nme: np.ndarray, cutoff: float = 0.1, num_bins: int = 1000) -> Tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution on ``[0, cutoff]``.

    Returns:
        ``(thresholds [num_bins + 1], fraction [num_bins + 1])``: the fraction of
        faces with NME <= each threshold.
    """
    if cutoff <= 0 or num_bins < 1:
        raise ConfigError(f"cutoff must be > 0 and num_bins >= 1. Received: cutoff={cutoff}, num_bins={num_bins}")
    v = np.asarray(per_face_nme, np.float64)
    v = np.sort(v[~np.isnan(v)])
    xs = np.linspace(0.0, cutoff, num_bins + 1)
    if not v.size:
        return xs, np.zeros_like(xs)
    return xs, np.searchsorted(v, xs, side="right") / v.size


def ced_auc(per_face_nme: np.ndarray, cutoff: float = 0.1, num_bins: int = 1000) -> float:
    """Area under the CED curve up to ``cutoff``, divided by ``cutoff`` (in [0, 1])."""
    xs, ys = ced_curve(per_face_nme, cutoff, num_bins)
    return float(np.trapezoid(ys, xs) / cutoff)


class LandmarkErrorEvaluator:
    """Streaming landmark evaluator (iFAN Sec. 4.1.3, Table 1, Fig. 5).

    Example:
        >>> ev = LandmarkErrorEvaluator("mtfl5")
        >>> for batch, pred in ...:
        ...     ev.update(pred, batch["landmarks"], batch["landmarks_visible"])
        >>> ev.result()["nme"]
    """

    def __init__(self, scheme: str, normalization: str = "inter_ocular", failure_threshold: float = 0.1,
                 ced_cutoff: float = 0.1):
        get_scheme(scheme)
        if normalization not in NORMALIZATIONS:
            raise ConfigError(
                f"Unknown landmark normalisation {normalization!r}; expected one of "
                f"{list(NORMALIZATIONS)}. Received: normalization={normalization!r}"
            )
        self.scheme = scheme
        self.normalization = normalization
        self.failure_threshold = float(failure_threshold)
        self.ced_cutoff = float(ced_cutoff)
        self.reset()

    def reset(self) -> None:
        self._faces: List[np.ndarray] = []
        self._points: List[np.ndarray] = []
        self._visible: List[np.ndarray] = []

    def update(self, pred, target, visible=None, boxes=None, weights=None) -> None:
        """Adds a batch.

        Args:
            pred, target: ``[batch, K, 2]``.
            visible: ``[batch, K]`` or None.
            boxes: ``[batch, 4]`` for ``box`` normalisation.
            weights: ``[batch]`` presence flags; faces with 0 are skipped.
        """
        err = point_errors(pred, target, self.scheme, self.normalization, boxes)
        vis = _visible(visible, err.shape)
        if weights is not None:
            keep = np.asarray(weights).reshape(-1) > 0
            err, vis = err[keep], vis[keep]
        count = vis.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_face = np.where(count > 0, np.where(vis > 0, err, 0.0).sum(1) / np.maximum(count, 1), np.nan)
        self._faces.append(per_face)
        self._points.append(err)
        self._visible.append(vis)

    def per_face_nme(self) -> np.ndarray:
        return np.concatenate(self._faces) if self._faces else np.zeros((0,))

    def result(self) -> Dict[str, object]:
        """Metrics as fractions: ``nme``, ``failure_rate``, ``auc``, ``per_point_nme``,
        ``per_point_failure_rate`` (dicts keyed by point name), ``count``."""
        faces = self.per_face_nme()
        names: Sequence[str] = get_scheme(self.scheme).point_names
        if self._points:
            err = np.concatenate(self._points)
            vis = np.concatenate(self._visible)
        else:
            err = np.zeros((0, len(names)))
            vis = err
        per_point, per_point_fail = {}, {}
        for j, name in enumerate(names):
            e = err[vis[:, j] > 0, j]
            per_point[name] = float(e.mean()) if e.size else float("nan")
            per_point_fail[name] = float((e > self.failure_threshold).mean()) if e.size else float("nan")
        valid = faces[~np.isnan(faces)]
        return {
            "nme": float(valid.mean()) if valid.size else float("nan"),
            "failure_rate": failure_rate(faces, self.failure_threshold),
            "auc": ced_auc(faces, self.ced_cutoff),
            "per_point_nme": per_point,
            "per_point_failure_rate": per_point_fail,
            "count": int(valid.size),
            "normalization": self.normalization,
        }
