"""All-in-One's losses, Eq. 4-8 (Ranjan et al., FG 2017, Sec. III-C), as loss terms.

Each term returns an unreduced ``[batch]`` loss; the shared trainer masks it by the
term's presence key and divides by the number of labelled examples, so a missing
label contributes exactly zero (labels the input pipeline zero-fills stay finite
here, e.g. a zero ``age_sigma`` is replaced before it divides).

* ``detection``: softmax cross-entropy face / non-face on proposals (IoU > 0.5
  face, < 0.35 background; the rest carry no detection label).
* ``landmarks``: half the squared error of the 21 points, summed over the
  *visible* ones. The text says "Euclidean loss"; weighting by visibility is
  HyperFace's [36] (Sec. III-C of [36]), taken from there.
* ``visibility``: Euclidean loss of the 21 regressed 0/1 visibilities.
* ``pose``: Euclidean loss of (yaw, pitch, roll) in units of ``pose_scale``
  degrees (the network's raw output), so one radian-sized error does not dwarf
  the other tasks. Landmarks, visibility and pose train on proposals with
  IoU > 0.35 only (their presence keys are zero elsewhere).
* ``smile`` (Eq. 5) and ``gender`` (Eq. 4): binary cross-entropy, written as a
  2-way softmax (identical for two classes). Eq. 4 codes g = 1 for female; the
  schema's classes are (female, male), so ``gender_logits[:, 0]`` is log-odds
  aligned with the paper's p_g.
* ``age/euclidean`` and ``age/gaussian`` (Eq. 6): the same loss at lambda = 0 and
  lambda = 1. ``losses.age.age_gaussian``'s ``euclidean_weight`` is ``1 - lambda``
  (not lambda): the paper starts Euclidean (``euclidean_weight=1``) and switches
  to Gaussian (``euclidean_weight=0``) after 20k iterations; two phases select one
  term each. Sigma is fixed at 3 where the data give none (paper); ``age_gaussian``
  itself would clip a missing (0) sigma to ``min_sigma`` = 1 instead.
* ``identity`` (Eq. 7): softmax cross-entropy over the training identities.

Eq. 8: L = sum_t lambda_t L_t, with ``weights`` (``TASK_WEIGHTS`` names).
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple, Tuple

import tensorflow as tf

from keras_facemt.data import batch as B
from keras_facemt.errors import ConfigError
from keras_facemt.losses.age import age_gaussian
from keras_facemt.losses.classification import sparse_softmax_cross_entropy
from keras_facemt.losses.regression import l2_points

DETECTION = "detection"
HAS_DETECTION = "has_detection"
DEFAULT_SIGMA = 3.0
TERMS = ("detection", "landmarks", "visibility", "pose", "smile", "gender", "age/euclidean", "age/gaussian",
         "identity")
# Eq. 8's lambda_t: one weight per task (both age terms share "age").
TASK_WEIGHTS = ("detection", "landmarks", "visibility", "pose", "smile", "gender", "age", "identity")


def detection_loss(batch, logits):
    """Face / non-face softmax cross-entropy ``[batch]`` (label 1 = face)."""
    return sparse_softmax_cross_entropy(batch[DETECTION], logits)


def landmark_loss(batch, points):
    """Visibility-weighted Euclidean loss of ``[batch, 21, 2]`` points (HyperFace [36])."""
    return l2_points(batch[B.LANDMARKS], points, batch[B.LANDMARKS_VISIBLE])


def visibility_loss(batch, visibility):
    """Euclidean loss of the ``[batch, 21]`` regressed visibilities."""
    diff = tf.cast(visibility, tf.float32) - tf.cast(batch[B.LANDMARKS_VISIBLE], tf.float32)
    return 0.5 * tf.reduce_sum(tf.square(diff), axis=-1)


def pose_loss(pose_scale: float):
    """Euclidean loss of ``[batch, 3]`` degrees, measured in units of ``pose_scale`` degrees."""
    def fn(batch, pose):
        diff = (tf.cast(pose, tf.float32) - tf.cast(batch[B.POSE], tf.float32)) / float(pose_scale)
        return 0.5 * tf.reduce_sum(tf.square(diff), axis=-1)

    return fn


def _attribute_ce(name: str):
    def fn(batch, logits):
        return sparse_softmax_cross_entropy(batch[B.attr(name)], logits)

    return fn


def age_sigma(batch):
    """``[batch]`` sigma: the label's where given, else ``DEFAULT_SIGMA`` (3, Sec. III-C)."""
    key, has = B.attr("age_sigma"), B.has_attr("age_sigma")
    if key not in batch:
        return tf.fill(tf.shape(tf.reshape(batch[B.attr("age")], [-1])), DEFAULT_SIGMA)
    sigma = tf.reshape(tf.cast(batch[key], tf.float32), [-1])
    given = tf.reshape(tf.cast(batch[has], tf.float32), [-1]) > 0 if has in batch else sigma > 0
    return tf.where(given & (sigma > 0), sigma, DEFAULT_SIGMA)


