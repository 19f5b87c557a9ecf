"""Tiny models, loss terms and synthetic streams shared by the trainer tests.

Streams are callables ``(input_context) -> tf.data.Dataset`` yielding deterministic
batches in the crops format of ``data/batch.py``; every example depends only on its
index, so any split of the data across replicas is reproducible.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_facemt.configs.outputs import OutputSpec, ServingSpec
from keras_facemt.layers.domain_batch_norm import DomainBatchNorm
from keras_facemt.losses.classification import sparse_softmax_cross_entropy
from keras_facemt.losses.regression import euclidean_points
from keras_facemt.models.model_info import ModelInfo, attach
from keras_facemt.training.schedule import LossTerm

IMAGE = 8
POINTS = 5
CLASSES = 3


class _CountTrainingCalls(keras.layers.Layer):
    """Identity that adds 1 to an outside counter at each training call.

    The counter is reached through a function, not an attribute, so it stays out of
    the model's weights and checkpoints: it counts this process's updates only.
    """

    def __init__(self, counter, **kwargs):
        super().__init__(**kwargs)
        self._counter = counter

    def call(self, x, training=False):
        if training:
            self._counter().assign_add(1)
        return x


def tiny_model(num_domains: int = 2, name: str = "tiny", step_counter=None):
    """Conv -> DomainBatchNorm -> two heads: ``landmarks`` [B, 5, 2], ``emotion_logits`` [B, 3].

    ``step_counter``: an int64 ``tf.Variable`` that each training forward pass
    increments (one per update of the single-replica trainer).
    """
    image = keras.Input((IMAGE, IMAGE, 3), name="image")
    domain = keras.Input((), dtype="int32", name="domain")
    x = image if step_counter is None else _CountTrainingCalls(lambda: step_counter, name="count_updates")(image)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="backbone_conv")(x)
    x = DomainBatchNorm(num_domains, name="backbone_bn")(x, domain=domain)
    x = keras.layers.ReLU(name="backbone_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="backbone_pool")(x)
    lm = keras.layers.Dense(POINTS * 2, name="decoder_landmarks_dense")(x)
    lm = keras.layers.Reshape((POINTS, 2), name="decoder_landmarks_reshape")(lm)
    emo = keras.layers.Dense(CLASSES, name="decoder_emotion_dense")(x)
    model = keras.Model({"image": image, "domain": domain}, {"landmarks": lm, "emotion_logits": emo}, name=name)
    return attach(model, ModelInfo("tiny_test", {"num_domains": num_domains}, TINY_SPEC))


# What ``tiny_model`` declares (serving signatures and FaceAnalyzer read it).
TINY_SPEC = ServingSpec({
    "landmarks": OutputSpec("landmarks", task="landmarks", scheme="mtfl5"),
    "emotion_logits": OutputSpec("class_logits", task="emotion", names=tuple(str(i) for i in range(CLASSES)),
                                 activation="softmax"),
})


def landmark_fn(batch, prediction):
    return euclidean_points(batch["landmarks"], prediction)


def emotion_fn(batch, prediction):
    return sparse_softmax_cross_entropy(batch["attr/emotion"], prediction)


def loss_terms(emotion_weight: float = 1.0):
    return [
        LossTerm("landmarks", "landmarks", "has_landmarks", landmark_fn),
        LossTerm("emotion", "emotion_logits", "has_attr/emotion", emotion_fn, weight=emotion_weight),
    ]


def _examples(count: int, seed: int, labelled_every: int = 1):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, (count, IMAGE, IMAGE, 3)).astype("float32")
    lms = rng.uniform(0, 1, (count, POINTS, 2)).astype("float32")
    emotion = rng.integers(0, CLASSES, count).astype("int32")
    flags = (np.arange(count) % labelled_every == 0).astype("float32")
    domain = (np.arange(count) % 2).astype("int32")
    return images, lms, emotion, flags, domain


def stream(task: str, global_batch: int = 4, count: int = 64, seed: int = 1, labelled_every: int = 1,
           poison: float | None = None, mark_stream: bool = False):
    """A repeating stream of ``task`` labels (``landmarks``, ``emotion`` or ``both``).

    Args:
        labelled_every: only every n-th example carries the label (has_=1).
        poison: if set, landmark labels of every example are this value (e.g. NaN).
        mark_stream: add a ``stream_id`` key (1 landmarks, 2 emotion) to see which
            stream fed a batch.
    """
    images, lms, emotion, flags, domain = _examples(count, seed, labelled_every)
    if poison is not None:
        lms = np.full_like(lms, poison)

    def build(ctx=None):
        n = len(images)
        data = {"image": images, "domain": domain}
        if task in ("landmarks", "both"):
            data.update(landmarks=lms, has_landmarks=flags)
        if task in ("emotion", "both"):
            data.update({"attr/emotion": emotion, "has_attr/emotion": flags})
        if mark_stream:
            data["stream_id"] = np.full(n, 1 if task == "landmarks" else 2, "int32")
        ds = tf.data.Dataset.from_tensor_slices(data)
        per_replica = global_batch
        if ctx is not None:
            per_replica = ctx.get_per_replica_batch_size(global_batch)
            ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
        return ds.repeat().batch(per_replica, drop_remainder=True)

    return build


def probe_model():
    """A model whose ``value`` output is a single bias ``probe/bias`` (kernel frozen at 0 by the tests).

    With a loss ``g * value`` the bias gradient of an update is exactly ``g``, so the
    bias after SGD records which terms fed which update with which learning rate.
    """
    image = keras.Input((IMAGE, IMAGE, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(image)
    value = keras.layers.Dense(1, kernel_initializer="zeros", name="probe")(x)
    other = keras.layers.Dense(1, kernel_initializer="ones", name="other")(x)
    return keras.Model({"image": image}, {"value": value, "other": other}, name="probe_model")


def probe_stream(key: str, global_batch: int = 4):
    """Constant images with presence key ``key`` all 1."""

    def build(ctx=None):
        per_replica = ctx.get_per_replica_batch_size(global_batch) if ctx is not None else global_batch
        ds = tf.data.Dataset.from_tensors({"image": tf.fill([IMAGE, IMAGE, 3], 0.5), key: tf.constant(1.0)})
        return ds.repeat().batch(per_replica, drop_remainder=True)

    return build


def probe_terms(gradients):
    """``{presence_key: g}`` -> LossTerms ``g * value`` (``other`` gets ``g * other``)."""
    terms = []
    for key, g in gradients.items():
        terms.append(LossTerm(f"value_{key}", "value", key, lambda b, p, g=g: g * tf.reshape(p, [-1])))
        terms.append(LossTerm(f"other_{key}", "other", key, lambda b, p, g=g: g * tf.reshape(p, [-1])))
    return terms


class ListBlocks(keras.layers.Layer):
    """Dense layers kept in a Python list: invisible to tf.train.Checkpoint's object graph under Keras 3."""

    def __init__(self, units=4, depth=2, **kwargs):
        super().__init__(**kwargs)
        self.units, self.depth = units, depth
        self.blocks = [keras.layers.Dense(units, activation="relu", name=f"block_{i}") for i in range(depth)]

    def call(self, x):
        for block in self.blocks:
            x = block(x)
        return x

    def get_config(self):
        return {**super().get_config(), "units": self.units, "depth": self.depth}


def tiny_model_with_list_block():
    """``tiny_model`` with a ``ListBlocks`` between the backbone and the heads."""
    base = tiny_model()
    features = base.get_layer("backbone_pool").output
    x = ListBlocks(name="backbone_blocks")(features)
    lm = keras.layers.Reshape((POINTS, 2))(keras.layers.Dense(POINTS * 2, name="decoder_landmarks_dense2")(x))
    emo = keras.layers.Dense(CLASSES, name="decoder_emotion_dense2")(x)
    return keras.Model(base.inputs, {"landmarks": lm, "emotion_logits": emo}, name="tiny_list")
