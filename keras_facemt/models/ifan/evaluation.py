"""Held-out evaluation of iFAN at every interaction iteration, and trivial baselines.

Protocols (iFAN Sec. 4.1.3):

* parsing: pixel-accumulated F-scores (``metrics.parsing_fscore``); the logits'
  ``S x S`` map is resized bilinearly to the label map when their sizes differ;
* landmarks: NME normalised by the inter-ocular distance and failure rate at 10%
  (``metrics.landmark_error``), visibility respected;
* emotion (any categorical attribute): accuracy and confusion matrix.

Trivial baselines, computed from the training split and scored on the test split:
the mean training shape for landmarks; the training set's most frequent pixel class
predicted everywhere (and, stronger, the per-pixel most frequent class: a prior
map) for parsing; the most frequent training class, and chance, for attributes.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from keras_facemt.configs.data import DataConfig
from keras_facemt.data import batch as B
from keras_facemt.data import schema
from keras_facemt.errors import ConfigError
from keras_facemt.metrics.classification import ClassificationEvaluator
from keras_facemt.metrics.landmark_error import LandmarkErrorEvaluator
from keras_facemt.metrics.parsing_fscore import ParsingFScoreEvaluator
from keras_facemt.models.ifan.model import output_key


def _labels_key(task: str) -> str:
    if task == "landmarks":
        return B.LANDMARKS
    if task == "parsing":
        return B.PARSING
    return B.attr(task)


def make_evaluator(task: str, landmark_scheme: str = "mtfl5"):
    """A fresh streaming evaluator of ``task``."""
    if task == "landmarks":
        return LandmarkErrorEvaluator(landmark_scheme)
    if task == "parsing":
        return ParsingFScoreEvaluator()
    spec = schema.attribute_spec(task)
    return ClassificationEvaluator(spec.num_classes, spec.class_names)


def update_evaluator(task: str, evaluator, batch: Mapping[str, np.ndarray], prediction: np.ndarray) -> None:
    """Feeds one batch's prediction of ``task`` (numpy) to its evaluator, masked by presence."""
    weights = batch[B.presence(task)]
    if task == "landmarks":
        evaluator.update(prediction, batch[B.LANDMARKS], batch[B.LANDMARKS_VISIBLE], weights=weights)
    elif task == "parsing":
        labels = batch[B.PARSING]
        if prediction.shape[1:3] != labels.shape[1:3]:
            prediction = tf.image.resize(prediction, labels.shape[1:3], method="bilinear").numpy()
        evaluator.update(prediction.argmax(-1), labels, weights=weights)
    else:
        evaluator.update(prediction, batch[B.attr(task)], weights=weights)


