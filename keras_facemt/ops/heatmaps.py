"""Landmark heat maps: rendering points as maps and reading points back from maps.

* ``render_landmark_heatmaps``: anti-aliased disc maps, one channel per landmark
  (iFAN's landmark re-encoder input, Li et al., MM'17 Sec. 3.2).
* ``point_pixel_index``: the flat pixel index each point falls in, the class label
  of the per-pixel softmax over a landmark's map (TFN's heat-map landmark subnet,
  Lin et al., TCYB'19 Sec. VI-A: "per-pixel softmax and a multinomial
  cross-entropy").
* ``heatmap_expected_points``: the softmax-weighted mean pixel centre of each map
  (a soft argmax), how such a subnet's maps become points.

All are plain tensor ops (elementwise, softmax, matmul) that export to TFLite builtin
ops and ONNX.
"""

from __future__ import annotations

from keras import ops


def render_landmark_heatmaps(points, size, radius):
    """Renders disc heat maps of landmarks with plain tensor ops.

    A pixel is 1 when its centre lies within ``radius`` pixels of a landmark, 0 when
    it lies more than about half a pixel outside, with a linear edge in between (the
    paper's hot-point discs, anti-aliased). The edge keeps the map a continuous
    function of the points: with a hard threshold, a point that moves by float
    rounding (another runtime, another kernel) can flip a boundary pixel. The points
    get no gradient through the maps, and the maps export to TFLite / ONNX as
    elementwise ops.

    Args:
        points: ``[batch, K, 2]`` normalised (x, y) coordinates in [0, 1].
        size: output side S in pixels.
        radius: disc radius in pixels.

    Returns:
        float32 ``[batch, S, S, K]`` in [0, 1].
    """
    points = ops.stop_gradient(ops.cast(points, "float32"))
    centres = (ops.arange(size, dtype="float32") + 0.5) / float(size)  # [S]
    x = points[:, :, 0]
    y = points[:, :, 1]
    dx = (ops.reshape(centres, (1, 1, size, 1)) - x[:, None, None, :]) * float(size)  # [B, 1, S, K]
    dy = (ops.reshape(centres, (1, size, 1, 1)) - y[:, None, None, :]) * float(size)  # [B, S, 1, K]
    # (r**2 - d**2) / (2 r) ~ r - d near the rim: a one-pixel ramp centred on it, with no
    # square root (0.5 exactly at distance r).
    r = float(radius)
    edge = (r * r - (ops.square(dx) + ops.square(dy))) * (0.5 / r) + 0.5
    return ops.clip(edge, 0.0, 1.0)


def point_pixel_index(points, height, width):
    """Row-major index of the pixel each point falls in (clamped to the map).

    Args:
        points: ``[..., K, 2]`` (x, y) normalised to the map (0 and 1 are its edges).
        height, width: map size in pixels.

    Returns:
        int32 ``[..., K]`` in ``[0, height * width)``.
    """
    points = ops.cast(points, "float32")
    col = ops.clip(ops.floor(points[..., 0] * float(width)), 0, width - 1)
    row = ops.clip(ops.floor(points[..., 1] * float(height)), 0, height - 1)
    return ops.cast(row * float(width) + col, "int32")


def heatmap_expected_points(logits):
    """Soft argmax: the expected pixel centre of each map under its per-pixel softmax.

    Args:
        logits: ``[batch, H, W, K]`` per-landmark map logits (a softmax over the
            ``H * W`` pixels of each channel).

    Returns:
        float32 ``[batch, K, 2]`` (x, y) normalised to the map.
    """
    logits = ops.cast(logits, "float32")
    h, w, k = int(logits.shape[1]), int(logits.shape[2]), int(logits.shape[3])
    flat = ops.reshape(ops.transpose(logits, (0, 3, 1, 2)), (-1, k, h * w))
    prob = ops.softmax(flat, axis=-1)  # [B, K, HW]
    xs = (ops.arange(w, dtype="float32") + 0.5) / float(w)
    ys = (ops.arange(h, dtype="float32") + 0.5) / float(h)
    grid = ops.stack([ops.tile(xs, (h,)), ops.repeat(ys, w)], axis=-1)  # [HW, 2], row-major
    return ops.matmul(prob, grid)

