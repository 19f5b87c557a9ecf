"""TFN's region subnets after the feature-fused block (Lin et al., Sec. IV-A, Fig. 3):
two fully connected layers (VGG-16's fc6 / fc7 shape) and the decision layer.

* detection: face / background logits and 4 box deltas per ROI (Eq. 3);
* landmarks: 136 values, the 68 ibug points in Eq. 5's box-relative encoding;
* attributes: age over 101 classes, gender (2), ethnicity (3) logits (Eq. 6);
* shared FCs (ORMM / TRMM of Sec. V-B): several tasks' decision layers behind one
  pair of FCs (``build_shared_head``);
* heat-map landmarks (Sec. VI-A, Fig. 9): four 3x3 convolutions on the fused ROI
  features, 2x2 stride-2 deconvolutions up to ``upsample`` times the ROI size, a 1x1
  convolution to 68 maps whose per-pixel softmax locates each point.

Each subnet is a functional model from ``[batch, R, S, S, C]`` ROI features, so the
training and the deployable graphs call the same weights for any number of ROIs.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras

from keras_facemt.models.tfn.config import AGE_CLASSES, ETHNICITY_CLASSES, GENDER_CLASSES, NUM_LANDMARKS


def _trunk(x, units: Sequence[int], prefix: str):
    s = x.shape
    x = keras.layers.Reshape((-1, s[2] * s[3] * s[4]), name=f"{prefix}_flatten")(x)
    for i, u in enumerate(units, start=6):
        x = keras.layers.Dense(int(u), activation="relu", name=f"{prefix}_fc{i}")(x)
    return x


def _small_init():
    return keras.initializers.RandomNormal(stddev=0.001)


def _detection_decisions(x):
    return {"cls_logits": keras.layers.Dense(2, name="det_cls")(x),
            "box_deltas": keras.layers.Dense(4, kernel_initializer=_small_init(), name="det_reg")(x)}


def _landmark_decision(x):
    x = keras.layers.Dense(NUM_LANDMARKS * 2, kernel_initializer=_small_init(), name="landmark_offsets")(x)
    return keras.layers.Reshape((-1, NUM_LANDMARKS, 2), name="landmark_points")(x)


def _attribute_decisions(x):
    return {"age_logits": keras.layers.Dense(AGE_CLASSES, name="age")(x),
            "gender_logits": keras.layers.Dense(GENDER_CLASSES, name="gender")(x),
            "ethnicity_logits": keras.layers.Dense(ETHNICITY_CLASSES, name="ethnicity")(x)}


def build_detection_head(roi_size: int, channels: int, units: Sequence[int], name: str = "detection_head"):
    """``{"cls_logits": [batch, R, 2], "box_deltas": [batch, R, 4]}``."""
    inp = keras.Input((None, roi_size, roi_size, channels), name="roi_features")
    return keras.Model(inp, _detection_decisions(_trunk(inp, units, "det")), name=name)


def build_landmark_head(roi_size: int, channels: int, units: Sequence[int], name: str = "landmark_head"):
    """``[batch, R, 68, 2]`` Eq. 5 offsets of the 68 points relative to each ROI."""
    inp = keras.Input((None, roi_size, roi_size, channels), name="roi_features")
    return keras.Model(inp, _landmark_decision(_trunk(inp, units, "landmark")), name=name)


def build_attribute_head(roi_size: int, channels: int, units: Sequence[int], name: str = "attribute_head"):
    """``{"age_logits": [batch, R, 101], "gender_logits": [.., 2], "ethnicity_logits": [.., 3]}``."""
    inp = keras.Input((None, roi_size, roi_size, channels), name="roi_features")
    return keras.Model(inp, _attribute_decisions(_trunk(inp, units, "attribute")), name=name)


def build_shared_head(roi_size: int, channels: int, units: Sequence[int], tasks: Sequence[str], prefix: str,
                      name: str):
    """Several tasks' decision layers behind ONE pair of FCs (the comparison models of Sec. V-B).

    ORMM adds the landmark and attribute decision layers "behind the original fully
    connected layers" of the detection subnet (``tasks`` = all three); TRMM puts them
    on one second region subnet (``tasks`` = landmarks, attributes).

    Returns:
        A model from ``[batch, R, S, S, C]`` to the union of the per-task heads' outputs:
        ``cls_logits`` / ``box_deltas`` (detection), ``landmarks`` ``[batch, R, 68, 2]``,
        ``age_logits`` / ``gender_logits`` / ``ethnicity_logits`` (attributes). The
        decision layers keep the per-task heads' names.
    """
    inp = keras.Input((None, roi_size, roi_size, channels), name="roi_features")
    x = _trunk(inp, units, prefix)
    out = {}
    if "detection" in tasks:
        out.update(_detection_decisions(x))
    if "landmarks" in tasks:
        out["landmarks"] = _landmark_decision(x)
    if "attributes" in tasks:
        out.update(_attribute_decisions(x))
    return keras.Model(inp, out, name=name)


def build_heatmap_head(roi_size: int, channels: int, encoder_channels: int, upsample: int,
                       name: str = "landmark_heatmap_head"):
    """``[batch, R, S*u, S*u, 68]`` heat-map logits (a softmax over each map's pixels)."""
    s = roi_size
    inp = keras.Input((None, s, s, channels), name="roi_features")
    x = inp
    # TimeDistributed runs the 2-D layers on each ROI of the [batch, R, ...] stack.
    for i in range(4):
        x = keras.layers.TimeDistributed(keras.layers.Conv2D(encoder_channels, 3, padding="same", activation="relu"),
                                         name=f"heatmap_enc{i}")(x)
    width = encoder_channels
    for i in range(int(math.log2(upsample))):
        width = max(NUM_LANDMARKS, width // 2)
        x = keras.layers.TimeDistributed(keras.layers.Conv2DTranspose(width, 2, strides=2, activation="relu"),
                                         name=f"heatmap_deconv{i}")(x)
    x = keras.layers.TimeDistributed(keras.layers.Conv2D(NUM_LANDMARKS, 1), name="heatmap_logits")(x)
    return keras.Model(inp, x, name=name)
