"""Face-parsing F-scores under the Smith et al. / iFAN protocol (iFAN Sec. 4.1.3, Table 2).

Counts are accumulated over every pixel of the test set (not averaged per image).
A class's F-score is ``2 * TP / (2 * TP + FP + FN)`` (the harmonic mean of
precision and recall). Table 2 reports left/right pairs merged (``eyes``,
``brows``): a group's F-score treats the group as one label, so a left-eye pixel
predicted as right eye still counts as eye. ``mouth_all`` merges the upper lip,
inner mouth and lower lip the same way. ``overall`` is the F-score of the
summed TP/FP/FN of the component groups eyes, brows, nose, inner mouth, upper lip
and lower lip (``schema.PARSING_OVERALL_CLASSES``): face skin, hair and
background are excluded, as in Smith et al.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from keras_facemt.data import schema
from keras_facemt.errors import ConfigError

_IDS = {name: i for i, name in enumerate(schema.PARSING_CLASSES)}

# Table 2 columns: name -> the class names merged into one label.
TABLE2_GROUPS: Dict[str, Tuple[str, ...]] = {
    "eyes": ("left_eye", "right_eye"),
    "brows": ("left_brow", "right_brow"),
    "nose": ("nose",),
    "inner_mouth": ("inner_mouth",),
    "upper_lip": ("upper_lip",),
    "lower_lip": ("lower_lip",),
    "mouth_all": schema.PARSING_MOUTH_CLASSES,
    "face_skin": ("face_skin",),
    "hair": ("hair",),
    "background": ("background",),
}
# The groups whose counts are summed into the overall score.
OVERALL_GROUPS: Tuple[str, ...] = ("eyes", "brows", "nose", "inner_mouth", "upper_lip", "lower_lip")
assert sorted(c for g in OVERALL_GROUPS for c in TABLE2_GROUPS[g]) == sorted(schema.PARSING_OVERALL_CLASSES)


def confusion_counts(pred: np.ndarray, target: np.ndarray, num_classes: int = schema.NUM_PARSING_CLASSES,
                     weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Pixel confusion matrix ``[C, C]`` (rows: ground truth, columns: prediction).

    Args:
        pred: predicted class ids ``[batch, H, W]``.
        target: ground-truth class ids ``[batch, H, W]``.
        num_classes: C.
        weights: ``[batch]`` presence flags; images with 0 are skipped.

    Raises:
        ConfigError: on mismatched shapes or class ids outside ``[0, C)``.
    """
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ConfigError(f"Parsing prediction and target shapes differ. Received: pred.shape={pred.shape}, "
                          f"target.shape={target.shape}")
    if weights is not None:
        keep = np.asarray(weights).reshape(-1) > 0
        pred, target = pred[keep], target[keep]
    pred = pred.astype(np.int64).ravel()
    target = target.astype(np.int64).ravel()
    for name, arr in (("pred", pred), ("target", target)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ConfigError(f"Parsing {name} class ids must be in [0, {num_classes}). "
                              f"Received: {name} range=[{arr.min()}, {arr.max()}]")
    return np.bincount(target * num_classes + pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def _f(tp: float, fp: float, fn: float) -> float:
    denom = 2 * tp + fp + fn
    return float(2 * tp / denom) if denom > 0 else float("nan")


def group_counts(confusion: np.ndarray, class_ids: Sequence[int]) -> Tuple[float, float, float]:
    """TP, FP, FN of a set of classes merged into one label."""
    ids = list(class_ids)
    cm = np.asarray(confusion, np.float64)
    in_gt = cm[ids, :].sum()
    in_pred = cm[:, ids].sum()
    tp = cm[np.ix_(ids, ids)].sum()
    return tp, in_pred - tp, in_gt - tp


def fscores_from_confusion(confusion: np.ndarray) -> Dict[str, object]:
    """All parsing scores from an ``[11, 11]`` pixel confusion matrix.

    Returns:
        ``per_class`` (each of ``schema.PARSING_CLASSES``), ``table2`` (the Table 2
        columns: eyes, brows, nose, inner_mouth, upper_lip, lower_lip, mouth_all,
        face_skin, hair, background), ``mouth_all`` and ``overall``; fractions in
        [0, 1], NaN where a label never occurs in either map.
    """
    cm = np.asarray(confusion, np.float64)
    if cm.shape != (schema.NUM_PARSING_CLASSES,) * 2:
        raise ConfigError(f"A parsing confusion matrix must be [{schema.NUM_PARSING_CLASSES}, "
                          f"{schema.NUM_PARSING_CLASSES}]. Received: shape={cm.shape}")
    per_class = {name: _f(*group_counts(cm, [i])) for name, i in _IDS.items()}
    table2 = {g: _f(*group_counts(cm, [_IDS[c] for c in cls])) for g, cls in TABLE2_GROUPS.items()}
    totals = np.sum([group_counts(cm, [_IDS[c] for c in TABLE2_GROUPS[g]]) for g in OVERALL_GROUPS], axis=0)
    return {
        "per_class": per_class,
        "table2": table2,
        "mouth_all": table2["mouth_all"],
        "overall": _f(*totals),
    }


def parsing_fscores(pred: np.ndarray, target: np.ndarray) -> Dict[str, object]:
    """Scores of label maps ``[batch, H, W]`` (see ``fscores_from_confusion``)."""
    return fscores_from_confusion(confusion_counts(pred, target))


class ParsingFScoreEvaluator:
    """Streaming parsing evaluator: accumulates the pixel confusion matrix per batch.

    ``update`` takes class ids ``[batch, H, W]`` or logits ``[batch, H, W, C]``
    (argmax taken). Predictions at another resolution than the labels are resized
    with nearest-neighbour sampling of the class ids by the caller; this class
    compares maps of equal size.
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.confusion = np.zeros((schema.NUM_PARSING_CLASSES,) * 2, np.int64)
        self.count = 0

    def update(self, pred, target, weights=None) -> None:
        pred = np.asarray(pred)
        if pred.ndim == 4:
            pred = pred.argmax(-1)
        self.confusion += confusion_counts(pred, target, weights=weights)
        n = pred.shape[0] if weights is None else int((np.asarray(weights).reshape(-1) > 0).sum())
        self.count += n

    def result(self) -> Dict[str, object]:
        out = fscores_from_confusion(self.confusion)
        out["count"] = self.count
        return out
