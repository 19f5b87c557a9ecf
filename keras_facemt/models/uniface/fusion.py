"""Bottom-up / top-down fusion (Liao et al., Sec. III-B, Eq. (1)).

``F_td^{i+1} = Upsample_nearest(F_td^i + F_bu^i)``, with i running from the coarsest
bottom-up level to the finest. The bottom-up maps have different channel counts, so
each enters through a 1x1 lateral projection to a common width (the paper leaves
this implicit). The recursion starts from ``F_td^1 = 0``; the nearest upsampling
resizes to the next level's exact size, which is 2x wherever the sizes halve
exactly (odd sizes such as 35 -> 17 make it a resize).

The paper sets ``F_r = F_td^6`` and then "applies two extra deconvolution layers on
F_r" (64x144x144 at 300x300 input). Here the finest level's own sum
``F_td^L + F_bu^L`` -- the term Eq. (1) would upsample next -- is kept and the learned
deconvolutions do that upsampling, so the finest bottom-up features reach F_r too.

Model C (no fusion, Sec. IV-D.2) replaces the fused map with one bottom-up level.
"""

from __future__ import annotations

from typing import Sequence

import keras


def top_down_fusion(levels: Sequence, fusion_channels: int, recognition_channels: int,
                    deconv_layers: int = 2, fusion: bool = True, no_fusion_level: int = 2,
                    name: str = "fusion"):
    """Builds F_r from bottom-up maps (functional, on symbolic tensors).

    Args:
        levels: bottom-up maps ``[batch, H_l, W_l, C_l]``, finest first.
        fusion_channels: width of the top-down pathway.
        recognition_channels: channels of F_r (paper: 64).
        deconv_layers: stride-2 3x3 transposed convolutions on F_r.
        fusion: False gives Model C: F_r from ``levels[no_fusion_level]`` alone.
        no_fusion_level: the level Model C uses.
        name: layer-name prefix.

    Returns:
        F_r, ``[batch, H_0 * 2**deconv_layers, W_0 * 2**deconv_layers,
        recognition_channels]`` (Model C: relative to its level's size).
    """
    if fusion:
        lateral = [
            keras.layers.Conv2D(fusion_channels, 1, name=f"{name}_lateral{i}")(x) for i, x in enumerate(levels)
        ]
        td = None
        for i in range(len(levels) - 1, 0, -1):
            s = lateral[i] if td is None else keras.layers.Add(name=f"{name}_sum{i}")([td, lateral[i]])
            h, w = levels[i - 1].shape[1], levels[i - 1].shape[2]
            td = keras.layers.Resizing(h, w, interpolation="nearest", name=f"{name}_up{i}")(s)
        x = keras.layers.Add(name=f"{name}_sum0")([td, lateral[0]])
    else:
        x = keras.layers.Conv2D(fusion_channels, 1, name=f"{name}_single_level")(levels[no_fusion_level])
    x = keras.layers.Conv2D(recognition_channels, 3, padding="same", activation="relu", name=f"{name}_smooth")(x)
    for j in range(deconv_layers):
        x = keras.layers.Conv2DTranspose(recognition_channels, 3, strides=2, padding="same", activation="relu",
                                         name=f"{name}_deconv{j + 1}")(x)
    return x
