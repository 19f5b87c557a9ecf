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
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from keras_facemt.data import batch as batch_keys
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


def _detections(out: Dict[str, np.ndarray], keep: np.ndarray, spec) -> Dict[str, List[np.ndarray]]:
    counts = np.asarray(out[spec.key_of("count")]).astype(np.int64).reshape(-1)
    keys = {name: spec.key_of(kind, per_face=True) for name, kind in _PER_FACE.items()}
    res = {name: [] for name in keys}
    for i in np.nonzero(keep)[0]:
        n = int(counts[i])
        for name, key in keys.items():
            if key is not None and key in out:
                res[name].append(np.asarray(out[key])[i, :n])
    return res


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
    """Detection, landmark and embedding metrics of ``outputs`` against ``reference`` (Keras).

    Limits are export verification's: ``INT8_MAX_RELATIVE_LOSS`` for a labelled metric,
    ``AGREEMENT_FLOOR`` for AP/cosine agreement with the Keras model and
    ``AGREEMENT_NME_CEILING`` for landmark NME against the Keras landmarks.

    Args:
        outputs, reference: the export's and the Keras model's outputs on the same images.
        labels: the verification labels (``bbox``/``face_mask``/``has_boxes``,
            ``landmarks``/``landmarks_visible`` in scenes mode), possibly empty.
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
