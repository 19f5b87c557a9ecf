"""Task decoders of iFAN (Li et al., MM'17, Sec. 4.1.2).

* Landmarks: regression of normalised (x, y) coordinates from the 8x8 features of
  the down-sampling path (Euclidean loss).
* Parsing: per-pixel logits over the parsing classes from the S x S end of the
  up-sampling path (softmax cross-entropy on the S x S map; evaluation resizes the
  prediction bilinearly to the original image).
* Attributes (emotion, ...): class logits from the 4x4 features.

The last layer of each decoder computes in float32, so outputs stay float32 under a
mixed-precision policy.
"""

from __future__ import annotations

import keras


class _VectorDecoder(keras.layers.Layer):
    """1x1 reduction -> flatten -> FC(hidden) -> dropout -> FC(outputs) in float32."""

    def __init__(self, outputs, filters, hidden, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.hidden = int(hidden)
        self.dropout = float(dropout)
        self.reduce = keras.layers.Conv2D(self.filters, 1, activation="relu", dtype=self.dtype_policy,
                                          name="reduce")
        self.flatten = keras.layers.Flatten(dtype=self.dtype_policy, name="flatten")
        self.fc = keras.layers.Dense(self.hidden, activation="relu", dtype=self.dtype_policy, name="hidden")
        self.drop = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="dropout")
        self.out = keras.layers.Dense(int(outputs), dtype="float32", name="output")

    def build(self, x_shape):
        self.reduce.build(x_shape)
        flat = self.flatten.compute_output_shape(self.reduce.compute_output_shape(x_shape))
        self.fc.build(flat)
        self.out.build((x_shape[0], self.hidden))
        self.built = True

    def _vector(self, x, training=None):
        h = self.fc(self.flatten(self.reduce(x)))
        return self.out(self.drop(h, training=training))

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, hidden=self.hidden, dropout=self.dropout)
        return config


@keras.saving.register_keras_serializable(package="keras_facemt")
class LandmarkDecoder(_VectorDecoder):
    """Regresses K landmarks from a coarse feature map.

    Args:
        num_landmarks: K.
        filters: channels of the 1x1 reduction.
        hidden: width of the hidden fully connected layer.
        dropout: dropout rate before the output layer.

    Call arguments:
        x: ``[batch, h, w, C]`` features (8x8 in the paper).

    Returns:
        float32 ``[batch, K, 2]`` normalised (x, y) coordinates.
    """

    def __init__(self, num_landmarks, filters, hidden, dropout=0.0, **kwargs):
        super().__init__(2 * int(num_landmarks), filters, hidden, dropout, **kwargs)
        self.num_landmarks = int(num_landmarks)

    def call(self, x, training=None):
        return keras.ops.reshape(self._vector(x, training), (-1, self.num_landmarks, 2))

    def compute_output_shape(self, x_shape):
        return (x_shape[0], self.num_landmarks, 2)

    def get_config(self):
        config = super().get_config()
        config.update(num_landmarks=self.num_landmarks)
        return config


@keras.saving.register_keras_serializable(package="keras_facemt")
class AttributeDecoder(_VectorDecoder):
    """Predicts the class logits of one attribute (emotion, gender, ...).

    Args:
        num_classes: classes of the attribute.
        filters: channels of the 1x1 reduction.
        hidden: width of the hidden fully connected layer.
        dropout: dropout rate before the output layer.

    Call arguments:
        x: ``[batch, h, w, C]`` features (4x4 in the paper).

    Returns:
        float32 ``[batch, num_classes]`` logits.
    """

    def __init__(self, num_classes, filters, hidden, dropout=0.0, **kwargs):
        super().__init__(int(num_classes), filters, hidden, dropout, **kwargs)
        self.num_classes = int(num_classes)

    def call(self, x, training=None):
        return self._vector(x, training)

    def compute_output_shape(self, x_shape):
        return (x_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes)
        return config


@keras.saving.register_keras_serializable(package="keras_facemt")
class ParsingDecoder(keras.layers.Layer):
    """Per-pixel parsing logits (a 1x1 convolution computed in float32).

    Args:
        num_classes: parsing classes (11 for Helen).

    Call arguments:
        x: ``[batch, S, S, C]`` features at input resolution.

    Returns:
        float32 ``[batch, S, S, num_classes]`` logits.
    """

    def __init__(self, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.classifier = keras.layers.Conv2D(self.num_classes, 1, dtype="float32", name="classifier")

    def build(self, x_shape):
        self.classifier.build(x_shape)
        self.built = True

    def call(self, x):
        return self.classifier(x)

    def compute_output_shape(self, x_shape):
        return tuple(x_shape[:-1]) + (self.num_classes,)

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes)
        return config
