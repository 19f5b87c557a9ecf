"""Greedy score-ordered matching of detections to ground-truth boxes (PASCAL VOC protocol).

Shared by detection average precision and the FDDB-style ROC: within one image,
detections are visited by descending score; each takes the unmatched ground-truth
box of highest IoU if that IoU is at least the threshold (a true positive), else it
is a false positive. A detection whose best box is marked ``ignore`` (VOC
"difficult", or a face too small to count) is neither; ignored boxes never count
as positives to find.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from keras_facemt.errors import ConfigError
from keras_facemt.ops.boxes import iou as box_iou


def _boxes(b, name: str) -> np.ndarray:
    arr = np.asarray(b, np.float64)
    if arr.size == 0:
        return np.zeros((0, 4))
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ConfigError(f"{name} must be [N, 4] (xmin, ymin, xmax, ymax). Received: {name}.shape={arr.shape}")
    return arr


def match_detections(
    det_boxes, det_scores, gt_boxes, gt_ignore: Optional[np.ndarray] = None, iou_threshold: float = 0.5
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Matches one image's detections to its ground truth.

    Args:
        det_boxes: ``[D, 4]``; det_scores: ``[D]``.
        gt_boxes: ``[G, 4]``; gt_ignore: ``[G]`` bool (None: none ignored).
        iou_threshold: minimum IoU of a true positive (0.5 in VOC and FDDB).

    Returns:
        ``(scores [D'], tp [D'], fp [D'], num_positives)`` for the D' detections that
        are not matched to an ignored box, in descending score order.
    """
    det = _boxes(det_boxes, "det_boxes")
    scores = np.asarray(det_scores, np.float64).reshape(-1)
    if scores.shape[0] != det.shape[0]:
        raise ConfigError(f"det_scores must have one score per box. Received: {scores.shape[0]} scores, "
                          f"{det.shape[0]} boxes")
    gt = _boxes(gt_boxes, "gt_boxes")
    ignore = np.zeros(gt.shape[0], bool) if gt_ignore is None else np.asarray(gt_ignore, bool).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    det, scores = det[order], scores[order]
    iou = np.asarray(box_iou(det, gt), np.float64)
    taken = np.zeros(gt.shape[0], bool)
    tp = np.zeros(det.shape[0], bool)
    fp = np.zeros(det.shape[0], bool)
    keep = np.ones(det.shape[0], bool)
    for i in range(det.shape[0]):
        if gt.shape[0] == 0:
            fp[i] = True
            continue
        j = int(np.argmax(iou[i]))
        if iou[i, j] < iou_threshold:
            fp[i] = True
        elif ignore[j]:
            keep[i] = False
        elif not taken[j]:
            taken[j] = True
            tp[i] = True
        else:
            fp[i] = True
    return scores[keep], tp[keep], fp[keep], int((~ignore).sum())


def match_dataset(detections, ground_truths, iou_threshold: float = 0.5):
    """Matches every image and pools the result.

    Args:
        detections: sequence of ``(boxes [D, 4], scores [D])`` per image.
        ground_truths: sequence of ``boxes [G, 4]`` or ``(boxes, ignore)`` per image.

    Returns:
        ``(tp [N], fp [N], num_positives)`` over all images in descending score order.
    """
    if len(detections) != len(ground_truths):
        raise ConfigError(f"Need one ground-truth entry per image. Received: {len(detections)} detection entries, "
                          f"{len(ground_truths)} ground-truth entries")
    all_scores, all_tp, all_fp, positives = [], [], [], 0
    for (boxes, scores), gt in zip(detections, ground_truths):
        gt_boxes, ignore = gt if isinstance(gt, tuple) else (gt, None)
        s, tp, fp, n = match_detections(boxes, scores, gt_boxes, ignore, iou_threshold)
        all_scores.append(s)
        all_tp.append(tp)
        all_fp.append(fp)
        positives += n
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    order = np.argsort(-scores, kind="stable")
    tp = np.concatenate(all_tp)[order] if all_tp else np.zeros(0, bool)
    fp = np.concatenate(all_fp)[order] if all_fp else np.zeros(0, bool)
    return tp, fp, positives
