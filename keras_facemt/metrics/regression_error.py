"""Mean absolute error of a regressed value (age in years)."""

from __future__ import annotations

from typing import Dict

import numpy as np

from keras_facemt.errors import ConfigError


def mean_absolute_error(pred, target, weights=None) -> float:
    """MAE over examples with a non-zero weight ``[batch]`` (NaN for none)."""
    pred = np.asarray(pred, np.float64).reshape(-1)
    target = np.asarray(target, np.float64).reshape(-1)
    if pred.shape != target.shape:
        raise ConfigError(f"Predictions and targets differ in length. Received: pred={pred.size}, "
                          f"target={target.size}")
    if weights is not None:
        keep = np.asarray(weights).reshape(-1) > 0
        pred, target = pred[keep], target[keep]
    return float(np.abs(pred - target).mean()) if pred.size else float("nan")


def epsilon_error(pred, mean, sigma) -> float:
    """ChaLearn LAP 2015's apparent-age error, mean of ``1 - exp(-(x - mu)^2 / (2 sigma^2))``.

    Each face's label is a mean ``mu`` and a standard deviation ``sigma`` of human
    guesses (Escalera et al., ICCVW 2015); 0 is perfect, 1 the worst.

    Args:
        pred: ``[N]`` predicted ages. mean: ``[N]`` label means. sigma: ``[N]`` or
            a scalar, > 0.

    Raises:
        ConfigError: for mismatched lengths or a sigma that is not > 0.
    """
    x = np.asarray(pred, np.float64).reshape(-1)
    mu = np.asarray(mean, np.float64).reshape(-1)
    sd = np.broadcast_to(np.asarray(sigma, np.float64), mu.shape) if np.ndim(sigma) == 0 else \
        np.asarray(sigma, np.float64).reshape(-1)
    if x.shape != mu.shape or sd.shape != mu.shape or x.size == 0:
        raise ConfigError(f"pred, mean and sigma need one value per face (at least one). Received: pred={x.size}, "
                          f"mean={mu.size}, sigma={sd.size}")
    if np.any(sd <= 0):
        raise ConfigError(f"sigma must be > 0. Received: min sigma={sd.min()}")
    return float(np.mean(1.0 - np.exp(-((x - mu) ** 2) / (2.0 * sd ** 2))))


class MeanAbsoluteErrorEvaluator:
    """Streaming MAE (e.g. age estimation in years)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._sum = 0.0
        self._count = 0

    def update(self, pred, target, weights=None) -> None:
        pred = np.asarray(pred, np.float64).reshape(-1)
        target = np.asarray(target, np.float64).reshape(-1)
        if pred.shape != target.shape:
            raise ConfigError(f"Predictions and targets differ in length. Received: pred={pred.size}, "
                              f"target={target.size}")
        keep = np.ones(pred.shape, bool) if weights is None else np.asarray(weights).reshape(-1) > 0
        self._sum += float(np.abs(pred - target)[keep].sum())
        self._count += int(keep.sum())

    def result(self) -> Dict[str, float]:
        return {"mae": self._sum / self._count if self._count else float("nan"), "count": self._count}


def average_fold_error(fold_errors) -> float:
    """Avg.E of a cross-subset protocol: the mean of the folds' errors (MORPH II S1 / S2 / S3:
    train S1 test S2 + S3, and the reverse; TFN Table V).

    Args:
        fold_errors: one MAE per fold.

    Raises:
        ConfigError: for no folds or a non-finite or negative error.
    """
    errors = np.asarray(list(fold_errors), np.float64)
    if errors.size == 0 or not np.all(np.isfinite(errors)) or np.any(errors < 0):
        raise ConfigError(f"fold_errors must be finite MAEs >= 0, at least one. Received: fold_errors={errors.tolist()}")
    return float(errors.mean())
