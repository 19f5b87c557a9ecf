"""Face alignment: 5-point similarity transform to a canonical template.

The one alignment used by training (teacher targets), the teacher-embedding tool and
inference. Uniface Sec. III-E.2 computes the mimic target ``g(x_i)`` on "the face
region cropped and aligned from the original image"; this module produces ``x_i``.

The template is the common 112x112 five-point template (left eye, right eye, nose
tip, left and right mouth corners in image left/right order, the ``mtfl5`` order of
``data/landmarks.py``), in pixel-index coordinates (pixel centres at integers, the
``cv2.warpAffine`` convention). Non-square crops keep its scale (set by the height)
and centre it horizontally: at 112x96 (height x width) this is the 96x112 template
of Wen et al.'s alignment code used by SphereFace, Center Loss and MTFR (Sec. 4.4),
i.e. the square one shifted 8 px left. Sizes are an int (square) or ``(height,
width)``.

The transform is the least-squares similarity (rotation, uniform scale,
translation; no reflection) -- Umeyama's solution, in closed form so it runs in
graph, batched, on builtin ops. Warping samples with ``ops.roi.bilinear_sample``;
pixels mapped from outside the image are 0.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.ops.roi import bilinear_sample

TEMPLATE_SIZE = 112
# (x, y) pixel-index coordinates in a 112x112 crop.
TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    np.float32,
)


def crop_shape(output_size) -> tuple:
    """``(height, width)`` of an int (square) or ``(height, width)`` output size.

    Raises:
        ConfigError: a side below 8 or a malformed size.
    """
    try:
        hw = (int(output_size), int(output_size)) if np.ndim(output_size) == 0 else tuple(int(v) for v in output_size)
    except (TypeError, ValueError):
        raise ConfigError(f"output_size must be an int or (height, width). Received: output_size={output_size!r}") from None
    if len(hw) != 2 or min(hw) < 8:
        raise ConfigError(f"output_size must be >= 8 (an int or (height, width)). Received: output_size={output_size!r}")
    return hw


def template(output_size=TEMPLATE_SIZE) -> np.ndarray:
    """The 5-point template of an ``output_size`` crop (int: square; or ``(height, width)``), ``[5, 2]`` pixels."""
    h, w = crop_shape(output_size)
    s = float(h) / TEMPLATE_SIZE
    # Scale about pixel-index space: centre (i + 0.5) scales, then back to index.
    pts = (TEMPLATE_112 + 0.5) * s - 0.5
    pts[:, 0] += (w - h) / 2.0
    return pts.astype(np.float32)


def similarity_transform(src, dst):
    """Least-squares similarity mapping ``src`` points onto ``dst`` points.

    Args:
        src: float ``[..., K, 2]``.
        dst: float ``[..., K, 2]`` (broadcast with ``src``).

    Returns:
        float ``[..., 2, 3]`` matrix ``M`` with ``dst ~= M @ [x, y, 1]``.
        A degenerate ``src`` (all points equal) gives a pure translation.
    """
    src = tf.convert_to_tensor(src, tf.float32)
    dst = tf.convert_to_tensor(dst, tf.float32)
    src, dst = src + tf.zeros_like(dst), dst + tf.zeros_like(src)
    ms = tf.reduce_mean(src, axis=-2, keepdims=True)
    md = tf.reduce_mean(dst, axis=-2, keepdims=True)
    s = src - ms
    d = dst - md
    norm = tf.reduce_sum(s * s, axis=[-2, -1])
    a = tf.reduce_sum(s[..., 0] * d[..., 0] + s[..., 1] * d[..., 1], axis=-1)
    b = tf.reduce_sum(s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0], axis=-1)
    safe = norm > 1e-12
    a = tf.where(safe, a / tf.where(safe, norm, 1.0), 1.0)
    b = tf.where(safe, b / tf.where(safe, norm, 1.0), 0.0)
    msx, msy = ms[..., 0, 0], ms[..., 0, 1]
    tx = md[..., 0, 0] - (a * msx - b * msy)
    ty = md[..., 0, 1] - (b * msx + a * msy)
    row0 = tf.stack([a, -b, tx], axis=-1)
    row1 = tf.stack([b, a, ty], axis=-1)
    return tf.stack([row0, row1], axis=-2)


def invert_similarity(matrix):
    """Inverse of a ``[..., 2, 3]`` similarity (or any invertible affine) matrix."""
    m = tf.convert_to_tensor(matrix, tf.float32)
    a, b, tx = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    c, d, ty = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    det = a * d - b * c
    det = tf.where(tf.abs(det) > 1e-12, det, 1e-12)
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    itx = -(ia * tx + ib * ty)
    ity = -(ic * tx + id_ * ty)
    return tf.stack([tf.stack([ia, ib, itx], -1), tf.stack([ic, id_, ity], -1)], -2)


def alignment_matrices(landmarks, image_size, output_size: int = TEMPLATE_SIZE):
    """Similarity matrices from image pixels to aligned-crop pixels.

    Args:
        landmarks: float ``[..., 5, 2]`` normalised (x, y) in the ``mtfl5`` order.
        image_size: ``(height, width)`` of the image in pixels.
        output_size: side of the square aligned crop, or ``(height, width)``.

    Returns:
        float ``[..., 2, 3]`` matrices (``cv2.warpAffine`` convention). Non-square crops keep its scale (set by the height)
