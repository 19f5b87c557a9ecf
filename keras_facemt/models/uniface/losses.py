"""Uniface losses (Liao et al., Sec. III-E, Eqs. (2) and (3)).

``L = (l1 L_cls + l2 L_bb + l3 L_lm + L_id) / N``:

* ``L_cls``: 2-way softmax cross-entropy over the matched (positive) anchors and the
  ``3k`` hardest background anchors (``ops.matching.hard_negative_mask``).
* ``L_bb``: smooth-L1 between the box offsets and the matched ground truth encoded
  relative to the anchor (``ops.boxes.encode_boxes``).
* ``L_lm``: smooth-L1 on the 10 landmark offsets relative to the anchor, over
  positives whose face has (visible) landmarks.
* ``L_id`` (Eq. (3), the mimic loss): ``1/M sum_i ||f(F_r, d_i) - g(x_i)||^2`` between
  each annotated face's embedding and its teacher embedding.

Normalisation: the paper divides the batch sum by N, the batch's matched anchors.
Here each image's detection loss is divided by *its own* number of matched anchors
(``max(k, 1)``), and the trainer then averages over labelled images (``LossTerm``
contract: per-example losses). This keeps an image's weight independent of how many
faces the other images of the batch have, and of how a batch is split across
replicas.

Anchor matching and the detection terms are the shared ``losses.detection`` (SSD
rule by default, TFN's top-k rule as an option); this module adds the mimic loss and
Uniface's weighting.

Batch keys (``data/batch.py``, scenes mode): ``bbox`` ``[B, F, 4]``, ``landmarks``
``[B, F, 5, 2]``, ``landmarks_visible`` ``[B, F, 5]`` (optional), ``has_landmarks``
``[B, F]``, ``face_mask`` ``[B, F]``, ``teacher_embedding`` ``[B, F, D]``,
``has_teacher_embedding`` ``[B, F]``, ``has_boxes`` ``[B]``.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import tensorflow as tf

from keras_facemt.data import batch as batch_keys
from keras_facemt.errors import ConfigError
from keras_facemt.losses.detection import (  # noqa: F401  (re-exported: Uniface's Eq. (2) pieces)
    DetectionTargets, box_loss_fn, classification_loss_fn, landmark_loss_fn, valid_faces)
from keras_facemt.losses.mimic import mimic_squared_l2
from keras_facemt.training.schedule import LossTerm


def mimic_loss_fn():
    """``L_id`` per image (Eq. (3)): mean over faces with a teacher embedding of ``||e - t||^2``."""

    def fn(batch, embedding):
        w = valid_faces(batch) * tf.cast(batch[batch_keys.HAS_TEACHER_EMBEDDING], tf.float32)
        total = mimic_squared_l2(batch[batch_keys.TEACHER_EMBEDDING], embedding, weights=w)
        return total / tf.maximum(tf.reduce_sum(w, axis=1), 1.0)

    return fn


def loss_terms(anchors, variances: Sequence[float] = (0.1, 0.2), weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
               matcher: str = "ssd", iou_threshold: float = 0.35, neg_ratio: float = 3.0,
               min_negatives: int = 8, include_mimic: bool = True) -> Tuple[LossTerm, ...]:
    """The Eq. (2) terms as ``LossTerm`` objects for the trainer.

    Args:
        anchors: ``[A, 4]`` anchors of the model.
        weights: (lambda1, lambda2, lambda3, weight of L_id).
        matcher, iou_threshold: anchor matching (``DetectionTargets``).
        neg_ratio: hard negatives per positive (paper: 3).
        min_negatives: negatives mined per image even without faces.
        include_mimic: add ``L_id`` (needs ``teacher_embedding`` in the batch).

    Returns:
        Terms named ``detection/cls``, ``detection/box``, ``detection/landmarks``,
        ``mimic``; all use ``has_boxes`` as presence (images with exhaustive boxes).
    """
    if len(weights) != 4:
        raise ConfigError(f"weights needs 4 entries (cls, box, landmarks, mimic). Received: weights={tuple(weights)}")
    targets = DetectionTargets(anchors, variances, matcher, iou_threshold)
    terms = [
        LossTerm("detection/cls", "cls_logits", batch_keys.HAS_BOXES,
                 classification_loss_fn(targets, neg_ratio, min_negatives), weights[0]),
        LossTerm("detection/box", "box_offsets", batch_keys.HAS_BOXES, box_loss_fn(targets), weights[1]),
        LossTerm("detection/landmarks", "landmark_offsets", batch_keys.HAS_BOXES, landmark_loss_fn(targets),
                 weights[2]),
    ]
    if include_mimic:
        terms.append(LossTerm("mimic", "embedding", batch_keys.HAS_BOXES, mimic_loss_fn(), weights[3]))
    return tuple(terms)
