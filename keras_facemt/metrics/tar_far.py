"""True-accept rate at fixed false-accept rates (MegaFace / IJB verification operating points)."""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from keras_facemt.errors import ConfigError


def tar_at_far(scores, same, fars: Sequence[float] = (1e-3, 1e-4)) -> Dict[str, float]:
    """True-accept rate at false-accept rates (the MegaFace / IJB verification operating points).

    The threshold for FAR ``f`` is the smallest score with at most ``f`` of the
    impostor pairs above it; TAR is the fraction of genuine pairs above it. A FAR
    below ``1 / impostors`` cannot be measured and raises.

    Args:
        scores: ``[N]`` similarities. same: ``[N]`` 1 for genuine pairs.
        fars: operating points.

    Returns:
        ``{str(far): tar}`` plus ``"impostors"`` and ``"genuine"`` counts.
    """
    s = np.asarray(scores, np.float64).reshape(-1)
    y = np.asarray(same).reshape(-1).astype(bool)
    neg, pos = np.sort(s[~y])[::-1], s[y]
    if pos.size == 0 or neg.size == 0:
        raise ConfigError(f"Need genuine and impostor pairs. Received: {pos.size} genuine, {neg.size} impostor")
    out: Dict[str, float] = {}
    for far in fars:
        allowed = int(np.floor(far * neg.size))
        if far * neg.size < 1:
            raise ConfigError(f"FAR {far} needs at least {int(np.ceil(1 / far))} impostor pairs. "
                              f"Received: {neg.size} impostor pairs")
        threshold = neg[allowed] if allowed < neg.size else -np.inf  # score of the first impostor not allowed
        out[str(far)] = float((pos > threshold).mean())
    out["impostors"], out["genuine"] = int(neg.size), int(pos.size)
    return out
