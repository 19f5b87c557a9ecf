"""Uniface inference post-processing (Liao et al., Sec. III-C: "During inference, a
non-maximum suppression will be applied to eliminate redundant boxes").

``UnifacePostprocess`` is an in-graph layer: softmax face scores, anchor-relative
decoding of boxes and 5 landmarks, per-image NMS on builtin ops, padded outputs with
a count. ``detect_faces`` is the host-side entry for arbitrary images: pad to a
square, resize to the model input ("we pad it with 0 to a square and resize it to
300x300", Sec. IV-A), run, and map results back to the original pixels.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_facemt.ops import anchors as anchor_ops
from keras_facemt.ops import boxes as box_ops
from keras_facemt.ops import nms as nms_ops


@keras.saving.register_keras_serializable(package="keras_facemt")
class UnifacePostprocess(keras.layers.Layer):
    """Decodes SSD head outputs and keeps the best non-overlapping faces per image.

    Args:
        feature_sizes: ``(H, W)`` of each bottom-up level.
        anchor_sizes: anchor size per level (fraction of the image side).
        aspect_ratios: anchor width / height ratios.
        variances: encoding variances.
        max_detections: D, padded output length.
        score_threshold: minimum face probability.
        iou_threshold: NMS overlap threshold.

    Call arguments:
        cls_logits: ``[batch, A, 2]``; box_offsets: ``[batch, A, 4]``;
        landmark_offsets: ``[batch, A, 5, 2]``.

    Returns:
        Tuple ``(boxes [batch, D, 4], scores [batch, D], landmarks [batch, D, 5, 2],
        num_detections int32 [batch])``, normalised coordinates, zeros in padding.
    """

    def __init__(self, feature_sizes, anchor_sizes, aspect_ratios, variances=(0.1, 0.2), max_detections=50,
                 score_threshold=0.5, iou_threshold=0.4, **kwargs):
        super().__init__(**kwargs)
        self.feature_sizes = [list(map(int, s)) for s in feature_sizes]
        self.anchor_sizes = [float(s) for s in anchor_sizes]
        self.aspect_ratios = [float(r) for r in aspect_ratios]
        self.variances = [float(v) for v in variances]
        self.max_detections = int(max_detections)
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        nms_ops.check_nms_args(self.max_detections, self.iou_threshold, self.score_threshold)
        self.anchors = anchor_ops.ssd_anchors(self.feature_sizes, self.anchor_sizes, self.aspect_ratios)

    def call(self, cls_logits, box_offsets, landmark_offsets):
        anchors = tf.constant(self.anchors)
        scores = tf.nn.softmax(tf.cast(cls_logits, tf.float32), axis=-1)[..., 1]
        boxes = box_ops.clip_boxes(box_ops.decode_boxes(box_offsets, anchors, self.variances))
        points = box_ops.decode_points(landmark_offsets, anchors, self.variances)
        det = nms_ops.batched_nms(boxes, scores, self.max_detections, self.iou_threshold, self.score_threshold)
        return det.boxes, det.scores, nms_ops.gather_detections(points, det), det.num_detections

    def compute_output_spec(self, cls_logits, box_offsets, landmark_offsets):
        b, d = cls_logits.shape[0], self.max_detections
        return (keras.KerasTensor((b, d, 4)), keras.KerasTensor((b, d)), keras.KerasTensor((b, d, 5, 2)),
                keras.KerasTensor((b,), dtype="int32"))

    def get_config(self):
        config = super().get_config()
        config.update(feature_sizes=self.feature_sizes, anchor_sizes=self.anchor_sizes,
                      aspect_ratios=self.aspect_ratios, variances=self.variances,
                      max_detections=self.max_detections, score_threshold=self.score_threshold,
                      iou_threshold=self.iou_threshold)
        return config


def prepare_images(images: Sequence, image_size: int):
    """Arbitrary images (any size / aspect, gray, RGB, RGBA, uint8 or float) -> model batch.

    Returns:
        (float32 ``[N, S, S, 3]`` in [0, 1], list of ``Letterbox`` transforms).
    """
    from keras_facemt.data.letterbox import resize_image

    batch, transforms = [], []
    for img in images:
        arr, lb = resize_image(img, (image_size, image_size), keep_aspect=True)
        batch.append(arr)
        transforms.append(lb)
    return np.stack(batch).astype(np.float32), transforms


def detect_faces(inference_model, images: Sequence, batch_size: int = 8) -> List[Dict[str, np.ndarray]]:
    """Runs a Uniface inference model on arbitrary images.

    Args:
        inference_model: from ``model.build_inference_model``.
        images: list of arrays ``[H, W]``, ``[H, W, 1|3|4]``, any size.
        batch_size: images per model call.

    Returns:
        One dict per image: ``boxes`` ``[n, 4]`` and ``landmarks`` ``[n, 5, 2]`` in
        original pixels, ``scores`` ``[n]``, ``embeddings`` ``[n, D]``; ``n`` may be 0
        (arrays of length 0, never ``None``).
    """
    size = int(inference_model.inputs[0].shape[1])  # the single "image" input
    results: List[Dict[str, np.ndarray]] = []
    for start in range(0, len(images), batch_size):
        chunk = list(images[start:start + batch_size])
        batch, transforms = prepare_images(chunk, size)
        out = inference_model({"image": batch}, training=False)
        out = {k: np.asarray(v) for k, v in out.items()}
        for i, lb in enumerate(transforms):
            n = int(out["num_detections"][i])
            results.append({
                "boxes": lb.boxes_to_pixels(out["boxes"][i, :n]).reshape(n, 4),
                "scores": out["scores"][i, :n],
                "landmarks": lb.points_to_pixels(out["landmarks"][i, :n]).reshape(n, 5, 2),
                "embeddings": out["embeddings"][i, :n],
            })
    return results

