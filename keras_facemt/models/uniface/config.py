"""Uniface configuration (Liao et al., "Uniface: A Unified Network for Face Detection
and Recognition").

``UnifaceConfig`` is a frozen dataclass validated on construction; ``build_model``
(``model.py``) turns it into the plain arguments of ``build_uniface``. The paper's
ablation models are switches:

* Model A (primary): ``shared_backbone=True, fusion=True, landmark_attention=True``.
* Model B: ``shared_backbone=False`` -- a second, separate network (same topology)
  computes the recognition features; detection and recognition share nothing.
* Model C: ``fusion=False`` -- no top-down pathway; the recognition map comes from
  one bottom-up level (``no_fusion_level``; the paper's 9x9x1024 map).
* Model D: ``landmark_attention=False`` -- face ROI only, recognition channels
  doubled to keep the parameter count comparable (Sec. IV-D.3).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from keras_facemt.errors import ConfigError

BACKBONES = ("inception_v3", "compact")


@dataclasses.dataclass(frozen=True)
class UnifaceConfig:
    """Uniface model configuration.

    Attributes:
        image_size: side S of the square input (paper: 300, Sec. IV-A).
        backbone: ``"inception_v3"`` (paper, Sec. III-A; trained from scratch or from
            ``backbone_weights``) or ``"compact"`` (a small conv net of the same
            topology: three backbone levels at strides 8, 16, 32).
        backbone_widths: compact backbone stage widths (stem, stride 4, 8, 16, 32).
        backbone_weights: optional local weights file of the Inception-v3 body
            (``include_top=False``); nothing is ever downloaded.
        num_levels: bottom-up levels (paper: 6 -> Eq. (1)'s i in {1..6}); levels
            beyond the backbone's three are extra stride-2 convolutions.
        extra_channels: channels of the extra levels.
        fusion_channels: channels of the top-down pathway (1x1 lateral projections).
        recognition_channels: channels of F_r (paper: 64).
        deconv_layers: stride-2 deconvolutions on F_r (paper: 2, giving 144x144 at 300).
        aspect_ratios: anchor width/height ratios (paper: 0.95, 0.8, 0.65).
        anchor_sizes: anchor side per level as a fraction of the image
            (``None``: linearly spaced 0.1 .. 0.9 as in SSD).
        variances: box/point encoding variances.
        face_roi_size: face ROI side on F_r (paper: 48).
        landmark_roi_size: landmark ROI side (paper: 14).
        landmark_roi_scale: landmark ROI side as a fraction of the face box.
        attention_channels: first conv width of the recognition branches.
        face_vector_dim: face-branch vector size (paper: 512).
        landmark_vector_dim: per-landmark vector size (paper: 128).
        embedding_dim: output embedding size (paper: 128).
        fusion: Eq. (1) top-down fusion (False: Model C).
        no_fusion_level: bottom-up level used as F_r when ``fusion=False``.
        landmark_attention: landmark ROIs (False: Model D).
        shared_backbone: one network (False: Model B).
        roi_method: ``"crop_and_resize"`` or ``"gather"`` (builtin TFLite ops).
        max_detections: faces kept per image after NMS at inference.
        score_threshold: minimum face probability at inference.
        nms_iou_threshold: NMS overlap threshold.
    """

    image_size: int = 300
    backbone: str = "inception_v3"
    backbone_widths: Tuple[int, ...] = (32, 64, 128, 256, 512)
    backbone_weights: Optional[str] = None
    num_levels: int = 6
    extra_channels: Tuple[int, ...] = (256, 256, 128)
    fusion_channels: int = 256
    recognition_channels: int = 64
    deconv_layers: int = 2
    aspect_ratios: Tuple[float, ...] = (0.95, 0.8, 0.65)
    anchor_sizes: Optional[Tuple[float, ...]] = None
    variances: Tuple[float, float] = (0.1, 0.2)
    face_roi_size: int = 48
    landmark_roi_size: int = 14
    landmark_roi_scale: float = 0.4
    attention_channels: int = 128
    face_vector_dim: int = 512
    landmark_vector_dim: int = 128
    embedding_dim: int = 128
    fusion: bool = True
    no_fusion_level: int = 2
    landmark_attention: bool = True
    shared_backbone: bool = True
    roi_method: str = "crop_and_resize"
    max_detections: int = 50
    score_threshold: float = 0.5
    nms_iou_threshold: float = 0.4

    def __post_init__(self):
        def bad(msg, **kv):
            got = ", ".join(f"{k}={v!r}" for k, v in kv.items())
            raise ConfigError(f"{msg} Received: {got}")

        if self.backbone not in BACKBONES:
            bad(f"backbone must be one of {BACKBONES}.", backbone=self.backbone)
        min_size = 75 if self.backbone == "inception_v3" else 32
        if self.image_size < min_size:
            bad(f"image_size must be >= {min_size} for backbone {self.backbone!r}.", image_size=self.image_size)
        if self.backbone == "compact" and (len(self.backbone_widths) != 5 or min(self.backbone_widths) < 1):
            bad("backbone_widths needs 5 positive widths (stem, stride 4, 8, 16, 32).",
                backbone_widths=self.backbone_widths)
        if self.num_levels < 3:
            bad("num_levels must be >= 3 (the backbone gives three).", num_levels=self.num_levels)
        if len(self.extra_channels) < self.num_levels - 3 or (self.extra_channels and min(self.extra_channels) < 1):
            bad(f"extra_channels needs {self.num_levels - 3} positive entries for num_levels={self.num_levels}.",
                extra_channels=self.extra_channels)
        for name in ("fusion_channels", "recognition_channels", "face_roi_size", "landmark_roi_size",
                     "attention_channels", "face_vector_dim", "landmark_vector_dim", "embedding_dim",
                     "max_detections"):
            if getattr(self, name) < 1:
                bad(f"{name} must be >= 1.", **{name: getattr(self, name)})
        if self.deconv_layers < 0:
            bad("deconv_layers must be >= 0.", deconv_layers=self.deconv_layers)
        if not self.aspect_ratios or min(self.aspect_ratios) <= 0:
            bad("aspect_ratios must be positive.", aspect_ratios=self.aspect_ratios)
        if self.anchor_sizes is not None and (len(self.anchor_sizes) != self.num_levels or min(self.anchor_sizes) <= 0):
            bad(f"anchor_sizes needs {self.num_levels} positive sizes (one per level).", anchor_sizes=self.anchor_sizes)
        if len(self.variances) != 2 or min(self.variances) <= 0:
            bad("variances must be two positive numbers.", variances=self.variances)
        if not 0 < self.landmark_roi_scale <= 2:
            bad("landmark_roi_scale must be in (0, 2].", landmark_roi_scale=self.landmark_roi_scale)
        if not 0 <= self.no_fusion_level < self.num_levels:
            bad(f"no_fusion_level must be in [0, {self.num_levels}).", no_fusion_level=self.no_fusion_level)
        if self.roi_method not in ("crop_and_resize", "gather"):
            bad("roi_method must be 'crop_and_resize' or 'gather'.", roi_method=self.roi_method)
        if not 0 <= self.score_threshold < 1:
            bad("score_threshold must be in [0, 1).", score_threshold=self.score_threshold)
        if not 0 < self.nms_iou_threshold <= 1:
            bad("nms_iou_threshold must be in (0, 1].", nms_iou_threshold=self.nms_iou_threshold)

    @property
    def variant(self) -> str:
        """The paper's model letter (Table I): A, B, C, D, or a combination."""
        letters = ("" if self.shared_backbone else "B") + ("" if self.fusion else "C") + (
            "" if self.landmark_attention else "D")
        return letters or "A"

    def level_anchor_sizes(self) -> Tuple[float, ...]:
        """Anchor size of each level (SSD's linear 0.1 .. 0.9 spacing by default)."""
        if self.anchor_sizes is not None:
            return tuple(float(s) for s in self.anchor_sizes)
        n = self.num_levels
        return tuple(0.1 + 0.8 * i / (n - 1) for i in range(n))
