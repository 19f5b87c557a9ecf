"""SSD detection head on every bottom-up level (Liao et al., Sec. III-C).

"A set of convolutional filters are applied on each layer of the bottom-up pathway
... the kernel size is 3x3xp for a feature layer with p channels. ... For each anchor
box, there are (2 + 4 + 10) outputs": 2 class scores (background, face), 4 box
offsets and 10 landmark offsets (5 points), all relative to the anchor
(``ops.boxes`` encoding).

Per-level outputs ``[batch, H, W, A * k]`` reshape to ``[batch, H * W * A, k]`` and
concatenate over levels, matching ``ops.anchors.ssd_anchors``' order.
"""

from __future__ import annotations

from typing import Sequence

import keras

NUM_CLASSES = 2
NUM_LANDMARKS = 5


def ssd_head(levels: Sequence, anchors_per_cell: Sequence[int], name: str = "ssd_head"):
    """Builds the per-level 3x3 prediction convolutions (functional).

    Args:
        levels: bottom-up maps ``[batch, H_l, W_l, C_l]``.
        anchors_per_cell: anchors per cell of each level.
        name: layer-name prefix.

    Returns:
        ``(cls_logits [batch, A, 2], box_offsets [batch, A, 4],
        landmark_offsets [batch, A, 5, 2])``.
    """
    cls, box, lm = [], [], []
    for i, (x, a) in enumerate(zip(levels, anchors_per_cell)):
        cls.append(keras.layers.Reshape((-1, NUM_CLASSES), name=f"{name}_cls_flat{i}")(
            keras.layers.Conv2D(a * NUM_CLASSES, 3, padding="same", name=f"{name}_cls{i}")(x)))
        box.append(keras.layers.Reshape((-1, 4), name=f"{name}_box_flat{i}")(
            keras.layers.Conv2D(a * 4, 3, padding="same", name=f"{name}_box{i}")(x)))
        lm.append(keras.layers.Reshape((-1, NUM_LANDMARKS, 2), name=f"{name}_lm_flat{i}")(
            keras.layers.Conv2D(a * NUM_LANDMARKS * 2, 3, padding="same", name=f"{name}_lm{i}")(x)))

    def cat(xs, key):
        return xs[0] if len(xs) == 1 else keras.layers.Concatenate(axis=1, name=f"{name}_{key}")(xs)

    return cat(cls, "cls_logits"), cat(box, "box_offsets"), cat(lm, "landmark_offsets")
