"""Task integrator of iFAN (Li et al., MM'17, Sec. 3.2, Eq. 2 and 4).

At every backbone resolution the re-encoded pyramids of all tasks are concatenated
(the paper realises the integration of Eq. 4 "by feature concatenation") and fused by
a 1x1 convolution into a fixed number of channels, so the backbone's feedback inputs
do not depend on how many tasks are plugged in.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_facemt")
class TaskIntegrator(keras.layers.Layer):
    """Concatenates per-task feature pyramids level by level and fuses them.

    Args:
        num_levels: L; pyramids have L + 1 levels.
        filters: F, channels of every integrated level (the backbone's feedback).

    Call arguments:
        pyramids: list over tasks of lists of L + 1 maps; level l of every task is
            ``[batch, S / 2**l, S / 2**l, C_t]``.

    Returns:
        List of L + 1 maps ``[batch, S / 2**l, S / 2**l, F]``.
    """

    def __init__(self, num_levels, filters, **kwargs):
        super().__init__(**kwargs)
        self.num_levels = int(num_levels)
        self.filters = int(filters)
        self.fuse = [
            keras.layers.Conv2D(self.filters, 1, activation="relu", dtype=self.dtype_policy,
                                name=f"level_{l}_fuse")
            for l in range(self.num_levels + 1)
        ]

    def build(self, pyramids_shape):
        for l in range(self.num_levels + 1):
            channels = sum(task_shapes[l][-1] for task_shapes in pyramids_shape)
            self.fuse[l].build(tuple(pyramids_shape[0][l][:-1]) + (channels,))
        self.built = True

    def call(self, pyramids):
        if any(len(p) != self.num_levels + 1 for p in pyramids):
            raise ValueError(
                f"Every pyramid must hold num_levels + 1 = {self.num_levels + 1} maps. "
                f"Received: levels={[len(p) for p in pyramids]}"
            )
        out = []
        for l in range(self.num_levels + 1):
            maps = [p[l] for p in pyramids]
            out.append(self.fuse[l](maps[0] if len(maps) == 1 else ops.concatenate(maps, axis=-1)))
        return out

    def compute_output_shape(self, pyramids_shape):
        return [tuple(pyramids_shape[0][l][:-1]) + (self.filters,) for l in range(self.num_levels + 1)]

    def get_config(self):
        config = super().get_config()
        config.update(num_levels=self.num_levels, filters=self.filters)
        return config