class IFANEvaluator:
    """Evaluates a model on each task's held-out stream at every iteration.

    Args:
        test_streams: task -> ``DataConfig`` of its held-out split (one pass, no
            augmentation); the decoded examples are cached in memory after the first
            evaluation.
        iterations: ITER; outputs ``<key>/iter_0 .. iter_ITER`` are scored.
        landmark_scheme: scheme of the landmark stream.
        dataset_fn: ``DataConfig -> tf.data.Dataset`` (``pipeline.build_dataset``).
        calibration_streams: task -> ``DataConfig`` of training data (one pass, no
            augmentation); when given, the first ``calibration_batches`` batches of each
            recompute the model's per-domain BatchNorm statistics before every
            evaluation (``batch_norm_recalibration``).
        calibration_batches: batches per task used for that.
    """

    def __init__(self, test_streams: Mapping[str, DataConfig], iterations: int, landmark_scheme: str = "mtfl5",
                 dataset_fn: Optional[Callable] = None, calibration_streams: Optional[Mapping[str, DataConfig]] = None,
                 calibration_batches: int = 2):
        if dataset_fn is None:
            from keras_facemt.data.pipeline import build_dataset as dataset_fn
        self.tasks = tuple(test_streams)
        self.iterations = int(iterations)
        self.landmark_scheme = landmark_scheme
        self._datasets = {t: dataset_fn(cfg) for t, cfg in test_streams.items()}
        self._calibration = None
        if calibration_streams:
            # Decoded once and kept: a few small batches per task.
            self._calibration = [
                {k: v.numpy() for k, v in b.items()}
                for cfg in calibration_streams.values() for b in dataset_fn(cfg).take(calibration_batches)
            ]
        self._predict: Dict[int, Callable] = {}

    def recalibrate(self, model) -> None:
        """Recomputes ``model``'s BatchNorm statistics from the calibration batches (if any)."""
        if self._calibration:
            from keras_facemt.layers.batch_norm_recalibration import recalibrate_batch_norm

            recalibrate_batch_norm(model, self._calibration)

    def _predict_fn(self, model):
        # One traced function per model object (the main model and the iter0 model).
        key = id(model)
        if key not in self._predict:
            @tf.function
            def predict(inputs):
                return model(inputs, training=False)

            self._predict[key] = predict
        return self._predict[key]

    def batches(self, task: str):
        for batch in self._datasets[task]:
            yield {k: v.numpy() for k, v in batch.items()}

    def evaluate(self, model, iterations: Optional[Sequence[int]] = None, tasks: Optional[Sequence[str]] = None
                 ) -> Dict[str, Dict[str, dict]]:
        """Metrics of ``model`` per task and iteration.

        Args:
            model: Keras model with inputs ``{image, domain}`` and outputs
                ``output_key(task, i)``.
            iterations: which iterations to score (default ``0..ITER``).
            tasks: which tasks (default all).

        Returns:
            ``{task: {"iter_<i>": metrics}}``.
        """
        iterations = list(range(self.iterations + 1)) if iterations is None else list(iterations)
        self.recalibrate(model)
        predict = self._predict_fn(model)
        out: Dict[str, Dict[str, dict]] = {}
        for task in tasks or self.tasks:
            evals = {i: make_evaluator(task, self.landmark_scheme) for i in iterations}
            for batch in self.batches(task):
                preds = predict({B.IMAGE: tf.constant(batch[B.IMAGE]), B.DOMAIN: tf.constant(batch[B.DOMAIN])})
                for i in iterations:
                    key = output_key(task, i)
                    if key not in preds:
                        raise ConfigError(f"The model has no output {key!r} to evaluate; outputs: {sorted(preds)}. "
                                          f"Received: task={task!r}, iteration={i}")
                    update_evaluator(task, evals[i], batch, np.asarray(preds[key]))
            out[task] = {f"iter_{i}": ev.result() for i, ev in evals.items()}
        return out

    def predict_examples(self, model, task: str, count: int) -> List[dict]:
        """The first ``count`` test examples of ``task`` with the model's final predictions.

        Returns:
            dicts with ``image`` ``[S, S, 3]`` float, the task's ``label`` and
            ``landmarks`` ``[K, 2]``, ``parsing`` ``[S, S]`` ids and ``<attr>`` class
            ids for every task the model predicts (last iteration).
        """
        predict = self._predict_fn(model)
        examples: List[dict] = []
        for batch in self.batches(task):
            preds = predict({B.IMAGE: tf.constant(batch[B.IMAGE]), B.DOMAIN: tf.constant(batch[B.DOMAIN])})
            for j in range(batch[B.IMAGE].shape[0]):
                if len(examples) >= count:
                    return examples
                ex = {"image": batch[B.IMAGE][j], "task": task, "label": batch[_labels_key(task)][j]}
                for t in self.tasks:
                    p = np.asarray(preds[output_key(t, self.iterations)][j])
                    ex[t] = p.argmax(-1) if t != "landmarks" else p
                examples.append(ex)
        return examples


def headline_values(metrics: Mapping[str, Mapping[str, dict]]) -> Dict[str, Dict[str, float]]:
    """``{task: {iter_i: headline}}``: overall F-score, NME or accuracy (fractions)."""
    from keras_facemt.models.ifan.reports import headline

    return {t: {it: m[headline(t)[0]] for it, m in per_iter.items()} for t, per_iter in metrics.items()}


