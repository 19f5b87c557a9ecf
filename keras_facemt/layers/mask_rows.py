"""``MaskRows``: zeros in the padded rows of a detector's per-face outputs."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_facemt")
class MaskRows(keras.layers.Layer):
    """``x [batch, D, ...] * valid [batch, D]``: zeros in padded detection rows.

    A deployable detector pads its per-face outputs to ``max_detections`` rows; the
    rows past each image's count are zeroed so no runtime reports stale values there.
    """

    def call(self, x, valid):
        x = tf.convert_to_tensor(x, tf.float32)
        valid = tf.convert_to_tensor(valid, tf.float32)
        for _ in range(len(x.shape) - 2):
            valid = tf.expand_dims(valid, -1)
        return x * valid

    def compute_output_shape(self, x_shape, valid_shape):
        return tuple(x_shape)
