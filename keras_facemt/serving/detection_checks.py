"""Task metrics of an exported face detector against the Keras model, for export verification.

Quantized exports of detecting systems are judged like crop models, by each task's
own metric, on the padded per-image outputs the system declares
(``configs.outputs``): ``boxes`` ``[batch, D, 4]``, ``scores`` ``[batch, D]``, a
``count`` ``[batch]`` and per-face ``landmarks`` ``[batch, D, K, 2]`` and
``embedding`` ``[batch, D, E]``, whatever their keys are called:

* ``detection``: VOC AP at IoU 0.5. With ground-truth boxes among the labels, the
  Keras and the exported AP are both computed and the relative loss is limited;
  without, the Keras detections are the ground truth and the export's AP is the
  agreement.
* ``landmarks``: NME of the detection matched (IoU >= 0.5) to each labelled face
  (inter-ocular), or, without labels, to each Keras detection (box-size normalised,
  robust for untrained or profile faces).
* ``embedding``: mean cosine similarity of the exported and the Keras embedding of
  each matched detection (there is no per-face identity metric without pairs).
* per-face attributes: every per-face ``class_logits`` (accuracy), ``regression``
  (MAE, e.g. age in years) and ``pose`` (MAE in degrees) output, under its declared
  task's name. With the task's
  labels (``attr/<task>``, ``has_attr/<task>`` per face), each model is scored on the
  labelled faces BOTH models matched (IoU >= 0.5), so the comparison isolates the
  attribute subnet (misses cost AP above), and the export may lose at most
  ``INT8_MAX_RELATIVE_LOSS``; without labels, each Keras detection's value is the
  reference for the export detection matched to it: class agreement at least
  ``AGREEMENT_FLOOR`` (a Keras face the export misses disagrees), or an MAE within
  ``INT8_MAX_RELATIVE_LOSS`` of the Keras values' spread.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from keras_facemt.data import batch as batch_keys
from keras_facemt.evaluation.declared_metrics import score, scorer_for
from keras_facemt.metrics.detection_ap import average_precision
from keras_facemt.metrics.matched_landmark_error import match_to_ground_truth, matched_landmark_nme
from keras_facemt.serving.verification_rules import (
    AGREEMENT_FLOOR,
    AGREEMENT_NME_CEILING,
    INT8_MAX_RELATIVE_LOSS,
    metric_entry,
    relative_loss,
)

# The declared kinds read per detection, under the names used below.
_PER_FACE = {"boxes": "boxes", "scores": "scores", "landmarks": "landmarks", "embeddings": "embedding"}


def _rows(out: Dict[str, np.ndarray], keep: np.ndarray, key: str, counts: np.ndarray) -> List[np.ndarray]:
    """The first ``count`` rows (the detections) of per-face output ``key`` of each kept image."""
    values = np.asarray(out[key])
    return [values[i, :int(counts[i])] for i in np.nonzero(keep)[0]]


def _detections(out: Dict[str, np.ndarray], keep: np.ndarray, spec) -> Dict[str, List[np.ndarray]]:
    counts = np.asarray(out[spec.key_of("count")]).astype(np.int64).reshape(-1)
    res = {}
    for name, kind in _PER_FACE.items():
        key = spec.key_of(kind, per_face=True)
        res[name] = _rows(out, keep, key, counts) if key is not None and key in out else []
    res["attributes"] = {key: _rows(out, keep, key, counts) for key, _, _ in _attribute_outputs(spec) if key in out}
    return res


def _attribute_outputs(spec):
    """``(key, OutputSpec, Scorer)`` of each declared per-face attribute output (class logits, regression,
    head pose)."""
    found = []
    for key, out_spec in sorted(spec.outputs.items()):
        scorer = scorer_for(out_spec) if out_spec.per_face and out_spec.task else None
        if scorer is not None and scorer.metric in ("accuracy", "mae", "mae_degrees"):
            found.append((key, out_spec, scorer))
    return found


def _labelled_attribute(out_spec, scorer, ref_values, exp_values, ref, exp, labels, keep, gt_boxes):
    """Keras and export metric on the labelled faces both matched, or None without such faces."""
    mask = np.asarray(labels[batch_keys.FACE_MASK])[keep] > 0
    has = np.asarray(labels[scorer.presence_key])[keep] > 0
    truth = np.asarray(labels[scorer.label_key])[keep]
    k_pred, e_pred, target = [], [], []
    for i, gt in enumerate(gt_boxes):
        r, e = match_to_ground_truth(ref["boxes"][i], gt), match_to_ground_truth(exp["boxes"][i], gt)
        for g, (h, t) in enumerate(zip(has[i][mask[i]], truth[i][mask[i]])):
            if h and r[g] >= 0 and e[g] >= 0:
                k_pred.append(ref_values[i][r[g]])
                e_pred.append(exp_values[i][e[g]])
                target.append(t)
    if not target:
        return None
    target = np.asarray(target)
    k, e = score(out_spec, scorer, np.asarray(k_pred), target), score(out_spec, scorer, np.asarray(e_pred), target)
    return metric_entry(scorer.metric, k, e, relative_loss(k, e, scorer.higher_is_better), INT8_MAX_RELATIVE_LOSS,
                        "labels", len(target))


def _agreed_attribute(out_spec, scorer, ref_values, exp_values, ref, exp):
    """The export against each Keras detection's own value (no labels)."""
    k_pred, e_pred, total = [], [], 0
    for rb, rv, eb, ev in zip(ref["boxes"], ref_values, exp["boxes"], exp_values):
        total += len(rb)
        for j, i in enumerate(match_to_ground_truth(eb, rb)):
            if i >= 0:
                k_pred.append(rv[j])
                e_pred.append(ev[i])
    if not total:
        return None
    if scorer.metric == "accuracy":
        same = sum(int(np.argmax(a) == np.argmax(b)) for a, b in zip(k_pred, e_pred))
        agreement = same / total  # a Keras face the export missed is a disagreement
        return metric_entry("agreement", 1.0, agreement, 1.0 - agreement, 1.0 - AGREEMENT_FLOOR, "keras", total)
    if not k_pred:
        return metric_entry(scorer.metric, 0.0, float("nan"), float("nan"), INT8_MAX_RELATIVE_LOSS, "keras", total)
    k_pred = np.asarray(k_pred, np.float64)
    e = score(out_spec, scorer, np.asarray(e_pred), k_pred)
    spread = max(float(np.std(k_pred)), 1e-6)
    return metric_entry(scorer.metric, 0.0, e, e / spread, INT8_MAX_RELATIVE_LOSS, "keras", len(k_pred))


