"""Feature re-encoders of iFAN (Li et al., MM'17, Sec. 3.2 and 4.1.2).

A re-encoder turns one task's raw prediction back into a pyramid of features, one map
per backbone resolution S / 2**l, l = 0..num_levels, that the task integrator
concatenates and feeds back (Eq. 2, 4):

* landmarks -> S x S point heat maps (discs of ``radius`` pixels, one channel per
  landmark) -> alternating 3x3 convolution and 2x2 max pooling;
* parsing -> per-pixel class probabilities -> alternating convolution and max pooling;
* attributes -> class probabilities -> fully connected layers -> tiled to every size.

With ``learnable=False`` the re-encoders are replaced by plain resizing of the
predictions (the ablation of Sec. 4.3.2): heat maps and probability maps are
area-resized (average pooled) to every level, probability vectors are tiled.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_facemt.ops.heatmaps import render_landmark_heatmaps


class _MapPyramid(keras.layers.Layer):
    """Shared pyramid of the landmark and parsing re-encoders.

    Learnable: level 0 is ``Conv3x3 + ReLU`` on the S x S map, level l > 0 is
    ``MaxPool2x2 -> Conv3x3 + ReLU`` of level l - 1. Not learnable: level l is the
    map average-pooled by ``2**l``.
    """

    def __init__(self, num_levels, filters, learnable=True, **kwargs):
        super().__init__(**kwargs)
        self.num_levels = int(num_levels)
        self.filters = int(filters)
        self.learnable = bool(learnable)
        if self.learnable:
            self.convs = [
                keras.layers.Conv2D(self.filters, 3, padding="same", activation="relu",
                                    dtype=self.dtype_policy, name=f"level_{l}_conv")
                for l in range(self.num_levels + 1)
            ]
            self.pools = [keras.layers.MaxPooling2D(2, dtype=self.dtype_policy, name=f"level_{l}_pool")
                          for l in range(1, self.num_levels + 1)]
        else:
            self.pools = [keras.layers.AveragePooling2D(2**l, dtype=self.dtype_policy, name=f"level_{l}_resize")
                          for l in range(1, self.num_levels + 1)]

    def _build_pyramid(self, map_shape):
        if not self.learnable:
            return
        shape = tuple(map_shape)
        for l, conv in enumerate(self.convs):
            if l:
                shape = (shape[0], shape[1] // 2, shape[2] // 2, self.filters)
            conv.build(shape)

    def _pyramid(self, m):
        if not self.learnable:
            return [m] + [pool(m) for pool in self.pools]
        levels = [self.convs[0](m)]
        for l in range(1, self.num_levels + 1):
            levels.append(self.convs[l](self.pools[l - 1](levels[-1])))
        return levels

    def _output_shapes(self, batch, size, channels):
        out = self.filters if self.learnable else channels
        return [(batch, size // 2**l, size // 2**l, out) for l in range(self.num_levels + 1)]

    def get_config(self):
        config = super().get_config()
        config.update(num_levels=self.num_levels, filters=self.filters, learnable=self.learnable)
        return config


@keras.saving.register_keras_serializable(package="keras_facemt")
class LandmarkReencoder(_MapPyramid):
    """Landmarks -> point heat maps -> feature pyramid.

    Args:
        image_size: S, side of the heat maps.
        num_levels: L; the pyramid has L + 1 levels.
        filters: channels of every learnable level.
        radius: heat-map disc radius in pixels (paper: 5 at S = 128).
        learnable: False for the plain-resizing ablation.

    Call arguments:
        points: ``[batch, K, 2]`` predicted normalised (x, y).

    Returns:
        List of L + 1 maps ``[batch, S / 2**l, S / 2**l, filters]`` (``K`` channels
        when not learnable).
    """

    def __init__(self, image_size, num_levels, filters, radius, learnable=True, **kwargs):
        super().__init__(num_levels, filters, learnable, **kwargs)
        self.image_size = int(image_size)
        self.radius = float(radius)

    def build(self, points_shape):
        self._build_pyramid((points_shape[0], self.image_size, self.image_size, points_shape[1]))
        self.built = True

    def call(self, points):
        heatmaps = render_landmark_heatmaps(points, self.image_size, self.radius)
        return self._pyramid(ops.cast(heatmaps, self.compute_dtype))

    def compute_output_shape(self, points_shape):
        return self._output_shapes(points_shape[0], self.image_size, points_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update(image_size=self.image_size, radius=self.radius)
        return config


@keras.saving.register_keras_serializable(package="keras_facemt")
class ParsingReencoder(_MapPyramid):
    """Parsing logits -> class probabilities -> feature pyramid.

    Args:
        num_levels: L; the pyramid has L + 1 levels.
        filters: channels of every learnable level.
        learnable: False for the plain-resizing ablation.

    Call arguments:
        logits: ``[batch, S, S, C]`` parsing logits.

    Returns:
        List of L + 1 maps ``[batch, S / 2**l, S / 2**l, filters]`` (``C`` channels
        when not learnable).
    """

    def build(self, logits_shape):
        self._build_pyramid(logits_shape)
        self.built = True

    def call(self, logits):
        probabilities = ops.softmax(ops.cast(logits, "float32"), axis=-1)
        return self._pyramid(ops.cast(probabilities, self.compute_dtype))

    def compute_output_shape(self, logits_shape):
        return self._output_shapes(logits_shape[0], logits_shape[1], logits_shape[-1])


@keras.saving.register_keras_serializable(package="keras_facemt")
class AttributeReencoder(keras.layers.Layer):
    """Attribute logits -> probabilities -> FC layers -> tiled to every level.

    Args:
        image_size: S.
        num_levels: L; the output has L + 1 levels.
        filters: channels of the encoded vector (and of every level).
        hidden: width of the hidden fully connected layer.
        learnable: False for the plain-resizing ablation (probabilities are tiled).

    Call arguments:
        logits: ``[batch, C]`` attribute logits.

    Returns:
        List of L + 1 maps ``[batch, S / 2**l, S / 2**l, filters]`` (``C`` channels
        when not learnable), constant over space.
    """

    def __init__(self, image_size, num_levels, filters, hidden, learnable=True, **kwargs):
        super().__init__(**kwargs)
        self.image_size = int(image_size)
        self.num_levels = int(num_levels)
        self.filters = int(filters)
        self.hidden = int(hidden)
        self.learnable = bool(learnable)
        if self.learnable:
            self.fc1 = keras.layers.Dense(self.hidden, activation="relu", dtype=self.dtype_policy, name="hidden")
            self.fc2 = keras.layers.Dense(self.filters, activation="relu", dtype=self.dtype_policy, name="encoded")

    def build(self, logits_shape):
        if self.learnable:
            self.fc1.build(logits_shape)
            self.fc2.build((logits_shape[0], self.hidden))
        self.built = True

    def call(self, logits):
        v = ops.cast(ops.softmax(ops.cast(logits, "float32"), axis=-1), self.compute_dtype)
        if self.learnable:
            v = self.fc2(self.fc1(v))
        v = v[:, None, None, :]
        # Tiling by broadcasting against ones keeps the batch dimension dynamic.
        return [
            v * ops.ones((1, self.image_size // 2**l, self.image_size // 2**l, 1), dtype=v.dtype)
            for l in range(self.num_levels + 1)
        ]

    def compute_output_shape(self, logits_shape):
        out = self.filters if self.learnable else logits_shape[-1]
        return [(logits_shape[0], self.image_size // 2**l, self.image_size // 2**l, out)
                for l in range(self.num_levels + 1)]

    def get_config(self):
        config = super().get_config()
        config.update(image_size=self.image_size, num_levels=self.num_levels, filters=self.filters,
                      hidden=self.hidden, learnable=self.learnable)
        return config
