"""The recognition teacher g(x) of Uniface's mimic loss (Liao et al., Sec. III-E.2).

The paper regresses Uniface's embeddings onto those of a well-trained FaceNet run on
aligned face crops. No such model ships offline, so for the built-in synthetic data
the recipe first trains this small recognition network on aligned crops
(``ops.align``) with identity labels and a large-margin softmax (additive cosine
margin, CosFace-style), then distils from it. Any other embedding model (``.keras``,
SavedModel or ONNX) can replace it through
``tfrecords_tools/add_teacher_embeddings.py --teacher PATH``.

The same network also stands in for the "separate per-face recognition network" of
the two-stage pipeline that ``bench/bench_uniface_faces.py`` compares against.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.layers.conv_bn_act import ConvBnAct


def build_teacher(input_size: int = 64, widths: Sequence[int] = (32, 64, 128), embedding_dim: int = 64,
                  dropout: float = 0.2, name: str = "recognition_teacher") -> keras.Model:
    """Embedding network on aligned crops.

    Args:
        input_size: side S of the aligned crops (``ops.align.template(S)``).
        widths: channels of the stride-2 stages (two conv-BN-ReLU each).
        embedding_dim: D.
        dropout: dropout before the embedding layer.

    Returns:
        ``keras.Model``: ``[batch, S, S, 3]`` RGB in [0, 1] -> L2-normalised ``[batch, D]``.
    """
    if int(input_size) < 16 or not widths or int(embedding_dim) < 1:
        raise ConfigError(f"Teacher needs input_size >= 16, widths and embedding_dim >= 1. Received: "
                          f"input_size={input_size}, widths={tuple(widths)}, embedding_dim={embedding_dim}")
    image = keras.Input((input_size, input_size, 3), name="image")
    x = keras.layers.Rescaling(4.0, offset=-2.0, name="standardize")(image)
    for i, w in enumerate(widths):
        x = ConvBnAct(w, 3, strides=2, name=f"stage{i + 1}_down")(x)
        x = ConvBnAct(w, 3, name=f"stage{i + 1}_conv")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(embedding_dim, name="embedding_fc")(x)
    x = keras.layers.UnitNormalization(name="embedding")(x)
    return keras.Model(image, x, name=name)


@keras.saving.register_keras_serializable(package="keras_facemt")
class CosineClassifier(keras.layers.Layer):
    """Cosine similarity between L2-normalised embeddings and class centres.

    Args:
        num_classes: K identities.

    Call arguments:
        x: ``[batch, D]`` (normalised here).

    Returns:
        ``[batch, K]`` cosines in [-1, 1].
    """

    def __init__(self, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)

    def build(self, x_shape):
        self.centres = self.add_weight(shape=(x_shape[-1], self.num_classes), initializer="glorot_uniform",
                                       name="centres")

    def call(self, x):
        return tf.matmul(tf.math.l2_normalize(x, -1), tf.math.l2_normalize(self.centres, 0))

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes)
        return config


def margin_softmax_loss(labels, cosines, scale: float = 16.0, margin: float = 0.2):
    """Additive cosine margin softmax: ``CE(scale * (cos - margin * onehot(label)))`` per example ``[batch]``."""
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    k = tf.shape(cosines)[-1]
    logits = scale * (tf.cast(cosines, tf.float32) - margin * tf.one_hot(labels, k))
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def train_teacher(embedder: keras.Model, crops, labels, num_classes: int, steps: int = 300, batch_size: int = 64,
                  learning_rate: float = 2e-3, seed: int = 0, augment: bool = True) -> dict:
    """Trains ``embedder`` on aligned crops with identity labels (margin softmax).

    Args:
        embedder: from ``build_teacher``.
        crops: float ``[N, S, S, 3]`` aligned crops in [0, 1].
        labels: int ``[N]`` identity ids in ``[0, num_classes)``.
        num_classes: K.
        steps: optimizer updates.
        batch_size: crops per update.
        learning_rate: Adam learning rate (cosine-decayed to 1% over ``steps``).
        seed: shuffling / augmentation seed.
        augment: photometric jitter (brightness, contrast); no flips, which would
            mirror identity cues.

    Returns:
        ``{"loss": [...], "accuracy": final training accuracy}``.
    """
    import numpy as np

    labels = np.asarray(labels, np.int64)
    if labels.size == 0 or labels.min() < 0 or labels.max() >= num_classes:
        raise ConfigError(f"Teacher labels must be in [0, {num_classes}). Received: labels range "
                          f"{(int(labels.min()), int(labels.max())) if labels.size else 'empty'}")
    classifier = CosineClassifier(num_classes, name="identity_centres")
    classifier.build((None, embedder.outputs[0].shape[-1]))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, max(steps, 1), alpha=0.01)
    opt = keras.optimizers.Adam(schedule)
    variables = embedder.trainable_variables + classifier.trainable_variables
    opt.build(variables)
    ds = tf.data.Dataset.from_tensor_slices((np.asarray(crops, np.float32), labels))
    ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).repeat().batch(batch_size)
    if augment:
        def jitter(x, y):
            x = tf.image.random_brightness(x, 0.1, seed=seed)
            x = tf.image.random_contrast(x, 0.8, 1.2, seed=seed)
            return tf.clip_by_value(x, 0.0, 1.0), y

        ds = ds.map(jitter)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            cos = classifier(embedder(x, training=True))
            loss = tf.reduce_mean(margin_softmax_loss(y, cos))
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables))
        acc = tf.reduce_mean(tf.cast(tf.argmax(cos, -1) == tf.cast(y, tf.int64), tf.float32))
        return loss, acc

    losses, acc = [], 0.0
    for x, y in ds.take(int(steps)):
        loss, a = step(x, y)
        losses.append(float(loss))
        acc = float(a)
    return {"loss": losses, "accuracy": acc}
