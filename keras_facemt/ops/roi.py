"""Region-of-interest feature crops: a TF path and a builtin-op (mobile) path.

Both paths crop ``[batch, N, 4]`` normalised (xmin, ymin, xmax, ymax) boxes out of a
``[batch, H, W, C]`` feature map and bilinearly resample each to ``out_h x out_w``
(RoIAlign-style sampling with one sample per bin: Uniface Sec. III-D's "ROI pooling"
of the face region to 48x48 and of landmark regions to 14x14):

* ``method="crop_and_resize"``: ``tf.image.crop_and_resize``, for training and the
  SavedModel / ONNX path. TFLite only has it as a select-TF op.
* ``method="gather"``: the same sampling grid evaluated with ``tf.gather`` on a
  flattened feature map and explicit bilinear weights, i.e. builtin TFLite ops only.

The two agree to float rounding: ``gather`` reproduces ``crop_and_resize``'s
convention (box corner 0 and 1 sample the first and last pixel centres; sample
points outside the map read 0). The gather path's geometry runs under
``ops.precision.float32_scope``, so int8 exports keep it in float32.

``bilinear_sample`` is also the sampler behind ``ops.align`` (face alignment).
"""

from __future__ import annotations

from typing import Tuple

import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.ops import boxes as box_ops
from keras_facemt.ops.precision import float32_scope

ROI_METHODS = ("crop_and_resize", "gather")


def bilinear_sample(features, coords):
    """Bilinear interpolation at arbitrary points, builtin ops only.

    Args:
        features: float ``[batch, H, W, C]``.
        coords: float ``[batch, P, 2]`` (x, y) in pixel-index units (pixel centres at
            integers). Points outside ``[0, W-1] x [0, H-1]`` read 0.

    Returns:
        float ``[batch, P, C]``.
    """
    features = tf.convert_to_tensor(features, tf.float32)
    coords = tf.convert_to_tensor(coords, tf.float32)
    shape = tf.shape(features)
    b, h, w, c = shape[0], shape[1], shape[2], shape[3]
    hf = tf.cast(h, tf.float32)
    wf = tf.cast(w, tf.float32)
    x = coords[..., 0]
    y = coords[..., 1]
    inside = (x >= 0) & (x <= wf - 1) & (y >= 0) & (y <= hf - 1)
    x0 = tf.floor(x)
    y0 = tf.floor(y)
    ax = x - x0
    ay = y - y0
    x0i = tf.clip_by_value(tf.cast(x0, tf.int32), 0, w - 1)
    y0i = tf.clip_by_value(tf.cast(y0, tf.int32), 0, h - 1)
    x1i = tf.minimum(x0i + 1, w - 1)
    y1i = tf.minimum(y0i + 1, h - 1)
    flat = tf.reshape(features, [-1, c])
    # expand_dims rather than [..., None]: TFLite's builtin StridedSlice has no new_axis_mask.
    base = tf.expand_dims(tf.range(b) * h * w, 1)

    def at(yi, xi):
        return tf.gather(flat, base + yi * w + xi)

    ax = tf.expand_dims(ax, -1)
    ay = tf.expand_dims(ay, -1)
    top = at(y0i, x0i) * (1 - ax) + at(y0i, x1i) * ax
    bottom = at(y1i, x0i) * (1 - ax) + at(y1i, x1i) * ax
    out = top * (1 - ay) + bottom * ay
    return out * tf.expand_dims(tf.cast(inside, tf.float32), -1)


