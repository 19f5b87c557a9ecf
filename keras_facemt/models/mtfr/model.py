"""MTFR network (Wang et al., ICMR 2017, Sec. 3.3 and Fig. 1): ``build_mtfr``.

A ResNet-like trunk on 112x96 aligned faces, the face feature ``f(I)`` (FC 1024),
the identity softmax ``W_p`` on ``f`` and, for Config-1, a separate FC ``g`` on ``f``
feeding the ``M`` attribute outputs ``W_a`` (Eq. 2). Fig. 1 did not survive, so the
layer order is this reading of the text (README, MTFR departures):

    image -> [3x3 conv, BN, PReLU] x len(stem_filters)
    for each group i: [3x3 conv to group_filters[i] if the width changes]
                      -> 2x2 max-pool -> group_blocks[i] x MTFRBlock
    -> flatten -> FC feature_dim, BN, PReLU, dropout            = f(I)
    f -> FC num_identities                                       = identity_logits
    Config-1: f -> FC attribute_dim, BN, PReLU, dropout -> FC M  = attributes
    Config-2: f -> FC M                                          = attributes
    Config-3: per attribute, f -> FC attribute_dim, BN, PReLU, dropout -> FC 1

The attribute outputs are linear (Eq. 2's L_a is a mean square error on 0/1 labels).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import keras

from keras_facemt.errors import ConfigError
from keras_facemt.layers.conv_bn_act import ConvBnAct
from keras_facemt.models.mtfr.blocks import MTFRBlock
from keras_facemt.models.mtfr.config import ATTRIBUTES, PRESETS, MTFRConfig  # noqa: F401  (registry reads PRESETS)
from keras_facemt.models.mtfr.serving import serving_spec  # noqa: F401  (registry entry)

CONFIG_CLASS = MTFRConfig


def _fc(x, units: int, dropout: float, name: str):
    """FC -> BN -> PReLU -> dropout (Sec. 3.3: BN and PReLU after every FC; dropout 0.5)."""
    x = keras.layers.Dense(units, use_bias=False, name=f"{name}_fc")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    x = keras.layers.PReLU(name=f"{name}_prelu")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def build_mtfr(*, image_size: Tuple[int, int] = (112, 96), stem_filters: Sequence[int] = (32, 64),
               group_blocks: Sequence[int] = (3, 4, 6, 3), group_filters: Sequence[int] = (64, 128, 256, 512),
               block: str = "full", feature_dim: int = 1024, attribute_dim: int = 1024,
               num_identities: int = 10575, head_config: int = 1, attributes: Sequence[str] = ATTRIBUTES,
               dropout: float = 0.5, name: str = "mtfr") -> keras.Model:
    """Builds the MTFR training graph.

    Args:
        image_size: ``(H, W)`` of the aligned RGB input.
        stem_filters, group_blocks, group_filters, block: the trunk (see module doc).
        feature_dim: size of ``f(I)``.
        attribute_dim: size of ``g`` (Config-1) or of each per-attribute FC (Config-3).
        num_identities: P.
        head_config: 1, 2 or 3 (Table 6).
        attributes: predicted attribute names (Table 7 groups); ``()``: none.
        dropout: dropout rate on the FC layers.
        name: model name.

    Returns:
        ``keras.Model``: ``{"image": float32 [B, H, W, 3] in [0, 1]}`` ->
        ``{"embedding": [B, feature_dim]`` (f(I), not normalised),
        ``"identity_logits": [B, P]``, and ``"attributes": [B, M]`` when ``M > 0``}.
    """
    if head_config not in (1, 2, 3):
        raise ConfigError(f"head_config must be 1, 2 or 3. Received: head_config={head_config!r}")
    image = keras.Input((int(image_size[0]), int(image_size[1]), 3), name="image")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="standardize")(image)
    for i, f in enumerate(stem_filters):
        x = ConvBnAct(f, 3, activation="prelu", name=f"stem_conv{i + 1}")(x)
    for g, (n, f) in enumerate(zip(group_blocks, group_filters)):
        if x.shape[-1] != f:
            x = ConvBnAct(f, 3, activation="prelu", name=f"group{g + 1}_transition")(x)
        x = keras.layers.MaxPooling2D(2, 2, padding="same", name=f"group{g + 1}_pool")(x)
        for b in range(n):
            x = MTFRBlock(f, block, name=f"group{g + 1}_block{b + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    feature = _fc(x, feature_dim, dropout, "f")
    outputs = {
        "embedding": keras.layers.Identity(name="embedding")(feature),
        "identity_logits": keras.layers.Dense(num_identities, name="identity_logits")(feature),
    }
    m = len(tuple(attributes))
    if m:
        if head_config == 1:
            attrs = keras.layers.Dense(m, name="attributes_fc")(_fc(feature, attribute_dim, dropout, "g"))
        elif head_config == 2:
            attrs = keras.layers.Dense(m, name="attributes_fc")(feature)
        else:
            per = [keras.layers.Dense(1, name=f"attr_{a}_out")(_fc(feature, attribute_dim, dropout, f"g_{a}"))
                   for a in attributes]
            attrs = keras.layers.Concatenate(name="attributes_concat")(per) if m > 1 else per[0]
        outputs["attributes"] = keras.layers.Identity(name="attributes")(attrs)
    return keras.Model({"image": image}, outputs, name=name)


def model_args(config: MTFRConfig) -> dict:
    """The plain ``build_mtfr`` arguments of a config."""
    return dict(image_size=tuple(config.image_size), stem_filters=tuple(config.stem_filters),
                group_blocks=tuple(config.group_blocks), group_filters=tuple(config.group_filters),
                block=config.block, feature_dim=config.feature_dim, attribute_dim=config.attribute_dim,
                num_identities=config.num_identities, head_config=config.head_config,
                attributes=config.attributes, dropout=config.dropout)


def build_model(config: MTFRConfig) -> keras.Model:
    """Registry entry: config -> MTFR training graph."""
    return build_mtfr(**model_args(config))


def build_serving_model(model: keras.Model, config: MTFRConfig) -> keras.Model:
    """Registry entry: the deployable graph (``serving.py``)."""
    from keras_facemt.models.mtfr.serving import build_serving_graph

    return build_serving_graph(model, config)
