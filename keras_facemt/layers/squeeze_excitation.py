"""Channel re-weighting by squeeze and excitation (Hu et al., CVPR'18).

Global average pooling over the spatial axes ("squeeze"), a small gating network
and a sigmoid ("excitation"), then each channel is multiplied by its gate. With
``reduction=None`` the gate is a single 1x1 convolution (a dense layer on the pooled
vector), the form of TFN's task-aware feature-fused (TAFN) block (Lin et al.,
TCYB'19, Sec. VI-B, Fig. 10: "global pooling, 1x1 conv, sigmoid"); with a
reduction ``r`` it is SE's ``C -> C / r -> C`` bottleneck with a ReLU.
"""

from __future__ import annotations

from typing import Optional

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_facemt")
class SqueezeExcitation(keras.layers.Layer):
    """Multiplies each channel by a gate computed from the globally pooled features.

    Args:
        reduction: bottleneck ratio ``r`` (SE: 16), or ``None`` for a single 1x1
            convolution (TAFN).

    Call arguments:
        x: ``[..., H, W, C]`` features; pooling runs over ``H, W`` (the two axes
            before the channels), so a ``[batch, N, H, W, C]`` stack of ROI features
            gets one gate per ROI.

    Returns:
        ``[..., H, W, C]``, ``x`` re-weighted per channel.
    """

    def __init__(self, reduction: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.reduction = None if reduction is None else int(reduction)
        if self.reduction is not None and self.reduction < 1:
            raise ValueError(f"reduction must be >= 1 or None. Received: reduction={reduction}")

    def build(self, x_shape):
        channels = x_shape[-1]
        if channels is None or len(x_shape) < 4:
            raise ValueError(f"SqueezeExcitation needs [..., H, W, C] with known C. Received: x_shape={x_shape}")
        channels = int(channels)
        vec = tuple(x_shape[:-3]) + (channels,)
        if self.reduction is None:
            self.squeeze = None
        else:
            self.squeeze = keras.layers.Dense(max(1, channels // self.reduction), activation="relu",
                                              dtype=self.dtype_policy, name="squeeze")
            self.squeeze.build(vec)
            vec = vec[:-1] + (max(1, channels // self.reduction),)
        self.excite = keras.layers.Dense(channels, activation="sigmoid", dtype=self.dtype_policy, name="excite")
        self.excite.build(vec)
        self.built = True

    def call(self, x):
        pooled = ops.mean(x, axis=(-3, -2))
        if self.squeeze is not None:
            pooled = self.squeeze(pooled)
        gate = self.excite(pooled)
        return x * ops.expand_dims(ops.expand_dims(gate, -2), -2)

    def compute_output_shape(self, x_shape):
        return tuple(x_shape)

    def get_config(self):
        config = super().get_config()
        config.update(reduction=self.reduction)
        return config
