"""Head-pose angle error, with the AFW protocol's rounding (Zhu & Ramanan, CVPR 2012).

AFW labels yaw in 15-degree steps; a prediction is rounded to the nearest step
before it is compared, and a face counts as correct when the rounded prediction is
within the tolerance (15 degrees) of the label. All-in-One (Ranjan et al., FG 2017,
Sec. IV-C) reports the share of faces within +-15 degrees this way, as HyperFace and
Zhu & Ramanan did.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from keras_facemt.errors import ConfigError


def angle_error(pred, target, step: float = 15.0, tolerance: float = 15.0) -> Dict[str, object]:
    """Absolute angle error, raw and after rounding the prediction to ``step`` degrees.

    Args:
        pred: ``[N]`` predicted angles, degrees.
        target: ``[N]`` true angles, degrees.
        step: rounding step of the prediction (AFW: 15); 0 disables rounding.
        tolerance: a face is within tolerance when the rounded error is <= it.

    Returns:
        ``mae`` (raw), ``rounded_mae``, ``within`` (share of faces whose rounded
        error is <= ``tolerance``), ``faces``.

    Raises:
        ConfigError: for mismatched shapes, no faces, or a negative step / tolerance.
    """
    p = np.asarray(pred, np.float64).reshape(-1)
    t = np.asarray(target, np.float64).reshape(-1)
    if p.shape != t.shape or p.size == 0:
        raise ConfigError(f"pred and target need one angle per face (at least one). Received: pred {p.shape}, "
                          f"target {t.shape}")
    if step < 0 or tolerance < 0:
        raise ConfigError(f"step and tolerance must be >= 0. Received: step={step}, tolerance={tolerance}")
    rounded = np.round(p / step) * step if step else p
    err = np.abs(rounded - t)
    return {"mae": float(np.abs(p - t).mean()), "rounded_mae": float(err.mean()),
            "within": float((err <= tolerance + 1e-9).mean()), "faces": int(p.size)}
