"""SynthFace geometry: a parametric 3-D face, head pose, projection and visibility.

Canonical frame: x to the image right, y down, z towards the camera; the face is
about 1 unit wide (jaw corners at x = +-0.5), the nose bridge top near the origin.
``build_face`` places the 68 ibug68 landmarks (index layout of
``keras_facemt.data.landmarks``) and the auxiliary points the painter needs (face
outline samples, skull, hair, neck, clothes, brow tops, nose outline, irises,
wrinkles) on an ellipsoidal head surface, shaped by the identity's geometry and
deformed by the expression.

``FacePose.rotation`` rotates by yaw, pitch and roll (degrees):

* yaw > 0 turns the face towards the image right (the nose tip moves right);
* pitch > 0 tilts the face up (the nose tip moves up);
* roll > 0 turns the face clockwise as displayed.

Projection is weak perspective (orthographic, then scale and shift). A landmark is
visible when its rotated surface normal faces the camera and it is not behind the
nose (self-occlusion at large yaw and pitch).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

import cv2
import numpy as np

from keras_facemt.data.synth_expression import Expression
from keras_facemt.data.synth_identity import SynthIdentity

# Head ellipsoid of the face surface: centre z and radii.
_ZC, _RX, _RY, _RZ = -0.5, 0.56, 0.95, 0.65
NOSE_POINTS = tuple(range(27, 36))


def surface_z(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Depth of the head surface at canonical (x, y), same shape as ``x``."""
    return _ZC + _RZ * np.sqrt(np.clip(1.0 - (x / _RX) ** 2 - (y / _RY) ** 2, 0.02, None))


def surface_normals(p: np.ndarray) -> np.ndarray:
    """Unit ellipsoid normals ``[N, 3]`` at points ``[N, 3]``."""
    n = np.stack([p[:, 0] / _RX**2, p[:, 1] / _RY**2, (p[:, 2] - _ZC) / _RZ**2], -1)
    n[:, 2] = np.maximum(n[:, 2], 0.05)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class FacePose:
    """Head pose in degrees (conventions in the module docstring)."""

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0

    def rotation(self) -> np.ndarray:
        """Rotation matrix ``[3, 3]`` = R_roll @ R_pitch @ R_yaw."""
        y, p, r = np.deg2rad([self.yaw, self.pitch, self.roll])
        cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r)
        ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
        rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
        return rz @ rx @ ry

    def as_array(self) -> np.ndarray:
        return np.array([self.yaw, self.pitch, self.roll], np.float32)


@dataclasses.dataclass
class Face3D:
    """Canonical 3-D points of one face.

    Attributes:
        points: float64 ``[P, 3]``, all points; ``points[:68]`` are the landmarks.
        parts: Name -> index array into ``points`` (ordered polygons/polylines).
        normals: float64 ``[68, 3]`` landmark surface normals.
        iris_radius: Iris radius in face units.
    """

    points: np.ndarray
    parts: Dict[str, np.ndarray]
    normals: np.ndarray
    iris_radius: float


class _Builder:
    def __init__(self):
        self.chunks = []
        self.parts: Dict[str, np.ndarray] = {}
        self.n = 0

    def add(self, name: str, pts: np.ndarray) -> None:
        pts = np.asarray(pts, np.float64).reshape(-1, 3)
        self.parts[name] = np.arange(self.n, self.n + len(pts))
        self.chunks.append(pts)
        self.n += len(pts)


def _on_surface(x, y, dz=0.0) -> np.ndarray:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    x, y = np.broadcast_arrays(x, y)
    return np.stack([x, y, surface_z(x, y) + dz], -1)


def _mirror(p: np.ndarray) -> np.ndarray:
    q = p.copy()
    q[..., 0] *= -1
    return q


