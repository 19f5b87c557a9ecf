"""Uniface backbone and bottom-up pathway (Liao et al., Sec. III-A and III-B).

The backbone turns a normalised image into the bottom-up feature maps
``F_bu`` (finest first). Its first three levels come from the base network, the rest
from extra convolutions that halve the map each time ("we truncate Inception-v3
before classification layers and add some extra convolutional layers to form feature
maps whose sizes decrease by 2"):

* ``inception_v3``: ``keras.applications.InceptionV3`` without its top, taps
  ``mixed2`` (35x35 at 300x300 input, stride ~8), ``mixed7`` (17x17) and ``mixed10``
  (8x8). No ImageNet weights are available offline: the body trains from scratch or
  loads a local weights file.
* ``compact``: a small conv-BN-ReLU network with the same topology (three levels at
  strides 8, 16, 32) for training on a CPU.

Extra levels follow SSD's extra feature layers: a 1x1 reduction then a 3x3 stride-2
convolution.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import keras

from keras_facemt.errors import ConfigError
from keras_facemt.layers.conv_bn_act import ConvBnAct

INCEPTION_TAPS = ("mixed2", "mixed7", "mixed10")


def _inception_levels(image, weights: Optional[str], name: str):
    if weights is not None and not os.path.isfile(weights):
        raise ConfigError(f"Inception-v3 weights file not found. Received: backbone_weights={weights!r}")
    size = image.shape[1:]
    base = keras.applications.InceptionV3(include_top=False, weights=weights, input_shape=tuple(size),
                                          name=f"{name}_inception_v3")
    taps = keras.Model(base.input, [base.get_layer(t).output for t in INCEPTION_TAPS], name=f"{name}_inception_taps")
    return list(taps(image))


def _compact_levels(image, widths: Sequence[int], name: str):
    x = ConvBnAct(widths[0], 3, strides=2, name=f"{name}_stem")(image)
    levels = []
    for i, w in enumerate(widths[1:]):
        x = ConvBnAct(w, 3, strides=2, name=f"{name}_stage{i + 1}_down")(x)
        x = ConvBnAct(w, 3, name=f"{name}_stage{i + 1}_conv")(x)
        if i >= 1:  # strides 8, 16, 32
            levels.append(x)
    return levels


def build_backbone(image_size: int, kind: str = "compact", widths: Sequence[int] = (16, 32, 64, 96, 128),
                   weights: Optional[str] = None, num_levels: int = 6,
                   extra_channels: Sequence[int] = (128, 128, 128), name: str = "backbone") -> keras.Model:
    """Builds the backbone + bottom-up pathway as one functional model.

    Args:
        image_size: side S of the square input.
        kind: ``"inception_v3"`` or ``"compact"``.
        widths: compact stage widths (stem, stride 4, 8, 16, 32).
        weights: local Inception-v3 weights file, or None (random init).
        num_levels: L >= 3 bottom-up levels.
        extra_channels: channels of levels 4..L.
        name: model name (two backbones in Model B need distinct names).

    Returns:
        ``keras.Model`` mapping ``[batch, S, S, 3]`` normalised images to a list of L
        maps ``[batch, H_l, W_l, C_l]``, finest first, each about half the previous.
    """
    if kind not in ("inception_v3", "compact"):
        raise ConfigError(f"Unknown backbone. Received: kind={kind!r}")
    if num_levels < 3 or len(extra_channels) < num_levels - 3:
        raise ConfigError(f"num_levels must be >= 3 with one extra_channels entry per extra level. "
                          f"Received: num_levels={num_levels}, extra_channels={tuple(extra_channels)}")
    image = keras.Input((image_size, image_size, 3), name="image")
    if kind == "inception_v3":
        levels = _inception_levels(image, weights, name)
    else:
        levels = _compact_levels(image, widths, name)
    x = levels[-1]
    for i in range(num_levels - 3):
        c = int(extra_channels[i])
        x = ConvBnAct(max(c // 2, 1), 1, name=f"{name}_extra{i + 1}_reduce")(x)
        x = ConvBnAct(c, 3, strides=2, name=f"{name}_extra{i + 1}_down")(x)
        levels.append(x)
    return keras.Model(image, levels, name=name)
