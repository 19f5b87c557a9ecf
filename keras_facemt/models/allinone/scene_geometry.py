"""Stage 1's geometry on whole images, shared by the Python pipeline (``scene_pipeline``)
and the deployable graph (``scene_graph``): the dense window grid that replaces
Selective Search, and the face box implied by a face's points (IRP, L-NMS).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from keras_facemt.data.landmarks import subset_matrix
from keras_facemt.models.allinone.config import SceneDetectorConfig


def candidate_windows(height: int, width: int, cfg: SceneDetectorConfig) -> np.ndarray:
    """Dense multi-scale square windows ``[N, 4]`` (pixels) covering the image."""
    short = min(height, width)
    side, out = cfg.min_side * short, []
    while side <= cfg.max_side * short + 1e-6:
        step = max(cfg.stride * side, 1.0)
        xs = np.arange(0.0, max(width - side, 0.0) + 1e-6, step)
        ys = np.arange(0.0, max(height - side, 0.0) + 1e-6, step)
        gx, gy = np.meshgrid(xs, ys)
        out.append(np.stack([gx.ravel(), gy.ravel(), gx.ravel() + side, gy.ravel() + side], -1))
        side *= cfg.scale_step
    return np.concatenate(out, 0) if out else np.zeros((0, 4))


def defined_points(scheme: str = "aflw21") -> np.ndarray:
    """Indices of the points SynthFace's ibug68 source defines (aflw21's ears are not)."""
    return np.flatnonzero(subset_matrix("ibug68", scheme)[1] > 0)


def box_prior(face_boxes: np.ndarray, face_points: np.ndarray, points: Sequence[int]) -> np.ndarray:
    """Mean face box ``[4]`` in the frame of its points' extent (fitted on training faces)."""
    pts = np.asarray(face_points, np.float64)[:, points]
    lo, hi = pts.min(1), pts.max(1)
    wh = np.maximum(hi - lo, 1e-6)
    box = np.asarray(face_boxes, np.float64)
    rel = np.concatenate([(box[:, :2] - lo) / wh, (box[:, 2:] - lo) / wh], -1)
    return np.median(rel, 0)


def box_from_points(points: np.ndarray, prior: np.ndarray, indices: Sequence[int]) -> np.ndarray:
    """Face boxes ``[N, 4]`` implied by predicted points ``[N, K, 2]`` (pixels) and ``box_prior``."""
    pts = np.asarray(points, np.float64)[:, indices]
    lo, hi = pts.min(1), pts.max(1)
    wh = np.maximum(hi - lo, 1e-6)
    return np.concatenate([lo + prior[None, :2] * wh, lo + prior[None, 2:] * wh], -1)
