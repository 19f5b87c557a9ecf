"""Anchor-based detection losses shared by the detectors (Uniface's SSD head, TFN's RPN).

* ``DetectionTargets``: matches ground-truth faces to anchors (SSD: best anchor +
  IoU threshold; TFN Eq. 2: each face's top-k IoU anchors) and encodes box and
  landmark regression targets relative to the anchors (``ops.boxes``).
* ``classification_loss_fn``: face / background softmax cross-entropy over the
  positives and the hardest negatives (``ops.matching.hard_negative_mask``).
* ``box_loss_fn`` / ``landmark_loss_fn``: smooth-L1 on the positives' offsets.

Every function returns a per-image loss ``[B]`` (the trainer's ``LossTerm``
contract), each image's loss divided by its own number of matched anchors, so an
image's weight does not depend on the other images of the batch or on how a batch
is split across replicas. Ground-truth boxes are clipped to the image first; faces
whose clipped box is empty are dropped.

Batch keys (``data/batch.py``, scenes mode): ``bbox`` ``[B, F, 4]``, ``landmarks``
``[B, F, K, 2]``, ``landmarks_visible`` ``[B, F, K]`` (optional), ``has_landmarks``
``[B, F]``, ``face_mask`` ``[B, F]``.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import tensorflow as tf

from keras_facemt.data import batch as batch_keys
from keras_facemt.errors import ConfigError
from keras_facemt.losses.regression import smooth_l1
from keras_facemt.ops import boxes as box_ops
from keras_facemt.ops import matching


def valid_faces(batch):
    """``[B, F]`` float mask of real faces whose box, clipped to the image, is non-empty."""
    boxes = box_ops.clip_boxes(batch[batch_keys.BBOX])
    mask = tf.cast(batch[batch_keys.FACE_MASK], tf.float32)
    return mask * tf.cast(box_ops.area(boxes) > 0, tf.float32)


class DetectionTargets:
    """Matches ground truth to anchors and encodes regression targets.

    Args:
        anchors: ``[A, 4]`` normalised corner anchors (``model.model_anchors``).
        variances: encoding variances.
        matcher: ``"ssd"`` (best anchor + IoU threshold) or ``"top_k"`` (TFN).
        iou_threshold: SSD positive threshold.
        top_k: anchors per face for ``"top_k"``.
    """

    def __init__(self, anchors, variances: Sequence[float] = (0.1, 0.2), matcher: str = "ssd",
                 iou_threshold: float = 0.35, top_k: int = 3):
        if matcher not in ("ssd", "top_k"):
            raise ConfigError(f"matcher must be 'ssd' or 'top_k'. Received: matcher={matcher!r}")
        self.anchors = tf.constant(anchors, tf.float32)
        self.variances = tuple(variances)
        self.matcher = matcher
        self.iou_threshold = float(iou_threshold)
        self.top_k = int(top_k)

    def match(self, batch) -> matching.MatchResult:
        boxes = box_ops.clip_boxes(batch[batch_keys.BBOX])
        mask = valid_faces(batch)
        if self.matcher == "ssd":
            return matching.match_anchors(boxes, mask, self.anchors, self.iou_threshold)
        return matching.top_k_match(boxes, mask, self.anchors, self.top_k)

    def box_targets(self, batch, m: matching.MatchResult):
        gt = matching.gather_matched(box_ops.clip_boxes(batch[batch_keys.BBOX]), m.matched_index)
        return box_ops.encode_boxes(gt, self.anchors, self.variances)

    def landmark_targets(self, batch, m: matching.MatchResult) -> Tuple[tf.Tensor, tf.Tensor]:
        """Returns (``[B, A, 5, 2]`` encoded targets, ``[B, A, 5]`` point weights)."""
        lms = tf.cast(batch[batch_keys.LANDMARKS], tf.float32)
        has = tf.cast(batch[batch_keys.HAS_LANDMARKS], tf.float32)  # [B, F]
        vis = batch.get(batch_keys.LANDMARKS_VISIBLE)
        vis = tf.ones_like(lms[..., 0]) if vis is None else tf.cast(vis, tf.float32)
        weight = matching.gather_matched(vis * has[..., None], m.matched_index)
        weight *= tf.cast(m.positive, tf.float32)[..., None]
        target = box_ops.encode_points(matching.gather_matched(lms, m.matched_index), self.anchors, self.variances)
        return target, weight


def _num_pos(m):
    return tf.maximum(tf.reduce_sum(tf.cast(m.positive, tf.float32), axis=1), 1.0)


def classification_loss_fn(targets: DetectionTargets, neg_ratio: float = 3.0, min_negatives: int = 8):
    """``L_cls`` per image: softmax CE over positives + hard negatives, / matched anchors."""

    def fn(batch, cls_logits):
        m = targets.match(batch)
        logits = tf.cast(cls_logits, tf.float32)
        labels = tf.cast(m.positive, tf.int32)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)  # [B, A]
        hardness = tf.stop_gradient(logits[..., 1] - logits[..., 0])
        neg = matching.hard_negative_mask(hardness, m.positive, neg_ratio, min_negatives)
        keep = tf.cast(m.positive | neg, tf.float32)
        return tf.reduce_sum(ce * keep, axis=1) / _num_pos(m)

    return fn


def box_loss_fn(targets: DetectionTargets):
    """``L_bb`` per image: smooth-L1 on positive anchors' offsets, / matched anchors."""

    def fn(batch, box_offsets):
        m = targets.match(batch)
        t = targets.box_targets(batch, m)
        return smooth_l1(t, box_offsets, weights=m.positive) / _num_pos(m)

    return fn


def landmark_loss_fn(targets: DetectionTargets):
    """``L_lm`` per image: smooth-L1 on positive anchors' landmark offsets, / anchors with landmarks."""

    def fn(batch, landmark_offsets):
        m = targets.match(batch)
        t, w = targets.landmark_targets(batch, m)
        n = tf.maximum(tf.reduce_sum(tf.cast(tf.reduce_max(w, axis=-1) > 0, tf.float32), axis=1), 1.0)
        # Summed over the 10 coordinates like L_bb over its 4, / anchors with landmarks.
        return smooth_l1(t, landmark_offsets, weights=w) / n

    return fn
