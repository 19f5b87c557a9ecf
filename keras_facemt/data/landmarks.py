"""Landmark schemes, subset maps and horizontal-flip permutations.

Three schemes are stored in records (``image/landmark_scheme``):

* ``ibug68`` -- the 68-point 300-W / iBUG markup. Index order: jaw 0-16 (image left
  to right), left brow 17-21, right brow 22-26, nose bridge 27-30, nostrils 31-35,
  left eye 36-41 (from the outer corner, clockwise), right eye 42-47, outer lip
  48-59, inner lip 60-67.
* ``aflw21`` -- the 21 AFLW feature points in AFLW feature-id order (id 1 -> index 0):
  left brow outer/centre/inner, right brow inner/centre/outer, left eye
  outer/centre/inner, right eye inner/centre/outer, left ear, nose left/centre/right,
  right ear, mouth left/centre/right, chin.
* ``mtfl5`` -- the MTFL / MTFE 5 points: left eye centre, right eye centre, nose tip,
  left mouth corner, right mouth corner.

"Left" is always the image's left, so a horizontal flip swaps left and right points;
``flip_permutation`` gives the index order that restores semantic order after a flip.

Subset maps are linear: ``subset_matrix(src, dst)`` is a ``[K_dst, K_src]`` matrix
whose rows average source points (an eye centre is the mean of six eye contour
points), plus a ``[K_dst]`` mask of the destination points the source defines (the
68-point markup has no ears, so ``ibug68 -> aflw21`` leaves both ears undefined).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Sequence, Tuple

import numpy as np

from keras_facemt.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class LandmarkScheme:
    """A landmark markup.

    Attributes:
        name: Scheme name as stored in ``image/landmark_scheme``.
        point_names: Name of each point, in index order.
        flip_permutation: ``flipped[i] = points[perm[i]]`` after mirroring x.
        left_eye: Indices averaged to the left eye centre (pupil).
        right_eye: Indices averaged to the right eye centre.
        left_eye_outer: Index of the left eye's outer corner (inter-ocular NME).
        right_eye_outer: Index of the right eye's outer corner.
    """

    name: str
    point_names: Tuple[str, ...]
    flip_permutation: Tuple[int, ...]
    left_eye: Tuple[int, ...]
    right_eye: Tuple[int, ...]
    left_eye_outer: int
    right_eye_outer: int

    @property
    def num_points(self) -> int:
        return len(self.point_names)


def _mirror_pairs(n: int, pairs: Sequence[Tuple[int, int]]) -> Tuple[int, ...]:
    perm = list(range(n))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


def _ibug68() -> LandmarkScheme:
    names = (
        [f"jaw_{i}" for i in range(17)]
        + [f"left_brow_{i}" for i in range(5)]
        + [f"right_brow_{i}" for i in range(5)]
        + [f"nose_bridge_{i}" for i in range(4)]
        + [f"nostril_{i}" for i in range(5)]
        + [f"left_eye_{i}" for i in range(6)]
        + [f"right_eye_{i}" for i in range(6)]
        + [f"outer_lip_{i}" for i in range(12)]
        + [f"inner_lip_{i}" for i in range(8)]
    )
    pairs = [(i, 16 - i) for i in range(8)]
    pairs += [(17 + i, 26 - i) for i in range(5)]
    pairs += [(31, 35), (32, 34)]
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]
    pairs += [(60, 64), (61, 63), (65, 67)]
    return LandmarkScheme(
        "ibug68",
        tuple(names),
        _mirror_pairs(68, pairs),
        left_eye=tuple(range(36, 42)),
        right_eye=tuple(range(42, 48)),
        left_eye_outer=36,
        right_eye_outer=45,
    )


def _aflw21() -> LandmarkScheme:
    names = (
        "left_brow_outer", "left_brow_center", "left_brow_inner",
        "right_brow_inner", "right_brow_center", "right_brow_outer",
        "left_eye_outer", "left_eye_center", "left_eye_inner",
        "right_eye_inner", "right_eye_center", "right_eye_outer",
        "left_ear", "nose_left", "nose_center", "nose_right", "right_ear",
        "mouth_left", "mouth_center", "mouth_right", "chin",
    )  # fmt: skip
    pairs = [(0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9), (12, 16), (13, 15),
             (17, 19)]  # fmt: skip
    return LandmarkScheme(
        "aflw21", names, _mirror_pairs(21, pairs), (7,), (10,), 6, 11
    )


def _mtfl5() -> LandmarkScheme:
    names = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    return LandmarkScheme("mtfl5", names, (1, 0, 2, 4, 3), (0,), (1,), 0, 1)


SCHEMES: Dict[str, LandmarkScheme] = {
    s.name: s for s in (_ibug68(), _aflw21(), _mtfl5())
}

# Destination point -> source indices averaged. Missing destination points are
# undefined by the source.
_SUBSETS: Dict[Tuple[str, str], Dict[int, Tuple[int, ...]]] = {
    ("ibug68", "mtfl5"): {
        0: tuple(range(36, 42)),
        1: tuple(range(42, 48)),
        2: (30,),
        3: (48,),
        4: (54,),
    },
    ("ibug68", "aflw21"): {
        0: (17,), 1: (19,), 2: (21,), 3: (22,), 4: (24,), 5: (26,),
        6: (36,), 7: tuple(range(36, 42)), 8: (39,),
        9: (42,), 10: tuple(range(42, 48)), 11: (45,),
        13: (31,), 14: (30,), 15: (35,),
        17: (48,), 18: (62, 66), 19: (54,), 20: (8,),
    },  # fmt: skip
    ("aflw21", "mtfl5"): {0: (7,), 1: (10,), 2: (14,), 3: (17,), 4: (19,)},
}


def get_scheme(name: str) -> LandmarkScheme:
    """Returns a registered scheme.

    Raises:
        ConfigError: if ``name`` is not a scheme.
    """
    try:
        return SCHEMES[name]
    except KeyError:
        raise ConfigError(
            f"Unknown landmark scheme {name!r}; expected one of {sorted(SCHEMES)}. "
            f"Received: scheme={name!r}"
        ) from None


def num_points(name: str) -> int:
    return get_scheme(name).num_points


def flip_permutation(name: str) -> np.ndarray:
    """Index order ``[K]`` that restores semantic order after a horizontal flip."""
    return np.asarray(get_scheme(name).flip_permutation, np.int32)


def subset_matrix(src: str, dst: str) -> Tuple[np.ndarray, np.ndarray]:
    """Linear map from ``src`` points to ``dst`` points.

    Returns:
        ``(matrix, defined)``: ``matrix`` float32 ``[K_dst, K_src]`` with rows that
        average source points (zero rows for undefined points), ``defined`` float32
        ``[K_dst]`` (1 where the source defines the point).

    Raises:
        ConfigError: if no map from ``src`` to ``dst`` exists.
    """
    s, d = get_scheme(src), get_scheme(dst)
    if src == dst:
        return np.eye(s.num_points, dtype=np.float32), np.ones(s.num_points, np.float32)
    if (src, dst) not in _SUBSETS:
        raise ConfigError(
            f"No landmark subset map from {src!r} to {dst!r}; defined maps: "
            f"{sorted(_SUBSETS)}. Received: src={src!r}, dst={dst!r}"
        )
    matrix = np.zeros((d.num_points, s.num_points), np.float32)
    defined = np.zeros(d.num_points, np.float32)
    for j, idx in _SUBSETS[(src, dst)].items():
        matrix[j, list(idx)] = 1.0 / len(idx)
        defined[j] = 1.0
    return matrix, defined


def convert_points(
    points: np.ndarray, visible: np.ndarray, src: str, dst: str
) -> Tuple[np.ndarray, np.ndarray]:
    """Maps points ``[..., K_src, 2]`` and visibility ``[..., K_src]`` to ``dst``.

    A destination point is visible only if it is defined and every source point it
    averages is visible.
    """
    matrix, defined = subset_matrix(src, dst)
    pts = np.einsum("ds,...sc->...dc", matrix, np.asarray(points, np.float32))
    vis = np.asarray(visible, np.float32)
    support = (matrix > 0).astype(np.float32)
    # All supporting points visible <=> count of visible support == support size.
    n_support = support.sum(-1)
    n_visible = np.einsum("ds,...s->...d", support, vis)
    vis_dst = ((n_visible >= n_support - 1e-6) & (defined > 0)).astype(np.float32)
    return pts.astype(np.float32), vis_dst


def eye_centers(points: np.ndarray, scheme: str) -> Tuple[np.ndarray, np.ndarray]:
    """Left and right eye centres ``[..., 2]`` of points ``[..., K, 2]``."""
    s = get_scheme(scheme)
    pts = np.asarray(points, np.float64)
    return pts[..., list(s.left_eye), :].mean(-2), pts[..., list(s.right_eye), :].mean(-2)


def eye_outer_corners(points: np.ndarray, scheme: str) -> Tuple[np.ndarray, np.ndarray]:
    """Left and right outer eye corners ``[..., 2]`` of points ``[..., K, 2]``."""
    s = get_scheme(scheme)
    pts = np.asarray(points, np.float64)
    return pts[..., s.left_eye_outer, :], pts[..., s.right_eye_outer, :]


def scheme_for_num_points(k: int) -> str:
    """The scheme with ``k`` points."""
    for s in SCHEMES.values():
        if s.num_points == k:
            return s.name
    raise ConfigError(f"No landmark scheme has {k} points. Received: k={k}")
