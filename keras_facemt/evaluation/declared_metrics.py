"""A model's declared outputs scored against a dataset's labels with the papers' metrics.

Which metric scores an output follows from its declared kind
(``configs.outputs.OutputSpec``), so any system's model can be evaluated on any
converted dataset that carries the labels:

==================  ===========================================================
kind                metrics
==================  ===========================================================
``landmarks``       NME (inter-ocular: eye centres for ``mtfl5``, outer corners
                    for ``ibug68``, the 300-W / MTFL protocols), failure rate at
                    0.1, CED AUC up to 0.1; with pose labels, NME in |yaw| bins
                    0-30 / 30-60 / 60-90 with their mean and std (AFLW, Table II
                    of All-in-One)
``parsing_logits``  per-class F-scores and the overall F-score of Smith et al.
                    (iFAN Tables 2-3)
``class_logits``    accuracy, with the majority class of the evaluated split
``multilabel``      per-label accuracy at 0.5 and their mean (majority per label)
``regression``      MAE, with the split's mean as the constant predictor
``pose``            MAE of yaw, pitch and roll in degrees; AFW's yaw rule (share
                    within 15 degrees after rounding to 15)
detection           AP at IoU 0.5 over images whose boxes are exhaustive, and the
                    NME of each labelled face's matched detection
==================  ===========================================================

The baselines computed here come from the evaluated split itself (the strongest
constant predictor *of that split*), which flatters them: a trained model should
still beat them.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

import numpy as np

from keras_facemt.data import batch as batch_keys
from keras_facemt.metrics import landmark_error
from keras_facemt.metrics.binned_error import error_by_bins
from keras_facemt.metrics.detection_ap import average_precision
from keras_facemt.metrics.matched_landmark_error import matched_landmark_nme
from keras_facemt.metrics.parsing_fscore import parsing_fscores
from keras_facemt.metrics.pose_error import angle_error

FAILURE_THRESHOLD = 0.1


@dataclasses.dataclass(frozen=True)
class Scorer:
    """How one declared per-image output is scored: metric name, direction, label keys."""

    metric: str
    higher_is_better: bool
    label_key: Optional[str]
    presence_key: Optional[str]


def scorer_for(spec) -> Optional[Scorer]:
    """The labelled metric of a per-image output declaration, or None (unscored kind)."""
    if spec.kind == "landmarks":
        return Scorer("nme", False, batch_keys.LANDMARKS, batch_keys.HAS_LANDMARKS)
    if spec.kind == "parsing_logits":
        return Scorer("overall_fscore", True, batch_keys.PARSING, batch_keys.HAS_PARSING)
    if spec.kind == "class_logits":
        return Scorer("accuracy", True, batch_keys.attr(spec.label_task), batch_keys.has_attr(spec.label_task))
    if spec.kind == "regression":
        return Scorer("mae", False, batch_keys.attr(spec.label_task), batch_keys.has_attr(spec.label_task))
    if spec.kind == "pose":
        return Scorer("mae_degrees", False, batch_keys.POSE, batch_keys.HAS_POSE)
    if spec.kind == "multilabel":
        return Scorer("mean_accuracy", True, None, None)
    if spec.kind == "embedding":
        return Scorer("cosine", True, None, None)
    return None


def probabilities(values, activation: str) -> np.ndarray:
    """Declared raw values as probabilities (``sigmoid`` applied where declared)."""
    z = np.asarray(values, np.float64)
    return 1.0 / (1.0 + np.exp(-z)) if activation == "sigmoid" else z


def _label_map_on_grid(target, shape) -> np.ndarray:
    """Nearest-neighbour resampling of ``[N, H, W]`` label maps to the prediction grid."""
    target = np.asarray(target)
    if target.shape[1:3] == tuple(shape):
        return target
    rows = np.arange(shape[0]) * target.shape[1] // shape[0]
    cols = np.arange(shape[1]) * target.shape[2] // shape[1]
    return target[:, rows][:, :, cols]


def score(spec, scorer: Scorer, pred, target, visible=None) -> float:
    """``scorer``'s metric of predictions ``pred`` against ``target`` (labels or reference values)."""
    if scorer.metric == "nme":
        return landmark_error.nme(pred, target, spec.scheme, visible=visible)
    if scorer.metric == "overall_fscore":
        labels = np.asarray(pred).argmax(-1)
        return float(parsing_fscores(labels, _label_map_on_grid(target, labels.shape[1:]))["overall"])
    if scorer.metric == "accuracy":
        labels = np.asarray(pred).argmax(-1)
        return float(np.mean(labels == np.asarray(target).reshape(-1))) if labels.size else float("nan")
    return float(np.mean(np.abs(np.asarray(pred, np.float64).reshape(np.shape(target)) - np.asarray(target))))


def _present(labels: Dict[str, np.ndarray], key: str, n: int) -> np.ndarray:
    return np.asarray(labels.get(key, np.zeros(n))).reshape(n, -1)[:, 0] > 0


