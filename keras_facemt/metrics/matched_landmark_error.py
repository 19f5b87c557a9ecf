"""Landmark error of detected faces: each ground-truth face scored by the detection matched to it.

Detecting systems (Uniface, TFN, All-in-One) predict landmarks per detection, so the
error of a ground-truth face is that of the best-overlapping detection with IoU of at
least 0.5; faces without such a detection are counted as unmatched, not scored
(Liao et al., Sec. IV; the same rule scores an exported detector against the Keras
model in export verification).
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from keras_facemt.data.landmarks import scheme_for_num_points
from keras_facemt.metrics.landmark_error import nme
from keras_facemt.ops.boxes import iou as box_iou


def match_to_ground_truth(det_boxes, gt_boxes, iou_threshold: float = 0.5) -> np.ndarray:
    """Index of the best-overlapping detection of each ground-truth box, -1 where none reaches the threshold.

    Args:
        det_boxes: ``[D, 4]`` (xmin, ymin, xmax, ymax).
        gt_boxes: ``[G, 4]``.

    Returns:
        int ``[G]``.
    """
    gt = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    det = np.asarray(det_boxes, np.float64).reshape(-1, 4)
    if len(det) == 0 or len(gt) == 0:
        return np.full(len(gt), -1, np.int64)
    iou = np.asarray(box_iou(gt, det), np.float64)
    best = iou.argmax(axis=1)
    return np.where(iou[np.arange(len(gt)), best] >= iou_threshold, best, -1)


def matched_landmark_nme(det_boxes, det_scores, det_landmarks, gt_boxes, gt_landmarks, gt_visible,
                         shape=None, normalizations=("inter_ocular", "box")) -> Dict[str, float]:
    """NME of the best-overlapping detection (IoU >= 0.5) of each ground-truth face.

    Args:
        det_boxes, det_scores, det_landmarks: per image ``[D, 4]``, ``[D]``, ``[D, K, 2]``.
        gt_boxes, gt_landmarks, gt_visible: per image ``[G, 4]``, ``[G, K, 2]``, ``[G, K]``.
        shape: optional mean shape ``[K, 2]`` in box-relative coordinates: also the
            NME of that shape placed in the same matched detection boxes
            (``*_mean_shape``), i.e. what the detector's boxes alone give.
        normalizations: which of ``inter_ocular`` (key ``nme``) and ``box`` (key
            ``nme_box``, by the ground-truth box size) to compute.

    Returns:
        ``nme``/``nme_box`` (NaN when nothing is matched), ``scored_faces``,
        ``unmatched_faces`` and, with ``shape``, ``nme_mean_shape``/``nme_box_mean_shape``.
    """
    del det_scores  # every detection may match; the best overlap decides, not the score
    preds, targets, vis, boxes, dboxes = [], [], [], [], []
    missed = 0
    for db, dl, gb, gl, gv in zip(det_boxes, det_landmarks, gt_boxes, gt_landmarks, gt_visible):
        for g, j in enumerate(match_to_ground_truth(db, gb)):
            if j < 0:
                missed += 1
                continue
            preds.append(dl[j])
            targets.append(gl[g])
            vis.append(gv[g])
            boxes.append(gb[g])
            dboxes.append(db[j])
    keys = {"inter_ocular": "nme", "box": "nme_box"}
    if not preds:
        out = {keys[n]: float("nan") for n in normalizations}
        if shape is not None:  # the documented keys, also when no face was matched
            out.update({keys[n] + "_mean_shape": float("nan") for n in normalizations})
        return {**out, "scored_faces": 0, "unmatched_faces": missed}
    p, t, v, gbox = np.asarray(preds), np.asarray(targets), np.asarray(vis), np.asarray(boxes)
    scheme = scheme_for_num_points(t.shape[1])

    def score(points, norm):
        return nme(points, t, scheme, v) if norm == "inter_ocular" else nme(points, t, scheme, v, "box", gbox)

    out = {keys[n]: score(p, n) for n in normalizations}
    out.update(scored_faces=len(preds), unmatched_faces=missed)
    if shape is not None:
        d = np.asarray(dboxes)
        m = d[:, None, :2] + np.asarray(shape)[None] * (d[:, 2:] - d[:, :2])[:, None]
        out.update({keys[n] + "_mean_shape": score(m, n) for n in normalizations})
    return out