def roi_sampling_grid(rois, output_size: Tuple[int, int], feature_size):
    """Pixel-index sample points of each ROI bin, in ``crop_and_resize``'s convention.

    Args:
        rois: float ``[batch, N, 4]`` normalised corner boxes.
        output_size: ``(out_h, out_w)``.
        feature_size: ``(H, W)`` of the feature map (ints or scalar tensors).

    Returns:
        float ``[batch, N, out_h, out_w, 2]`` (x, y).
    """
    oh, ow = int(output_size[0]), int(output_size[1])
    rois = tf.convert_to_tensor(rois, tf.float32)
    hm1 = tf.cast(feature_size[0], tf.float32) - 1.0
    wm1 = tf.cast(feature_size[1], tf.float32) - 1.0
    x0, y0, x1, y1 = [tf.expand_dims(rois[..., i], -1) for i in range(4)]  # [B, N, 1]

    def axis(lo, hi, n, scale):
        if n == 1:
            return (lo + hi) * 0.5 * scale
        t = tf.cast(tf.range(n), tf.float32) / float(n - 1)
        return (lo + (hi - lo) * t) * scale  # [B, N, n]

    ys = axis(y0, y1, oh, hm1)
    xs = axis(x0, x1, ow, wm1)
    gy = tf.broadcast_to(tf.expand_dims(ys, 3), tf.concat([tf.shape(ys), [ow]], 0))
    gx = tf.broadcast_to(tf.expand_dims(xs, 2), tf.concat([tf.shape(xs)[:2], [oh, ow]], 0))
    return tf.stack([gx, gy], axis=-1)


def crop_rois(features, rois, output_size: Tuple[int, int], method: str = "crop_and_resize"):
    """Crops and resizes ROIs from a feature map.

    Args:
        features: float ``[batch, H, W, C]``.
        rois: float ``[batch, N, 4]`` normalised (xmin, ymin, xmax, ymax).
        output_size: ``(out_h, out_w)``.
        method: ``"crop_and_resize"`` or ``"gather"`` (builtin TFLite ops).

    Returns:
        float ``[batch, N, out_h, out_w, C]``.

    Raises:
        ConfigError: for an unknown method or a non-positive output size.
    """
    if method not in ROI_METHODS:
        raise ConfigError(f"ROI method must be one of {ROI_METHODS}. Received: method={method!r}")
    if len(output_size) != 2 or min(int(s) for s in output_size) < 1:
        raise ConfigError(f"output_size must be two positive ints. Received: output_size={tuple(output_size)}")
    oh, ow = int(output_size[0]), int(output_size[1])
    features = tf.convert_to_tensor(features, tf.float32)
    rois = tf.convert_to_tensor(rois, tf.float32)
    fshape = tf.shape(features)
    b, n = tf.shape(rois)[0], tf.shape(rois)[1]
    c = features.shape[-1] if features.shape[-1] is not None else fshape[3]
    if method == "crop_and_resize":
        flat = tf.reshape(box_ops.to_tf_order(rois), [-1, 4])
        box_idx = tf.repeat(tf.range(b), n)
        crops = tf.image.crop_and_resize(features, flat, box_idx, (oh, ow))
        return tf.reshape(crops, tf.stack([b, n, oh, ow, c]))
    with float32_scope():  # sampling positions and weights: geometry, kept float in int8 exports
        grid = roi_sampling_grid(rois, (oh, ow), (fshape[1], fshape[2]))
        samples = bilinear_sample(features, tf.reshape(grid, tf.stack([b, -1, 2])))
        return tf.reshape(samples, tf.stack([b, n, oh, ow, c]))


def boxes_around_points(points, face_boxes, scale: float):
    """Square-ish ROIs centred on points, sized relative to their face box.

    Uniface Sec. III-D pools "the adjacent areas of each landmark"; the region is a
    box of ``scale * face width`` by ``scale * face height`` centred on the point.

    Args:
        points: float ``[batch, N, P, 2]``.
        face_boxes: float ``[batch, N, 4]``.
        scale: ROI side as a fraction of the face box side.

    Returns:
        float ``[batch, N, P, 4]`` corner boxes (not clipped: out-of-image bins read 0).
    """
    with float32_scope():
        points = tf.convert_to_tensor(points, tf.float32)
        face_boxes = tf.convert_to_tensor(face_boxes, tf.float32)
        half_w = tf.expand_dims(face_boxes[..., 2] - face_boxes[..., 0], -1) * scale / 2
        half_h = tf.expand_dims(face_boxes[..., 3] - face_boxes[..., 1], -1) * scale / 2
        x, y = points[..., 0], points[..., 1]
        return tf.stack([x - half_w, y - half_h, x + half_w, y + half_h], axis=-1)
