"""TFN's multilayer assistant RPN (Lin et al., Sec. IV-A.2, Eq. 2).

"With 256 channels and 3x3 kernel size, two convolutional layers are grafted on the
top layers of the corresponding stacks": one 3x3 convolution on conv4_3 (anchor
sides 16, 32, 64 px) and one on conv5_3 (128, 256, 512 px), ratios 0.5, 1, 2, i.e.
9 anchors per cell per level. Each head predicts 2 face / background logits and 4
box deltas per anchor, parameterised as in Faster R-CNN [42] (``ops.boxes`` with
variances 1).

``ProposalLayer`` turns the head outputs into proposals inside the graph: softmax,
decoding, clipping, the ``pre_nms`` best anchors (``TOPK_V2``), then NMS
(``ops.nms.batched_nms``, builtin ``NON_MAX_SUPPRESSION_V4``) down to ``proposals``
padded boxes. Proposals carry no gradient (as in the approximate joint training of
[42]).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from keras_facemt.ops import anchors as anchor_ops
from keras_facemt.ops import boxes as box_ops
from keras_facemt.ops import nms as nms_ops

RPN_NAME = "rpn_head"
RPN_VARIANCES = (1.0, 1.0)


def build_rpn_head(level_shapes: Sequence[Tuple[int, int, int]], anchors_per_cell: int, channels: int,
                   name: str = RPN_NAME) -> keras.Model:
    """The RPN head over the RPN levels.

    Args:
        level_shapes: ``(H, W, C)`` of each RPN level's feature map.
        anchors_per_cell: scales x ratios per cell (9).
        channels: width of each level's 3x3 convolution (256).

    Returns:
        ``keras.Model`` from the list of level maps to ``{"cls_logits": [batch, A, 2],
        "box_deltas": [batch, A, 4]}``, anchors in ``model_anchors`` order.
    """
    inputs, cls, reg = [], [], []
    for i, (h, w, c) in enumerate(level_shapes):
        x = inp = keras.Input((h, w, c), name=f"level_{i}")
        inputs.append(inp)
        x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu", name=f"rpn_conv_{i}")(x)
        logits = keras.layers.Conv2D(anchors_per_cell * 2, 1, name=f"rpn_cls_{i}")(x)
        deltas = keras.layers.Conv2D(anchors_per_cell * 4, 1, kernel_initializer=keras.initializers.RandomNormal(
            stddev=0.001), name=f"rpn_reg_{i}")(x)
        cls.append(keras.layers.Reshape((h * w * anchors_per_cell, 2), name=f"rpn_cls_flat_{i}")(logits))
        reg.append(keras.layers.Reshape((h * w * anchors_per_cell, 4), name=f"rpn_reg_flat_{i}")(deltas))
    cat = (lambda xs, n: keras.layers.Concatenate(axis=1, name=n)(xs)) if len(cls) > 1 else (lambda xs, n: xs[0])
    return keras.Model(inputs, {"cls_logits": cat(cls, "rpn_cls_logits"), "box_deltas": cat(reg, "rpn_box_deltas")},
                       name=name)


def model_anchors(image_size: int, feature_sizes: Sequence[Tuple[int, int]], strides: Sequence[float],
                  scales: Sequence[Sequence[float]], ratios: Sequence[float]) -> np.ndarray:
    """``[A, 4]`` normalised anchors of the RPN rows, level by level (``ops.anchors.rpn_anchors``)."""
    return np.concatenate([anchor_ops.rpn_anchors(fs, st, sc, ratios, (image_size, image_size))
                           for fs, st, sc in zip(feature_sizes, strides, scales)], 0)


@keras.saving.register_keras_serializable(package="keras_facemt")
class ProposalLayer(keras.layers.Layer):
    """RPN outputs -> proposals (decode, top-N, NMS), padded.

    Args:
        image_size: input side in pixels.
        feature_sizes: ``(H, W)`` of each RPN level.
        strides: stride of each RPN level in pixels.
        scales: anchor sides per level in pixels.
        ratios: anchor width / height ratios.
        pre_nms: anchors kept by score before NMS.
        proposals: P, boxes kept after NMS.
        iou_threshold: NMS threshold.

    Call arguments:
        cls_logits: ``[batch, A, 2]``; box_deltas: ``[batch, A, 4]``.

    Returns:
        Tuple ``(boxes [batch, P, 4], scores [batch, P])``, normalised, zeros in padding.
    """

    def __init__(self, image_size, feature_sizes, strides, scales, ratios, pre_nms=2000, proposals=300,
                 iou_threshold=0.7, **kwargs):
        super().__init__(**kwargs)
        self.image_size = int(image_size)
        self.feature_sizes = [list(map(int, s)) for s in feature_sizes]
        self.strides = [float(s) for s in strides]
        self.scales = [[float(v) for v in s] for s in scales]
        self.ratios = [float(r) for r in ratios]
        self.pre_nms = int(pre_nms)
        self.proposals = int(proposals)
        self.iou_threshold = float(iou_threshold)
        nms_ops.check_nms_args(self.proposals, self.iou_threshold, 0.0)
        self.anchors = model_anchors(self.image_size, self.feature_sizes, self.strides, self.scales, self.ratios)

    def call(self, cls_logits, box_deltas):
        cls_logits = tf.stop_gradient(tf.cast(cls_logits, tf.float32))
        box_deltas = tf.stop_gradient(tf.cast(box_deltas, tf.float32))
        scores = tf.nn.softmax(cls_logits, axis=-1)[..., 1]
        k = min(self.pre_nms, len(self.anchors))
        top_scores, top_idx = tf.math.top_k(scores, k=k)
        deltas = tf.gather(box_deltas, top_idx, axis=1, batch_dims=1)
        anchors = tf.gather(tf.constant(self.anchors), top_idx)
        boxes = box_ops.clip_boxes(box_ops.decode_boxes(deltas, anchors, RPN_VARIANCES))
        det = nms_ops.batched_nms(boxes, top_scores, self.proposals, self.iou_threshold, 0.0)
        return det.boxes, det.scores

    def compute_output_spec(self, cls_logits, box_deltas):
        b = cls_logits.shape[0]
        return keras.KerasTensor((b, self.proposals, 4)), keras.KerasTensor((b, self.proposals))

    def get_config(self):
        config = super().get_config()
        config.update(image_size=self.image_size, feature_sizes=self.feature_sizes, strides=self.strides,
                      scales=self.scales, ratios=self.ratios, pre_nms=self.pre_nms, proposals=self.proposals,
                      iou_threshold=self.iou_threshold)
        return config