def _ground_truth(labels: Dict[str, np.ndarray], keep: np.ndarray) -> Tuple[list, list, list]:
    mask = np.asarray(labels[batch_keys.FACE_MASK])[keep] > 0
    boxes = [b[m] for b, m in zip(np.asarray(labels[batch_keys.BBOX])[keep], mask)]
    if batch_keys.LANDMARKS not in labels:
        return boxes, [], []
    points = [p[m] for p, m in zip(np.asarray(labels[batch_keys.LANDMARKS])[keep], mask)]
    visible = labels.get(batch_keys.LANDMARKS_VISIBLE)
    vis = ([np.ones(p.shape[:2]) for p in points] if visible is None
           else [v[m] for v, m in zip(np.asarray(visible)[keep], mask)])
    return boxes, points, vis


def detection_task_metrics(outputs, reference, labels, spec) -> Dict[str, Dict[str, object]]:
    """Detection, landmark, per-face attribute and embedding metrics of ``outputs`` against
    ``reference`` (Keras).

    Limits are export verification's: ``INT8_MAX_RELATIVE_LOSS`` for a labelled metric,
    ``AGREEMENT_FLOOR`` for AP/cosine agreement with the Keras model and
    ``AGREEMENT_NME_CEILING`` for landmark NME against the Keras landmarks.

    Args:
        outputs, reference: the export's and the Keras model's outputs on the same images.
        labels: the verification labels (``bbox``/``face_mask``/``has_boxes``,
            ``landmarks``/``landmarks_visible``, ``attr/<task>``/``has_attr/<task>`` per
            face in scenes mode), possibly empty.
        spec: the outputs' ``ServingSpec`` (keyed as ``outputs``).

    Returns:
        task -> ``metric``, ``keras``, ``export``, ``relative_loss`` (positive =
        worse), ``limit``, ``reference`` (``labels`` or ``keras``), ``examples``.
    """
    n = len(np.asarray(reference[spec.key_of("count")]).reshape(-1))
    has = np.asarray(labels.get(batch_keys.HAS_BOXES, np.zeros(n))).reshape(-1) > 0
    labelled = batch_keys.BBOX in labels and batch_keys.FACE_MASK in labels and has.any()
    keep = has if labelled else np.ones(n, bool)
    ref, exp = _detections(reference, keep, spec), _detections(outputs, keep, spec)
    results: Dict[str, Dict[str, object]] = {}
    if labelled:
        gt_boxes, gt_points, gt_vis = _ground_truth(labels, keep)
        k_ap, e_ap = (average_precision(list(zip(d["boxes"], d["scores"])), gt_boxes)["ap"] for d in (ref, exp))
        results["detection"] = metric_entry("ap", k_ap, e_ap, relative_loss(k_ap, e_ap, True),
                                            INT8_MAX_RELATIVE_LOSS, "labels", keep.sum())
        if gt_points and ref["landmarks"]:
            k, e = (matched_landmark_nme(d["boxes"], d["scores"], d["landmarks"], gt_boxes, gt_points, gt_vis,
                                         normalizations=("inter_ocular",))["nme"] for d in (ref, exp))
            results["landmarks"] = metric_entry("nme", k, e, relative_loss(k, e, False), INT8_MAX_RELATIVE_LOSS,
                                                "labels", keep.sum())
    elif sum(len(b) for b in ref["boxes"]):
        e_ap = average_precision(list(zip(exp["boxes"], exp["scores"])), ref["boxes"])["ap"]
        results["detection"] = metric_entry("ap", 1.0, e_ap, 1.0 - e_ap, 1.0 - AGREEMENT_FLOOR, "keras", keep.sum())
        if ref["landmarks"]:
            vis = [np.ones(p.shape[:2]) for p in ref["landmarks"]]
            e = matched_landmark_nme(exp["boxes"], exp["scores"], exp["landmarks"], ref["boxes"], ref["landmarks"],
                                     vis, normalizations=("box",))["nme_box"]
            results["landmarks"] = metric_entry("nme_box", 0.0, e, e, AGREEMENT_NME_CEILING, "keras", keep.sum())
    for key, out_spec, scorer in _attribute_outputs(spec):
        if key not in ref["attributes"] or key not in exp["attributes"]:
            continue
        entry = None
        if labelled and scorer.label_key in labels and scorer.presence_key in labels:
            entry = _labelled_attribute(out_spec, scorer, ref["attributes"][key], exp["attributes"][key], ref, exp,
                                        labels, keep, gt_boxes)
        if entry is None:
            entry = _agreed_attribute(out_spec, scorer, ref["attributes"][key], exp["attributes"][key], ref, exp)
        if entry is not None:
            results[out_spec.task] = entry
    if ref["embeddings"] and exp["embeddings"]:
        sims = []
        for rb, re_, eb, ee in zip(ref["boxes"], ref["embeddings"], exp["boxes"], exp["embeddings"]):
            for i, j in enumerate(match_to_ground_truth(eb, rb)):
                if j >= 0:
                    a, b = re_[i], ee[j]
                    sims.append(float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)))
        if sims or sum(len(b) for b in ref["boxes"]):
            cos = float(np.mean(sims)) if sims else 0.0
            results["embedding"] = metric_entry("cosine", 1.0, cos, 1.0 - cos, 1.0 - AGREEMENT_FLOOR, "keras",
                                                len(sims))
    return results
