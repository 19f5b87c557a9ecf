"""Face-verification accuracy by 10-fold cross-validation (the LFW protocol).

Pairs are split into folds (LFW: 10 folds of 600 pairs). For each fold the
similarity threshold is the one that maximises accuracy on the other nine folds;
the fold's accuracy is measured at that threshold. The result is the mean and
standard deviation over folds.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from keras_facemt.errors import ConfigError


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """Threshold maximising accuracy of ``score >= t`` meaning "same person".

    Candidates are the midpoints between consecutive distinct scores plus both
    extremes, so the threshold never sits exactly on a training pair's score.
    """
    s = np.unique(np.asarray(scores, np.float64))
    candidates = np.concatenate([[s[0] - 1.0], (s[1:] + s[:-1]) / 2, [s[-1] + 1.0]])
    same = np.asarray(same, bool)
    acc = [((np.asarray(scores) >= t) == same).mean() for t in candidates]
    return float(candidates[int(np.argmax(acc))])


def verification_accuracy(scores, same, num_folds: int = 10, folds: Optional[np.ndarray] = None) -> Dict[str, object]:
    """10-fold verification accuracy.

    Args:
        scores: similarity per pair ``[P]`` (higher: more alike).
        same: ``[P]`` 1 for a same-person pair.
        num_folds: folds when ``folds`` is None (contiguous, as LFW's pairs.txt).
        folds: optional fold id per pair ``[P]``.

    Returns:
        ``accuracy`` (mean), ``std``, ``fold_accuracies``, ``thresholds``.
    """
    scores = np.asarray(scores, np.float64).reshape(-1)
    same = np.asarray(same).reshape(-1).astype(bool)
    if scores.shape != same.shape:
        raise ConfigError(f"scores and same must have one entry per pair. Received: {scores.size} scores, "
                          f"{same.size} labels")
    if folds is None:
        if num_folds < 2 or scores.size < num_folds:
            raise ConfigError(f"Need num_folds >= 2 and at least one pair per fold. Received: num_folds={num_folds}, "
                              f"pairs={scores.size}")
        folds = np.arange(scores.size) * num_folds // scores.size
    folds = np.asarray(folds).reshape(-1)
    if folds.shape != scores.shape:
        raise ConfigError(f"folds must have one entry per pair. Received: {folds.size} fold ids, {scores.size} pairs")
    ids = np.unique(folds)
    if ids.size < 2:
        raise ConfigError(f"Need at least 2 folds. Received: folds={ids.tolist()}")
    accs, thresholds = [], []
    for f in ids:
        test = folds == f
        t = best_threshold(scores[~test], same[~test])
        thresholds.append(t)
        accs.append(float(((scores[test] >= t) == same[test]).mean()))
    return {"accuracy": float(np.mean(accs)), "std": float(np.std(accs)), "fold_accuracies": accs,
            "thresholds": thresholds}