and centre it horizontally: at 112x96 (height x width) this is the 96x112 template
of Wen et al.'s alignment code used by SphereFace, Center Loss and MTFR (Sec. 4.4),
i.e. the square one shifted 8 px left. Sizes are an int (square) or ``(height,
width)``.
    """
    lm = tf.convert_to_tensor(landmarks, tf.float32)
    if lm.shape[-2] is not None and lm.shape[-2] != 5:
        raise ConfigError(f"Alignment needs 5 landmarks (mtfl5). Received: landmarks.shape={tuple(lm.shape)}")
    h = tf.cast(image_size[0], tf.float32)
    w = tf.cast(image_size[1], tf.float32)
    px = tf.stack([lm[..., 0] * w - 0.5, lm[..., 1] * h - 0.5], axis=-1)
    return similarity_transform(px, template(output_size))


def align_faces(images, landmarks, output_size: int = TEMPLATE_SIZE):
    """Aligned face crops: every face of every image warped onto the template.

    Args:
        images: float ``[batch, H, W, C]``.
        landmarks: float ``[batch, N, 5, 2]`` normalised (x, y), mtfl5 order.
        output_size: side S of square crops (112 for the standard template), or
            ``(height, width)`` (MTFR: ``(112, 96)``).

    Returns:
        float ``[batch, N, S, S, C]`` (``[batch, N, height, width, C]``).
    """
    images = tf.convert_to_tensor(images, tf.float32)
    landmarks = tf.convert_to_tensor(landmarks, tf.float32)
    shape = tf.shape(images)
    b, n = tf.shape(landmarks)[0], tf.shape(landmarks)[1]
    oh, ow = crop_shape(output_size)
    inv = invert_similarity(alignment_matrices(landmarks, (shape[1], shape[2]), (oh, ow)))  # [B, N, 2, 3]
    v, u = tf.meshgrid(tf.range(oh, dtype=tf.float32), tf.range(ow, dtype=tf.float32), indexing="ij")
    out_px = tf.stack([tf.reshape(u, [-1]), tf.reshape(v, [-1]), tf.ones([oh * ow])], axis=0)  # [3, H*W]
    src = tf.einsum("bnij,jp->bnpi", inv, out_px)  # [B, N, S*S, 2]
    samples = bilinear_sample(images, tf.reshape(src, tf.stack([b, -1, 2])))
    c = images.shape[-1] if images.shape[-1] is not None else shape[3]
    return tf.reshape(samples, tf.stack([b, n, oh, ow, c]))
