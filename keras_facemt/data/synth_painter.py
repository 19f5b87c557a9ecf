"""SynthFace painter: draws a posed face into an image and its parsing label map.

Painter's order (back to front): hair cap (and long hair), neck, clothes, face skin,
beard shadow, age wrinkles, expression furrows (forehead lines with raised brows,
frown lines, under-eye bags, smile folds), brows, eyes (sclera, iris, lids), mouth
(inner mouth and teeth, lips), nose (and its wrinkles in disgust), fringe. The
furrows are image-only cues that make the emotions visible at low resolution. Every region that carries a parsing class is drawn
with the same polygon into the label map (classes of ``schema.PARSING_CLASSES``;
"left" is the image left), so the labels follow occlusions exactly: a fringe over
the forehead is hair, the nose hides the far eye at large yaw. Colours are drawn
anti-aliased into the RGB image; labels without anti-aliasing.

Coordinates: the continuous image position of a point is ``(u + 0.5, v + 0.5)`` for
OpenCV pixel coordinates ``(u, v)``, so normalised geometry is ``(u + 0.5) / W``.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import cv2
import numpy as np

from keras_facemt.data.schema import PARSING_CLASSES
from keras_facemt.data.synth_expression import Expression
from keras_facemt.data.synth_geometry import Face3D, convex_hull
from keras_facemt.data.synth_identity import SynthIdentity

_SHIFT = 4
_ONE = 1 << _SHIFT
CLS = {name: i for i, name in enumerate(PARSING_CLASSES)}


@dataclasses.dataclass
class PaintedFace:
    """Image-space geometry of a painted face.

    Attributes:
        landmarks: float64 ``[68, 2]`` OpenCV pixel coordinates.
        box: float64 ``[4]`` (x0, y0, x1, y1) continuous pixel box of the face skin.
    """

    landmarks: np.ndarray
    box: np.ndarray


def _fx(pts: np.ndarray) -> np.ndarray:
    return np.round(pts * _ONE).astype(np.int32).reshape(-1, 1, 2)


class _Canvas:
    def __init__(self, image, labels, instances, instance_id):
        self.image, self.labels, self.instances, self.iid = image, labels, instances, instance_id

    def poly(self, pts, colour, cls=None, instance=False):
        p = _fx(pts)
        cv2.fillPoly(self.image, [p], _rgb(colour), cv2.LINE_AA, _SHIFT)
        if cls is not None and self.labels is not None:
            cv2.fillPoly(self.labels, [p], int(cls), cv2.LINE_8, _SHIFT)
        if instance and self.instances is not None:
            cv2.fillPoly(self.instances, [p], int(self.iid), cv2.LINE_8, _SHIFT)

    def line(self, pts, colour, thickness=1):
        cv2.polylines(self.image, [_fx(pts)], False, _rgb(colour), max(1, int(thickness)), cv2.LINE_AA, _SHIFT)


def _rgb(c):
    return tuple(min(255.0, max(0.0, float(v))) for v in c)


def _hull(pts):
    return convex_hull(np.asarray(pts, np.float64))


def paint_face(
    image: np.ndarray,
    labels: Optional[np.ndarray],
    face: Face3D,
    rotated: np.ndarray,
    scale: float,
    centre: np.ndarray,
    ident: SynthIdentity,
    expr: Expression,
    age: float,
    instances: Optional[np.ndarray] = None,
    instance_id: int = 1,
) -> PaintedFace:
    """Paints one posed face.

    Args:
        image: uint8 RGB ``[H, W, 3]``, drawn into in place.
        labels: uint8 ``[H, W]`` parsing map drawn into in place, or None.
        face: The canonical face (for its part indices).
        rotated: float64 ``[P, 3]`` posed points (``synth_geometry.pose_face``).
        scale: Pixels per face unit.
        centre: ``[2]`` pixel position of the canonical origin.
        ident: The identity (colours, hair style).
        expr: The expression (mouth opening for the teeth).
        age: Age in years (wrinkles, grey hair).
        instances: Optional int32 ``[H, W]`` map receiving ``instance_id`` over the
            whole person (for occlusion between faces in scenes).
        instance_id: Value written into ``instances``.

    Returns:
        ``PaintedFace`` with pixel landmarks and the face box.
    """
    uv = rotated[:, :2] * scale + centre
    parts = face.parts
    P = lambda name: uv[parts[name]]  # noqa: E731
    lm = uv[:68]
    cv = _Canvas(image, labels, instances, instance_id)
    skin = ident.skin
    grey = float(np.clip((age - ident.greying_age) / 25.0, 0.0, 0.85))
    hair = ident.hair_colour * (1 - grey) + np.array([185.0, 185.0, 185.0]) * grey
    style = ident.hair_style
    thick = max(1.0, scale / 60.0)

    # Hair cap (behind the face), long hair, neck, clothes.
    cap = P("skull")
    if style == 1:
        cap = np.concatenate([cap, P("hair_long")])
    if style == 2:  # bald: a skin-coloured crown with a rim of hair at the sides
        cv.poly(_hull(P("skull")[:24]), hair, CLS["hair"], instance=True)
        cv.poly(_hull(P("skull")[12:]), skin * 0.96, CLS["face_skin"], instance=True)
    else:
        cv.poly(_hull(cap), hair, CLS["hair"], instance=True)
    cv.poly(P("neck"), skin * 0.8, CLS["background"], instance=True)
    cv.poly(P("body"), ident.clothing, CLS["background"], instance=True)

    # Face skin: the hull of jaw, forehead, cheeks and nose is the silhouette.
    outline = np.concatenate([lm[:17], P("forehead"), P("cheeks"), lm[27:36]])
    face_hull = _hull(outline)
    cv.poly(face_hull, skin, CLS["face_skin"], instance=True)
    geo = ident.geometry
    cb = geo.get("cheekbones", 0.0)
    if cb > 0:  # High_Cheekbones: lit cheekbones over hollow cheeks
        for side in ("l", "r"):
            cv.poly(P(f"cheek_hollow_{side}"), skin * (1.0 - 0.22 * cb), None)
            cv.poly(P(f"cheekbone_{side}"), np.minimum(skin * (1.0 + 0.16 * cb) + 12.0 * cb, 255.0), None)
    fold = float(np.clip(geo.get("chin", 0.0) / 0.04, 0.0, 1.0))
    if fold > 0.1:  # Double_Chin: a fold line whose strength grows with the chin
        cv.line(P("chin_fold"), skin * (1.0 - 0.35 * fold), thick * (1.0 + fold))
    if ident.beard > 0 and age >= 18:
        cv.poly(P("beard"), skin * (1.0 - 0.22 * ident.beard), None)
    wrinkle = float(np.clip((age - 32.0) / 40.0, 0.0, 1.0))
    if wrinkle > 0:
        wc = skin * (1.0 - 0.3 * wrinkle)
        for name in ("wrinkle_fold_l", "wrinkle_fold_r"):
            cv.line(P(name), wc)
        if wrinkle > 0.25:
            for name in ("wrinkle_forehead_0", "wrinkle_forehead_1", "wrinkle_crow_l", "wrinkle_crow_r"):
                cv.line(P(name), wc)

    # Expression furrows, darker with the action that makes them (image only).
    def furrow(names, strength):
        if strength > 0.25:
            colour = skin * (1.0 - 0.45 * min(strength, 1.2))
            for name in names:
                cv.line(P(name), colour, thick)

    raise_ = 0.5 * (expr["brow_raise_l"] + expr["brow_raise_r"])
    if wrinkle <= 0.25:
        furrow(("wrinkle_forehead_0", "wrinkle_forehead_1"), raise_)
    furrow(("frown_l", "frown_r"), expr["brow_inner_down"])
    furrow(("bag_l", "bag_r"), -0.5 * (expr["eye_open_l"] + expr["eye_open_r"]) - 0.1)
    if wrinkle <= 0:
        furrow(("wrinkle_fold_l", "wrinkle_fold_r"), expr["smile"])

    # Brows.
    brow_colour = hair * 0.75 if hair.mean() > 90 else hair
    cv.poly(np.concatenate([lm[17:22], P("brow_top_l")[::-1]]), brow_colour, CLS["left_brow"])
    cv.poly(np.concatenate([lm[22:27], P("brow_top_r")[::-1]]), brow_colour, CLS["right_brow"])

    # Eyes: sclera, iris clipped to the lids, lid line.
    irises = P("irises")
    r_iris = face.iris_radius * scale
    for eye, cls, iris_pos in ((lm[36:42], CLS["left_eye"], irises[0]), (lm[42:48], CLS["right_eye"], irises[1])):
        cv.poly(eye, (236.0, 232.0, 226.0), cls)
        _draw_iris(image, eye, iris_pos, r_iris, ident.iris_colour)
        cv.line(np.concatenate([eye[:4]]), (35.0, 25.0, 25.0), thick * (1.5 if ident.gender == 0 else 1.0))

    # Mouth: inner mouth (with teeth when open), then lips.
    inner = lm[60:68]
    cv.poly(inner, (95.0, 32.0, 38.0), CLS["inner_mouth"])
    gap = float(np.linalg.norm(lm[66] - lm[62]))
    if gap > 1.5:
        drop = min(0.45 * gap, 0.03 * scale)
        top = lm[60:65]
        teeth = np.concatenate([top, (top + np.array([0.0, drop]))[::-1]])
        cv.poly(teeth, (238.0, 236.0, 228.0), None)
    upper = np.concatenate([lm[48:55], lm[[64, 63, 62, 61, 60]]])
    lower = np.concatenate([lm[54:60], lm[[48, 60, 67, 66, 65, 64]]])
    cv.poly(upper, ident.lip_colour * 0.94, CLS["upper_lip"])
    cv.poly(lower, ident.lip_colour, CLS["lower_lip"])

    # Nose: outline (slightly shaded skin), ridge highlight, nostrils.
    cv.poly(P("nose_outline"), skin * 0.93, CLS["nose"])
    point = geo.get("nose_point", 0.0)
    tip = lm[30]
    if point > 0:  # Pointy_Nose: a tip shadow narrowing to a point below the tip
        apex = lm[33] + (lm[33] - tip) * (0.4 + 0.8 * point)
        cv.poly(np.stack([tip + (lm[31] - tip) * 0.45, tip + (lm[35] - tip) * 0.45, apex]), skin * (1.0 - 0.3 * point), None)
    elif point < 0:  # round tip: a bulb highlight
        r = max(1.0, 0.45 * float(np.linalg.norm(lm[35] - lm[31])) * (0.5 - 0.5 * point))
        circle = tip + r * np.stack([np.cos(np.linspace(0, 2 * np.pi, 12)), np.sin(np.linspace(0, 2 * np.pi, 12))], -1)
        cv.poly(circle, np.minimum(skin * (1.0 - 0.15 * point) + 10.0, 255.0), None)
    cv.line(lm[27:31], np.minimum(skin * 1.08, 255.0), thick)
    for i in (32, 34):
        c = tuple(float(v) for v in lm[i])
        ax = max(1.0, 0.018 * scale)
        cv2.ellipse(image, (int(round(c[0] * _ONE)), int(round(c[1] * _ONE))),
                    (int(ax * 1.4 * _ONE), int(ax * 0.8 * _ONE)), 0, 0, 360, _rgb(skin * 0.45), -1, cv2.LINE_AA, _SHIFT)  # fmt: skip

    furrow(("nose_wrinkle_0", "nose_wrinkle_1"), expr["nose_wrinkle"])

    if style == 3:
        cv.poly(P("fringe"), hair, CLS["hair"])

    fx0, fy0 = face_hull.min(0)
    fx1, fy1 = face_hull.max(0)
    return PaintedFace(lm.copy(), np.array([fx0 + 0.5, fy0 + 0.5, fx1 + 0.5, fy1 + 0.5]))


def _draw_iris(image: np.ndarray, eye: np.ndarray, centre: np.ndarray, radius: float, colour) -> None:
    """Draws the iris and pupil at ``centre``, clipped to the eye polygon."""
    h, w = image.shape[:2]
    x0 = int(max(np.floor(eye[:, 0].min()) - 1, 0))
    y0 = int(max(np.floor(eye[:, 1].min()) - 1, 0))
    x1 = int(min(np.ceil(eye[:, 0].max()) + 2, w))
    y1 = int(min(np.ceil(eye[:, 1].max()) + 2, h))
    if x1 - x0 < 2 or y1 - y0 < 1:
        return
    roi = image[y0:y1, x0:x1]
    mask = np.zeros(roi.shape[:2], np.uint8)
    off = np.array([x0, y0], np.float64)
    cv2.fillPoly(mask, [_fx(eye - off)], 255, cv2.LINE_8, _SHIFT)
    drawn = roi.copy()
    c = _fx(centre - off).reshape(2)
    cv2.circle(drawn, (int(c[0]), int(c[1])), max(1, int(radius * _ONE)), _rgb(colour), -1, cv2.LINE_AA, _SHIFT)
    cv2.circle(drawn, (int(c[0]), int(c[1])), max(1, int(radius * 0.45 * _ONE)), (15.0, 12.0, 12.0), -1, cv2.LINE_AA, _SHIFT)
    np.copyto(roi, drawn, where=mask[..., None] > 0)