# ----------------------------------------------------------------------------- baselines
def fit_training_priors(train_batches: Mapping[str, Callable], tasks: Sequence[str]) -> Dict[str, dict]:
    """Label statistics of each task's training split (one pass).

    Args:
        train_batches: task -> zero-argument callable yielding numpy training batches
            (one pass, no augmentation).
        tasks: the tasks.

    Returns:
        ``landmarks``: ``mean_shape`` ``[K, 2]`` (mean of visible labelled points);
        ``parsing``: ``pixel_counts`` ``[H, W, C]`` (class counts per pixel);
        attributes: ``class_counts`` ``[C]``.

    Raises:
        ConfigError: a task with no labelled training example.
    """
    out: Dict[str, dict] = {}
    for task in tasks:
        if task == "landmarks":
            total, count = 0.0, 0.0
            for b in train_batches[task]():
                w = (b[B.HAS_LANDMARKS] > 0).astype(np.float64)[:, None, None]
                vis = (b[B.LANDMARKS_VISIBLE] > 0)[..., None] * w
                total = total + (b[B.LANDMARKS] * vis).sum(0)
                count = count + vis.sum(0)
            if not np.any(count):
                raise ConfigError("No labelled training landmarks to fit the mean shape. Received: task='landmarks'")
            out[task] = {"mean_shape": total / np.maximum(count, 1)}
        elif task == "parsing":
            per_pixel = None
            for b in train_batches[task]():
                labels = b[B.PARSING][b[B.HAS_PARSING] > 0]
                onehot = np.eye(schema.NUM_PARSING_CLASSES, dtype=np.int64)[labels].sum(0)
                per_pixel = onehot if per_pixel is None else per_pixel + onehot
            if per_pixel is None or not per_pixel.sum():
                raise ConfigError("No labelled training parsing maps to fit the priors. Received: task='parsing'")
            out[task] = {"pixel_counts": per_pixel}
        else:
            spec = schema.attribute_spec(task)
            counts = np.zeros(spec.num_classes, np.int64)
            for b in train_batches[task]():
                keep = b[B.has_attr(task)] > 0
                counts += np.bincount(b[B.attr(task)][keep].astype(np.int64), minlength=spec.num_classes)
            if not counts.sum():
                raise ConfigError(f"No labelled training examples of {task!r} to fit the priors. Received: task={task!r}")
            out[task] = {"class_counts": counts}
    return out


def compute_baselines(priors: Mapping[str, dict], evaluator: IFANEvaluator) -> Dict[str, dict]:
    """Trivial predictors fitted on training data (``fit_training_priors``), scored on the test streams.

    Returns:
        ``landmarks``: ``mean_shape`` (landmark metrics of the mean training shape);
        ``parsing``: ``majority_class`` (the most frequent class everywhere) and
        ``prior_map`` (each pixel's most frequent class), as parsing metrics;
        attributes: ``majority`` and ``chance`` accuracies.
    """
    out: Dict[str, dict] = {}
    for task in evaluator.tasks:
        if task == "landmarks":
            mean_shape = priors[task]["mean_shape"]
            ev = make_evaluator(task, evaluator.landmark_scheme)
            for b in evaluator.batches(task):
                update_evaluator(task, ev, b, np.broadcast_to(mean_shape, b[B.LANDMARKS].shape))
            out[task] = {"mean_shape": ev.result()}
        elif task == "parsing":
            per_pixel = priors[task]["pixel_counts"]
            majority = int(per_pixel.sum((0, 1)).argmax())
            prior = per_pixel.argmax(-1)
            maj_ev, prior_ev = ParsingFScoreEvaluator(), ParsingFScoreEvaluator()
            for b in evaluator.batches(task):
                labels = b[B.PARSING]
                w = b[B.HAS_PARSING]
                maj_ev.update(np.full(labels.shape, majority), labels, weights=w)
                if prior.shape == labels.shape[1:]:
                    prior_ev.update(np.broadcast_to(prior, labels.shape), labels, weights=w)
            out[task] = {"majority_class": maj_ev.result(), "majority_class_id": majority,
                         "prior_map": prior_ev.result()}
        else:
            spec = schema.attribute_spec(task)
            counts = priors[task]["class_counts"]
            majority = int(counts.argmax())
            ev = make_evaluator(task)
            for b in evaluator.batches(task):
                ev.update(np.full(b[B.attr(task)].shape, majority), b[B.attr(task)], weights=b[B.has_attr(task)])
            out[task] = {"majority": ev.result()["accuracy"], "majority_class": majority,
                         "chance": 1.0 / spec.num_classes, "train_class_counts": counts.tolist()}
    return out
