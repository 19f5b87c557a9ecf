"""True-accept rate at fixed false-accept rates (MegaFace / IJB verification operating points)."""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

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


def all_pair_scores(embeddings, ids):
    """Cosine similarity and same-person flag of every unordered pair of faces.

    Args:
        embeddings: ``[N, D]``. ids: ``[N]`` identity per face.

    Returns:
        ``(scores [N(N-1)/2], same [N(N-1)/2] bool)``.
    """
    e = np.asarray(embeddings, np.float64)
    i = np.asarray(ids).reshape(-1)
    if e.ndim != 2 or e.shape[0] != i.size or i.size < 2:
        raise ConfigError(f"Need [N >= 2, D] embeddings with one id each. Received: embeddings {e.shape}, "
                          f"{i.size} ids")
    e = e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)
    a, b = np.triu_indices(i.size, 1)
    return np.sum(e[a] * e[b], -1), i[a] == i[b]


def measurable_fars(fars: Sequence[float], impostors: int) -> Tuple[float, ...]:
    """The operating points of ``fars`` that ``impostors`` impostor pairs can measure (``far * n >= 1``)."""
    return tuple(f for f in fars if f * impostors >= 1)
