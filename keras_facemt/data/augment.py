"""Geometry-consistent resizing and training-time augmentation of one example.

Every function here takes and returns one *unbatched* example dict in the face-major
layout the pipeline uses internally: the batch keys of ``data/batch.py`` with a
leading face axis ``F`` on per-face labels (``bbox`` ``[F, 4]``, ``landmarks``
``[F, K, 2]``, ``face_mask`` ``[F]``, ...), whether the stream is in crops mode
(``F = 1``, squeezed by the pipeline at the end) or scenes mode. Keys a stream does
not carry (tasks it does not train) are simply absent and left alone.

Geometry is normalised to ``[0, 1]``, points ``(x, y)``, boxes
``(xmin, ymin, xmax, ymax)``. Every transform of the image is applied to the
parsing map (nearest neighbour), the boxes and the points with the same
parameters, so a label drawn on the input stays on the same pixels of the output.
Labels of absent faces / absent tasks stay exactly zero through every transform.

Randomness is stateless: each random op takes a ``[2]`` seed derived from the
stream seed and the element index, so the same seed gives the same stream on every
run and on resume.

Augmentations follow common face-analysis practice (random mirror, zoom and shift
around the face, photometric jitter; e.g. iFAN, Li et al. MM'17, Sec. 4.2): a mirror
swaps left and right, so landmark order is restored with
``landmarks.flip_permutation`` and parsing class ids with
``schema.PARSING_FLIP_PERMUTATION``; yaw and roll change sign, pitch does not.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from keras_facemt.configs.data import AugmentConfig
from keras_facemt.data import batch as B
from keras_facemt.data import landmarks as landmark_schemes
from keras_facemt.data import schema
from keras_facemt.data.letterbox import resize_to_input

Example = Dict[str, tf.Tensor]

# Per-face presence flags: zeroed together with ``face_mask`` when a face leaves
# the image, so a loss never trains on a face that is no longer visible.
_PER_FACE_FLAGS_PREFIXES = ("has_attr/",)
_PER_FACE_FLAGS = (B.HAS_LANDMARKS, B.HAS_POSE, B.HAS_IDENTITY, B.HAS_TEACHER_EMBEDDING)


# ------------------------------------------------------------------ resize / letterbox
def resize_example(example: Example, size: Tuple[int, int], letterbox: bool) -> Example:
    """Resizes the image and parsing map to ``size`` and maps the geometry.

    Plain resize (``letterbox=False``, crops mode) stretches the image to ``size``;
    normalised coordinates are unchanged by a stretch, so boxes and points are
    kept as they are. Letterboxing (scenes mode) scales the image to fit ``size``
    with its aspect ratio kept and pads the bottom/right with zeros (background for
    the parsing map): the origin stays at the top-left corner, so a point
    ``(x, y)`` maps to ``(x * w / out_w, y * h / out_h)`` with ``(h, w)`` the scaled
    size, and mapping a prediction back to the source only needs a division.

    Args:
        example: dict with ``image`` float32 ``[H, W, 3]`` and optionally ``parsing``
            int32 ``[Hp, Wp]`` (any size: it covers the same normalised area),
            ``bbox`` ``[F, 4]``, ``landmarks`` ``[F, K, 2]``.
        size: ``(out_height, out_width)``.
        letterbox: keep the aspect ratio and pad (True) or stretch (False).

    Returns:
        The example with ``image`` ``[out_h, out_w, 3]``, ``parsing``
        ``[out_h, out_w]`` and geometry in the output frame.
    """
    out = dict(example)
    th, tw = size
    out[B.IMAGE], scale = resize_to_input(example[B.IMAGE], size, letterbox)
    if not letterbox:
        if B.PARSING in example:
            out[B.PARSING] = _resize_labels(example[B.PARSING], th, tw, (th, tw))
        return out
    if B.PARSING in example:
        nh = tf.cast(tf.round(scale[1] * th), tf.int32)
        nw = tf.cast(tf.round(scale[0] * tw), tf.int32)
        out[B.PARSING] = _resize_labels(example[B.PARSING], nh, nw, (th, tw))
    return _apply_point_affine(out, scale, tf.zeros([2]))


def _resize_labels(labels: tf.Tensor, h: tf.Tensor, w: tf.Tensor, size: Tuple[int, int]) -> tf.Tensor:
    same = tf.reduce_all(tf.equal(tf.shape(labels)[:2], tf.stack([h, w])))
    resized = tf.cond(
        same, lambda: labels[..., None], lambda: tf.image.resize(labels[..., None], tf.stack([h, w]), method="nearest")
    )
    padded = tf.image.pad_to_bounding_box(resized, 0, 0, size[0], size[1])
    return tf.ensure_shape(padded[..., 0], [size[0], size[1]])


# ------------------------------------------------------------------ geometry helpers
def _face_mask(example: Example) -> tf.Tensor:
    return example[B.FACE_MASK]


def _apply_point_affine(example: Example, scale: tf.Tensor, offset: tf.Tensor) -> Example:
    """Maps boxes and points with ``p' = p * scale + offset`` (``scale``, ``offset`` ``[2]``).

    Only the labels move; the caller transforms the pixels. Absent faces
    (``face_mask`` 0) and absent landmarks stay zero.
    """
    out = dict(example)
    mask = _face_mask(example)
    if B.BBOX in example:
        s4 = tf.tile(scale, [2])
        o4 = tf.tile(offset, [2])
        out[B.BBOX] = (example[B.BBOX] * s4 + o4) * mask[:, None]
    if B.LANDMARKS in example:
        has = example[B.HAS_LANDMARKS] * mask
        out[B.LANDMARKS] = (example[B.LANDMARKS] * scale + offset) * has[:, None, None]
    return out


# ------------------------------------------------------------------ flip
def flip_horizontal(example: Example, landmark_scheme: Optional[str]) -> Example:
    """Mirrors an example left to right.

    ``x -> 1 - x`` for points and boxes (``xmin' = 1 - xmax``), landmarks and their
    visibility re-ordered by ``landmarks.flip_permutation(landmark_scheme)`` so index
    ``i`` keeps its meaning (the image's left eye stays at the left-eye index),
    parsing class ids swapped by ``schema.PARSING_FLIP_PERMUTATION`` (left_eye <->
    right_eye, left_brow <-> right_brow), pose yaw and roll negated.

    Args:
        example: face-major example dict (see module docstring).
        landmark_scheme: scheme of ``landmarks`` (required when they are present).

    Returns:
        The mirrored example.
    """
    out = dict(example)
    mask = _face_mask(example)
    out[B.IMAGE] = tf.reverse(example[B.IMAGE], axis=[1])
    if B.PARSING in example:
        perm = tf.constant(schema.PARSING_FLIP_PERMUTATION, tf.int32)
        out[B.PARSING] = tf.gather(perm, tf.reverse(example[B.PARSING], axis=[1]))
    if B.BBOX in example:
        x0, y0, x1, y1 = tf.unstack(example[B.BBOX], axis=-1)
        out[B.BBOX] = tf.stack([1.0 - x1, y0, 1.0 - x0, y1], axis=-1) * mask[:, None]
    if B.LANDMARKS in example:
        perm = landmark_schemes.flip_permutation(landmark_scheme)
        pts = tf.gather(example[B.LANDMARKS], perm, axis=1)
        has = example[B.HAS_LANDMARKS] * mask
        mirrored = tf.stack([1.0 - pts[..., 0], pts[..., 1]], axis=-1)
        out[B.LANDMARKS] = mirrored * has[:, None, None]
        out[B.LANDMARKS_VISIBLE] = tf.gather(example[B.LANDMARKS_VISIBLE], perm, axis=1)
    if B.POSE in example:
        out[B.POSE] = example[B.POSE] * tf.constant([-1.0, 1.0, -1.0])
    return out


# ------------------------------------------------------------------ scale and shift
def scale_shift(example: Example, scale: tf.Tensor, shift: tf.Tensor) -> Example:
    """Zooms by ``scale`` around the image centre and translates by ``shift``.

    A point maps as ``p' = (p - 0.5) * scale + 0.5 + shift`` (normalised
    coordinates); the image and the parsing map are resampled with the inverse map
    (bilinear and nearest neighbour), pixels from outside the source are zero
    (background). Boxes are clipped to the image; a face whose clipped box is empty
    is masked out (``face_mask`` and its per-face presence flags set to 0).
    Landmarks that leave the image become invisible.

    Args:
        example: face-major example dict.
        scale: float32 scalar zoom factor (> 1 enlarges the face).
        shift: float32 ``[2]`` translation ``(dx, dy)`` as a fraction of the size.

    Returns:
        The transformed example.
    """
    scale = tf.cast(scale, tf.float32)
    shift = tf.cast(shift, tf.float32)
    image = example[B.IMAGE]
    h, w = int(image.shape[0]), int(image.shape[1])
    out = dict(example)
    out[B.IMAGE] = tf.clip_by_value(_warp(image, scale, shift, h, w, "bilinear"), 0.0, 1.0)
    if B.PARSING in example:
        labels = tf.cast(example[B.PARSING], tf.float32)[..., None]
        out[B.PARSING] = tf.cast(tf.round(_warp(labels, scale, shift, h, w, "nearest")[..., 0]), tf.int32)
    offset = 0.5 - 0.5 * scale + shift
    out = _apply_point_affine(out, tf.stack([scale, scale]), offset)
    mask = _face_mask(out)
    if B.BBOX in out:
        box = tf.clip_by_value(out[B.BBOX], 0.0, 1.0)
        keep = tf.cast((box[:, 2] > box[:, 0]) & (box[:, 3] > box[:, 1]), tf.float32)
        mask = mask * keep
        out[B.BBOX] = box * mask[:, None]
        out[B.FACE_MASK] = mask
        for key in list(out):
            if key in _PER_FACE_FLAGS or key.startswith(_PER_FACE_FLAGS_PREFIXES):
                out[key] = out[key] * mask
    if B.LANDMARKS in out:
        pts = out[B.LANDMARKS]
        inside = tf.reduce_all((pts >= 0.0) & (pts <= 1.0), axis=-1)
        out[B.LANDMARKS_VISIBLE] = out[B.LANDMARKS_VISIBLE] * tf.cast(inside, tf.float32)
        has = out[B.HAS_LANDMARKS] * mask
        out[B.LANDMARKS] = pts * has[:, None, None]
        out[B.LANDMARKS_VISIBLE] = out[B.LANDMARKS_VISIBLE] * has[:, None]
    return out


def _warp(image: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor, h: int, w: int, method: str) -> tf.Tensor:
    """Resamples ``image`` ``[h, w, C]`` under the zoom/shift of ``scale_shift``.

    With pixel centres at ``(i + 0.5) / size`` in normalised coordinates, the
    inverse of ``u' = (u - 0.5) * s + 0.5 + t`` in pixel indices is
    ``i_in = i_out / s + c0`` with ``c0 = (0.5 - size * (0.5 + t)) / s + size / 2 - 0.5``.
    ``crop_and_resize`` to the input's own size samples output row ``i`` at
    ``y1 * (size - 1) + i * (y2 - y1)``, so the box ``y1 = c0 / (size - 1)``,
    ``y2 = y1 + 1 / s`` reproduces that map exactly (and is several times cheaper
    on CPU than a projective transform). Pixels from outside the source are 0.
    """
    inv = 1.0 / scale

    def edges(size, t):
        start = ((0.5 - size * (0.5 + t)) * inv + size / 2.0 - 0.5) / (size - 1)
        return start, start + inv

    y1, y2 = edges(float(h), shift[1])
    x1, x2 = edges(float(w), shift[0])
    boxes = tf.stack([y1, x1, y2, x2])[None]
    out = tf.image.crop_and_resize(
        image[None], boxes, tf.zeros([1], tf.int32), [h, w], method=method, extrapolation_value=0.0
    )
    return out[0]


# ------------------------------------------------------------------ colour
# Rec. 601 luma and the RGB -> YIQ matrix (rows Y, I, Q).
_LUMA = np.array([0.299, 0.587, 0.114], np.float64)
_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float64)


def _hue_basis() -> np.ndarray:
    """``[3, 3, 3]``: row-vector hue rotation = ``B[0] + cos * B[1] + sin * B[2]``.

    A rotation by ``a`` of the (I, Q) plane is ``R = E0 + cos(a) * E12 + sin(a) * J``
    (``E0`` keeps Y, ``E12`` the identity on I and Q, ``J`` the quarter turn), so the
    RGB map ``inv(YIQ) @ R @ YIQ`` is linear in ``cos`` and ``sin``; precomputing the
    three terms keeps the per-example graph to a few small ops.
    """
    inv = np.linalg.inv(_YIQ)
    e0 = np.diag([1.0, 0.0, 0.0])
    e12 = np.diag([0.0, 1.0, 1.0])
    quarter = np.array([[0, 0, 0], [0, 0, -1], [0, 1, 0]], np.float64)
    # Transposed: pixels are row vectors, rgb' = rgb @ M.
    return np.stack([(inv @ m @ _YIQ).T for m in (e0, e12, quarter)]).astype(np.float32)


_HUE_BASIS = _hue_basis()
# Row-vector luma blend: rgb @ _GREY = (luma, luma, luma).
_GREY = np.outer(_LUMA, np.ones(3)).astype(np.float32)


def colour_matrix(brightness: tf.Tensor, contrast: tf.Tensor, saturation: tf.Tensor, hue: tf.Tensor,
                  channel_mean: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """The affine colour map ``rgb' = rgb @ matrix + offset`` of one jitter draw.

    Composes, in order: brightness ``x + b``; contrast ``(x - m) * c + m`` about the
    per-channel mean ``m``; saturation as a blend with the luma,
    ``L + s * (x - L)``; hue as a rotation by ``2 * pi * hue`` about the grey axis
    in YIQ space. All four are linear in ``x``, so one ``[3, 3]`` matrix and one
    offset apply them in a single pass over the pixels (instead of two RGB <-> HSV
    round trips).

    Args:
        brightness: float32 scalar additive shift.
        contrast: float32 scalar factor.
        saturation: float32 scalar factor (0: grey, 1: unchanged).
        hue: float32 scalar, fraction of a full turn.
        channel_mean: float32 ``[3]`` per-channel mean of the input image.

    Returns:
        ``(matrix [3, 3], offset [3])``.
    """
    sat = saturation * np.eye(3, dtype=np.float32) + (1.0 - saturation) * _GREY
    angle = 2.0 * np.pi * hue
    hue_map = _HUE_BASIS[0] + tf.cos(angle) * _HUE_BASIS[1] + tf.sin(angle) * _HUE_BASIS[2]
    tail = sat @ hue_map
    offset = (brightness + (1.0 - contrast) * channel_mean)[None, :] @ tail
    return contrast * tail, offset[0]


def colour_jitter(image: tf.Tensor, seed: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
    """Random brightness, contrast, saturation and hue, clipped to ``[0, 1]``.

    Args:
        image: float32 ``[H, W, 3]`` RGB in ``[0, 1]``.
        seed: int64 ``[2]`` stateless seed.
        cfg: jitter strengths (``brightness`` additive, ``contrast`` and
            ``saturation`` as factor ranges ``1 +- strength``, ``hue`` in turns).

    Returns:
        float32 ``[H, W, 3]`` in ``[0, 1]``.
    """
    if cfg.brightness == 0 and cfg.contrast == 0 and cfg.saturation == 0 and cfg.hue == 0:
        return image
    u = tf.random.stateless_uniform([4], seed, minval=-1.0, maxval=1.0)
    matrix, offset = colour_matrix(
        u[0] * cfg.brightness,
        1.0 + u[1] * cfg.contrast,
        1.0 + u[2] * cfg.saturation,
        u[3] * cfg.hue,
        tf.reduce_mean(image, axis=[0, 1]),
    )
    out = tf.einsum("hwc,cd->hwd", image, matrix) + offset
    return tf.clip_by_value(out, 0.0, 1.0)


# ------------------------------------------------------------------ composition
def augment_example(example: Example, seed: tf.Tensor, cfg: AugmentConfig, landmark_scheme: Optional[str]) -> Example:
    """Random flip, scale/shift and colour jitter of one example.

    Args:
        example: face-major example dict with a static image size.
        seed: int64 ``[2]`` stateless seed (stream seed, element index): the same
            seed always gives the same augmentation.
        cfg: augmentation strengths.
        landmark_scheme: scheme of ``landmarks`` (for the flip permutation).

    Returns:
        The augmented example (same keys, shapes and dtypes).
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)
    out = dict(example)
    if cfg.flip > 0:
        do_flip = tf.random.stateless_uniform([], seeds[0]) < cfg.flip
        out = tf.cond(do_flip, lambda: flip_horizontal(out, landmark_scheme), lambda: dict(out))
    lo, hi = cfg.scale_range
    if lo != 1.0 or hi != 1.0 or cfg.shift > 0:
        scale = tf.random.stateless_uniform([], seeds[1], minval=lo, maxval=hi)
        shift = tf.random.stateless_uniform([2], seeds[2], minval=-cfg.shift, maxval=cfg.shift)
        out = scale_shift(out, scale, shift)
    out[B.IMAGE] = colour_jitter(out[B.IMAGE], seeds[3], cfg)
    return out
