"""TFN's task-oriented feature-fused block (Lin et al., Sec. IV-A.3, Fig. 3c) and the
TAFN block (Sec. VI-B, Fig. 10).

Per fused level: the ROI is pooled to a common ``S x S`` grid, RoI max pooling as in
Fast R-CNN [43] (here: ``ops.roi.crop_rois`` bilinear samples on a ``2S x 2S`` grid,
then 2x2 max pooling -- builtin TFLite ops, where ``crop_and_resize`` is not), and
L2-normalised with a learned per-channel scale (ParseNet [44],
``layers.l2_normalization``). The levels are concatenated and a 1x1 convolution
brings them to the top stack's width. With ``channel_gate`` (TAFN) a
squeeze-excitation gate (global pooling, 1x1 convolution, sigmoid) re-weights the
fused channels per ROI. With ``fuse=False`` the block is plain RoI pooling of one
level (the unfused baseline).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_facemt.layers.l2_normalization import L2Normalization
from keras_facemt.layers.squeeze_excitation import SqueezeExcitation
from keras_facemt.ops.precision import float32_scope
from keras_facemt.ops.roi import crop_rois


@keras.saving.register_keras_serializable(package="keras_facemt")
class FeatureFusedBlock(keras.layers.Layer):
    """Multi-level ROI features -> one ``[batch, R, S, S, C]`` tensor per ROI set.

    Args:
        roi_size: S.
        channels: output channels of the 1x1 fusion convolution.
        fuse: L2-normalise, concatenate and fuse (False: one level, pooled only).
        channel_gate: TAFN squeeze-excitation re-weighting of the fused channels.
        l2_scale: initial ParseNet scale.

    Call arguments:
        rois: ``[batch, R, 4]`` normalised corner boxes.
        features: list of ``[batch, H_l, W_l, C_l]`` maps of the fused levels.

    Returns:
        ``[batch, R, S, S, channels]`` (``C_0`` of the single level when not fused).
    """

    def __init__(self, roi_size=7, channels=512, fuse=True, channel_gate=False, l2_scale=20.0, **kwargs):
        super().__init__(**kwargs)
        self.roi_size = int(roi_size)
        self.channels = int(channels)
        self.fuse = bool(fuse)
        self.channel_gate = bool(channel_gate)
        self.l2_scale = float(l2_scale)

    def build(self, rois_shape, features_shape):
        s = self.roi_size
        widths = [int(f[-1]) for f in features_shape]
        if not self.fuse and len(widths) != 1:
            raise ValueError(f"An unfused block reads one level. Received: {len(widths)} levels")
        self.norms, self.project, self.gate = [], None, None
        if self.fuse:
            self.norms = [L2Normalization(self.l2_scale, dtype=self.dtype_policy, name=f"l2_norm_{i}")
                          for i in range(len(widths))]
            for norm, c in zip(self.norms, widths):
                norm.build((None, s, s, c))
            # A 1x1 convolution over the concatenated ROI features.
            self.project = keras.layers.Dense(self.channels, activation="relu", dtype=self.dtype_policy,
                                              name="fuse_1x1")
            self.project.build((None, s, s, sum(widths)))
            if self.channel_gate:
                self.gate = SqueezeExcitation(None, dtype=self.dtype_policy, name="channel_gate")
                self.gate.build((None, s, s, self.channels))
        self.pool = keras.layers.MaxPooling2D(2, dtype=self.dtype_policy, name="roi_max_pool")
        self.out_channels = self.channels if self.fuse else widths[0]
        self.built = True

    def call(self, rois, features, training=None):
        s = self.roi_size
        # Same samples either way (ops/roi.py): crop_and_resize trains (its gradient is one
        # fused kernel, where the gathers' is a scatter per sample), gathers serve (builtin
        # TFLite ops).
        method = "crop_and_resize" if training else "gather"
        rois = tf.stop_gradient(tf.convert_to_tensor(rois, tf.float32))
        b, r = tf.shape(rois)[0], tf.shape(rois)[1]
        pooled = []
        for i, feat in enumerate(features):
            c = feat.shape[-1]
            with float32_scope():
                crops = crop_rois(feat, rois, (2 * s, 2 * s), method=method)  # [B, R, 2S, 2S, C]
            x = self.pool(tf.reshape(tf.cast(crops, self.compute_dtype), [-1, 2 * s, 2 * s, c]))
            pooled.append(self.norms[i](x) if self.fuse else x)
        if self.fuse:
            x = self.project(tf.concat(pooled, axis=-1) if len(pooled) > 1 else pooled[0])
            if self.gate is not None:
                x = self.gate(x)
        else:
            x = pooled[0]
        return tf.reshape(x, tf.stack([b, r, s, s, self.out_channels]))

    def compute_output_shape(self, rois_shape, features_shape):
        c = self.channels if self.fuse else int(features_shape[0][-1])
        return (rois_shape[0], rois_shape[1], self.roi_size, self.roi_size, c)

    def get_config(self):
        config = super().get_config()
        config.update(roi_size=self.roi_size, channels=self.channels, fuse=self.fuse,
                      channel_gate=self.channel_gate, l2_scale=self.l2_scale)
        return config
