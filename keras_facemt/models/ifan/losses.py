"""iFAN's per-task losses (Li et al., MM'17, Sec. 4.1.2), unreduced per example.

Each function has the ``LossTerm.fn`` signature ``fn(batch, prediction) -> [batch]``;
the trainer multiplies by the task's presence flag and divides by the global count
of labelled examples, so an example without the task's labels contributes nothing.

* Landmarks: "a regression to the normalized coordinates of the facial landmarks
  with the Euclidean distance loss": the mean over visible points of the Euclidean
  distance between predicted and true ``(x, y)`` in [0, 1].
* Parsing: "a per-pixel prediction of the pixel label with a categorical cross
  entropy loss ... calculated on the 128x128 prediction map": softmax cross-entropy
  averaged over the pixels of the ``S x S`` map (labels resized to the map by the
  pipeline; a map of another size is resized here, nearest neighbour for labels).
* Emotion (and any categorical attribute): softmax cross-entropy over its classes.
"""

from __future__ import annotations

import tensorflow as tf

from keras_facemt.data import batch as B
from keras_facemt.losses.classification import per_pixel_cross_entropy, sparse_softmax_cross_entropy
from keras_facemt.losses.regression import euclidean_points
from keras_facemt.models.ifan.config import attribute_num_classes


def landmark_euclidean_loss(batch, prediction):
    """Mean Euclidean point distance over visible points (``losses.euclidean_points``).

    Args:
        batch: dict with ``landmarks`` ``[batch, K, 2]`` and ``landmarks_visible``
            ``[batch, K]``.
        prediction: ``[batch, K, 2]`` normalised coordinates.

    Returns:
        ``[batch]`` loss (0 for a face with no visible point).
    """
    return euclidean_points(batch[B.LANDMARKS], prediction, batch[B.LANDMARKS_VISIBLE])


def parsing_cross_entropy_loss(batch, prediction):
    """Per-pixel softmax cross-entropy averaged over the map (``losses.per_pixel_cross_entropy``).

    Args:
        batch: dict with ``parsing`` ``[batch, H, W]`` int class ids.
        prediction: logits ``[batch, S, S, C]``; labels of another size are resized to
            the map (nearest neighbour).

    Returns:
        ``[batch]`` loss.
    """
    labels = tf.cast(batch[B.PARSING], tf.int32)
    if labels.shape[1:3] != prediction.shape[1:3]:
        labels = tf.squeeze(
            tf.image.resize(labels[..., None], tf.shape(prediction)[1:3], method="nearest"), axis=-1
        )
    return per_pixel_cross_entropy(labels, prediction)


def attribute_cross_entropy_loss(task: str):
    """Softmax cross-entropy of a categorical attribute (emotion: 7 classes).

    Returns:
        ``fn(batch, prediction)`` reading labels ``attr/<task>`` ``[batch]`` and
        logits ``[batch, C]``, returning ``[batch]`` (``losses.sparse_softmax_cross_entropy``).
    """
    key = B.attr(task)

    def loss(batch, prediction):
        return sparse_softmax_cross_entropy(batch[key], prediction)

    loss.__name__ = f"{task.replace('/', '_')}_cross_entropy_loss"
    return loss


STRUCTURAL_LOSSES = {
    "landmarks": landmark_euclidean_loss,
    "parsing": parsing_cross_entropy_loss,
}


def task_loss(task: str):
    """The per-example loss fn of an iFAN task.

    ``landmarks`` and ``parsing`` have their own losses; any other task is a
    categorical attribute (``emotion``, ``gender``, ...) trained by cross-entropy.

    Raises:
        ConfigError: if ``task`` is neither structural nor a categorical attribute.
    """
    if task in STRUCTURAL_LOSSES:
        return STRUCTURAL_LOSSES[task]
    attribute_num_classes(task)
    return attribute_cross_entropy_loss(task)
