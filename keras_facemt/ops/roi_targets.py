"""Ground-truth assignment of regions of interest (Fast R-CNN style, TFN Sec. IV-B).

TFN's region subnets learn on ROIs labelled by their overlap with the annotated
faces (Lin et al., TCYB'19):

* detection subnet (Eq. 3): a proposal is a face when its IoU with some ground truth
  exceeds 0.5, background otherwise;
* landmark and attribute subnets (Eqs. 4, 6): the samples are the faces "with IoU
  larger than 0.7" to a ground truth, each taking that face's labels.

``assign_roi_targets`` does both with one threshold argument, vectorised over a
padded batch: each ROI takes its highest-IoU valid ground truth and is positive when
that IoU is strictly above the threshold. Empty ROIs (zero area: padding) are marked
invalid so losses can skip them.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.ops import boxes as box_ops

DETECTION_IOU = 0.5
FACE_SAMPLE_IOU = 0.7


@dataclasses.dataclass(frozen=True)
class RoiTargets:
    """Per-ROI assignment.

    Attributes:
        matched_index: int32 ``[batch, R]`` index of the best-overlapping valid ground
            truth (0 where the image has none; use ``positive``).
        positive: bool ``[batch, R]``: valid ROI with IoU above the threshold.
        max_iou: float32 ``[batch, R]`` that IoU (0 without ground truth).
        valid: bool ``[batch, R]``: the ROI has a positive area.
    """

    matched_index: tf.Tensor
    positive: tf.Tensor
    max_iou: tf.Tensor
    valid: tf.Tensor


def assign_roi_targets(rois, gt_boxes, gt_mask, iou_threshold: float = DETECTION_IOU) -> RoiTargets:
    """Assigns each ROI to its best ground truth.

    Args:
        rois: float ``[batch, R, 4]`` normalised corner boxes.
        gt_boxes: float ``[batch, F, 4]`` (padded).
        gt_mask: ``[batch, F]``, nonzero for real faces.
        iou_threshold: positive when IoU ``>`` this (0.5 detection, 0.7 landmarks
            and attributes).

    Returns:
        ``RoiTargets``.

    Raises:
        ConfigError: if ``iou_threshold`` is outside [0, 1).
    """
    if not 0.0 <= iou_threshold < 1.0:
        raise ConfigError(f"iou_threshold must be in [0, 1). Received: iou_threshold={iou_threshold}")
    rois = tf.convert_to_tensor(rois, tf.float32)
    valid_gt = tf.convert_to_tensor(gt_mask, tf.float32) > 0  # [B, F]
    ious = box_ops.iou(rois, tf.convert_to_tensor(gt_boxes, tf.float32))  # [B, R, F]
    ious = tf.where(tf.expand_dims(valid_gt, 1), ious, -1.0)
    best = tf.argmax(ious, axis=2, output_type=tf.int32)
    best_iou = tf.maximum(tf.reduce_max(ious, axis=2), 0.0)
    valid = box_ops.area(rois) > 0
    positive = valid & (best_iou > iou_threshold)
    return RoiTargets(tf.where(positive, best, 0), positive, best_iou, valid)


def gather_roi_targets(values, targets: RoiTargets):
    """Per-ROI copies of per-face values (boxes, landmarks, attribute labels).

    Args:
        values: ``[batch, F, ...]``.
        targets: from ``assign_roi_targets``.

    Returns:
        ``[batch, R, ...]``; non-positive ROIs get face 0's value (mask them).
    """
    return tf.gather(tf.convert_to_tensor(values), targets.matched_index, axis=1, batch_dims=1)
