"""Detection average precision, PASCAL VOC protocol (IoU 0.5, all-point interpolation).

Detections of all images are pooled and sorted by score, matched per image by
``box_matching.match_detections``; precision is made monotone from the right and
AP is the area under the resulting precision/recall step curve (VOC 2010+).
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from keras_facemt.metrics.box_matching import match_dataset


def average_precision_from_pr(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP of a precision/recall curve (recall ascending)."""
    r = np.concatenate([[0.0], np.asarray(recall, np.float64), [1.0]])
    p = np.concatenate([[0.0], np.asarray(precision, np.float64), [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def average_precision(detections, ground_truths, iou_threshold: float = 0.5) -> Dict[str, object]:
    """VOC AP over a dataset.

    Args:
        detections: per image ``(boxes [D, 4], scores [D])``, (xmin, ymin, xmax, ymax).
        ground_truths: per image ``boxes [G, 4]`` or ``(boxes, ignore [G])``.
        iou_threshold: IoU of a true positive.

    Returns:
        ``ap`` (NaN without positives), ``precision`` and ``recall`` arrays,
        ``num_positives``.
    """
    tp, fp, positives = match_dataset(detections, ground_truths, iou_threshold)
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    recall = ctp / positives if positives else np.zeros_like(ctp, np.float64)
    precision = ctp / np.maximum(ctp + cfp, 1)
    ap = average_precision_from_pr(recall, precision) if positives else float("nan")
    return {"ap": ap, "precision": precision, "recall": recall, "num_positives": positives}
