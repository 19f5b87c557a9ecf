"""Region proposals for All-in-One training and evaluation, labelled by IoU (Sec. III-C).

The paper takes its proposals from Selective Search [45], which is neither in
TensorFlow nor in the pinned OpenCV (no ``cv2.ximgproc``). Training proposals are
instead sampled around the ground truth of each image (a departure, README):
jittered copies of every face box (scale and shift) and random boxes over the
image. Each proposal is labelled by its best IoU with the faces (Sec. III-C.1):

* IoU > ``face_iou`` (0.5): a face (detection label 1);
* IoU < ``background_iou`` (0.35): background (label 0);
* in between: no detection label;
* IoU > ``background_iou``: landmarks, visibility and pose of the best-matching
  face, re-expressed in the proposal's frame ((x, y) in [0, 1] of the crop),
  train the regression tasks.

Everything here is host-side numpy (plus OpenCV for the crop): the crops are
rendered once and fed to the trainer as arrays.
"""

from __future__ import annotations

from typing import Dict, Optional

import cv2
import numpy as np

from keras_facemt.errors import ConfigError

FACE_IOU = 0.5
BACKGROUND_IOU = 0.35


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU ``[N, M]`` of corner boxes ``a`` ``[N, 4]`` and ``b`` ``[M, 4]`` (any units)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def jitter_boxes(boxes: np.ndarray, count: int, rng: np.random.Generator, scale: float = 0.25,
                 shift: float = 0.2) -> np.ndarray:
    """``count`` jittered copies of each box ``[N, 4]`` -> ``[N * count, 4]``.

    Width and height are scaled by ``exp(U(-scale, scale))`` (independently) and the
    centre moved by ``U(-shift, shift)`` of the box size.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if count < 1 or len(boxes) == 0:
        return np.zeros((0, 4))
    rep = np.repeat(boxes, count, axis=0)
    wh = rep[:, 2:] - rep[:, :2]
    centre = (rep[:, :2] + rep[:, 2:]) / 2 + rng.uniform(-shift, shift, (len(rep), 2)) * wh
    wh = wh * np.exp(rng.uniform(-scale, scale, (len(rep), 2)))
    return np.concatenate([centre - wh / 2, centre + wh / 2], axis=-1)


def random_boxes(count: int, image_size: float, rng: np.random.Generator, min_frac: float = 0.06,
                 max_frac: float = 0.6) -> np.ndarray:
    """``[count, 4]`` random squares (log-uniform side in ``[min_frac, max_frac]`` of the image) inside it."""
    side = np.exp(rng.uniform(np.log(min_frac), np.log(max_frac), count)) * image_size
    x0 = rng.uniform(0, 1, count) * (image_size - side)
    y0 = rng.uniform(0, 1, count) * (image_size - side)
    return np.stack([x0, y0, x0 + side, y0 + side], axis=-1)


def crop_box(image: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """The region ``box`` (pixels, may leave the image: zero padding) resized to ``size`` x ``size``."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    pad = max(0, -x0, -y0, x1 - w, y1 - h)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    patch = image[y0 + pad:y1 + pad, x0 + pad:x1 + pad]
    interp = cv2.INTER_AREA if patch.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interp)


def rounded(box: np.ndarray) -> np.ndarray:
    """The pixel box ``crop_box`` actually cuts (rounded, at least 1 pixel)."""
    x0, y0, x1, y1 = (float(round(v)) for v in box)
    return np.array([x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)])


def to_box_frame(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Pixel points ``[..., 2]`` as (x, y) in [0, 1] of ``box`` (pixels)."""
    box = np.asarray(box, np.float64)
    return ((np.asarray(points, np.float64) - box[:2]) / (box[2:] - box[:2])).astype(np.float32)


def label_proposals(proposals: np.ndarray, faces: np.ndarray, face_iou: float = FACE_IOU,
                    background_iou: float = BACKGROUND_IOU) -> Dict[str, np.ndarray]:
    """IoU labels of proposals ``[P, 4]`` against faces ``[F, 4]`` (same units).

    Returns:
        ``iou`` ``[P]`` best IoU, ``match`` ``[P]`` index of the best face (-1 with
        no face), ``detection`` ``[P]`` int (1 face, 0 background),
        ``has_detection`` ``[P]`` (0 between the thresholds), ``regress`` ``[P]``
        (IoU > ``background_iou``: the regression tasks train).

    Raises:
        ConfigError: unless ``0 < background_iou <= face_iou < 1``.
    """
    if not 0 < background_iou <= face_iou < 1:
        raise ConfigError(f"Need 0 < background_iou <= face_iou < 1. Received: background_iou={background_iou}, "
                          f"face_iou={face_iou}")
    proposals = np.asarray(proposals, np.float64).reshape(-1, 4)
    if len(faces) == 0:
        iou = np.zeros(len(proposals))
        match = np.full(len(proposals), -1)
    else:
        m = box_iou(proposals, faces)
        match = m.argmax(axis=1)
        iou = m[np.arange(len(proposals)), match]
    face = iou > face_iou
    background = iou < background_iou
    return {"iou": iou.astype(np.float32), "match": match.astype(np.int64), "detection": face.astype(np.int32),
            "has_detection": (face | background).astype(np.float32),
            "regress": (iou > background_iou).astype(np.float32)}


def sample_proposals(faces: np.ndarray, image_size: float, rng: np.random.Generator, jittered_per_face: int = 6,
                     random_count: int = 6, scale: float = 0.3, shift: float = 0.25,
                     min_frac: Optional[float] = None) -> np.ndarray:
    """Training proposals of one image: jittered face boxes and random squares ``[P, 4]`` (pixels)."""
    jit = jitter_boxes(faces, jittered_per_face, rng, scale, shift)
    rnd = random_boxes(random_count, image_size, rng, min_frac=min_frac or 0.06)
    return np.concatenate([jit, rnd], axis=0)