def build_face(ident: SynthIdentity, expr: Expression, age: float) -> Face3D:
    """Canonical 3-D face of ``ident`` showing ``expr`` at ``age`` years.

    Returns:
        ``Face3D`` whose first 68 points are the ibug68 landmarks ``[68, 3]``.
    """
    g = ident.geometry
    e = expr
    lm = np.zeros((68, 3))
    normals = np.zeros((68, 3))
    sag = float(np.clip((age - 50.0) / 40.0, 0.0, 1.0))  # older: longer lower face

    # Jaw 0-16, image left to right, from the temple line round the chin.
    t = np.linspace(0.0, np.pi, 17)
    c, s = np.cos(t), np.sin(t)
    jx = -0.5 * np.sign(c) * np.abs(c) ** 0.8 * (1.0 + (g["jaw_width"] - 0.04) * s**2)
    jy = -0.1 + (0.72 + g["chin"] + 0.03 * sag) * s**1.15 + 0.11 * e["mouth_open"] * s**4
    lm[0:17] = _on_surface(jx, jy, 0.01)

    # Brows 17-21 (image left, outer -> inner); right brow mirrored, inner -> outer.
    u = np.linspace(0.0, 1.0, 5)
    bx = -(0.43 - 0.33 * u)
    arch = g["brow_arch"] * np.sin(np.pi * (0.15 + 0.7 * u))

    def brow(raise_, sign):
        y = -0.33 - g["brow_height"] - arch - 0.12 * raise_ * (0.6 + 0.4 * np.sin(np.pi * u))
        y = y + 0.07 * e["brow_inner_down"] * u**2 + 0.06 * e["brow_outer_droop"] * (1 - u) ** 2
        x = bx + 0.045 * e["brow_inner_down"] * u**2
        return _on_surface(sign * x, y, 0.025)

    left_brow = brow(e["brow_raise_l"], 1.0)
    right_brow = brow(e["brow_raise_r"], -1.0)[::-1]
    lm[17:22], lm[22:27] = left_brow, right_brow

    # Nose bridge 27-30 and nostrils 31-35.
    nl = g["nose_length"]
    by = np.array([-0.2, -0.1, 0.0, 0.09 + nl])
    protrude = np.array([0.05, 0.11, 0.18, 0.26]) * (1.0 + 0.5 * nl)
    lm[27:31] = _on_surface(np.zeros(4), by, protrude)
    nw = g["nose_width"] * (1.0 + 0.12 * e["nose_wrinkle"])
    ny = 0.15 + 0.8 * nl - 0.025 * e["nose_wrinkle"]
    nx = np.array([-0.095, -0.048, 0.0, 0.048, 0.095]) * nw
    lm[31:36] = _on_surface(nx, ny + np.array([-0.02, 0.005, 0.015, 0.005, -0.02]),
                            np.array([0.07, 0.13, 0.17, 0.13, 0.07]))  # fmt: skip

    # Eyes 36-41 (left: outer corner, two upper, inner corner, two lower).
    cx = 0.235 + g["eye_spacing"]
    cy = -0.19
    ew = 0.1 * g["eye_size"]
    aspect = g["eye_aspect"]

    def eye(open_delta, sign):
        o = max(0.08, 1.0 + open_delta)
        up = 0.043 * g["eye_size"] * aspect * o
        lo = 0.027 * g["eye_size"] * aspect * (0.6 + 0.4 * o)
        tilt = g["eye_tilt"]
        xs = np.array([-ew, -0.35 * ew, 0.35 * ew, ew, 0.35 * ew, -0.35 * ew])
        ys = np.array([-tilt, -up, -up, tilt * 0.5, lo, lo]) + cy
        ys[1:3] += 0.006 * e["brow_inner_down"]
        pts = _on_surface(sign * (-cx) + sign * xs, ys, -0.012)
        return pts

    lm[36:42] = eye(e["eye_open_l"], 1.0)
    r = eye(e["eye_open_r"], -1.0)
    lm[42:48] = r[[3, 2, 1, 0, 5, 4]]

    # Mouth 48-67.
    my = 0.37 + 0.4 * nl + 0.03 * sag
    mw = 0.165 * g["mouth_width"] * (1.0 + 0.22 * e["smile"] - 0.18 * e["lip_press"]
                                     - 0.1 * max(e["mouth_open"] - 0.4, 0.0))  # fmt: skip
    lip = g["lip_thickness"] * (1.0 - 0.45 * e["lip_press"])
    ut, lt = 0.04 * lip, 0.05 * lip
    gap = 0.22 * e["mouth_open"]
    ulift = 0.045 * e["upper_lip_raise"]
    lift = 0.09 * e["smile"]
    asym = 0.03 * e["mouth_asym"]

    def curve(xn):  # vertical offset of the lip line: corners lifted by smile
        return -lift * xn**2 - asym * xn

    ox = np.array([-1.0, -0.62, -0.22, 0.0, 0.22, 0.62, 1.0])
    upper = my - gap / 2 + curve(ox) - ulift * (1 - ox**2) - ut * np.array([0.0, 0.85, 1.0, 0.8, 1.0, 0.85, 0.0])
    lx = np.array([0.62, 0.28, 0.0, -0.28, -0.62])
    lower = my + gap / 2 + curve(lx) + lt * np.array([0.75, 0.97, 1.0, 0.97, 0.75])
    ix = np.array([-0.86, -0.4, 0.0, 0.4, 0.86, 0.4, 0.0, -0.4])
    iy = np.array([0.0, -1.0, -1.0, -1.0, 0.0, 1.0, 1.0, 1.0]) * gap / 2
    iy[[1, 2, 3]] -= ulift * (1 - ix[[1, 2, 3]] ** 2) * 0.8
    iy = my + iy + curve(ix)
    ox_all = np.concatenate([ox, lx, ix]) * mw
    oy_all = np.concatenate([upper, lower, iy])
    dz = 0.035 + 0.02 * (1 - np.concatenate([ox, lx, ix]) ** 2)
    lm[48:68] = _on_surface(ox_all, oy_all, dz)

    normals[:] = surface_normals(lm)
    # Nose normals are those of the nose, not of the head behind it.
    normals[27:36] = np.array(
        [[0, -0.5, 0.85], [0, -0.3, 0.95], [0, -0.1, 1.0], [0, 0.1, 1.0],
         [-0.8, 0.25, 0.55], [-0.35, 0.5, 0.8], [0, 0.6, 0.8], [0.35, 0.5, 0.8], [0.8, 0.25, 0.55]]
    )  # fmt: skip
    normals[27:36] /= np.linalg.norm(normals[27:36], axis=-1, keepdims=True)

    b = _Builder()
    b.add("landmarks", lm)
    # Face outline: jaw, forehead arc up to the hairline, and cheek samples so that
    # the convex hull of the projection is the face silhouette at any pose.
    phi = np.linspace(0.0, np.pi, 11)[1:-1]
    top = 0.62 + g["hairline"]
    forehead = _on_surface(-0.5 * np.cos(phi), -0.1 - top * np.sin(phi))
    b.add("forehead", forehead)
    gx, gy = np.meshgrid(np.array([-0.48, -0.36, 0.36, 0.48]), np.array([-0.45, -0.25, -0.05, 0.15, 0.35]))
    b.add("cheeks", _on_surface(gx.ravel(), gy.ravel()))
    b.add("brow_top_l", left_brow - np.array([0.0, 1.0, 0.0]) * ident.brow_thickness * np.array([[0.6], [1.0], [1.05], [1.0], [0.9]]))
    b.add("brow_top_r", right_brow - np.array([0.0, 1.0, 0.0]) * ident.brow_thickness * np.array([[0.9], [1.0], [1.05], [1.0], [0.6]]))
    # Nose outline: bridge sides, alae, nostril line.
    ala_y = ny - 0.005
    nose_side = np.array([
        [-0.05, -0.19, 0.05], [-0.07, 0.0, 0.1], [-0.118 * nw, ala_y - 0.035, 0.06],
        [-0.118 * nw, ala_y + 0.01, 0.05],
    ])  # fmt: skip
    nose_side = np.concatenate([nose_side[:, :2], (surface_z(nose_side[:, 0], nose_side[:, 1]) + nose_side[:, 2])[:, None]], -1)
    b.add("nose_outline", np.concatenate([nose_side, lm[31:36], _mirror(nose_side)[::-1]]))
    iris_l = lm[36:42].mean(0)
    iris_r = lm[42:48].mean(0)
    gaze = np.array([e["gaze_x"] * ew * 0.7, e["gaze_y"] * ew * 0.3, 0.004])
    b.add("irises", np.stack([iris_l + gaze, iris_r + gaze]))
    # Skull for the hair cap: side, back and top samples of a head ellipsoid.
    az = np.deg2rad(np.arange(70.0, 291.0, 20.0))
    el = np.deg2rad(np.array([0.0, 25.0, 50.0, 72.0]))
    A, E = np.meshgrid(az, el)
    hy = -0.15 - 0.82 * np.sin(E) * (1.0 + 0.5 * g["hairline"])
    skull = np.stack([0.6 * np.cos(E) * np.sin(A), hy, -0.42 + 0.72 * np.cos(E) * np.cos(A)], -1).reshape(-1, 3)
    front_top = _on_surface(np.array([-0.3, 0.0, 0.3]), np.full(3, -0.8 - top * 0.25), 0.03)
    b.add("skull", np.concatenate([skull, front_top, [[0.0, -0.98 - 0.3 * g["hairline"], -0.45]]]))
    b.add("hair_long", np.array([[-0.64, 0.1, -0.45], [-0.66, 0.72, -0.5], [-0.5, 0.95, -0.55],
                                 [0.5, 0.95, -0.55], [0.66, 0.72, -0.5], [0.64, 0.1, -0.45]]))  # fmt: skip
    fy = -0.56 - g["brow_height"]
    fx = np.linspace(-0.5, 0.5, 9)
    fringe_low = _on_surface(fx, fy + 0.04 * np.abs(np.sin(fx * 18.0)) + 0.12 * fx**2, 0.03)
    fringe_top = _on_surface(fx[::-1], -0.12 - top * np.sqrt(np.clip(1 - (fx[::-1] / 0.52) ** 2, 0, 1)) - 0.02, 0.03)
    b.add("fringe", np.concatenate([fringe_low, fringe_top]))
    b.add("neck", np.array([[-0.23, 0.35, -0.42], [-0.27, 1.15, -0.42], [0.27, 1.15, -0.42], [0.23, 0.35, -0.42]]))
    b.add("body", np.array([[-0.3, 0.98, -0.35], [-0.95, 1.25, -0.45], [-1.25, 2.2, -0.45],
                            [1.25, 2.2, -0.45], [0.95, 1.25, -0.45], [0.3, 0.98, -0.35]]))  # fmt: skip
    # Wrinkle lines: forehead, crow's feet, nasolabial folds (drawn by age).
    wx = np.linspace(-0.22, 0.22, 5)
    for i, wy in enumerate((-0.55, -0.62)):
        b.add(f"wrinkle_forehead_{i}", _on_surface(wx, wy - 0.02 * np.cos(wx * 8.0) - g["brow_height"], 0.005))
    for side, pts in (("l", lm[36]), ("r", lm[45])):
        sign = -1.0 if side == "l" else 1.0
        b.add(f"wrinkle_crow_{side}", np.array([pts + [sign * 0.02, 0.0, 0], pts + [sign * 0.06, 0.03, -0.02]]))
    for side, m in (("l", 48), ("r", 54)):
        ala = nose_side[2] if side == "l" else _mirror(nose_side[2])
        corner = lm[m]
        mid = (ala + corner) / 2 + np.array([(-1 if side == "l" else 1) * 0.03, 0.0, 0.0])
        b.add(f"wrinkle_fold_{side}", np.stack([ala + [(-1 if side == "l" else 1) * 0.01, 0.01, 0], mid, corner + [(-1 if side == "l" else 1) * 0.025, 0.0, 0]]))
    # Expression furrows: frown lines, nose wrinkles, under-eye bags.
    for side, sign in (("l", -1.0), ("r", 1.0)):
        b.add(f"frown_{side}", _on_surface(np.array([sign * 0.045, sign * 0.035]), np.array([-0.37, -0.27]), 0.04))
        eye_lo = lm[[36, 41, 40, 39]] if side == "l" else lm[[42, 47, 46, 45]]
        b.add(f"bag_{side}", eye_lo + np.array([0.0, 0.028 + 0.01 * sag, 0.0]))
    for i, wy in enumerate((-0.13, -0.09)):
        b.add(f"nose_wrinkle_{i}", _on_surface(np.array([-0.045, 0.0, 0.045]), np.array([wy, wy - 0.008, wy]),
                                               np.array([0.1, 0.12, 0.1])))  # fmt: skip
    b.add("beard", _on_surface(np.concatenate([jx[3:14], [0.2, 0.0, -0.2]]),
                               np.concatenate([jy[3:14], [my - 0.07] * 3]), 0.01))  # fmt: skip

    # Cheekbones: a highlight band, raised with prominence, and the hollow below it.
    cb = g["cheekbones"]
    ang = np.linspace(0.0, 2.0 * np.pi, 9)[:-1]
    for side, sign in (("l", -1.0), ("r", 1.0)):
        cx_, cy_ = sign * 0.3, -0.02 - 0.04 * max(cb, 0.0)
        ex, ey = 0.1 * np.cos(ang), 0.032 * np.sin(ang) - sign * 0.3 * 0.1 * np.cos(ang)
        b.add(f"cheekbone_{side}", _on_surface(cx_ + ex, cy_ + ey, 0.004))
        b.add(f"cheek_hollow_{side}", _on_surface(cx_ + 0.85 * ex - sign * 0.02, cy_ + 0.085 + 0.8 * ey, 0.004))
    # Chin fold (under-chin line) inside the jaw contour.
    b.add("chin_fold", lm[5:12] + np.array([0.0, -0.06, 0.0]) * (np.sin(np.linspace(0.0, np.pi, 7)) ** 0.5)[:, None])

    pts = np.concatenate(b.chunks)
    # Identity proportions scale the whole face (not the neck/clothes).
    body = np.concatenate([b.parts["neck"], b.parts["body"]])
    scale = np.array([g["width"], g["height"], 1.0])
    mask = np.ones(len(pts), bool)
    mask[body] = False
    pts[mask] *= scale
    return Face3D(pts, b.parts, normals, iris_radius=0.042 * g["eye_size"])


