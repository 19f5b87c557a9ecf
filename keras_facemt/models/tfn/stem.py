"""TFN's stem: a VGG-16-shaped network (Lin et al., Sec. IV-A, Fig. 3a).

Five stacks of 3x3 convolutions with ReLU, 2x2 max pooling between stacks (none
after the fifth). The paper preset is VGG-16's 13 convolutions (2, 2, 3, 3, 3 of
widths 64, 128, 256, 512, 512); smaller presets keep the shape with fewer, narrower
convolutions. The model outputs every stack's top (``conv1_2`` ... ``conv5_3`` in
VGG-16 terms, strides 1, 2, 4, 8, 16): the fused blocks tap conv3_3, conv4_3 and
conv5_3, the TAFN block all five.

Layer names follow ``keras.applications.VGG16`` (``block{s}_conv{i}``), so a local
VGG-16 weights file (``include_top=False``) loads into the paper-shaped stem by name.
No weights are ever downloaded.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import keras

from keras_facemt.errors import ConfigError

STEM_NAME = "stem"


def build_stem(image_size: int, widths: Sequence[int], convs: Sequence[int], weights: Optional[str] = None,
               name: str = STEM_NAME) -> keras.Model:
    """Builds the stem.

    Args:
        image_size: side of the square input.
        widths, convs: channels and 3x3 convolutions of each of the 5 stacks.
        weights: optional local ``keras.applications.VGG16`` weights file; needs the
            VGG-16 shape (widths 64..512, convs 2, 2, 3, 3, 3).

    Returns:
        ``keras.Model`` from ``[batch, S, S, 3]`` (already standardised) to the list of
        the 5 stack tops ``[batch, S / 2**(s-1), S / 2**(s-1), widths[s-1]]``.

    Raises:
        ConfigError: a missing weights file, or weights for a stem of another shape.
    """
    x = inp = keras.Input((image_size, image_size, 3), name="image")
    tops = []
    for s, (width, n) in enumerate(zip(widths, convs), start=1):
        if s > 1:
            x = keras.layers.MaxPooling2D(2, name=f"block{s - 1}_pool")(x)
        for i in range(1, n + 1):
            x = keras.layers.Conv2D(int(width), 3, padding="same", activation="relu",
                                    kernel_initializer="he_normal", name=f"block{s}_conv{i}")(x)
        tops.append(x)
    stem = keras.Model(inp, tops, name=name)
    if weights is not None:
        load_vgg16_weights(stem, weights, image_size)
    return stem


def load_vgg16_weights(stem: keras.Model, path: str, image_size: int) -> None:
    """Copies a local VGG-16 weights file into ``stem`` layer by layer."""
    if not os.path.isfile(path):
        raise ConfigError(f"VGG-16 weights file not found. Received: backbone_weights={path!r}")
    convs = [l for l in stem.layers if isinstance(l, keras.layers.Conv2D)]
    if len(convs) != 13 or convs[-1].filters != 512:
        raise ConfigError("VGG-16 weights need the paper-shaped stem (13 convolutions, widths 64..512). "
                          f"Received: backbone_weights={path!r}, convolutions={len(convs)}")
    vgg = keras.applications.VGG16(include_top=False, weights=path, input_shape=(image_size, image_size, 3))
    for layer in convs:
        layer.set_weights(vgg.get_layer(layer.name).get_weights())
