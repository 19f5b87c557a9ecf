"""Identification against a gallery with distractors (the MegaFace challenge 1 protocol).

Each probe's identity has one face in the gallery, hidden among distractor faces of
other people (MegaFace: 10 to 1M distractors; Kemelmacher-Shlizerman et al., CVPR
2016). A probe is ranked by the position of its true match among all gallery faces
sorted by similarity; the cumulative match characteristic (CMC) gives the fraction
of probes whose match is within the top k; rank-1 is CMC(1).
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from keras_facemt.errors import ConfigError


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def match_ranks(probe_embeddings, probe_ids, gallery_embeddings, gallery_ids, chunk: int = 512) -> np.ndarray:
    """1-based rank of each probe's true match by cosine similarity.

    Args:
        probe_embeddings: ``[P, D]``.
        probe_ids: ``[P]`` identity of each probe.
        gallery_embeddings: ``[G, D]`` (matches and distractors).
        gallery_ids: ``[G]``; distractors carry ids no probe has (e.g. -1).

    Returns:
        int ``[P]``: 1 + the number of other-identity gallery faces scoring above the
        best same-identity one.

    Raises:
        ConfigError: a probe without a match in the gallery, or mismatched sizes.
    """
    p, g = _unit(probe_embeddings), _unit(gallery_embeddings)
    pid, gid = np.asarray(probe_ids).reshape(-1), np.asarray(gallery_ids).reshape(-1)
    if p.shape[0] != pid.size or g.shape[0] != gid.size or p.shape[-1] != g.shape[-1]:
        raise ConfigError(f"Embeddings and ids must match. Received: probes {p.shape} / {pid.size} ids, "
                          f"gallery {g.shape} / {gid.size} ids")
    missing = sorted(set(pid.tolist()) - set(gid.tolist()))
    if missing:
        raise ConfigError(f"Every probe identity needs a gallery face. Received: probe ids without one: {missing[:5]}")
    ranks = np.empty(pid.size, np.int64)
    for s in range(0, pid.size, chunk):
        scores = p[s:s + chunk] @ g.T  # [c, G]
        same = pid[s:s + chunk, None] == gid[None, :]
        true = np.where(same, scores, -np.inf).max(-1)
        ranks[s:s + chunk] = 1 + np.sum(np.where(same, -np.inf, scores) > true[:, None], -1)
    return ranks


def cmc(ranks, max_rank: int = 10) -> np.ndarray:
    """``[max_rank]``: fraction of probes whose match rank is <= k, k = 1..max_rank."""
    r = np.asarray(ranks).reshape(-1)
    return np.array([(r <= k).mean() for k in range(1, int(max_rank) + 1)], np.float64)


def identification(probe_embeddings, probe_ids, gallery_embeddings, gallery_ids, max_rank: int = 10) -> Dict[str, object]:
    """Rank-1, the CMC curve, and the chance rank-1 (a random ordering of the gallery)."""
    ranks = match_ranks(probe_embeddings, probe_ids, gallery_embeddings, gallery_ids)
    curve = cmc(ranks, max_rank)
    return {"rank1": float(curve[0]), "cmc": curve.tolist(), "probes": int(ranks.size),
            "gallery": int(np.asarray(gallery_ids).size),
            "chance_rank1": 1.0 / max(int(np.asarray(gallery_ids).size), 1)}


def first_image_gallery(ids):
    """Closed-set split: each person's first face is the gallery, the others are probes.

    Args:
        ids: ``[N]`` identity per face.

    Returns:
        ``(gallery [G], probes [P])`` indices; people with one face only give no probe.
    """
    i = np.asarray(ids).reshape(-1)
    _, first = np.unique(i, return_index=True)
    gallery = np.sort(first)
    probes = np.setdiff1d(np.arange(i.size), gallery)
    if probes.size == 0:
        raise ConfigError(f"Need a person with at least two faces for a probe. Received: {i.size} faces of "
                          f"{gallery.size} people")
    return gallery, probes
