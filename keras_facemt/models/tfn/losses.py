"""TFN's losses (Lin et al., Sec. IV-B, Eqs. 1-6), per image, with per-face label indicators.

``L = sum_i L_rpn(i) + sum_j L_det(j) + sum_k [L_land(k) + L_attr(k)]`` (Eq. 1; the
printed equation leaves ``L_attr`` outside the sum over k, a typo):

* Eq. 2 (RPN): each ground truth's 3 highest-IoU anchors are positives
  (``losses.detection.DetectionTargets(matcher="top_k")``), replacing [42]'s
  "IoU > 0.7 or best" rule (kept as ``matcher="iou"`` for the comparison).
  Negatives (UNSPEC in the paper) are anchors overlapping every face by less than
  0.3 ([42]), of which the ``3k`` hardest count (``k`` positives). 2-way softmax
  cross-entropy + smooth-L1 on positive anchors' deltas ([42]'s encoding).
* Eq. 3 (detection): an ROI is a face when its IoU with a ground truth exceeds 0.5
  (``ops.roi_targets``), background otherwise; the same two terms on the ROIs.
* Eq. 4-5 (landmarks): samples are ROIs with IoU > 0.7 to a face (the shaken ground
  truth and, two-step, its refinement); smooth-L1 on the 136 Eq. 5 offsets relative
  to the sample's box. Heat-map subnet (Sec. VI-A): per-pixel softmax over each
  landmark's map, cross-entropy at the pixel holding the point.
* Eq. 6 (attributes): on the same samples, softmax cross-entropy of age (101
  classes), gender and ethnicity.

Every face term is multiplied by its indicator ``I_k^c`` (``has_landmarks``,
``has_attr/<name>``, point visibility): a face without a label contributes exactly
nothing -- it is never a negative. Each image's loss is its sum over samples divided
by its own number of labelled samples (``max(n, 1)``); the trainer then averages
over images with exhaustive boxes (``has_boxes``).

The model outputs carry their ROIs in the first 4 channels (``model.py``), so each
function reads one output.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import tensorflow as tf

from keras_facemt.data import batch as batch_keys
from keras_facemt.errors import ConfigError
from keras_facemt.losses.detection import DetectionTargets, valid_faces
from keras_facemt.losses.regression import smooth_l1
from keras_facemt.models.tfn.config import AGE_CLASSES, ETHNICITY_CLASSES, GENDER_CLASSES, NUM_LANDMARKS
from keras_facemt.models.tfn.landmark_encoding import encode_landmarks
from keras_facemt.models.tfn.postprocess import DET_VARIANCES
from keras_facemt.models.tfn.rpn import RPN_VARIANCES
from keras_facemt.ops import boxes as box_ops
from keras_facemt.ops import matching
from keras_facemt.ops.heatmaps import point_pixel_index
from keras_facemt.ops.roi_targets import DETECTION_IOU, FACE_SAMPLE_IOU, assign_roi_targets, gather_roi_targets

RPN_NEGATIVE_IOU = 0.3
RPN_POSITIVE_IOU = 0.7  # [42]'s positive rule, the "iou" matcher
RPN_MATCHERS = ("top_k", "iou")
_GENDER_START = 4 + AGE_CLASSES
_ETHNICITY_START = _GENDER_START + GENDER_CLASSES
# Channels of each attribute's logits in the ``attributes`` output (after the ROI's 4).
ATTRIBUTE_SLICES = {"age_class": (4, _GENDER_START), "gender": (_GENDER_START, _ETHNICITY_START),
                    "ethnicity": (_ETHNICITY_START, _ETHNICITY_START + ETHNICITY_CLASSES)}


def ground_truth(batch) -> Tuple[tf.Tensor, tf.Tensor]:
    """``([B, F, 4]`` clipped boxes, ``[B, F]`` mask of real faces with a non-empty clipped box)."""
    return box_ops.clip_boxes(batch[batch_keys.BBOX]), valid_faces(batch)


def _per_image(total, count):
    return total / tf.maximum(count, 1.0)


def _cls_with_hard_negatives(logits, positive, candidates, neg_ratio, min_negatives):
    """Summed 2-way CE over positives + the hardest ``neg_ratio * k`` candidate negatives; ``[B]``."""
    logits = tf.cast(logits, tf.float32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(positive, tf.int32), logits=logits)
    hardness = tf.stop_gradient(logits[..., 1] - logits[..., 0])
    neg = matching.hard_negative_mask(hardness, positive, neg_ratio, min_negatives, ignore=~candidates)
    keep = tf.cast(positive | neg, tf.float32)
    return tf.reduce_sum(tf.where(keep > 0, ce, 0.0), axis=1)


def rpn_losses(anchors, top_k: int = 3, neg_ratio: float = 3.0, min_negatives: int = 16,
               matcher: str = "top_k") -> Dict[str, Callable]:
    """Eq. 2: ``{"cls": fn(batch, rpn_cls_logits), "box": fn(batch, rpn_box_deltas)}`` -> ``[B]``.

    Args:
        matcher: ``"top_k"`` (the paper: each face's ``top_k`` highest-IoU anchors) or
            ``"iou"`` ([42]'s rule it replaces: IoU >= ``RPN_POSITIVE_IOU`` or the face's
            best anchor), the Sec. IV-B.1 comparison on small faces.

    Raises:
        ConfigError: for another ``matcher``.
    """
    if matcher not in RPN_MATCHERS:
        raise ConfigError(f"matcher must be one of {RPN_MATCHERS}. Received: matcher={matcher!r}")
    targets = DetectionTargets(anchors, RPN_VARIANCES, matcher="top_k" if matcher == "top_k" else "ssd",
                               iou_threshold=RPN_POSITIVE_IOU, top_k=top_k)

    def cls(batch, logits):
        m = targets.match(batch)
        candidates = ~m.positive & (m.max_iou < RPN_NEGATIVE_IOU)
        n = tf.reduce_sum(tf.cast(m.positive, tf.float32), axis=1)
        return _per_image(_cls_with_hard_negatives(logits, m.positive, candidates, neg_ratio, min_negatives), n)

    def box(batch, deltas):
        m = targets.match(batch)
        n = tf.reduce_sum(tf.cast(m.positive, tf.float32), axis=1)
        return _per_image(smooth_l1(targets.box_targets(batch, m), deltas, weights=m.positive), n)

    return {"cls": cls, "box": box}


def detection_losses(neg_ratio: float = 3.0, min_negatives: int = 8) -> Dict[str, Callable]:
    """Eq. 3 on the ``detection`` output ``[B, R, 4 + 2 + 4]``: ``{"cls": fn, "box": fn}``."""

    def targets(batch, pred):
        boxes, mask = ground_truth(batch)
        rois = pred[..., :4]
        return boxes, rois, assign_roi_targets(rois, boxes, mask, DETECTION_IOU)

    def cls(batch, pred):
        _, _, t = targets(batch, pred)
        n = tf.reduce_sum(tf.cast(t.positive, tf.float32), axis=1)
        total = _cls_with_hard_negatives(pred[..., 4:6], t.positive, t.valid & ~t.positive, neg_ratio, min_negatives)
        return _per_image(total, n)

    def box(batch, pred):
        boxes, rois, t = targets(batch, pred)
        target = box_ops.encode_boxes(gather_roi_targets(boxes, t), rois, DET_VARIANCES)
        n = tf.reduce_sum(tf.cast(t.positive, tf.float32), axis=1)
        return _per_image(smooth_l1(target, pred[..., 6:10], weights=t.positive), n)

    return {"cls": cls, "box": box}


def _face_samples(batch, rois):
    boxes, mask = ground_truth(batch)
    return assign_roi_targets(rois, boxes, mask, FACE_SAMPLE_IOU)


def landmark_loss(heatmap_size: Optional[int] = None) -> Callable:
    """Eqs. 4-5 on the ``landmarks`` output; ``heatmap_size``: the heat-map subnet's map side."""

    def fn(batch, pred):
        rois = pred[..., :4]
        t = _face_samples(batch, rois)
        has = gather_roi_targets(tf.cast(batch[batch_keys.HAS_LANDMARKS], tf.float32), t)
        sample = tf.cast(t.positive, tf.float32) * has  # I_k^Landmark on the samples
        points = tf.cast(gather_roi_targets(batch[batch_keys.LANDMARKS], t), tf.float32)
        vis = batch.get(batch_keys.LANDMARKS_VISIBLE)
        vis = tf.ones_like(points[..., 0]) if vis is None else tf.cast(gather_roi_targets(vis, t), tf.float32)
        weight = vis * tf.expand_dims(sample, -1)  # [B, Q, 68]
        n = tf.reduce_sum(sample, axis=1)
        if heatmap_size is None:
            offsets = tf.reshape(pred[..., 4:], tf.concat([tf.shape(rois)[:2], [NUM_LANDMARKS, 2]], 0))
            return _per_image(smooth_l1(encode_landmarks(points, rois), offsets, weights=weight), n)
        s = int(heatmap_size)
        logits = tf.reshape(pred[..., 4:], tf.concat([tf.shape(rois)[:2], [s * s, NUM_LANDMARKS]], 0))
        logits = tf.transpose(logits, [0, 1, 3, 2])  # [B, Q, 68, S*S]: a softmax over each map's pixels
        size = tf.maximum(rois[..., 2:4] - rois[..., 0:2], 1e-6)
        local = (points - tf.expand_dims(rois[..., 0:2], -2)) / tf.expand_dims(size, -2)
        inside = tf.cast(tf.reduce_all((local >= 0) & (local <= 1), axis=-1), tf.float32)
        labels = point_pixel_index(local, s, s)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)  # [B, Q, 68]
        w = weight * inside
        per_sample = tf.math.divide_no_nan(tf.reduce_sum(tf.where(w > 0, ce * w, 0.0), -1), tf.reduce_sum(w, -1))
        return _per_image(tf.reduce_sum(per_sample, axis=1), n)

    return fn


