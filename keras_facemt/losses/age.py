"""Age regression losses of All-in-One (Ranjan et al., 2017, age estimation section).

Apparent-age datasets (ChaLearn LAP) give each face a mean age ``y`` and the standard
deviation ``sigma`` of the annotators' guesses. All-in-One trains the age output ``a``
with a Euclidean loss at first and then with the Gaussian loss

    L = (1 - lambda) * 0.5 * (y - a)^2 + lambda * (1 - exp(-(y - a)^2 / (2 sigma^2)))

(``lambda`` 0 at the start, 1 later): the Gaussian loss is bounded, so ambiguous or
wrong labels do not dominate, and an error within the annotators' spread costs
little, but it has too flat a gradient far from the target to start training from.
"""

from __future__ import annotations

import tensorflow as tf


def age_euclidean(age_true, age_pred):
    """``0.5 * (y - a)^2`` per example; ages ``[batch]`` (or ``[batch, 1]``) in years."""
    y = tf.reshape(tf.cast(age_true, tf.float32), [-1])
    a = tf.reshape(tf.cast(age_pred, tf.float32), [-1])
    return 0.5 * tf.square(y - a)


def age_gaussian(age_true, age_pred, sigma, euclidean_weight: float = 0.0, min_sigma: float = 1.0):
    """All-in-One's Gaussian age loss, optionally blended with the Euclidean loss.

    Args:
        age_true: ``[batch]`` mean apparent age.
        age_pred: ``[batch]`` or ``[batch, 1]`` predicted age.
        sigma: ``[batch]`` annotation standard deviations (clipped below at
            ``min_sigma``: datasets without one store 0).
        euclidean_weight: ``1 - lambda`` of the equation above, in ``[0, 1]``.
        min_sigma: lower bound of sigma in years.

    Returns:
        ``[batch]`` losses.
    """
    if not 0.0 <= euclidean_weight <= 1.0:
        raise ValueError(f"euclidean_weight must be in [0, 1]. Received: euclidean_weight={euclidean_weight}")
    if min_sigma <= 0:
        raise ValueError(f"min_sigma must be > 0. Received: min_sigma={min_sigma}")
    y = tf.reshape(tf.cast(age_true, tf.float32), [-1])
    a = tf.reshape(tf.cast(age_pred, tf.float32), [-1])
    s = tf.maximum(tf.reshape(tf.cast(sigma, tf.float32), [-1]), min_sigma)
    sq = tf.square(y - a)
    gaussian = 1.0 - tf.exp(-sq / (2.0 * tf.square(s)))
    return euclidean_weight * 0.5 * sq + (1.0 - euclidean_weight) * gaussian
