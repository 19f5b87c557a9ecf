"""Sub-pixel up-sampling (Shi et al., CVPR'16), as used by iFAN's up path (Sec. 4.1.2).

A convolution produces ``scale**2 * filters`` channels that a periodic shuffle
(``depth_to_space``) rearranges into a ``scale`` times larger map. ``depth_to_space``
is a builtin TFLite op and an ONNX ``DepthToSpace`` node, so the layer exports.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_facemt")
class SubPixelUpsampling(keras.layers.Layer):
    """Convolution followed by a periodic shuffle that enlarges the map ``scale`` times.

    Args:
        filters: output channels.
        scale: integer up-sampling factor.
        kernel_size: square kernel of the convolution.

    Call arguments:
        x: ``[batch, H, W, C]`` features.

    Returns:
        ``[batch, H * scale, W * scale, filters]``.
    """

    def __init__(self, filters, scale=2, kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.scale = int(scale)
        self.kernel_size = int(kernel_size)
        if self.scale < 2:
            raise ValueError(f"scale must be >= 2. Received: scale={scale}")
        self.conv = keras.layers.Conv2D(
            self.filters * self.scale**2, self.kernel_size, padding="same",
            kernel_initializer="he_normal", dtype=self.dtype_policy, name="conv",
        )

    def build(self, x_shape):
        self.conv.build(x_shape)
        self.built = True

    def call(self, x):
        return tf.nn.depth_to_space(self.conv(x), self.scale)

    def compute_output_shape(self, x_shape):
        h, w = x_shape[1], x_shape[2]
        return (x_shape[0], None if h is None else h * self.scale, None if w is None else w * self.scale,
                self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, scale=self.scale, kernel_size=self.kernel_size)
        return config