def _inside_convex(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Points ``[N, 2]`` strictly inside the convex polygon ``[M, 2]`` (any winding)."""
    a = poly
    b_ = np.roll(poly, -1, axis=0)
    edge = b_ - a  # [M, 2]
    rel = pts[:, None, :] - a[None]  # [N, M, 2]
    cross = edge[None, :, 0] * rel[..., 1] - edge[None, :, 1] * rel[..., 0]
    return np.all(cross > 1e-9, axis=1) | np.all(cross < -1e-9, axis=1)


def convex_hull(pts: np.ndarray) -> np.ndarray:
    """Convex hull ``[M, 2]`` (float64, OpenCV order) of ``[N, 2]`` points."""
    hull = cv2.convexHull(np.asarray(pts, np.float32).reshape(-1, 1, 2))
    return hull.reshape(-1, 2).astype(np.float64)


def pose_face(face: Face3D, pose: FacePose) -> Tuple[np.ndarray, np.ndarray]:
    """Rotates a face and computes landmark visibility.

    Returns:
        ``(rotated, visible)``: float64 ``[P, 3]`` rotated points (x right, y down,
        z towards the camera) and float32 ``[68]`` visibility (1 visible, 0 hidden
        by a surface facing away or by the nose).
    """
    rot = pose.rotation()
    p = face.points @ rot.T
    n = face.normals @ rot.T
    visible = n[:, 2] > 0.08
    # Self-occlusion by the nose: a point behind the nose's projected outline.
    nose_idx = np.concatenate([face.parts["nose_outline"], np.arange(27, 31)])
    nose2 = p[nose_idx, :2]
    hull = convex_hull(nose2)
    lm2 = p[:68, :2]
    inside = _inside_convex(hull, lm2) if len(hull) >= 3 else np.zeros(68, bool)
    behind = p[:68, 2] < p[nose_idx, 2].min()
    occluded = inside & behind
    occluded[list(NOSE_POINTS)] = False
    visible &= ~occluded
    return p, visible.astype(np.float32)
