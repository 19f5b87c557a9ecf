"""Per-image non-maximum suppression over a batch, on TFLite builtin ops.

``batched_nms`` runs ``NonMaxSuppressionV4`` (TFLite builtin
``NON_MAX_SUPPRESSION_V4``, the op behind ``tf.image.non_max_suppression_padded``
for one image) once per image with ``tf.map_fn`` (a builtin ``WHILE``), so it
converts to TFLite without select-TF ops, unlike
``tf.image.combined_non_max_suppression``. Outputs are padded to
``max_detections`` with a per-image count, so a batch of images with different
numbers of faces -- or none -- yields well-formed tensors.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.ops import boxes as box_ops


@dataclasses.dataclass(frozen=True)
class Detections:
    """Padded NMS output.

    Attributes:
        indices: int32 ``[batch, D]`` anchor indices of the kept boxes (0 in padding).
        boxes: float32 ``[batch, D, 4]`` kept boxes (zeros in padding).
        scores: float32 ``[batch, D]`` their scores, descending (zeros in padding).
        num_detections: int32 ``[batch]`` number of valid rows per image.
        valid: bool ``[batch, D]``, ``arange(D) < num_detections``.
    """

    indices: tf.Tensor
    boxes: tf.Tensor
    scores: tf.Tensor
    num_detections: tf.Tensor
    valid: tf.Tensor


def check_nms_args(max_detections: int, iou_threshold: float, score_threshold: float) -> None:
    """Raises ``ConfigError`` for out-of-range NMS parameters."""
    if int(max_detections) < 1:
        raise ConfigError(f"max_detections must be >= 1. Received: max_detections={max_detections}")
    if not 0.0 < iou_threshold <= 1.0:
        raise ConfigError(f"iou_threshold must be in (0, 1]. Received: iou_threshold={iou_threshold}")
    if not 0.0 <= score_threshold < 1.0:
        raise ConfigError(f"score_threshold must be in [0, 1). Received: score_threshold={score_threshold}")


def batched_nms(boxes, scores, max_detections: int = 100, iou_threshold: float = 0.4,
                score_threshold: float = 0.5) -> Detections:
    """Greedy NMS per image.

    Args:
        boxes: float ``[batch, A, 4]`` normalised (xmin, ymin, xmax, ymax).
        scores: float ``[batch, A]`` face probabilities.
        max_detections: D, the padded output length.
        iou_threshold: a box overlapping a kept box by more than this is dropped.
        score_threshold: boxes scoring at most this are dropped.

    Returns:
        ``Detections``.
    """
    check_nms_args(max_detections, iou_threshold, score_threshold)
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    scores = tf.convert_to_tensor(scores, tf.float32)
    tf_boxes = box_ops.to_tf_order(boxes)
    d = int(max_detections)

    def one(args):
        b, s = args
        idx, n = tf.raw_ops.NonMaxSuppressionV4(
            boxes=b, scores=s, max_output_size=d, iou_threshold=float(iou_threshold),
            score_threshold=float(score_threshold), pad_to_max_output_size=True)
        return idx, n

    indices, num = tf.map_fn(one, (tf_boxes, scores),
                             fn_output_signature=(tf.TensorSpec([d], tf.int32), tf.TensorSpec([], tf.int32)))
    # expand_dims, not [None] indexing: TFLite's builtin StridedSlice has no new_axis_mask.
    valid = tf.expand_dims(tf.range(d), 0) < tf.expand_dims(num, 1)
    indices = tf.where(valid, indices, 0)
    kept_boxes = tf.gather(boxes, indices, axis=1, batch_dims=1) * tf.expand_dims(tf.cast(valid, tf.float32), -1)
    kept_scores = tf.gather(scores, indices, axis=1, batch_dims=1) * tf.cast(valid, tf.float32)
    return Detections(indices, kept_boxes, kept_scores, num, valid)


def gather_detections(values, detections: Detections):
    """Gathers per-anchor values (e.g. landmarks ``[batch, A, 5, 2]``) for the kept boxes.

    Returns:
        ``[batch, D, ...]`` with zeros in padded rows.
    """
    values = tf.convert_to_tensor(values)
    out = tf.gather(values, detections.indices, axis=1, batch_dims=1)
    mask = tf.cast(detections.valid, out.dtype)
    return out * tf.reshape(mask, tf.concat([tf.shape(mask), tf.ones([tf.rank(out) - 2], tf.int32)], 0))
