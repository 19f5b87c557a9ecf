"""Anchor-to-ground-truth matching and hard negative mining, vectorised over a batch.

* ``match_anchors``: SSD's rule (Liu et al., ECCV'16, Sec. 2.2 "Matching strategy"),
  used by Uniface Sec. III-E.1: every ground-truth box is matched to the anchor with
  the best Jaccard overlap, and additionally every anchor whose best overlap with any
  ground truth exceeds a threshold is matched to that ground truth.
* ``top_k_match``: TFN's RPN rule (Lin et al., Sec. IV-B, Eq. 2): each ground truth takes
  the ``k`` anchors with the highest IoU as positives (k = 3), which favours small
  faces that no anchor overlaps by much.
* ``hard_negative_mask``: SSD / Uniface Sec. III-E.1 hard negative mining: of the
  background anchors keep the ``ratio * k`` with the highest face confidence, ``k``
  being the image's number of positives.

Ground truths are padded ``[batch, F, 4]`` boxes with a ``[batch, F]`` validity mask
(the scenes-mode ``face_mask``); no Python loop runs over faces or images.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.ops import boxes as box_ops


@dataclasses.dataclass(frozen=True)
class MatchResult:
    """Per-anchor assignment.

    Attributes:
        matched_index: int32 ``[batch, A]`` index of the matched ground truth, -1 for
            background.
        positive: bool ``[batch, A]``, ``matched_index >= 0``.
        max_iou: float32 ``[batch, A]`` best IoU of each anchor with a valid ground
            truth (0 where the image has none).
    """

    matched_index: tf.Tensor
    positive: tf.Tensor
    max_iou: tf.Tensor


def _masked_iou(gt_boxes, gt_mask, anchors):
    gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
    valid = tf.convert_to_tensor(gt_mask, tf.float32) > 0  # [B, F]
    ious = box_ops.iou(gt_boxes, tf.convert_to_tensor(anchors, tf.float32)[None])  # [B, F, A]
    return tf.where(valid[:, :, None], ious, -1.0), valid


def _per_anchor_best(ious):
    best_gt = tf.argmax(ious, axis=1, output_type=tf.int32)  # [B, A]
    best_iou = tf.reduce_max(ious, axis=1)
    return best_gt, best_iou


def match_anchors(gt_boxes, gt_mask, anchors, iou_threshold: float = 0.35,
                  force_best: bool = True) -> MatchResult:
    """SSD matching: best anchor per ground truth plus every anchor over a threshold.

    Args:
        gt_boxes: float ``[batch, F, 4]`` normalised corner boxes (padded).
        gt_mask: ``[batch, F]``, nonzero for real faces.
        anchors: ``[A, 4]`` normalised corner anchors.
        iou_threshold: anchors whose best IoU is ``>=`` this are positives.
        force_best: also match each ground truth to its single best anchor, even
            under the threshold (so every face gets a positive).

    Returns:
        ``MatchResult``. Where two ground truths claim the same forced anchor, the one
        with the higher IoU wins.

    Raises:
        ConfigError: if ``iou_threshold`` is outside (0, 1].
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ConfigError(f"iou_threshold must be in (0, 1]. Received: iou_threshold={iou_threshold}")
    ious, valid = _masked_iou(gt_boxes, gt_mask, anchors)
    best_gt, best_iou = _per_anchor_best(ious)
    matched = tf.where(best_iou >= iou_threshold, best_gt, -1)
    if force_best:
        num_anchors = tf.shape(ious)[2]
        best_anchor = tf.argmax(ious, axis=2, output_type=tf.int32)  # [B, F]
        has_overlap = valid & (tf.reduce_max(ious, axis=2) > 0)
        forced = tf.one_hot(best_anchor, num_anchors, dtype=tf.float32) * tf.cast(has_overlap, tf.float32)[:, :, None]
        # Among ground truths forcing the same anchor, keep the best-overlapping one.
        forced_iou = tf.where(forced > 0, ious, -2.0)  # [B, F, A]
        forced_gt = tf.argmax(forced_iou, axis=1, output_type=tf.int32)
        is_forced = tf.reduce_max(forced, axis=1) > 0
        matched = tf.where(is_forced, forced_gt, matched)
    return MatchResult(matched, matched >= 0, tf.maximum(best_iou, 0.0))


