"""Mimic (distillation) loss: squared L2 between student and teacher embeddings.

Uniface Eq. (3): the identity embedding the detector predicts for a face is pulled
towards the embedding a recognition teacher gives the same face,
``L_mimic = || f_student - f_teacher ||_2^2``.
"""

from __future__ import annotations

import tensorflow as tf


def mimic_squared_l2(teacher, student, normalize: bool = False, weights=None):
    """Squared Euclidean distance between embeddings.

    Args:
        teacher: ``[batch, D]`` (or ``[batch, F, D]`` per face) target embeddings.
        student: same shape, predicted embeddings.
        normalize: L2-normalise both first (compare directions only).
        weights: optional ``[batch]`` / ``[batch, F]`` mask (e.g. matched faces).

    Returns:
        ``[batch]`` losses (summed over faces when there is a face axis).
    """
    teacher = tf.cast(teacher, tf.float32)
    student = tf.cast(student, tf.float32)
    if normalize:
        teacher = tf.math.l2_normalize(teacher, axis=-1)
        student = tf.math.l2_normalize(student, axis=-1)
    sq = tf.reduce_sum(tf.square(student - teacher), axis=-1)
    if weights is not None:
        w = tf.broadcast_to(tf.cast(weights, tf.float32), tf.shape(sq))
        sq = tf.where(w > 0, sq * w, tf.zeros_like(sq))
    if sq.shape.rank is not None and sq.shape.rank > 1:
        sq = tf.reduce_sum(tf.reshape(sq, [tf.shape(sq)[0], -1]), axis=-1)
    return sq
