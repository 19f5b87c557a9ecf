"""Per-example regression losses for points and vectors (unreduced, ``[batch]``).

* ``euclidean_points``: mean point-to-point Euclidean distance over the (visible)
  points, the landmark loss of iFAN (Sec. 3.2, normalised coordinates).
* ``l2_points``: half the summed squared error over the (visible) points (the
  Euclidean loss of Caffe-era papers, e.g. All-in-One's landmark/pose regression).
* ``smooth_l1``: Huber-style smooth-L1 (Fast R-CNN), used for box and landmark
  offsets in SSD-style detectors (Uniface Eq. 2).
"""

from __future__ import annotations

import tensorflow as tf

from keras_facemt.losses.masked_reduction import mean_over_valid


def _points_visible(y_true, visible):
    if visible is None:
        return tf.ones(tf.shape(y_true)[:-1], tf.float32)
    return tf.cast(visible, tf.float32)


def euclidean_points(y_true, y_pred, visible=None, eps: float = 1e-12):
    """Mean Euclidean distance between predicted and true points.

    Args:
        y_true: ``[batch, K, 2]`` target points.
        y_pred: ``[batch, K, 2]`` predicted points.
        visible: optional ``[batch, K]`` weights; invisible points do not count.
        eps: keeps the gradient of ``sqrt`` finite when a point is exact.

    Returns:
        ``[batch]`` mean distance over the visible points (0 when none is visible).
    """
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    dist = tf.sqrt(tf.reduce_sum(tf.square(y_pred - y_true), axis=-1) + eps)  # [batch, K]
    return mean_over_valid(dist, _points_visible(y_true, visible), axis=-1)


def l2_points(y_true, y_pred, visible=None):
    """Half the sum of squared errors over the visible points' coordinates.

    Args:
        y_true, y_pred: ``[batch, K, D]`` (or ``[batch, D]``: one "point").
        visible: optional ``[batch, K]`` weights.

    Returns:
        ``[batch]`` losses.
    """
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    sq = tf.reduce_sum(tf.square(y_pred - y_true), axis=-1)
    if sq.shape.rank == 1:
        return 0.5 * sq
    vis = _points_visible(y_true, visible)
    sq = tf.where(vis > 0, sq * vis, tf.zeros_like(sq))
    return 0.5 * tf.reduce_sum(sq, axis=-1)


def smooth_l1(y_true, y_pred, beta: float = 1.0, weights=None):
    """Smooth-L1: ``0.5 x^2 / beta`` for ``|x| < beta`` else ``|x| - 0.5 beta``, summed.

    Args:
        y_true, y_pred: ``[batch, ..., D]``.
        beta: the quadratic zone's half-width (> 0).
        weights: optional weights broadcastable to ``[batch, ...]`` (e.g. the
            positive-anchor mask ``[batch, A]``); 0 drops an entry.

    Returns:
        ``[batch]`` sum over every non-batch axis.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0. Received: beta={beta}")
    diff = tf.abs(tf.cast(y_pred, tf.float32) - tf.cast(y_true, tf.float32))
    loss = tf.where(diff < beta, 0.5 * tf.square(diff) / beta, diff - 0.5 * beta)
    loss = tf.reduce_sum(loss, axis=-1)
    if weights is not None:
        w = tf.broadcast_to(tf.cast(weights, tf.float32), tf.shape(loss))
        loss = tf.where(w > 0, loss * w, tf.zeros_like(loss))
    return tf.reduce_sum(tf.reshape(loss, [tf.shape(loss)[0], -1]), axis=-1)