def top_k_match(gt_boxes, gt_mask, anchors, k: int = 3, min_iou: float = 0.0) -> MatchResult:
    """TFN matching: each ground truth takes its ``k`` highest-IoU anchors.

    Args:
        gt_boxes: float ``[batch, F, 4]``.
        gt_mask: ``[batch, F]``.
        anchors: ``[A, 4]``.
        k: anchors per ground truth (TFN: 3).
        min_iou: an anchor needs IoU ``>`` this with the ground truth to be taken.

    Returns:
        ``MatchResult``; an anchor among the top-k of several ground truths goes to the
        one it overlaps most.

    Raises:
        ConfigError: if ``k < 1``.
    """
    if int(k) < 1:
        raise ConfigError(f"k must be >= 1. Received: k={k}")
    ious, valid = _masked_iou(gt_boxes, gt_mask, anchors)
    num_anchors = tf.shape(ious)[2]
    k_eff = tf.minimum(int(k), num_anchors)
    top_iou, top_idx = tf.math.top_k(ious, k=k_eff)  # [B, F, k]
    take = tf.cast(valid[:, :, None] & (top_iou > min_iou), tf.float32)
    assigned = tf.reduce_max(tf.one_hot(top_idx, num_anchors, dtype=tf.float32) * take[..., None], axis=2)  # [B, F, A]
    claim_iou = tf.where(assigned > 0, ious, -2.0)
    gt = tf.argmax(claim_iou, axis=1, output_type=tf.int32)
    matched = tf.where(tf.reduce_max(assigned, axis=1) > 0, gt, -1)
    _, best_iou = _per_anchor_best(ious)
    return MatchResult(matched, matched >= 0, tf.maximum(best_iou, 0.0))


def gather_matched(values, matched_index):
    """Per-anchor targets from per-face values.

    Args:
        values: ``[batch, F, ...]`` per-face values (boxes, landmarks, flags).
        matched_index: int ``[batch, A]`` from a ``MatchResult`` (-1: background).

    Returns:
        ``[batch, A, ...]``; background anchors get face 0's value (mask them with
        ``positive``).
    """
    values = tf.convert_to_tensor(values)
    idx = tf.maximum(tf.convert_to_tensor(matched_index, tf.int32), 0)
    return tf.gather(values, idx, axis=1, batch_dims=1)


def hard_negative_mask(face_scores, positive, ratio: float = 3.0, min_negatives: int = 0,
                       ignore=None):
    """Hard negative mining: the ``ratio * k`` most face-like background anchors.

    Args:
        face_scores: float ``[batch, A]`` face confidence (logit or probability) of
            each anchor; higher means harder for a background anchor.
        positive: bool ``[batch, A]``.
        ratio: negatives kept per positive (Uniface, SSD: 3).
        min_negatives: negatives kept in every image even with no positives, so
            face-free images still teach the detector what a false positive is.
        ignore: optional bool ``[batch, A]`` anchors that are neither (never mined).

    Returns:
        bool ``[batch, A]`` mask of the selected negatives (disjoint from
        ``positive``).
    """
    if ratio < 0 or int(min_negatives) < 0:
        raise ConfigError(f"ratio and min_negatives must be >= 0. Received: ratio={ratio}, min_negatives={min_negatives}")
    scores = tf.convert_to_tensor(face_scores, tf.float32)
    positive = tf.cast(positive, tf.bool)
    candidate = tf.logical_not(positive)
    if ignore is not None:
        candidate &= tf.logical_not(tf.cast(ignore, tf.bool))
    masked = tf.where(candidate, scores, tf.float32.min)
    order = tf.argsort(masked, axis=1, direction="DESCENDING", stable=True)
    rank = tf.argsort(order, axis=1, stable=True)  # rank of each anchor, 0 = hardest
    num_pos = tf.reduce_sum(tf.cast(positive, tf.float32), axis=1)
    num_neg = tf.maximum(tf.math.floor(ratio * num_pos), float(min_negatives))
    return candidate & (tf.cast(rank, tf.float32) < num_neg[:, None])
