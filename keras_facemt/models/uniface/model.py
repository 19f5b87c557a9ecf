"""Uniface: single-network face detection, 5-point landmarks and recognition.

Liao et al., "Uniface: A Unified Network for Face Detection and Recognition"
(Fig. 2): backbone + bottom-up pathway (Sec. III-A) -> SSD head on every
bottom-up level (Sec. III-C) and top-down fusion to F_r (Sec. III-B, Eq. (1)) ->
landmark attention on F_r (Sec. III-D) -> 128-D embedding per face.

Two weight-sharing graphs:

* ``build_uniface`` (training graph, what ``build_model`` returns): inputs
  ``image`` ``[batch, S, S, 3]`` in [0, 1], ``bbox`` ``[batch, F, 4]`` and
  ``landmarks`` ``[batch, F, 5, 2]`` (the faces whose embeddings are wanted; ground
  truth during training, as the mimic loss Eq. (3) is defined per annotated face);
  outputs ``cls_logits`` ``[batch, A, 2]``, ``box_offsets`` ``[batch, A, 4]``,
  ``landmark_offsets`` ``[batch, A, 5, 2]``, ``embedding`` ``[batch, F, D]``.
* ``build_inference_model``: input ``{"image"}`` only; outputs after NMS ``boxes``
  ``[batch, M, 4]``, ``scores`` ``[batch, M]``, ``landmarks`` ``[batch, M, 5, 2]``,
  ``embeddings`` ``[batch, M, D]`` (embeddings from the predicted boxes and
  landmarks) and ``num_detections`` ``[batch]``; padded rows are zeros.

Images are standardised inside the model ((x - 0.5) / 0.25, Sec. IV-A "normalized
to follow the standard normal distribution").

Export: with ``roi_method="gather"`` (``build_inference_from_config(...,
roi_method="gather")``) the whole inference graph -- detection, NMS
(``NonMaxSuppressionV4`` in a ``WHILE``), landmark attention -- uses TFLite builtin
ops only, so the mobile export needs no split between detection and embedding; the
``crop_and_resize`` path serves SavedModel and ONNX. Both paths share weights.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import keras
import numpy as np

from keras_facemt.models.uniface.backbone import build_backbone
from keras_facemt.models.uniface.config import UnifaceConfig
from keras_facemt.models.uniface.fusion import top_down_fusion
from keras_facemt.models.uniface.landmark_attention import LandmarkAttention
from keras_facemt.models.uniface.postprocess import UnifacePostprocess
from keras_facemt.models.uniface.serving import serving_spec  # noqa: F401  (registry entry)
from keras_facemt.models.uniface.ssd_head import ssd_head
from keras_facemt.ops import anchors as anchor_ops

FEATURES_NAME = "uniface_features"
ATTENTION_NAME = "landmark_attention"
DETECTION_BACKBONE = "backbone"
OUTPUT_KEYS = ("cls_logits", "box_offsets", "landmark_offsets", "embedding")
INFERENCE_KEYS = ("boxes", "scores", "landmarks", "embeddings", "num_detections")


def build_uniface(image_size: int = 300, backbone: str = "inception_v3",
                  backbone_widths: Sequence[int] = (32, 64, 128, 256, 512),
                  backbone_weights: Optional[str] = None, num_levels: int = 6,
                  extra_channels: Sequence[int] = (256, 256, 128), fusion_channels: int = 256,
                  recognition_channels: int = 64, deconv_layers: int = 2,
                  aspect_ratios: Sequence[float] = (0.95, 0.8, 0.65), face_roi_size: int = 48,
                  landmark_roi_size: int = 14, landmark_roi_scale: float = 0.4, attention_channels: int = 128,
                  face_vector_dim: int = 512, landmark_vector_dim: int = 128, embedding_dim: int = 128,
                  fusion: bool = True, no_fusion_level: int = 2, landmark_attention: bool = True,
                  shared_backbone: bool = True, roi_method: str = "crop_and_resize",
                  name: str = "uniface") -> keras.Model:
    """Builds the Uniface training graph (see the module docstring for inputs/outputs)."""
    image = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(4.0, offset=-2.0, name="standardize")(image)
    det_backbone = build_backbone(image_size, backbone, backbone_widths, backbone_weights, num_levels,
                                  extra_channels, name=DETECTION_BACKBONE)
    levels = det_backbone(x)
    per_cell = anchor_ops.anchors_per_cell([1.0] * num_levels, aspect_ratios)
    cls_logits, box_offsets, lm_offsets = ssd_head(levels, per_cell)
    if shared_backbone:
        rec_levels = levels
    else:
        # Model B: a separate recognition network of the same topology.
        rec_backbone = build_backbone(image_size, backbone, backbone_widths, backbone_weights, num_levels,
                                      extra_channels, name="recognition_backbone")
        rec_levels = rec_backbone(x)
    fr = top_down_fusion(rec_levels, fusion_channels, recognition_channels, deconv_layers, fusion,
                         no_fusion_level)
    features = keras.Model(
        image,
        {"cls_logits": cls_logits, "box_offsets": box_offsets, "landmark_offsets": lm_offsets,
         "recognition_features": fr},
        name=FEATURES_NAME,
    )

    image_in = keras.Input((image_size, image_size, 3), name="image")
    boxes_in = keras.Input((None, 4), name="bbox")
    lms_in = keras.Input((None, 5, 2), name="landmarks")
    feats = features(image_in)
    attention = LandmarkAttention(
        embedding_dim=embedding_dim, face_roi_size=face_roi_size, landmark_roi_size=landmark_roi_size,
        landmark_roi_scale=landmark_roi_scale, channels=attention_channels, face_dim=face_vector_dim,
        landmark_dim=landmark_vector_dim, use_landmarks=landmark_attention, roi_method=roi_method,
        name=ATTENTION_NAME,
    )
    embedding = attention(feats["recognition_features"], boxes_in, lms_in)
    outputs = {
        "cls_logits": keras.layers.Identity(name="cls_logits")(feats["cls_logits"]),
        "box_offsets": keras.layers.Identity(name="box_offsets")(feats["box_offsets"]),
        "landmark_offsets": keras.layers.Identity(name="landmark_offsets")(feats["landmark_offsets"]),
        "embedding": keras.layers.Identity(name="embedding")(embedding),
    }
    return keras.Model({"image": image_in, "bbox": boxes_in, "landmarks": lms_in}, outputs, name=name)


def feature_sizes(model: keras.Model) -> Tuple[Tuple[int, int], ...]:
    """``(H, W)`` of each bottom-up level of a Uniface training graph."""
    backbone = model.get_layer(FEATURES_NAME).get_layer(DETECTION_BACKBONE)
    return tuple((int(t.shape[1]), int(t.shape[2])) for t in backbone.outputs)


def model_anchors(model: keras.Model, anchor_sizes: Sequence[float], aspect_ratios: Sequence[float]) -> np.ndarray:
    """The ``[A, 4]`` anchors the model's ``cls_logits`` rows correspond to."""
    return anchor_ops.ssd_anchors(feature_sizes(model), anchor_sizes, aspect_ratios)


