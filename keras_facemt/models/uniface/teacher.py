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

from typing import Callable, Sequence, Tuple

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


def teacher_training_model(embedder: keras.Model, num_classes: int) -> keras.Model:
    """``{"image"} -> {"embedding", "cosines"}``: the embedder with its class centres (training only)."""
    image = keras.Input(tuple(embedder.inputs[0].shape[1:]), name="image")
    embedding = embedder(image)
    cosines = CosineClassifier(num_classes, name="identity_centres")(embedding)
    return keras.Model({"image": image}, {"embedding": embedding, "cosines": cosines}, name="teacher_training")


def _identity_margin_loss(batch, cosines):
    return margin_softmax_loss(batch["identity"], cosines)


def train_teacher(build_embedder: Callable[[], keras.Model], crops, labels, num_classes: int, model_dir: str,
                  steps: int = 300, batch_size: int = 64, learning_rate: float = 2e-3, seed: int = 0,
                  augment: bool = True, strategy=None, deterministic: bool = False) -> Tuple[keras.Model, dict]:
    """Trains the embedder on aligned crops with identity labels (margin softmax), with the shared trainer.

    Args:
        build_embedder: returns a fresh ``build_teacher`` network (built inside the
            trainer's strategy scope).
        crops: float ``[N, S, S, 3]`` aligned crops in [0, 1].
        labels: int ``[N]`` identity ids in ``[0, num_classes)``.
        num_classes: K.
        model_dir: the teacher's run directory (checkpoints; a killed run resumes).
        steps: optimizer updates.
        batch_size: crops per update.
        learning_rate: Adam learning rate (cosine-decayed to 1% over ``steps``).
        seed: shuffling / augmentation / initialisation seed.
        augment: photometric jitter (brightness, contrast); no flips, which would
            mirror identity cues.
        strategy: ``tf.distribute.Strategy`` (default: the current one).
        deterministic: TensorFlow op determinism.

    Returns:
        ``(embedder, {"loss_before", "loss_after", "accuracy"})``: the trained
        embedder, and the margin loss and classification accuracy over the training
        crops (un-augmented) before and after training.

    Raises:
        ConfigError: labels outside ``[0, num_classes)``.
    """
    import numpy as np

    from keras_facemt.training.schedule import LearningRate, LossTerm, Phase
    from keras_facemt.training.trainer import Trainer, TrainerConfig

    labels = np.asarray(labels, np.int64)
    if labels.size == 0 or labels.min() < 0 or labels.max() >= num_classes:
        raise ConfigError(f"Teacher labels must be in [0, {num_classes}). Received: labels range "
                          f"{(int(labels.min()), int(labels.max())) if labels.size else 'empty'}")
    crops = np.asarray(crops, np.float32)

    def stream(input_context=None):
        ds = tf.data.Dataset.from_tensor_slices({"image": crops, "identity": labels,
                                                 "has_identity": np.ones(len(labels), np.float32)})
        if input_context is not None and input_context.num_input_pipelines > 1:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).repeat()
        per_replica = batch_size if input_context is None else input_context.get_per_replica_batch_size(batch_size)
        ds = ds.batch(per_replica, drop_remainder=True)
        if augment:
            def jitter(b):
                x = tf.image.random_brightness(b["image"], 0.1, seed=seed)
                x = tf.image.random_contrast(x, 0.8, 1.2, seed=seed)
                return {**b, "image": tf.clip_by_value(x, 0.0, 1.0)}

            ds = ds.map(jitter)
        return ds

    term = LossTerm("identity", "cosines", "has_identity", _identity_margin_loss)
    phase = Phase("teacher", int(steps), ("crops",),
                  learning_rate=LearningRate(learning_rate, learning_rate * 0.01, "cosine"))
    trainer = Trainer(lambda: teacher_training_model(build_embedder(), num_classes), (term,), {"crops": stream},
                      [phase], TrainerConfig(model_dir=model_dir, steps_per_loop=20, optimizer="adam", seed=seed,
                                             deterministic=deterministic, summaries=False, progress=False),
                      strategy=strategy if strategy is not None else tf.distribute.get_strategy())

    def fit():
        out = trainer.model.predict({"image": crops}, batch_size=256, verbose=0)
        loss = float(np.mean(margin_softmax_loss(labels, out["cosines"]).numpy()))
        return loss, float(np.mean(out["cosines"].argmax(-1) == labels))

    before, _ = fit()
    trainer.train()
    after, accuracy = fit()
    embedder = next(layer for layer in trainer.model.layers if isinstance(layer, keras.Model))
    return embedder, {"loss_before": before, "loss_after": after, "accuracy": accuracy}
