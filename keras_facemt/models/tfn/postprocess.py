"""In-graph box refinement and decoding of TFN's subnets (Lin et al., Sec. IV-A).

* ``RefineBoxes``: the detection subnet's deltas applied to its ROIs (the boxes the
  landmark and attribute subnets read in the two-step refinement), without gradient.
* ``DetectionPostprocess``: face probabilities, refined boxes and the second NMS pass
  of the deployable graph (``ops.nms.batched_nms``, builtin ops), padded.
* ``LandmarkDecode``: Eq. 5 offsets -> points; ``HeatmapLandmarkDecode``: heat maps
  -> points (soft argmax inside each ROI); ``AgeExpectation``: the expectation of the
  101-way age softmax in years (padded detection rows are zeroed by
  ``layers.mask_rows.MaskRows``).

Detection deltas use Fast R-CNN's target normalisation (centre / 10, log-size / 5,
i.e. ``ops.boxes`` variances (0.1, 0.2)); the RPN uses [42]'s plain encoding.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_facemt.models.tfn.landmark_encoding import decode_landmarks
from keras_facemt.ops import boxes as box_ops
from keras_facemt.ops import nms as nms_ops
from keras_facemt.ops.heatmaps import heatmap_expected_points

DET_VARIANCES = (0.1, 0.2)


@keras.saving.register_keras_serializable(package="keras_facemt")
class RefineBoxes(keras.layers.Layer):
    """``[batch, R, 4]`` ROIs + ``[batch, R, 4]`` deltas -> refined, clipped boxes (rows ``start:``).

    Args:
        start: first ROI row to refine (the training graph refines only the face
            samples appended after the proposals).
    """

    def __init__(self, start=0, **kwargs):
        super().__init__(**kwargs)
        self.start = int(start)

    def call(self, rois, deltas):
        rois = tf.convert_to_tensor(rois, tf.float32)[:, self.start:]
        deltas = tf.stop_gradient(tf.cast(deltas, tf.float32))[:, self.start:]
        boxes = box_ops.clip_boxes(box_ops.decode_boxes(deltas, rois, DET_VARIANCES))
        # Padded (empty) ROIs stay empty, so losses keep ignoring them.
        keep = tf.cast(box_ops.area(rois) > 0, tf.float32)
        return tf.stop_gradient(boxes * tf.expand_dims(keep, -1))

    def compute_output_shape(self, rois_shape, deltas_shape):
        r = rois_shape[1]
        return (rois_shape[0], None if r is None else r - self.start, 4)

    def get_config(self):
        config = super().get_config()
        config.update(start=self.start)
        return config


@keras.saving.register_keras_serializable(package="keras_facemt")
class DetectionPostprocess(keras.layers.Layer):
    """Detection subnet outputs on the proposals -> the final detections.

    Args:
        max_detections: D, padded output length.
        score_threshold: minimum face probability.
        iou_threshold: NMS threshold.

    Call arguments:
        rois: ``[batch, P, 4]`` proposals; cls_logits: ``[batch, P, 2]``;
        box_deltas: ``[batch, P, 4]``.

    Returns:
        Tuple ``(boxes [batch, D, 4], scores [batch, D], count int32 [batch],
        valid float32 [batch, D], rois [batch, D, 4])`` -- ``rois`` are the kept
        detections' proposals (what a one-step model's other subnets read).
    """

    def __init__(self, max_detections=50, score_threshold=0.5, iou_threshold=0.3, **kwargs):
        super().__init__(**kwargs)
        self.max_detections = int(max_detections)
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        nms_ops.check_nms_args(self.max_detections, self.iou_threshold, self.score_threshold)

    def call(self, rois, cls_logits, box_deltas):
        rois = tf.convert_to_tensor(rois, tf.float32)
        valid_roi = tf.cast(box_ops.area(rois) > 0, tf.float32)
        scores = tf.nn.softmax(tf.cast(cls_logits, tf.float32), axis=-1)[..., 1] * valid_roi
        boxes = box_ops.clip_boxes(box_ops.decode_boxes(tf.cast(box_deltas, tf.float32), rois, DET_VARIANCES))
        det = nms_ops.batched_nms(boxes, scores, self.max_detections, self.iou_threshold, self.score_threshold)
        kept_rois = nms_ops.gather_detections(rois, det)
        return det.boxes, det.scores, det.num_detections, tf.cast(det.valid, tf.float32), kept_rois

    def compute_output_spec(self, rois, cls_logits, box_deltas):
        b, d = rois.shape[0], self.max_detections
        return (keras.KerasTensor((b, d, 4)), keras.KerasTensor((b, d)), keras.KerasTensor((b,), dtype="int32"),
                keras.KerasTensor((b, d)), keras.KerasTensor((b, d, 4)))

    def get_config(self):
        config = super().get_config()
        config.update(max_detections=self.max_detections, score_threshold=self.score_threshold,
                      iou_threshold=self.iou_threshold)
        return config


@keras.saving.register_keras_serializable(package="keras_facemt")
class LandmarkDecode(keras.layers.Layer):
    """Eq. 5 inverse: ``[batch, D, K, 2]`` offsets and ``[batch, D, 4]`` boxes -> points."""

    def call(self, offsets, boxes):
        return decode_landmarks(tf.cast(offsets, tf.float32), boxes)

    def compute_output_shape(self, offsets_shape, boxes_shape):
        return tuple(offsets_shape)


@keras.saving.register_keras_serializable(package="keras_facemt")
class HeatmapLandmarkDecode(keras.layers.Layer):
    """``[batch, D, H, W, K]`` heat-map logits and ``[batch, D, 4]`` ROIs -> ``[batch, D, K, 2]`` points."""

    def call(self, logits, boxes):
        logits = tf.cast(logits, tf.float32)
        shape = tf.shape(logits)
        h, w, k = logits.shape[2], logits.shape[3], logits.shape[4]
        local = heatmap_expected_points(tf.reshape(logits, [-1, h, w, k]))  # [B*D, K, 2] in the ROI
        local = tf.reshape(local, tf.stack([shape[0], shape[1], k, 2]))
        boxes = tf.expand_dims(tf.convert_to_tensor(boxes, tf.float32), -2)
        return boxes[..., 0:2] + local * (boxes[..., 2:4] - boxes[..., 0:2])

    def compute_output_shape(self, logits_shape, boxes_shape):
        return (logits_shape[0], logits_shape[1], logits_shape[4], 2)


@keras.saving.register_keras_serializable(package="keras_facemt")
class AgeExpectation(keras.layers.Layer):
    """``[..., 101]`` age logits -> ``[...]`` expected age in years (``sum_a a * p(a)``)."""

    def call(self, logits):
        logits = tf.cast(logits, tf.float32)
        years = tf.range(tf.shape(logits)[-1], dtype=tf.float32)
        return tf.reduce_sum(tf.nn.softmax(logits, axis=-1) * years, axis=-1)

    def compute_output_shape(self, logits_shape):
        return tuple(logits_shape[:-1])