def age_loss(lam: float):
    """Eq. 6 at a fixed ``lam`` (0: Euclidean, 1: Gaussian); ages in years."""
    def fn(batch, age):
        return age_gaussian(batch[B.attr("age")], age, age_sigma(batch), euclidean_weight=1.0 - float(lam))

    return fn


def identity_loss(batch, logits):
    return sparse_softmax_cross_entropy(batch[B.IDENTITY], logits)


class TermSpec(NamedTuple):
    """One term's fields, in the order of ``training.schedule.LossTerm`` (which the job builds from it)."""

    name: str
    output: str
    presence: str
    fn: Callable
    weight: float


def loss_terms(weights: Mapping[str, float], pose_scale: float = 90.0) -> Tuple[TermSpec, ...]:
    """Every All-in-One term with its Eq. 8 weight (``LossTerm(*spec)`` for the trainer).

    Args:
        weights: ``{task: lambda_t}`` over ``TASK_WEIGHTS`` (missing tasks: 1).

    Raises:
        ConfigError: for an unknown task name or a negative weight.
    """
    weights = dict(weights)
    unknown = sorted(set(weights) - set(TASK_WEIGHTS))
    if unknown or any(float(v) < 0 for v in weights.values()):
        raise ConfigError(f"Loss weights name tasks of {TASK_WEIGHTS} with values >= 0. Received: weights={weights}")
    w = {t: float(weights.get(t, 1.0)) for t in TASK_WEIGHTS}
    return (
        TermSpec("detection", "detection_logits", HAS_DETECTION, detection_loss, w["detection"]),
        TermSpec("landmarks", "landmarks", B.HAS_LANDMARKS, landmark_loss, w["landmarks"]),
        TermSpec("visibility", "visibility", B.HAS_LANDMARKS, visibility_loss, w["visibility"]),
        TermSpec("pose", "pose", B.HAS_POSE, pose_loss(pose_scale), w["pose"]),
        TermSpec("smile", "smile_logits", B.has_attr("smile"), _attribute_ce("smile"), w["smile"]),
        TermSpec("gender", "gender_logits", B.has_attr("gender"), _attribute_ce("gender"), w["gender"]),
        TermSpec("age/euclidean", "age", B.has_attr("age"), age_loss(0.0), w["age"]),
        TermSpec("age/gaussian", "age", B.has_attr("age"), age_loss(1.0), w["age"]),
        TermSpec("identity", "identity_logits", B.HAS_IDENTITY, identity_loss, w["identity"]),
    )


def phase_terms(gaussian_age: bool) -> Tuple[str, ...]:
    """The term names a phase trains: all, with the Euclidean (lambda = 0) or Gaussian (lambda = 1) age loss."""
    drop = "age/euclidean" if gaussian_age else "age/gaussian"
    return tuple(t for t in TERMS if t != drop)
