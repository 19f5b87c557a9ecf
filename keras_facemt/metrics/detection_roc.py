"""FDDB-style discrete ROC: true-positive rate at fixed numbers of false positives.

FDDB reports the detection rate (matched faces / all faces) against the total
count of false positives over the whole set as the score threshold falls. Boxes
are matched at IoU >= 0.5 (``box_matching``), the discrete-score criterion of FDDB.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from keras_facemt.errors import ConfigError
from keras_facemt.metrics.box_matching import match_dataset

DEFAULT_FP_COUNTS = (50, 100, 200, 500, 1000, 2000)


def detection_roc(detections, ground_truths, fp_counts: Sequence[int] = DEFAULT_FP_COUNTS,
                  iou_threshold: float = 0.5) -> Dict[str, object]:
    """ROC points and the TPR at each of ``fp_counts`` false positives.

    Args:
        detections: per image ``(boxes [D, 4], scores [D])``.
        ground_truths: per image ``boxes [G, 4]`` or ``(boxes, ignore [G])``.
        fp_counts: false-positive budgets; the TPR at ``n`` is the highest TPR
            reached with at most ``n`` false positives.

    Returns:
        ``tpr_at`` {n: tpr}, ``false_positives`` and ``true_positive_rate`` arrays
        (one point per detection in score order), ``num_positives``.
    """
    if any(int(n) < 0 for n in fp_counts):
        raise ConfigError(f"fp_counts must be >= 0. Received: fp_counts={list(fp_counts)}")
    tp, fp, positives = match_dataset(detections, ground_truths, iou_threshold)
    if positives == 0:
        raise ConfigError("detection_roc needs at least one ground-truth face. Received: num_positives=0")
    ctp = np.concatenate([[0], np.cumsum(tp)])
    cfp = np.concatenate([[0], np.cumsum(fp)])
    tpr = ctp / positives
    tpr_at = {int(n): float(tpr[cfp <= n].max()) for n in fp_counts}
    return {"tpr_at": tpr_at, "false_positives": cfp, "true_positive_rate": tpr, "num_positives": positives}
