"""Box jitter: the "slight shaking" of face boxes used as training samples.

TFN's stages 3 and 4 (Lin et al., TCYB'19, Sec. IV-C) train the landmark and the
attribute subnets on detection boxes "with a slight shaking", so the subnets see
boxes as imprecise as the detector's. ``shake_boxes`` moves each box's centre by up
to ``shift`` of its size and scales its sides by a factor in
``[1 / (1 + scale), 1 + scale]``, given noise in [-1, 1]; ``random_shake`` draws that
noise from a stateless seed, so a run is reproducible.
"""

from __future__ import annotations

import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.ops import boxes as box_ops


def _check(shift: float, scale: float):
    if not 0.0 <= shift < 0.5 or not 0.0 <= scale < 1.0:
        raise ConfigError(f"Need 0 <= shift < 0.5 and 0 <= scale < 1. Received: shift={shift}, scale={scale}")


def shake_boxes(boxes, noise, shift: float = 0.05, scale: float = 0.1):
    """Moves and rescales boxes by given noise.

    Args:
        boxes: float ``[..., 4]`` corner boxes.
        noise: float ``[..., 4]`` in [-1, 1]: (centre x, centre y, log width, log
            height) perturbations as fractions of their maximum.
        shift: largest centre move as a fraction of the box's width / height.
        scale: largest relative change of a side (``log(1 + scale)`` in log space).

    Returns:
        ``[..., 4]`` shaken boxes (empty boxes stay empty).

    Raises:
        ConfigError: for ``shift`` outside [0, 0.5) or ``scale`` outside [0, 1).
    """
    _check(shift, scale)
    c = box_ops.corners_to_center(boxes)
    n = tf.convert_to_tensor(noise, tf.float32)
    log_scale = tf.math.log(1.0 + float(scale))
    cx = c[..., 0] + n[..., 0] * shift * c[..., 2]
    cy = c[..., 1] + n[..., 1] * shift * c[..., 3]
    w = c[..., 2] * tf.exp(n[..., 2] * log_scale)
    h = c[..., 3] * tf.exp(n[..., 3] * log_scale)
    return box_ops.center_to_corners(tf.stack([cx, cy, w, h], axis=-1))


def random_shake(boxes, seed, shift: float = 0.05, scale: float = 0.1, copies: int = 1):
    """``shake_boxes`` with uniform noise from a stateless seed.

    Args:
        boxes: float ``[batch, F, 4]``.
        seed: int ``[2]`` stateless seed (``tf.random.stateless_uniform``).
        shift, scale: as in ``shake_boxes``.
        copies: shaken copies of every box, concatenated along the face axis.

    Returns:
        ``[batch, F * copies, 4]``; copy ``j`` of face ``f`` is row ``j * F + f``.
    """
    if int(copies) < 1:
        raise ConfigError(f"copies must be >= 1. Received: copies={copies}")
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    tiled = tf.tile(boxes, [1, int(copies), 1])
    noise = tf.random.stateless_uniform(tf.shape(tiled), seed, minval=-1.0, maxval=1.0)
    return shake_boxes(tiled, noise, shift, scale)
