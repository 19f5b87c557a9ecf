"""Anchor (default / reference box) generation.

Two layouts, both returning normalised corner boxes ``(xmin, ymin, xmax, ymax)``:

* ``ssd_anchors``: SSD-style (Liu et al., ECCV'16, Sec. 2.2) per-level grids, one
  anchor size per level (or several) times arbitrary aspect ratios. Uniface Sec.
  III-C uses aspect ratios {0.95, 0.8, 0.65} (width / height: faces are taller than
  wide).
* ``rpn_anchors``: Faster R-CNN RPN-style scales x ratios on one stride-``s`` grid
  (TFN Sec. IV-A.2 uses scales {16, 32, 64} on conv4_3 and {128, 256, 512} on conv5_3
  with ratios {0.5, 1, 2}).

Anchor order is level-major, then row (y), column (x) and anchor-within-cell, which is
the order in which a ``[B, H, W, A * k]`` head output reshapes to ``[B, H * W * A, k]``
and concatenates over levels.

Anchors are computed with numpy once at model-build time and enter graphs as
constants.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np

from keras_facemt.errors import ConfigError

SizeSpec = Union[float, Sequence[float]]


def _cell_shapes(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> np.ndarray:
    """``[len(sizes) * len(ratios), 2]`` (w, h) with ``w * h = size**2`` and ``w / h = ratio``."""
    shapes = []
    for s in sizes:
        for r in aspect_ratios:
            shapes.append((s * np.sqrt(r), s / np.sqrt(r)))
    return np.asarray(shapes, np.float32)


def _grid(height: int, width: int, shapes: np.ndarray, offset: float = 0.5) -> np.ndarray:
    ys = (np.arange(height, dtype=np.float32) + offset) / height
    xs = (np.arange(width, dtype=np.float32) + offset) / width
    cy, cx = np.meshgrid(ys, xs, indexing="ij")  # [H, W]
    cx = cx[:, :, None]
    cy = cy[:, :, None]
    w = shapes[None, None, :, 0]
    h = shapes[None, None, :, 1]
    boxes = np.stack(
        np.broadcast_arrays(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), axis=-1
    )  # [H, W, A, 4]
    return boxes.reshape(-1, 4)


def anchors_per_cell(sizes_per_level: Sequence[SizeSpec], aspect_ratios: Sequence[float]) -> Tuple[int, ...]:
    """Number of anchors per grid cell of each level."""
    return tuple(len(_as_sizes(s)) * len(aspect_ratios) for s in sizes_per_level)


def _as_sizes(s: SizeSpec) -> Tuple[float, ...]:
    return tuple(float(v) for v in s) if isinstance(s, (list, tuple)) else (float(s),)


def ssd_anchors(feature_sizes: Sequence[Tuple[int, int]], sizes_per_level: Sequence[SizeSpec],
                aspect_ratios: Sequence[float], clip: bool = False) -> np.ndarray:
    """SSD anchors over several feature levels.

    Args:
        feature_sizes: ``(height, width)`` of each level's feature map.
        sizes_per_level: anchor size(s) of each level as a fraction of the image side
            (a float, or a sequence for several sizes per cell).
        aspect_ratios: width / height ratios, applied to every size.
        clip: clip anchors to the image.

    Returns:
        float32 ``[num_anchors, 4]`` normalised corner boxes with
        ``num_anchors = sum_l H_l * W_l * len(sizes_l) * len(aspect_ratios)``.

    Raises:
        ConfigError: on mismatched lengths, non-positive sizes or ratios.
    """
    if len(feature_sizes) != len(sizes_per_level):
        raise ConfigError(
            "ssd_anchors needs one size entry per feature level. "
            f"Received: feature_sizes={list(feature_sizes)}, sizes_per_level={list(sizes_per_level)}"
        )
    if not aspect_ratios or min(aspect_ratios) <= 0:
        raise ConfigError(f"aspect_ratios must be positive. Received: aspect_ratios={list(aspect_ratios)}")
    out = []
    for (h, w), s in zip(feature_sizes, sizes_per_level):
        sizes = _as_sizes(s)
        if int(h) < 1 or int(w) < 1 or min(sizes) <= 0:
            raise ConfigError(f"feature sizes and anchor sizes must be positive. Received: feature_size={(h, w)}, sizes={sizes}")
        out.append(_grid(int(h), int(w), _cell_shapes(sizes, aspect_ratios)))
    anchors = np.concatenate(out, 0)
    return np.clip(anchors, 0.0, 1.0) if clip else anchors


def rpn_anchors(feature_size: Tuple[int, int], stride: float, scales: Sequence[float],
                ratios: Sequence[float], image_size: Tuple[int, int]) -> np.ndarray:
    """Faster R-CNN RPN anchors (scales x ratios) on one grid.

    Args:
        feature_size: ``(height, width)`` of the feature map.
        stride: pixels between neighbouring cells in the input image.
        scales: anchor sides in pixels (``sqrt(w * h)``).
        ratios: width / height ratios.
        image_size: ``(height, width)`` of the input image in pixels (to normalise).

    Returns:
        float32 ``[H * W * len(scales) * len(ratios), 4]`` normalised corner boxes,
        ordered scale-major within a cell.
    """
    if stride <= 0 or not scales or min(scales) <= 0 or not ratios or min(ratios) <= 0:
        raise ConfigError(
            f"rpn_anchors needs positive stride, scales and ratios. Received: stride={stride}, "
            f"scales={list(scales)}, ratios={list(ratios)}"
        )
    fh, fw = int(feature_size[0]), int(feature_size[1])
    ih, iw = float(image_size[0]), float(image_size[1])
    shapes_px = _cell_shapes(scales, ratios)  # [A, 2] (w, h) in pixels
    cy = (np.arange(fh, dtype=np.float32) + 0.5) * stride
    cx = (np.arange(fw, dtype=np.float32) + 0.5) * stride
    cy, cx = np.meshgrid(cy, cx, indexing="ij")
    cx, cy = cx[:, :, None], cy[:, :, None]
    w, h = shapes_px[None, None, :, 0], shapes_px[None, None, :, 1]
    boxes = np.stack(np.broadcast_arrays((cx - w / 2) / iw, (cy - h / 2) / ih,
                                         (cx + w / 2) / iw, (cy + h / 2) / ih), -1)
    return boxes.reshape(-1, 4).astype(np.float32)