def build_inference_model(model: keras.Model, anchor_sizes: Sequence[float],
                          aspect_ratios: Sequence[float] = (0.95, 0.8, 0.65),
                          variances: Sequence[float] = (0.1, 0.2), max_detections: int = 50,
                          score_threshold: float = 0.5, iou_threshold: float = 0.4,
                          roi_method: Optional[str] = None, name: str = "uniface_inference") -> keras.Model:
    """Image-only graph sharing ``model``'s weights: detections + embeddings after NMS.

    Args:
        model: a Uniface training graph (built or loaded).
        anchor_sizes, aspect_ratios, variances: the anchors the model was trained with.
        max_detections, score_threshold, iou_threshold: NMS settings.
        roi_method: override of the ROI sampler (``"gather"`` for builtin-op exports);
            the weights are shared either way.

    Returns:
        ``keras.Model`` with input ``image`` and outputs ``INFERENCE_KEYS``.
    """
    features = model.get_layer(FEATURES_NAME)
    attention = model.get_layer(ATTENTION_NAME)
    if roi_method is not None and roi_method != attention.roi_method:
        clone = LandmarkAttention.from_config({**attention.get_config(), "roi_method": roi_method})
        clone.build(features.output["recognition_features"].shape)
        clone.set_weights(attention.get_weights())
        attention = clone
    size = int(features.inputs[0].shape[1])
    image = keras.Input((size, size, 3), name="image")
    feats = features(image)
    post = UnifacePostprocess(feature_sizes(model), anchor_sizes, aspect_ratios, variances, max_detections,
                              score_threshold, iou_threshold, name="postprocess")
    boxes, scores, landmarks, num = post(feats["cls_logits"], feats["box_offsets"], feats["landmark_offsets"])
    embeddings = attention(feats["recognition_features"], boxes, landmarks)
    outputs = {
        "boxes": keras.layers.Identity(name="boxes")(boxes),
        "scores": keras.layers.Identity(name="scores")(scores),
        "landmarks": keras.layers.Identity(name="landmarks")(landmarks),
        "embeddings": keras.layers.Identity(name="embeddings")(embeddings),
        "num_detections": keras.layers.Identity(name="num_detections")(num),
    }
    return keras.Model({"image": image}, outputs, name=name)


