"""Box and point geometry: conversions, IoU, clipping, anchor-relative encoding.

Convention (``data/schema.py``): coordinates are normalised to [0, 1], boxes are
``(xmin, ymin, xmax, ymax)`` and points ``(x, y)``. This module is the one place that
converts to TensorFlow's ``(ymin, xmin, ymax, xmax)`` order needed by ``tf.image``
ops (``to_tf_order`` / ``from_tf_order``).

Anchor-relative encoding follows SSD (Liu et al., ECCV'16, Sec. 2.2) with the usual
"variances": a box is encoded as
``((cx - acx) / (aw * v0), (cy - acy) / (ah * v0), log(w / aw) / v1, log(h / ah) / v1)``
and a point as ``((x - acx) / (aw * v0), (y - acy) / (ah * v0))`` -- the landmark
offsets of Uniface Sec. III-C ("10 landmark localization offsets relative to the
anchor box").

All functions are pure TensorFlow, broadcast over leading dimensions and accept
numpy arrays.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from keras_facemt.errors import ConfigError

DEFAULT_VARIANCES = (0.1, 0.2)
_EPS = 1e-8


def _f32(x):
    return tf.convert_to_tensor(x, tf.float32)


def _check_variances(variances: Sequence[float]):
    if len(variances) != 2 or min(variances) <= 0:
        raise ConfigError(f"variances must be two positive numbers. Received: variances={tuple(variances)}")


def to_tf_order(boxes):
    """``[..., 4]`` (xmin, ymin, xmax, ymax) -> TF's (ymin, xmin, ymax, xmax)."""
    b = _f32(boxes)
    return tf.gather(b, [1, 0, 3, 2], axis=-1)


def from_tf_order(boxes):
    """``[..., 4]`` TF's (ymin, xmin, ymax, xmax) -> (xmin, ymin, xmax, ymax)."""
    return to_tf_order(boxes)  # The permutation is its own inverse.


def corners_to_center(boxes):
    """``[..., 4]`` (xmin, ymin, xmax, ymax) -> (cx, cy, w, h)."""
    b = _f32(boxes)
    x0, y0, x1, y1 = tf.unstack(b, axis=-1)
    return tf.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], axis=-1)


def center_to_corners(boxes):
    """``[..., 4]`` (cx, cy, w, h) -> (xmin, ymin, xmax, ymax)."""
    b = _f32(boxes)
    cx, cy, w, h = tf.unstack(b, axis=-1)
    return tf.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def area(boxes):
    """``[..., 4]`` -> ``[...]`` area (0 for degenerate boxes)."""
    b = _f32(boxes)
    return tf.maximum(b[..., 2] - b[..., 0], 0.0) * tf.maximum(b[..., 3] - b[..., 1], 0.0)


def iou(boxes_a, boxes_b):
    """Pairwise intersection over union (Jaccard overlap).

    Args:
        boxes_a: ``[..., N, 4]``.
        boxes_b: ``[..., M, 4]`` (leading dimensions broadcast with ``boxes_a``'s).

    Returns:
        ``[..., N, M]`` IoU in [0, 1]; 0 where both boxes are empty.
    """
    # expand_dims, not None indexing: TFLite's builtin StridedSlice has no new_axis_mask.
    a = tf.expand_dims(_f32(boxes_a), -2)
    b = tf.expand_dims(_f32(boxes_b), -3)
    iw = tf.maximum(tf.minimum(a[..., 2], b[..., 2]) - tf.maximum(a[..., 0], b[..., 0]), 0.0)
    ih = tf.maximum(tf.minimum(a[..., 3], b[..., 3]) - tf.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = iw * ih
    union = area(a) + area(b) - inter
    return tf.where(union > 0, inter / tf.maximum(union, _EPS), 0.0)


def clip_boxes(boxes, low: float = 0.0, high: float = 1.0):
    """Clips ``[..., 4]`` box corners to ``[low, high]``."""
    return tf.clip_by_value(_f32(boxes), low, high)


def encode_boxes(boxes, anchors, variances: Sequence[float] = DEFAULT_VARIANCES):
    """Encodes boxes as SSD offsets relative to anchors.

    Args:
        boxes: ``[..., A, 4]`` corner boxes (one target per anchor).
        anchors: ``[A, 4]`` (or broadcastable) corner anchors.
        variances: (centre variance, size variance).

    Returns:
        ``[..., A, 4]`` offsets ``(dx, dy, dw, dh)``.
    """
    _check_variances(variances)
    b = corners_to_center(boxes)
    a = corners_to_center(anchors)
    aw = tf.maximum(a[..., 2], _EPS)
    ah = tf.maximum(a[..., 3], _EPS)
    dx = (b[..., 0] - a[..., 0]) / (aw * variances[0])
    dy = (b[..., 1] - a[..., 1]) / (ah * variances[0])
    dw = tf.math.log(tf.maximum(b[..., 2], _EPS) / aw) / variances[1]
    dh = tf.math.log(tf.maximum(b[..., 3], _EPS) / ah) / variances[1]
    return tf.stack([dx, dy, dw, dh], axis=-1)


def decode_boxes(offsets, anchors, variances: Sequence[float] = DEFAULT_VARIANCES):
    """Inverse of ``encode_boxes``: ``[..., A, 4]`` offsets -> corner boxes."""
    _check_variances(variances)
    d = _f32(offsets)
    a = corners_to_center(anchors)
    cx = a[..., 0] + d[..., 0] * variances[0] * a[..., 2]
    cy = a[..., 1] + d[..., 1] * variances[0] * a[..., 3]
    # The clip keeps an untrained head's exp() finite.
    w = a[..., 2] * tf.exp(tf.minimum(d[..., 2] * variances[1], 10.0))
    h = a[..., 3] * tf.exp(tf.minimum(d[..., 3] * variances[1], 10.0))
    return center_to_corners(tf.stack([cx, cy, w, h], axis=-1))


def encode_points(points, anchors, variances: Sequence[float] = DEFAULT_VARIANCES):
    """Encodes points relative to anchors (Uniface Sec. III-C landmark offsets).

    Args:
        points: ``[..., A, K, 2]`` (x, y) points (one point set per anchor).
        anchors: ``[A, 4]`` corner anchors.
        variances: only the centre variance is used.

    Returns:
        ``[..., A, K, 2]`` offsets.
    """
    _check_variances(variances)
    p = _f32(points)
    a = tf.expand_dims(corners_to_center(anchors), -2)
    centre = a[..., 0:2]
    size = tf.maximum(a[..., 2:4], _EPS)
    return (p - centre) / (size * variances[0])


def decode_points(offsets, anchors, variances: Sequence[float] = DEFAULT_VARIANCES):
    """Inverse of ``encode_points``: ``[..., A, K, 2]`` offsets -> points."""
    _check_variances(variances)
    d = _f32(offsets)
    a = tf.expand_dims(corners_to_center(anchors), -2)  # builtin-op friendly (no new_axis_mask)
    return a[..., 0:2] + d * variances[0] * a[..., 2:4]


def boxes_to_pixels(boxes, height: int, width: int):
    """Normalised ``[..., 4]`` boxes -> pixel coordinates of a ``height x width`` image."""
    scale = tf.constant([width, height, width, height], tf.float32)
    return _f32(boxes) * scale
