"""MTFR's residual building blocks (Wang et al., ICMR 2017, Sec. 3.3, Figs. 2, 3, 8).

Every convolution is followed by BatchNorm and PReLU (Sec. 3.3). The main road's
convolutions are 3x3, stride 1, padding 1 (the text's "padding 1"); the sum with the
bypass is not followed by a further activation, since each conv already carries one.
"""

from __future__ import annotations

import keras

from keras_facemt.errors import ConfigError
from keras_facemt.layers.conv_bn_act import ConvBnAct

BLOCK_CONVS = {"full": 3, "fast": 2, "variant": 2}


@keras.saving.register_keras_serializable(package="keras_facemt")
class MTFRBlock(keras.layers.Layer):
    """A residual block: ``x + main(x)`` or, for ``variant``, ``bypass(x) + main(x)``.

    Args:
        filters: channels C of the input and output.
        kind: ``"full"`` (3 convs on the main road, Fig. 2), ``"fast"`` (2 convs,
            Fig. 3) or ``"variant"`` (2 convs on the main road and one 1x1 conv on the
            bypass, Fig. 8).

    Call arguments:
        x: ``[batch, H, W, C]``.
        training: bool.

    Returns:
        ``[batch, H, W, C]``.
    """

    def __init__(self, filters, kind="full", **kwargs):
        super().__init__(**kwargs)
        if kind not in BLOCK_CONVS:
            raise ConfigError(f"kind must be one of {sorted(BLOCK_CONVS)}. Received: kind={kind!r}")
        self.filters = int(filters)
        self.kind = kind
        self.convs = [ConvBnAct(self.filters, 3, activation="prelu", dtype=self.dtype_policy, name=f"conv{i + 1}")
                      for i in range(BLOCK_CONVS[kind])]
        self.bypass = (ConvBnAct(self.filters, 1, activation="prelu", dtype=self.dtype_policy, name="bypass")
                       if kind == "variant" else None)
        self.add = keras.layers.Add(dtype=self.dtype_policy, name="sum")

    def build(self, x_shape):
        if x_shape[-1] != self.filters:
            raise ConfigError(f"MTFRBlock keeps its width: input channels must equal filters. "
                              f"Received: input channels={x_shape[-1]}, filters={self.filters}")
        for conv in self.convs:
            conv.build(x_shape)
        if self.bypass is not None:
            self.bypass.build(x_shape)
        self.built = True

    def call(self, x, training=None):
        y = x
        for conv in self.convs:
            y = conv(y, training=training)
        skip = x if self.bypass is None else self.bypass(x, training=training)
        return self.add([skip, y])

    def compute_output_shape(self, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kind=self.kind)
        return config
