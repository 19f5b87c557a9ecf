"""Dense block of a fully convolutional DenseNet (Jégou et al. 2016; iFAN Sec. 4.1.2).

Each layer is ``DomainBatchNorm -> ReLU -> Conv3x3(growth_rate)`` with stride 1, and
sees the concatenation of the block input and every earlier layer's output. An
optional ``context`` tensor (iFAN's integrated task feedback, Eq. 4) is concatenated
to the first layer's activated input: it enters after the normalisation, so a zero
context (iteration 0) is exactly the plain network and the BN statistics never see
the feedback channels directly.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_facemt.layers.domain_batch_norm import DomainBatchNorm


@keras.saving.register_keras_serializable(package="keras_facemt")
class DenseBlock(keras.layers.Layer):
    """A resolution-preserving dense block.

    Args:
        num_layers: convolutions in the block.
        growth_rate: channels each convolution adds.
        num_domains: BN statistic sets (``1`` is shared BN).
        frozen_domain: if set, BN always uses this domain.
        affine_domains: gamma / beta sets of the BN (``None``: one per statistic
            set; see ``DomainBatchNorm``).
        dropout: dropout rate after each convolution.
        return_new_only: if True return only the ``num_layers * growth_rate`` new
            channels (the up-sampling path of FC-DenseNet), else the input
            concatenated with them.

    Call arguments:
        x: ``[batch, H, W, C]`` features.
        domain: int ``[batch]`` domain ids.
        context: optional ``[batch, H, W, F]`` features concatenated to the first
            layer's activated input.
        training: bool.

    Returns:
        ``[batch, H, W, C + num_layers * growth_rate]`` or, with ``return_new_only``,
        ``[batch, H, W, num_layers * growth_rate]``.
    """

    def __init__(self, num_layers, growth_rate, num_domains=1, frozen_domain=None, dropout=0.0,
                 return_new_only=False, affine_domains=None, **kwargs):
        super().__init__(**kwargs)
        self.num_layers = int(num_layers)
        self.growth_rate = int(growth_rate)
        self.num_domains = int(num_domains)
        self.frozen_domain = frozen_domain
        self.dropout = float(dropout)
        self.return_new_only = bool(return_new_only)
        self.affine_domains = None if affine_domains is None else int(affine_domains)
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1. Received: num_layers={num_layers}")
        if self.growth_rate < 1:
            raise ValueError(f"growth_rate must be >= 1. Received: growth_rate={growth_rate}")
        # autocast=False keeps the BN statistics float32 under mixed precision.
        self.norms = [
            DomainBatchNorm(num_domains=self.num_domains, frozen_domain=frozen_domain,
                            affine_domains=self.affine_domains, dtype=self.dtype_policy, autocast=False,
                            name=f"layer_{i}_bn")
            for i in range(self.num_layers)
        ]
        self.convs = [
            keras.layers.Conv2D(self.growth_rate, 3, padding="same", use_bias=False,
                                kernel_initializer="he_normal", dtype=self.dtype_policy,
                                name=f"layer_{i}_conv")
            for i in range(self.num_layers)
        ]
        self.drops = [
            keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name=f"layer_{i}_dropout")
            for i in range(self.num_layers)
        ] if self.dropout else None

    def build(self, x_shape, domain_shape=None, context_shape=None):
        channels = x_shape[-1]
        extra = 0 if context_shape is None else context_shape[-1]
        for i in range(self.num_layers):
            self.norms[i].build(tuple(x_shape[:-1]) + (channels,))
            conv_in = channels + (extra if i == 0 else 0)
            self.convs[i].build(tuple(x_shape[:-1]) + (conv_in,))
            channels += self.growth_rate
        self.built = True

    def call(self, x, domain=None, context=None, training=None):
        # The running concatenation grows by one layer at a time, so each new map
        # feeds exactly one concatenation: the TFLite int8 quantizer gives each such
        # chain one scale, where concatenating [x, new_1..new_i] afresh for every
        # layer asks for conflicting scales and leaves those ops in float.
        h = x
        for i in range(self.num_layers):
            a = ops.relu(self.norms[i](h, domain=domain, training=training))
            if i == 0 and context is not None:
                a = ops.concatenate([a, ops.cast(context, a.dtype)], axis=-1)
            new = self.convs[i](a)
            if self.drops is not None:
                new = self.drops[i](new, training=training)
            h = ops.concatenate([h, new], axis=-1)
        if self.return_new_only:
            return h[..., x.shape[-1]:]
        return h

    def compute_output_shape(self, x_shape, domain_shape=None, context_shape=None):
        new = self.num_layers * self.growth_rate
        channels = new if self.return_new_only else x_shape[-1] + new
        return tuple(x_shape[:-1]) + (channels,)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers,
            growth_rate=self.growth_rate,
            num_domains=self.num_domains,
            frozen_domain=self.frozen_domain,
            dropout=self.dropout,
            return_new_only=self.return_new_only,
            affine_domains=self.affine_domains,
        )
        return config
