"""Per-example classification losses (unreduced, ``[batch]``).

* ``sparse_softmax_cross_entropy``: softmax cross-entropy of integer labels
  (emotion, gender, smile, identity, ...).
* ``per_pixel_cross_entropy``: per-pixel softmax cross-entropy averaged over the
  pixels of each image, the parsing loss of iFAN (Sec. 3.2) on the ``S x S`` map.
* ``sigmoid_cross_entropy``: independent binary labels (CelebA attributes) with a
  per-label validity mask.
"""

from __future__ import annotations

import tensorflow as tf

from keras_facemt.losses.masked_reduction import mean_over_valid


def _checked_labels(labels, num_classes):
    # Out-of-range labels are mapped to 0 (and their loss masked by the caller's
    # presence flag); the sparse op would otherwise fail on zero-filled or -1 labels.
    labels = tf.cast(labels, tf.int32)
    valid = tf.logical_and(labels >= 0, labels < num_classes)
    return tf.where(valid, labels, tf.zeros_like(labels)), valid


def sparse_softmax_cross_entropy(labels, logits, label_smoothing: float = 0.0):
    """Softmax cross-entropy of integer class labels.

    Args:
        labels: int ``[batch]`` class ids (out-of-range ids give loss 0).
        logits: ``[batch, C]``.
        label_smoothing: in ``[0, 1)``.

    Returns:
        ``[batch]`` losses.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1). Received: label_smoothing={label_smoothing}")
    logits = tf.cast(logits, tf.float32)
    num_classes = tf.shape(logits)[-1]
    labels, valid = _checked_labels(tf.reshape(labels, [-1]), num_classes)
    if label_smoothing:
        onehot = tf.one_hot(labels, num_classes)
        onehot = onehot * (1.0 - label_smoothing) + label_smoothing / tf.cast(num_classes, tf.float32)
        loss = tf.nn.softmax_cross_entropy_with_logits(onehot, logits)
    else:
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return tf.where(valid, loss, tf.zeros_like(loss))


def per_pixel_cross_entropy(labels, logits, class_weights=None):
    """Per-pixel softmax cross-entropy, averaged over each image's valid pixels.

    Args:
        labels: int ``[batch, H, W]`` class ids; ids outside ``[0, C)`` (e.g. 255,
            "ignore") do not count.
        logits: ``[batch, H, W, C]``.
        class_weights: optional ``[C]`` per-class weights.

    Returns:
        ``[batch]`` mean loss over the valid pixels (0 for an image without any).
    """
    logits = tf.cast(logits, tf.float32)
    num_classes = tf.shape(logits)[-1]
    labels, valid = _checked_labels(labels, num_classes)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)  # [B, H, W]
    weight = tf.cast(valid, tf.float32)
    if class_weights is not None:
        weight = weight * tf.gather(tf.cast(class_weights, tf.float32), labels)
    return mean_over_valid(loss, weight, axis=[1, 2])


def sigmoid_cross_entropy(labels, logits, valid=None):
    """Mean binary cross-entropy over independent labels.

    Args:
        labels: ``[batch, L]`` in {0, 1}.
        logits: ``[batch, L]``.
        valid: optional ``[batch, L]`` mask of labelled entries.

    Returns:
        ``[batch]`` losses.
    """
    logits = tf.cast(logits, tf.float32)
    loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, tf.float32), logits=logits)
    mask = tf.ones_like(loss) if valid is None else valid
    return mean_over_valid(loss, mask, axis=-1)
