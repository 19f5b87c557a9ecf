"""Classification accuracy and confusion matrix (iFAN Sec. 4.1.3 emotion, Table 3, Fig. 6)."""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from keras_facemt.errors import ConfigError


def _labels(pred, target, num_classes: int, weights=None):
    pred = np.asarray(pred)
    if pred.ndim == 2:
        pred = pred.argmax(-1)
    pred = pred.astype(np.int64).reshape(-1)
    target = np.asarray(target).astype(np.int64).reshape(-1)
    if pred.shape != target.shape:
        raise ConfigError(f"Predictions and targets differ in length. Received: pred={pred.shape[0]}, "
                          f"target={target.shape[0]}")
    if weights is not None:
        keep = np.asarray(weights).reshape(-1) > 0
        pred, target = pred[keep], target[keep]
    for name, arr in (("pred", pred), ("target", target)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ConfigError(f"{name} class ids must be in [0, {num_classes}). "
                              f"Received: {name} range=[{arr.min()}, {arr.max()}]")
    return pred, target


def confusion_matrix(pred, target, num_classes: int, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Counts ``[C, C]``: rows ground truth, columns prediction.

    Args:
        pred: class ids ``[batch]`` or scores ``[batch, C]`` (argmax taken).
        target: class ids ``[batch]``.
        num_classes: C.
        weights: ``[batch]`` presence flags; examples with 0 are skipped.
    """
    pred, target = _labels(pred, target, num_classes, weights)
    return np.bincount(target * num_classes + pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def accuracy(pred, target, num_classes: int, weights=None) -> float:
    """Fraction of correct predictions (NaN for no examples)."""
    pred, target = _labels(pred, target, num_classes, weights)
    return float((pred == target).mean()) if pred.size else float("nan")


def majority_accuracy(train_labels, test_labels) -> float:
    """Accuracy of always predicting the most frequent training class (a trivial baseline)."""
    train = np.asarray(train_labels).astype(np.int64).reshape(-1)
    test = np.asarray(test_labels).astype(np.int64).reshape(-1)
    if not train.size or not test.size:
        raise ConfigError(f"majority_accuracy needs labels. Received: train={train.size}, test={test.size}")
    return float((test == np.bincount(train).argmax()).mean())


class ClassificationEvaluator:
    """Streaming accuracy, per-class recall and confusion matrix."""

    def __init__(self, num_classes: int, class_names=None):
        if num_classes < 2:
            raise ConfigError(f"num_classes must be >= 2. Received: num_classes={num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ConfigError(f"class_names must have num_classes entries. Received: {len(class_names)} names")
        self.num_classes = num_classes
        self.class_names = tuple(class_names) if class_names else tuple(str(i) for i in range(num_classes))
        self.reset()

    def reset(self) -> None:
        self.confusion = np.zeros((self.num_classes,) * 2, np.int64)

    def update(self, pred, target, weights=None) -> None:
        self.confusion += confusion_matrix(pred, target, self.num_classes, weights)

    def result(self) -> Dict[str, object]:
        cm = self.confusion
        total = int(cm.sum())
        rows = cm.sum(1)
        return {
            "accuracy": float(np.trace(cm) / total) if total else float("nan"),
            "per_class_recall": {
                n: (float(cm[i, i] / rows[i]) if rows[i] else float("nan")) for i, n in enumerate(self.class_names)
            },
            "confusion_matrix": cm.tolist(),
            "class_names": list(self.class_names),
            "count": total,
        }