def model_args(config: UnifaceConfig) -> dict:
    """The plain ``build_uniface`` arguments of a config."""
    return dict(
        image_size=config.image_size, backbone=config.backbone, backbone_widths=config.backbone_widths,
        backbone_weights=config.backbone_weights, num_levels=config.num_levels,
        extra_channels=config.extra_channels, fusion_channels=config.fusion_channels,
        recognition_channels=config.recognition_channels, deconv_layers=config.deconv_layers,
        aspect_ratios=config.aspect_ratios, face_roi_size=config.face_roi_size,
        landmark_roi_size=config.landmark_roi_size, landmark_roi_scale=config.landmark_roi_scale,
        attention_channels=config.attention_channels, face_vector_dim=config.face_vector_dim,
        landmark_vector_dim=config.landmark_vector_dim, embedding_dim=config.embedding_dim,
        fusion=config.fusion, no_fusion_level=config.no_fusion_level,
        landmark_attention=config.landmark_attention, shared_backbone=config.shared_backbone,
        roi_method=config.roi_method,
    )


def build_model(config: UnifaceConfig) -> keras.Model:
    """Registry entry: config -> Uniface training graph."""
    return build_uniface(**model_args(config))


def build_inference_from_config(model: keras.Model, config: UnifaceConfig, roi_method: Optional[str] = None):
    """``build_inference_model`` with the config's anchors and NMS settings."""
    return build_inference_model(model, config.level_anchor_sizes(), config.aspect_ratios, config.variances,
                                 config.max_detections, config.score_threshold, config.nms_iou_threshold,
                                 roi_method=roi_method)


def build_serving_model(model: keras.Model, config: UnifaceConfig) -> keras.Model:
    """Registry entry: the trained graph -> the deployable one (decoding, NMS, landmark attention).

    ROI crops use the gather path, builtin ops only, so the one graph converts to
    TFLite without select-TF ops (``crop_and_resize`` would need them).
    """
    return build_inference_from_config(model, config, roi_method="gather")


def _paper() -> UnifaceConfig:
    return UnifaceConfig()


def _small() -> UnifaceConfig:
    return UnifaceConfig(
        image_size=160, backbone="compact", backbone_widths=(16, 32, 48, 64, 96), num_levels=5,
        extra_channels=(96, 96), fusion_channels=48, recognition_channels=32, deconv_layers=2,
        anchor_sizes=(0.1, 0.2, 0.35, 0.55, 0.8), face_roi_size=24, landmark_roi_size=10,
        attention_channels=32, face_vector_dim=128, landmark_vector_dim=64, embedding_dim=64,
        max_detections=20, no_fusion_level=1,
    )


def _tiny() -> UnifaceConfig:
    return UnifaceConfig(
        image_size=96, backbone="compact", backbone_widths=(8, 16, 24, 32, 48), num_levels=4,
        extra_channels=(48,), fusion_channels=24, recognition_channels=16, deconv_layers=2,
        anchor_sizes=(0.15, 0.3, 0.5, 0.75), face_roi_size=16, landmark_roi_size=8,
        attention_channels=16, face_vector_dim=64, landmark_vector_dim=32, embedding_dim=32,
        max_detections=10, no_fusion_level=1,
    )


CONFIG_CLASS = UnifaceConfig
PRESETS = {"paper": _paper, "small": _small, "tiny": _tiny}