def attribute_loss(name: str) -> Callable:
    """Eq. 6's term of attribute ``name`` (``age_class``, ``gender``, ``ethnicity``) on ``attributes``."""
    lo, hi = ATTRIBUTE_SLICES[name]

    def fn(batch, pred):
        t = _face_samples(batch, pred[..., :4])
        has = gather_roi_targets(tf.cast(batch[batch_keys.has_attr(name)], tf.float32), t)
        sample = tf.cast(t.positive, tf.float32) * has  # I_k^c
        labels = tf.cast(gather_roi_targets(batch[batch_keys.attr(name)], t), tf.int32)
        labels = tf.clip_by_value(labels, 0, hi - lo - 1)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.cast(pred[..., lo:hi], tf.float32))
        return _per_image(tf.reduce_sum(tf.where(sample > 0, ce * sample, 0.0), axis=1),
                          tf.reduce_sum(sample, axis=1))

    return fn


def loss_functions(anchors, heatmap_size: Optional[int] = None, weights: Optional[Dict[str, float]] = None,
                   rpn_matcher: str = "top_k"):
    """Every Eq. 1 term: ``{term name: (model output, fn, weight)}``.

    ``rpn_matcher``: ``"top_k"`` (Eq. 2) or ``"iou"`` ([42]), see ``rpn_losses``.

    Term names: ``rpn/cls``, ``rpn/box``, ``detection/cls``, ``detection/box``,
    ``landmarks``, ``attributes/age``, ``attributes/gender``,
    ``attributes/ethnicity``. All lambda = 1 by default (Sec. V-C).
    """
    w = {**{k: 1.0 for k in TERM_NAMES}, **dict(weights or {})}
    rpn, det = rpn_losses(anchors, matcher=rpn_matcher), detection_losses()
    fns = {
        "rpn/cls": ("rpn_cls_logits", rpn["cls"]), "rpn/box": ("rpn_box_deltas", rpn["box"]),
        "detection/cls": ("detection", det["cls"]), "detection/box": ("detection", det["box"]),
        "landmarks": ("landmarks", landmark_loss(heatmap_size)),
        "attributes/age": ("attributes", attribute_loss("age_class")),
        "attributes/gender": ("attributes", attribute_loss("gender")),
        "attributes/ethnicity": ("attributes", attribute_loss("ethnicity")),
    }
    return {k: (out, fn, float(w[k])) for k, (out, fn) in fns.items()}


TERM_NAMES = ("rpn/cls", "rpn/box", "detection/cls", "detection/box", "landmarks", "attributes/age",
              "attributes/gender", "attributes/ethnicity")
