"""Masked reduction of per-example losses by presence flags.

A missing label is never a negative label (DESIGN.md): every loss is computed per
example and only labelled examples count. The trainer divides a task's masked sum by
the *global* (all-replica) number of labelled examples of the step, so the loss, and
hence the summed gradient, does not depend on how examples are split across replicas.
"""

from __future__ import annotations

import tensorflow as tf


def masked_sum(loss, presence):
    """``sum_b presence_b * loss_b`` that ignores the loss of unlabelled examples.

    Unlabelled examples are removed with ``tf.where`` rather than multiplied by 0, so a
    non-finite loss on a zero-filled absent label (e.g. ``log(0)``) does not poison
    the sum.

    Args:
        loss: per-example losses ``[batch]``.
        presence: per-example weights ``[batch]`` (0: unlabelled, 1: labelled).

    Returns:
        Scalar float32 sum.
    """
    loss = tf.cast(tf.reshape(loss, [-1]), tf.float32)
    presence = tf.cast(tf.reshape(presence, [-1]), tf.float32)
    return tf.reduce_sum(tf.where(presence > 0, presence * loss, tf.zeros_like(loss)))


def presence_count(presence):
    """Number (total weight) of labelled examples ``sum_b max(presence_b, 0)``; scalar float32."""
    presence = tf.cast(tf.reshape(presence, [-1]), tf.float32)
    return tf.reduce_sum(tf.maximum(presence, 0.0))


def global_presence_count(presence):
    """``presence_count`` summed over all replicas of the current replica context.

    Outside a replica context with several replicas this is the local count.
    """
    count = presence_count(presence)
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, count)
    return count


def masked_mean(loss, presence, count=None):
    """Masked mean ``masked_sum(loss, presence) / count``, 0 when nothing is labelled.

    Args:
        loss: ``[batch]`` per-example losses.
        presence: ``[batch]`` weights.
        count: the normaliser; default the local ``presence_count``. The trainer
            passes the global count so that replicas' contributions add up to the
            global-batch mean.

    Returns:
        Scalar float32.
    """
    total = masked_sum(loss, presence)
    count = presence_count(presence) if count is None else tf.cast(count, tf.float32)
    return tf.math.divide_no_nan(total, count)


def mean_over_valid(values, valid, axis):
    """Mean of ``values`` over ``axis`` counting only ``valid`` entries (0 if none).

    Used inside per-example losses for per-point visibility or per-pixel masks.

    Args:
        values: e.g. ``[batch, K]`` per-point errors.
        valid: same shape (or broadcastable), 1 for entries that count.
        axis: axes to reduce.

    Returns:
        ``values`` reduced over ``axis``.
    """
    values = tf.cast(values, tf.float32)
    valid = tf.cast(tf.broadcast_to(tf.cast(valid, tf.float32), tf.shape(values)), tf.float32)
    num = tf.reduce_sum(tf.where(valid > 0, values * valid, tf.zeros_like(values)), axis=axis)
    return tf.math.divide_no_nan(num, tf.reduce_sum(valid, axis=axis))
