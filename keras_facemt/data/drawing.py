"""Drawing labels (or predictions) on face images, and PNG contact sheets.

Used by ``facemt synth`` and ``facemt inspect`` to show what a dataset holds, and by
recipes to show predictions. Inputs follow the schema's conventions: geometry is
normalised to [0, 1], points are (x, y), boxes are (xmin, ymin, xmax, ymax), images
are RGB uint8 (float images in [0, 1] are accepted too).

``labels`` is a plain dict; every key is optional:

==================  ====================================================================
bbox                ``[4]`` or ``[N, 4]`` boxes (yellow)
landmarks           ``[K, 2]`` or ``[N, K, 2]`` points of any scheme (green visible, red hidden)
landmarks_visible   ``[K]`` or ``[N, K]``
parsing             ``[h, w]`` class ids (``schema.PARSING_CLASSES``), any size: overlaid
pose                ``[3]`` or ``[N, 3]`` yaw, pitch, roll (degrees)
identity, emotion,  scalars or ``[N]``; ``emotion``/``gender``/``ethnicity`` may be ids or
gender, ethnicity,  names; ``age`` in years
age, smile
has_<key>           optional presence flags: a face whose flag is 0 shows no such label
==================  ====================================================================
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from keras_facemt.data import schema
from keras_facemt.errors import DataError
from keras_facemt.io import write_bytes_atomic

# One RGB colour per parsing class (background is never painted).
PARSING_PALETTE = np.array(
    [
        [0, 0, 0],  # background
        [255, 204, 153],  # face_skin
        [0, 153, 0],  # left_brow
        [102, 255, 102],  # right_brow
        [0, 0, 255],  # left_eye
        [0, 204, 255],  # right_eye
        [255, 255, 0],  # nose
        [255, 0, 127],  # upper_lip
        [153, 0, 0],  # inner_mouth
        [255, 102, 178],  # lower_lip
        [153, 76, 0],  # hair
    ],
    np.uint8,
)
_BOX = (255, 220, 0)
_VISIBLE = (0, 255, 0)
_HIDDEN = (255, 40, 40)
_TEXT = (255, 255, 255)
_PER_FACE_TEXT = ("emotion", "smile", "gender", "age", "ethnicity", "identity", "pose")


def _to_uint8_rgb(image) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, -1)
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3):
        raise DataError(f"draw_labels needs an image [H, W, 3]. Received: shape={arr.shape}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, -1)
    if arr.dtype != np.uint8:
        arr = np.asarray(arr, np.float32)
        if arr.size and arr.max() <= 1.0 + 1e-6:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def _per_face(labels: Dict[str, object], key: str, tail: int, n: Optional[int]):
    """Value of ``key`` as ``[N, ...]`` (``tail`` trailing dims), or None."""
    if key not in labels or labels[key] is None:
        return None
    v = np.asarray(labels[key])
    if v.dtype.kind in "US":  # names
        v = v.astype(object)
    if v.ndim == tail:
        v = v[None]
    if n is not None and v.shape[0] != n:
        return None
    return v


def _name(key: str, value) -> str:
    names = {"emotion": schema.EMOTIONS, "gender": schema.GENDERS, "ethnicity": schema.ETHNICITIES}
    if isinstance(value, (str, bytes)):
        return value.decode() if isinstance(value, bytes) else value
    if key in names:
        i = int(value)
        return names[key][i] if 0 <= i < len(names[key]) else f"{key}?{i}"
    if key == "smile":
        return "smile" if int(value) else "no smile"
    if key == "age":
        return f"{float(value):.0f}y"
    if key == "identity":
        return f"id {int(value)}"
    if key == "pose":
        y, p, r = (float(x) for x in value)
        return f"y{y:+.0f} p{p:+.0f} r{r:+.0f}"
    return str(value)


def _text(img, text, org, scale):
    thick = max(1, int(round(scale * 2)))
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 1, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, _TEXT, thick, cv2.LINE_AA)


def draw_labels(image, labels: Dict[str, object], min_size: int = 256, alpha: float = 0.4) -> np.ndarray:
    """Draws labels on a copy of ``image``.

    Args:
        image: RGB ``[H, W, 3]`` uint8 (or float in [0, 1]).
        labels: Dict described in the module docstring.
        min_size: Images smaller than this (longest side) are enlarged first so
            points and text stay legible.
        alpha: Opacity of the parsing overlay.

    Returns:
        uint8 RGB image (enlarged when smaller than ``min_size``).
    """
    img = _to_uint8_rgb(image).copy()
    h, w = img.shape[:2]
    f = max(1.0, float(min_size) / max(h, w, 1))
    if f > 1.0:
        img = cv2.resize(img, (int(round(w * f)), int(round(h * f))), interpolation=cv2.INTER_LINEAR)
    H, W = img.shape[:2]
    has_parsing = labels.get("has_parsing", 1)
    if labels.get("parsing") is not None and float(np.asarray(has_parsing).reshape(-1)[0]) > 0:
        pm = np.asarray(labels["parsing"])
        if pm.ndim == 3:
            pm = pm[..., 0] if pm.shape[-1] == 1 else np.argmax(pm, -1)  # logits/probabilities
        pm = np.clip(pm.astype(np.int32), 0, len(PARSING_PALETTE) - 1)
        pm = cv2.resize(pm.astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST)
        colour = PARSING_PALETTE[pm]
        mask = (pm > 0)[..., None]
        blended = (img.astype(np.float32) * (1 - alpha) + colour.astype(np.float32) * alpha).astype(np.uint8)
        img = np.where(mask, blended, img)

    boxes = _per_face(labels, "bbox", 1, None)
    lms = _per_face(labels, "landmarks", 2, None)
    n = boxes.shape[0] if boxes is not None else (lms.shape[0] if lms is not None else 1)
    if lms is not None and lms.shape[0] != n:
        lms = None

    def present(key: str, i: int) -> bool:
        flag = _per_face(labels, f"has_{key}", 0, n)
        if flag is None:
            flag = _per_face(labels, f"has_attr/{key}", 0, n)
        return flag is None or float(flag[i]) > 0

    if boxes is not None:
        for i, b in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
            p0 = (int(round(b[0] * W)), int(round(b[1] * H)))
            p1 = (int(round(b[2] * W)), int(round(b[3] * H)))
            cv2.rectangle(img, p0, p1, _BOX, 1, cv2.LINE_AA)
    if lms is not None:
        vis = _per_face(labels, "landmarks_visible", 1, n)
        radius = max(1, int(round(min(H, W) / 200)))
        for i in range(n):
            if not present("landmarks", i):
                continue
            for k, (x, y) in enumerate(np.asarray(lms[i], np.float64)):
                v = 1.0 if vis is None else float(vis[i][k])
                cv2.circle(img, (int(round(x * W)), int(round(y * H))), radius,
                           _VISIBLE if v > 0.5 else _HIDDEN, -1, cv2.LINE_AA)  # fmt: skip

    scale = max(0.3, min(H, W) / 600.0)
    line_h = int(round(22 * scale / 0.5))
    for i in range(n):
        parts = []
        for key in _PER_FACE_TEXT:
            tail = 1 if key == "pose" else 0
            v = _per_face(labels, key, tail, n)
            if v is None or not present(key, i):
                continue
            if key == "emotion" and not isinstance(v[i], (str, bytes)) and int(v[i]) < 0:
                continue
            parts.append(_name(key, v[i]))
        if not parts:
            continue
        if boxes is not None and n > 1:
            b = boxes[i]
            if (b[2] - b[0]) * W < 60:  # too small a face for text
                continue
            x0, y0 = int(b[0] * W), int(b[3] * H) + line_h
        else:
            x0, y0 = 4, line_h
        lines = [" ".join(parts[j : j + 2]) for j in range(0, len(parts), 2)]
        for j, line in enumerate(lines):
            _text(img, line, (x0, min(y0 + j * line_h, H - 2)), scale)
    return img


def record_labels(record) -> Tuple[np.ndarray, Dict[str, object]]:
    """Decodes a ``codec.FaceRecord`` into ``(rgb uint8 [H, W, 3], labels)`` for drawing."""
    from keras_facemt.data.codec import decode_image, decode_label_map

    rec = record.validate()
    image = decode_image(rec.image, rec.source_id)
    labels: Dict[str, object] = {"bbox": rec.bboxes}
    if rec.parsing is not None:
        labels["parsing"] = decode_label_map(rec.parsing, rec.source_id)
    if rec.landmarks is not None:
        labels["landmarks"] = rec.landmarks
        labels["landmarks_visible"] = rec.landmarks_visible
        labels["has_landmarks"] = rec.has_landmarks
    for key in ("pose", "identity"):
        if getattr(rec, key) is not None:
            labels[key] = getattr(rec, key)
            labels[f"has_{key}"] = getattr(rec, f"has_{key}")
    for name, values in rec.attributes.items():
        if name in _PER_FACE_TEXT:
            labels[name] = values
            labels[f"has_{name}"] = rec.has_attributes[name]
    return image, labels


def contact_sheet(images: Sequence[np.ndarray], path: Optional[str] = None, cols: int = 8,
                  tile_size: Optional[int] = None, pad: int = 2) -> np.ndarray:
    """Tiles images into one sheet, optionally writing it as a PNG atomically.

    Args:
        images: RGB images (any sizes; each is resized to fit a square tile).
        path: PNG path to write (temporary file then ``os.replace``), or None.
        cols: Tiles per row.
        tile_size: Tile side in pixels (default: the largest image side).
        pad: Pixels between tiles.

    Returns:
        The sheet, uint8 RGB ``[rows * (tile + pad) + pad, cols * (tile + pad) + pad, 3]``.

    Raises:
        DataError: for no images, a bad ``cols``, or a PNG that cannot be written.
    """
    if not len(images):
        raise DataError("contact_sheet needs at least one image. Received: images=[]")
    if int(cols) < 1:
        raise DataError(f"cols must be >= 1. Received: cols={cols}")
    imgs = [_to_uint8_rgb(i) for i in images]
    tile = int(tile_size or max(max(i.shape[:2]) for i in imgs))
    cols = min(int(cols), len(imgs))
    rows = (len(imgs) + cols - 1) // cols
    sheet = np.full((rows * (tile + pad) + pad, cols * (tile + pad) + pad, 3), 24, np.uint8)
    for k, img in enumerate(imgs):
        h, w = img.shape[:2]
        f = tile / max(h, w)
        if f != 1.0:
            img = cv2.resize(img, (max(1, int(round(w * f))), max(1, int(round(h * f)))),
                             interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)  # fmt: skip
        r, c = divmod(k, cols)
        y, x = pad + r * (tile + pad), pad + c * (tile + pad)
        sheet[y : y + img.shape[0], x : x + img.shape[1]] = img
    if path is not None:
        write_png_atomic(path, sheet)
    return sheet


def write_png_atomic(path: str, image: np.ndarray) -> None:
    """Writes an RGB (or gray) uint8 image as PNG via a temporary file and ``os.replace``."""
    arr = _to_uint8_rgb(image)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR))
    if not ok:
        raise DataError(f"{path}: could not encode the PNG. Received: shape={arr.shape}")
    write_bytes_atomic(path, buf.tobytes())
