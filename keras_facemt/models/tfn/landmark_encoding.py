"""TFN's landmark encoding relative to a face box (Lin et al., Sec. IV-B, Eq. 5).

``q = ((c_x - u) / w, (c_y - v) / h)`` for a point ``(u, v)`` and a (predicted) face
box with centre ``c`` and size ``(w, h)``. The landmark subnet regresses the 136
values of ``q``; ``decode_landmarks`` inverts it: ``u = c_x - q_x w``.
"""

from __future__ import annotations

import tensorflow as tf

from keras_facemt.ops import boxes as box_ops

_EPS = 1e-6


def encode_landmarks(points, boxes):
    """Eq. 5.

    Args:
        points: ``[..., K, 2]`` (x, y) normalised.
        boxes: ``[..., 4]`` corner boxes, one per point set.

    Returns:
        ``[..., K, 2]`` offsets.
    """
    c = tf.expand_dims(box_ops.corners_to_center(boxes), -2)
    return (c[..., 0:2] - tf.convert_to_tensor(points, tf.float32)) / tf.maximum(c[..., 2:4], _EPS)


def decode_landmarks(offsets, boxes):
    """Inverse of ``encode_landmarks``: ``[..., K, 2]`` offsets -> points."""
    c = tf.expand_dims(box_ops.corners_to_center(boxes), -2)
    return c[..., 0:2] - tf.convert_to_tensor(offsets, tf.float32) * c[..., 2:4]