def landmark_metrics(pred, target, scheme: str, visible=None) -> Dict[str, float]:
    """NME, failure rate and CED AUC of ``[N, K, 2]`` points (inter-ocular normalised)."""
    per_face = landmark_error.nme_per_face(pred, target, scheme, visible=visible)
    return {"nme": float(np.mean(per_face)),
            f"failure_rate@{FAILURE_THRESHOLD:g}": landmark_error.failure_rate(per_face, FAILURE_THRESHOLD),
            f"ced_auc@{FAILURE_THRESHOLD:g}": landmark_error.ced_auc(per_face, FAILURE_THRESHOLD)}


def yaw_binned_nme(pred, labels, scheme: str, keep: np.ndarray, n: int) -> Dict[str, float]:
    """Table II's layout where the faces also carry pose: NME per |yaw| bin, mean and std of the bins.

    Returns ``{}`` when no scored face has a pose label.
    """
    if batch_keys.POSE not in labels:
        return {}
    posed = keep & _present(labels, batch_keys.HAS_POSE, n)
    if not posed.any():
        return {}
    visible = labels.get(batch_keys.LANDMARKS_VISIBLE)
    per_face = landmark_error.nme_per_face(np.asarray(pred)[posed], np.asarray(labels[batch_keys.LANDMARKS])[posed],
                                           scheme, visible=None if visible is None else np.asarray(visible)[posed])
    yaw = np.asarray(labels[batch_keys.POSE], np.float64).reshape(n, -1)[posed, 0]
    table = error_by_bins(per_face, yaw)
    out = {f"nme_yaw_{k}": v["mean"] for k, v in table["bins"].items() if v["count"]}
    out.update({f"faces_yaw_{k}": v["count"] for k, v in table["bins"].items()})
    out.update({"nme_yaw_bin_mean": table["mean"], "nme_yaw_bin_std": table["std"]})
    return out


def _crop_output_metrics(spec, pred, labels, n) -> Dict[str, object]:
    """Metrics of one per-image output (crop models); ``{}`` when the data lack its labels."""
    if spec.kind == "landmarks":
        keep = _present(labels, batch_keys.HAS_LANDMARKS, n)
        if batch_keys.LANDMARKS not in labels or not keep.any():
            return {}
        visible = labels.get(batch_keys.LANDMARKS_VISIBLE)
        out = landmark_metrics(pred[keep], labels[batch_keys.LANDMARKS][keep], spec.scheme,
                               None if visible is None else np.asarray(visible)[keep])
        out.update(yaw_binned_nme(pred, labels, spec.scheme, keep, n))
        return {**out, "examples": int(keep.sum())}
    if spec.kind == "parsing_logits":
        keep = _present(labels, batch_keys.HAS_PARSING, n)
        if batch_keys.PARSING not in labels or not keep.any():
            return {}
        labels_on_grid = _label_map_on_grid(np.asarray(labels[batch_keys.PARSING])[keep], np.shape(pred)[1:3])
        scores = parsing_fscores(np.asarray(pred)[keep].argmax(-1), labels_on_grid)
        # Table 2's columns (eyes, brows, nose, mouth parts, skin, hair, background).
        return {"overall_fscore": float(scores["overall"]),
                **{f"fscore/{k}": float(v) for k, v in scores["table2"].items()},
                "examples": int(keep.sum())}
    if spec.kind in ("class_logits", "regression"):
        key = batch_keys.attr(spec.label_task)
        keep = _present(labels, batch_keys.has_attr(spec.label_task), n)
        if key not in labels or not keep.any():
            return {}
        target = np.asarray(labels[key]).reshape(n)[keep]
        if spec.kind == "class_logits":
            acc = score(spec, scorer_for(spec), np.asarray(pred)[keep], target)
            majority = float(np.max(np.bincount(target.astype(np.int64))) / len(target))
            return {"accuracy": acc, "baseline": majority, "baseline_name": "majority class of this split",
                    "examples": int(keep.sum())}
        values = np.asarray(pred, np.float64).reshape(n)[keep]
        return {"mae": float(np.mean(np.abs(values - target))),
                "baseline": float(np.mean(np.abs(target - target.mean()))),
                "baseline_name": "mean of this split", "examples": int(keep.sum())}
    if spec.kind == "multilabel":
        probs = probabilities(pred, spec.activation)
        per_label, base = {}, {}
        for j, name in enumerate(spec.names):
            keep = _present(labels, batch_keys.has_attr(name), n)
            if batch_keys.attr(name) not in labels or not keep.any():
                continue
            target = np.asarray(labels[batch_keys.attr(name)]).reshape(n)[keep] > 0.5
            per_label[name] = float(np.mean((probs[keep, j] > 0.5) == target))
            base[name] = float(max(target.mean(), 1 - target.mean()))
        if not per_label:
            return {}
        return {"mean_accuracy": float(np.mean(list(per_label.values()))),
                **{f"accuracy/{k}": v for k, v in per_label.items()},
                "baseline": float(np.mean(list(base.values()))), "baseline_name": "majority per label of this split",
                "examples": n}
    if spec.kind == "pose":
        keep = _present(labels, batch_keys.HAS_POSE, n)
        if batch_keys.POSE not in labels or not keep.any():
            return {}
        pose = np.asarray(pred, np.float64)[keep]
        truth = np.asarray(labels[batch_keys.POSE], np.float64).reshape(n, -1)[keep]
        err = np.abs(pose - truth)
        afw = angle_error(pose[:, 0], truth[:, 0])
        return {"yaw_mae": float(err[:, 0].mean()), "pitch_mae": float(err[:, 1].mean()),
                "roll_mae": float(err[:, 2].mean()), "yaw_rounded_mae": afw["rounded_mae"],
                "yaw_within_15_afw_rule": afw["within"], "examples": int(keep.sum())}
    return {}


