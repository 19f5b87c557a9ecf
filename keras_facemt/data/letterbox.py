"""One image -> model-input transform for training, inference and serving.

A system declares how an image becomes its input (``configs.outputs.Preprocessing``):

* ``stretch``: each axis scaled to the input size (crop models: iFAN reads a face
  crop). Normalised coordinates are unchanged by a stretch.
* ``letterbox``: scaled to fit with the aspect ratio kept, placed at the top-left
  corner, zero padding to the right and bottom (detectors: Uniface Sec. IV-A "pad it
  with 0 to a square and resize"). A normalised point ``(x, y)`` of the source maps
  to ``(x * nw / W, y * nh / H)`` of the input, where ``nh x nw`` is the scaled
  content and ``H x W`` the input size, so mapping a prediction back is a division.

The training pipeline (``data.augment.resize_example``), ``FaceAnalyzer`` (eagerly)
and the serving signatures (in graph) all call ``resize_to_input``, so a model sees
the same pixels whichever way an image reaches it. Resampling is bilinear with
antialiasing (shrinking a 640x480 photo to 320x320 needs it).
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

import numpy as np
import tensorflow as tf

from keras_facemt.errors import ConfigError


def letterbox_size(height, width, size: Tuple[int, int]):
    """Size ``(h, w)`` of an image scaled to fit ``size`` with its aspect kept.

    Args:
        height, width: int32 scalars, the source size in pixels.
        size: ``(out_height, out_width)``.

    Returns:
        int32 scalars ``(h, w)`` with ``h <= out_height``, ``w <= out_width`` and at
        least one side equal to the output side.
    """
    th, tw = size
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    scale = tf.minimum(th / h, tw / w)
    nh = tf.clip_by_value(tf.cast(tf.round(h * scale), tf.int32), 1, th)
    nw = tf.clip_by_value(tf.cast(tf.round(w * scale), tf.int32), 1, tw)
    return nh, nw


def resize_content(image, height, width, size: Tuple[int, int]):
    """Resizes ``image`` ``[h, w, 3]`` to ``height x width`` and pads it to ``size`` (top-left).

    An image already at ``height x width`` is not resampled, so shards written at the
    training size (and serving inputs at the model size) pass unchanged.
    """
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.stack([height, width])))
    resized = tf.cond(
        same,
        lambda: image,
        lambda: tf.clip_by_value(
            tf.image.resize(image, tf.stack([height, width]), method="bilinear", antialias=True), 0.0, 1.0),
    )
    padded = tf.image.pad_to_bounding_box(resized, 0, 0, size[0], size[1])
    return tf.ensure_shape(padded, [size[0], size[1], 3])


def resize_to_input(image, size: Tuple[int, int], letterbox: bool):
    """Float RGB ``[h, w, 3]`` in [0, 1] -> the model input ``[H, W, 3]``.

    Returns:
        ``(input, content_scale)``: the input image and float32 ``[2]`` ``(nw / W,
        nh / H)``, the fraction of the input the image's content covers (``(1, 1)``
        for a stretch). Normalised input coordinates divided by it are normalised
        coordinates of the source image.
    """
    th, tw = int(size[0]), int(size[1])
    image = tf.convert_to_tensor(image, tf.float32)
    if not letterbox:
        return resize_content(image, th, tw, (th, tw)), tf.ones([2], tf.float32)
    shape = tf.shape(image)
    nh, nw = letterbox_size(shape[0], shape[1], (th, tw))
    scale = tf.stack([tf.cast(nw, tf.float32) / float(tw), tf.cast(nh, tf.float32) / float(th)])
    return resize_content(image, nh, nw, (th, tw)), scale


def input_to_source(geometry, content_scale):
    """Batched normalised input coordinates -> normalised source coordinates.

    Args:
        geometry: ``[batch, ..., 2]`` (x, y) points or ``[batch, ..., 4]`` boxes
            (x0, y0, x1, y1).
        content_scale: ``[batch, 2]``, each image's ``resize_to_input`` scale.

    Returns:
        ``geometry`` divided by each image's content scale (same shape).
    """
    geometry = tf.convert_to_tensor(geometry, tf.float32)
    scale = tf.convert_to_tensor(content_scale, tf.float32)
    if geometry.shape[-1] == 4:
        scale = tf.concat([scale, scale], axis=-1)
    middle = tf.ones([geometry.shape.rank - 2], tf.int32)
    scale = tf.reshape(scale, tf.concat([tf.shape(scale)[:1], middle, tf.shape(scale)[-1:]], axis=0))
    return geometry / scale


# ------------------------------------------------------------------ host side (numpy)
@dataclasses.dataclass(frozen=True)
class Letterbox:
    """Maps normalised model-input coordinates back to original pixels.

    ``x_orig = (x_norm * out_width - pad_x) / scale_x`` (likewise for y), where the
    original image was scaled by ``scale_x`` / ``scale_y`` (the content size over the
    original size) and placed at ``(pad_x, pad_y)`` in the ``out_height x out_width``
    input.
    """

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    out_width: int
    out_height: int
    orig_width: int
    orig_height: int

    def points_to_pixels(self, pts: np.ndarray) -> np.ndarray:
        """``[..., 2]`` normalised (x, y) -> original pixels."""
        pts = np.asarray(pts, np.float32)
        x = (pts[..., 0] * self.out_width - self.pad_x) / self.scale_x
        y = (pts[..., 1] * self.out_height - self.pad_y) / self.scale_y
        return np.stack([x, y], -1)

    def boxes_to_pixels(self, boxes: np.ndarray) -> np.ndarray:
        """``[..., 4]`` normalised (x0, y0, x1, y1) -> clipped original pixels."""
        b = np.asarray(boxes, np.float32)
        p0 = self.points_to_pixels(b[..., 0:2])
        p1 = self.points_to_pixels(b[..., 2:4])
        out = np.concatenate([p0, p1], -1)
        out[..., 0::2] = np.clip(out[..., 0::2], 0, self.orig_width)
        out[..., 1::2] = np.clip(out[..., 1::2], 0, self.orig_height)
        return out

    @property
    def content_height(self) -> int:
        return int(round(self.orig_height * self.scale_y))

    @property
    def content_width(self) -> int:
        return int(round(self.orig_width * self.scale_x))


def to_rgb_float(image) -> np.ndarray:
    """Any image array -> float32 RGB ``[H, W, 3]`` in [0, 1].

    Raises:
        ConfigError: for arrays that are not 2-D gray or 3-D with 1, 3 or 4 channels.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4) or min(arr.shape[:2]) < 1:
        raise ConfigError(
            "An image must be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]. "
            f"Received: shape={np.shape(image)}"
        )
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, -1)
    elif arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    arr = arr.astype(np.float32)
    return arr / 255.0 if arr.max(initial=0) > 1.5 else arr


def resize_image(image, size: Tuple[int, int], keep_aspect: bool = False) -> Tuple[np.ndarray, Letterbox]:
    """Any image -> the model input at ``size`` = (height, width), as ``resize_to_input``.

    Args:
        image: gray / RGB / RGBA, uint8 or float, any size.
        size: the model input (height, width).
        keep_aspect: letterbox (top-left, zero padding) instead of stretching.

    Returns:
        (float32 ``[height, width, 3]`` in [0, 1], the ``Letterbox`` to map back).
    """
    rgb = to_rgb_float(image)
    h, w = rgb.shape[:2]
    oh, ow = int(size[0]), int(size[1])
    out, scale = resize_to_input(rgb, (oh, ow), letterbox=keep_aspect)
    sx, sy = (float(v) for v in np.asarray(scale))
    # content size / original size: the scale the pixels actually went through.
    return np.asarray(out), Letterbox(sx * ow / w, sy * oh / h, 0.0, 0.0, ow, oh, w, h)
