"""Image preparation shared by inference, serving and evaluation.

Any input a user may hand over -- uint8 or float, gray ``[H, W]``, ``[H, W, 1]``,
RGB or RGBA, any size and aspect ratio -- becomes float32 RGB in [0, 1] at the
model's input size, with the transform recorded so predictions map back to the
original pixels.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

import numpy as np

from keras_facemt.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Letterbox:
    """Maps normalised model-input coordinates back to original pixels.

    ``x_orig = (x_norm * size - pad_x) / scale`` (likewise for y), where the
    original image was scaled by ``scale`` and placed at ``(pad_x, pad_y)`` in a
    ``size x size`` (or ``height x width``) canvas.
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
    """Resizes to ``size`` = (height, width), optionally letterboxed (pad to square first).

    Returns:
        (float32 ``[height, width, 3]`` in [0, 1], the ``Letterbox`` to map back).
    """
    import cv2

    rgb = to_rgb_float(image)
    h, w = rgb.shape[:2]
    oh, ow = int(size[0]), int(size[1])
    if keep_aspect:
        s = min(ow / w, oh / h)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        canvas = np.zeros((oh, ow, 3), np.float32)
        px, py = (ow - nw) // 2, (oh - nh) // 2
        canvas[py:py + nh, px:px + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        return canvas, Letterbox(s, s, px, py, ow, oh, w, h)
    sx, sy = ow / w, oh / h
    interp = cv2.INTER_AREA if sx < 1 and sy < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, (ow, oh), interpolation=interp), Letterbox(sx, sy, 0.0, 0.0, ow, oh, w, h)