def _detector_metrics(spec, outputs, labels, n) -> Dict[str, Dict[str, object]]:
    has = _present(labels, batch_keys.HAS_BOXES, n)
    if batch_keys.BBOX not in labels or not has.any():
        return {}
    counts = np.asarray(outputs[spec.key_of("count")]).astype(np.int64).reshape(n)
    boxes_key, scores_key = spec.key_of("boxes"), spec.key_of("scores")
    lm_key = spec.key_of("landmarks", per_face=True)
    mask = np.asarray(labels[batch_keys.FACE_MASK]) > 0
    det, gt, det_lm, gt_lm, gt_vis = [], [], [], [], []
    for i in np.nonzero(has)[0]:
        k = counts[i]
        det.append((np.asarray(outputs[boxes_key])[i, :k], np.asarray(outputs[scores_key])[i, :k]))
        gt.append(np.asarray(labels[batch_keys.BBOX])[i][mask[i]])
        if lm_key is not None and batch_keys.LANDMARKS in labels:
            det_lm.append(np.asarray(outputs[lm_key])[i, :k])
            gt_lm.append(np.asarray(labels[batch_keys.LANDMARKS])[i][mask[i]])
            vis = labels.get(batch_keys.LANDMARKS_VISIBLE)
            gt_vis.append(np.ones(gt_lm[-1].shape[:2]) if vis is None else np.asarray(vis)[i][mask[i]])
    ap = average_precision(det, gt)
    results: Dict[str, Dict[str, object]] = {
        "detection": {"ap@0.5": float(ap["ap"]), "faces": int(sum(len(g) for g in gt)), "examples": len(gt)}}
    if det_lm and sum(len(g) for g in gt_lm):
        lm = matched_landmark_nme([d[0] for d in det], [d[1] for d in det], det_lm, gt, gt_lm, gt_vis,
                                  normalizations=("inter_ocular",))
        results["landmarks"] = {"nme": float(lm["nme"]), "matched_faces": int(lm["scored_faces"]),
                                "examples": len(gt)}
    return results


def evaluate_declared_outputs(spec, outputs: Dict[str, np.ndarray], labels: Dict[str, np.ndarray]
                              ) -> Dict[str, Dict[str, object]]:
    """Scores a model's outputs over a dataset against its labels.

    Args:
        spec: the model's ``ServingSpec``.
        outputs: output key -> ``[N, ...]`` predictions over the dataset.
        labels: batch key -> ``[N, ...]`` labels of the same examples (pipeline keys).

    Returns:
        task -> metric name -> value (plus ``examples`` and, where a constant
        predictor is meaningful, ``baseline`` / ``baseline_name``). Tasks whose labels
        the dataset lacks are absent.
    """
    n = len(next(iter(outputs.values())))
    if spec.detecting:
        return _detector_metrics(spec, outputs, labels, n)
    results: Dict[str, Dict[str, object]] = {}
    for key, out_spec in sorted(spec.outputs.items()):
        metrics = _crop_output_metrics(out_spec, np.asarray(outputs[key]), labels, n)
        if metrics:
            results[out_spec.task or key] = metrics
    return results


def markdown_table(results: Dict[str, Dict[str, object]], title: str) -> str:
    """One Markdown table row per (task, metric)."""
    lines: List[str] = [f"# {title}", "", "| task | metric | value | examples | baseline |", "|---|---|---|---|---|"]
    for task, metrics in sorted(results.items()):
        base = metrics.get("baseline")
        base_text = f"{base:.4f} ({metrics.get('baseline_name')})" if isinstance(base, float) else ""
        for name, value in metrics.items():
            if name in ("examples", "baseline", "baseline_name") or not isinstance(value, (int, float)):
                continue
            lines.append(f"| {task} | {name} | {value:.4f} | {metrics.get('examples', '')} | {base_text} |")
            base_text = ""
    return "\n".join(lines) + "\n"
