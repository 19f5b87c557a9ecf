"""Convolution + per-dataset BatchNorm + activation, in either order.

The building unit of the iFAN backbone (Li et al., MM'17, Sec. 4.1.2): every
normalisation in the backbone is a ``DomainBatchNorm`` so each source dataset keeps
its own statistics (Sec. 3.3); with ``num_domains=1`` it is ordinary BatchNorm.
"""

from __future__ import annotations

import keras

from keras_facemt.layers.domain_batch_norm import DomainBatchNorm


@keras.saving.register_keras_serializable(package="keras_facemt")
class ConvBnAct(keras.layers.Layer):
    """``Conv2D -> DomainBatchNorm -> activation`` (or pre-activation order).

    Args:
        filters: output channels.
        kernel_size: square kernel size.
        strides: convolution stride.
        activation: activation name (``None`` for linear); ``"prelu"`` is a
            learned per-channel PReLU (He et al. 2015; MTFR Sec. 3.3), a builtin
            TFLite op.
        num_domains: BN statistic sets (``1`` is shared BN).
        frozen_domain: if set, BN always uses this domain.
        affine_domains: gamma / beta sets of the BN (``None``: one per statistic
            set; see ``DomainBatchNorm``).
        preactivation: if True the order is ``BN -> activation -> Conv2D`` (the
            DenseNet unit). The convolution has no bias either way: a BN shift
            precedes or follows it.
        dropout: dropout rate applied after the convolution.
        kernel_initializer: initializer of the convolution kernel.

    Call arguments:
        x: ``[batch, H, W, C]`` features.
        domain: int ``[batch]`` domain ids (ignored when ``num_domains=1``).
        training: bool.

    Returns:
        ``[batch, H / strides, W / strides, filters]``.
    """

    def __init__(self, filters, kernel_size=3, strides=1, activation="relu", num_domains=1,
                 frozen_domain=None, preactivation=False, dropout=0.0,
                 kernel_initializer="he_normal", affine_domains=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.activation = activation
        self.num_domains = int(num_domains)
        self.frozen_domain = frozen_domain
        self.preactivation = bool(preactivation)
        self.dropout = float(dropout)
        self.kernel_initializer = kernel_initializer
        self.affine_domains = None if affine_domains is None else int(affine_domains)
        self.conv = keras.layers.Conv2D(
            self.filters, self.kernel_size, strides=self.strides, padding="same", use_bias=False,
            kernel_initializer=kernel_initializer, dtype=self.dtype_policy, name="conv",
        )
        # autocast=False: the BN statistics must be read in float32 under a
        # mixed-precision policy (the layer normalises in float32 internally).
        self.bn = DomainBatchNorm(num_domains=self.num_domains, frozen_domain=frozen_domain,
                                  affine_domains=self.affine_domains, dtype=self.dtype_policy,
                                  autocast=False, name="bn")
        if activation == "prelu":
            self.act = keras.layers.PReLU(shared_axes=[1, 2], dtype=self.dtype_policy, name="act")
        else:
            self.act = keras.layers.Activation(activation if activation else "linear",
                                               dtype=self.dtype_policy, name="act")
        self.drop = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="dropout") if self.dropout else None

    def build(self, x_shape, domain_shape=None):
        if self.preactivation:
            self.bn.build(x_shape)
            self.conv.build(x_shape)
            if self.activation == "prelu":
                self.act.build(x_shape)
        else:
            self.conv.build(x_shape)
            self.bn.build(self.conv.compute_output_shape(x_shape))
            if self.activation == "prelu":
                self.act.build(self.conv.compute_output_shape(x_shape))
        self.built = True

    def call(self, x, domain=None, training=None):
        if self.preactivation:
            x = self.act(self.bn(x, domain=domain, training=training))
            x = self.conv(x)
            if self.drop is not None:
                x = self.drop(x, training=training)
            return x
        x = self.conv(x)
        if self.drop is not None:
            x = self.drop(x, training=training)
        return self.act(self.bn(x, domain=domain, training=training))

    def compute_output_shape(self, x_shape, domain_shape=None):
        return self.conv.compute_output_shape(x_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            activation=self.activation,
            num_domains=self.num_domains,
            frozen_domain=self.frozen_domain,
            preactivation=self.preactivation,
            dropout=self.dropout,
            kernel_initializer=self.kernel_initializer if isinstance(self.kernel_initializer, str)
            else keras.initializers.serialize(keras.initializers.get(self.kernel_initializer)),
            affine_domains=self.affine_domains,
        )
        return config
