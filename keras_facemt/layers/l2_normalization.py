"""L2 normalisation with a learned per-channel scale (ParseNet, Liu et al., 2015, Sec. 3.3).

Features of different layers have very different magnitudes; concatenating them
lets the largest dominate. ParseNet normalises each position's feature vector to
unit L2 norm and multiplies channel ``c`` by a learned ``gamma_c`` so the network can
set each source's scale. TFN's feature-fused blocks (Lin et al., TCYB'19, Sec.
IV-A.3) normalise every pooled level this way before concatenation.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_facemt")
class L2Normalization(keras.layers.Layer):
    """``y = gamma * x / max(||x||_2, eps)`` over the last axis.

    Args:
        scale_init: initial value of every ``gamma_c`` (ParseNet: 10 or 20; a
            too-small value makes the fused layer's input tiny and slows learning).
        epsilon: floor of the norm (an all-zero vector, e.g. a padded ROI, stays 0).

    Call arguments:
        x: ``[..., C]`` features (any rank).

    Returns:
        ``[..., C]``, the same shape.
    """

    def __init__(self, scale_init=20.0, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.scale_init = float(scale_init)
        self.epsilon = float(epsilon)
        if self.epsilon <= 0:
            raise ValueError(f"epsilon must be > 0. Received: epsilon={epsilon}")

    def build(self, x_shape):
        channels = x_shape[-1]
        if channels is None:
            raise ValueError(f"L2Normalization needs a known channel count. Received: x_shape={x_shape}")
        self.gamma = self.add_weight(name="gamma", shape=(int(channels),),
                                     initializer=keras.initializers.Constant(self.scale_init), trainable=True)
        self.built = True

    def call(self, x):
        x = ops.cast(x, "float32")
        # sqrt(max(sum x^2, eps^2)) rather than a norm op: builtin TFLite / ONNX ops only,
        # and a finite gradient at 0.
        norm = ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), self.epsilon ** 2))
        return ops.cast(x / norm * ops.cast(self.gamma, "float32"), self.compute_dtype)

    def compute_output_shape(self, x_shape):
        return tuple(x_shape)

    def get_config(self):
        config = super().get_config()
        config.update(scale_init=self.scale_init, epsilon=self.epsilon)
        return config
