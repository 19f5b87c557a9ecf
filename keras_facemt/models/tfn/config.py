"""TFN configuration (Lin et al., "Task-Oriented Feature-Fused Network with Multivariate
Dataset for Joint Face Analysis", IEEE TCYB 2019).

``TFNConfig`` is a frozen dataclass validated on construction; ``model.model_args``
turns it into the plain arguments of ``build_tfn``. The comparison models of
Sec. V-B and the extensions of Sec. VI are switches:

* ``rpn_levels=(5,)``: a single-layer RPN on conv5_3 carrying every anchor scale
  (the plain Faster R-CNN RPN) instead of the multilayer assistant RPN.
* ``two_step=False``: one-step refinement, the landmark and attribute subnets read
  the detection ROIs themselves rather than the detection subnet's refined boxes.
* ``shared_block=True``: one feature-fused block (the detection levels) feeds the
  three subnets instead of a task-oriented block each.
* ``fused_block=False``: plain RoI pooling of the top stack (no fusion).
* ``fc_sharing``: which subnets share one pair of fully connected layers (each
  keeps its own decision layers): ``"none"`` (task-specific FCs: SRMM and TFN),
  ``"face"`` (the landmark and attribute decision layers on one second region
  subnet: TRMM) or ``"all"`` (every decision layer behind the detection subnet's
  FCs: ORMM). Sharing needs ``shared_block`` (one block feeds the shared FCs).
* ``heatmap_landmarks=True``: the heat-map landmark subnet (Sec. VI-A, Fig. 9).
* ``tafn=True``: the TAFN block (Sec. VI-B, Fig. 10): every stack top is fused and
  re-weighted per channel by a squeeze-excitation gate.

Sizes the paper leaves open (input size, proposal counts, NMS thresholds, FC widths
other than VGG's 4096) are marked UNSPEC in the attribute docs.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from keras_facemt.errors import ConfigError

NUM_STACKS = 5
TASKS = ("detection", "landmarks", "attributes")
NUM_LANDMARKS = 68
AGE_CLASSES = 101
GENDER_CLASSES = 2
ETHNICITY_CLASSES = 3
# Subnets sharing their FCs (Sec. V-B): none (SRMM, TFN), face = landmarks + attributes
# (TRMM's second region subnet), all = every task behind the detection FCs (ORMM).
FC_SHARING = ("none", "face", "all")


@dataclasses.dataclass(frozen=True)
class TFNConfig:
    """TFN model configuration.

    Attributes:
        image_size: side of the square input in pixels (UNSPEC; paper preset 512).
        stack_widths: channels of the 5 VGG-16 stacks (paper: 64, 128, 256, 512, 512).
        stack_convs: 3x3 convolutions per stack (paper: 2, 2, 3, 3, 3 = VGG-16's 13).
        backbone_weights: optional local weights file of ``keras.applications.VGG16``
            (``include_top=False``), copied into the paper-shaped stem; nothing is
            downloaded.
        rpn_levels: stacks carrying an RPN head (paper: 4, 5 = conv4_3, conv5_3).
        rpn_scales: anchor sides in pixels per RPN level (paper: (16, 32, 64) and
            (128, 256, 512)).
        rpn_ratios: anchor width / height ratios (paper: 0.5, 1, 2).
        rpn_channels: width of each level's 3x3 RPN convolution (paper: 256).
        pre_nms_proposals: best-scoring anchors decoded before the proposal NMS (UNSPEC).
        proposals: proposals kept after NMS per image (UNSPEC; [42] uses 300 at test).
        proposal_iou: proposal NMS threshold ([42]: 0.7).
        roi_size: side of the pooled ROI features (7, as VGG-16's fc6 input).
        fused_channels: channels of each block's 1x1 convolution ("the same number of
            channels as that of the top convolutional layer").
        detection_levels, landmark_levels, attribute_levels: stacks each task's block
            fuses (Sec. V-A: 3-5, 4-5, 3-5).
        fc_units: widths of each subnet's two fully connected layers (VGG: 4096).
        l2_scale: initial ParseNet scale of each normalised level.
        fused_block, shared_block, fc_sharing, two_step, heatmap_landmarks, tafn: switches
            (module doc).
        heatmap_upsample: heat-map subnet output size as a multiple of ``roi_size``
            (paper: 16, 7 -> 112).
        heatmap_channels: channels of the heat-map subnet's encoder convolutions.
        max_detections: faces kept per image after the final NMS.
        score_threshold: minimum face probability of a detection (serving graph).
        nms_iou: final NMS threshold (UNSPEC).
    """

    image_size: int = 512
    stack_widths: Tuple[int, ...] = (64, 128, 256, 512, 512)
    stack_convs: Tuple[int, ...] = (2, 2, 3, 3, 3)
    backbone_weights: Optional[str] = None
    rpn_levels: Tuple[int, ...] = (4, 5)
    rpn_scales: Tuple[Tuple[float, ...], ...] = ((16.0, 32.0, 64.0), (128.0, 256.0, 512.0))
    rpn_ratios: Tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_channels: int = 256
    pre_nms_proposals: int = 2000
    proposals: int = 300
    proposal_iou: float = 0.7
    roi_size: int = 7
    fused_channels: int = 512
    detection_levels: Tuple[int, ...] = (3, 4, 5)
    landmark_levels: Tuple[int, ...] = (4, 5)
    attribute_levels: Tuple[int, ...] = (3, 4, 5)
    fc_units: Tuple[int, int] = (4096, 4096)
    l2_scale: float = 20.0
    fused_block: bool = True
    shared_block: bool = False
    fc_sharing: str = "none"
    two_step: bool = True
    heatmap_landmarks: bool = False
    heatmap_upsample: int = 16
    heatmap_channels: int = 512
    tafn: bool = False
    max_detections: int = 50
    score_threshold: float = 0.5
    nms_iou: float = 0.3

    def __post_init__(self):
        def bad(msg, **kv):
            raise ConfigError(f"{msg} Received: " + ", ".join(f"{k}={v!r}" for k, v in kv.items()))

        if self.image_size < 32 or self.image_size % 16:
            bad("image_size must be a multiple of 16 (the conv5 stride), >= 32.", image_size=self.image_size)
        if len(self.stack_widths) != NUM_STACKS or min(self.stack_widths) < 1:
            bad(f"stack_widths needs {NUM_STACKS} positive widths.", stack_widths=self.stack_widths)
        if len(self.stack_convs) != NUM_STACKS or min(self.stack_convs) < 1:
            bad(f"stack_convs needs {NUM_STACKS} counts >= 1.", stack_convs=self.stack_convs)
        if not self.rpn_levels or any(l not in (3, 4, 5) for l in self.rpn_levels) or \
                list(self.rpn_levels) != sorted(set(self.rpn_levels)):
            bad("rpn_levels must be increasing stacks among 3, 4, 5.", rpn_levels=self.rpn_levels)
        if len(self.rpn_scales) != len(self.rpn_levels) or any(not s or min(s) <= 0 for s in self.rpn_scales):
            bad("rpn_scales needs one non-empty tuple of positive sides per RPN level.", rpn_scales=self.rpn_scales,
                rpn_levels=self.rpn_levels)
        if any(len(s) != len(self.rpn_scales[0]) for s in self.rpn_scales):
            bad("every RPN level needs the same number of scales (one head shape).", rpn_scales=self.rpn_scales)
        if not self.rpn_ratios or min(self.rpn_ratios) <= 0:
            bad("rpn_ratios must be positive.", rpn_ratios=self.rpn_ratios)
        for task in ("detection", "landmark", "attribute"):
            levels = getattr(self, f"{task}_levels")
            if not levels or any(not 1 <= l <= NUM_STACKS for l in levels) or list(levels) != sorted(set(levels)):
                bad(f"{task}_levels must be increasing stacks in 1..5.", **{f"{task}_levels": levels})
        for name in ("rpn_channels", "pre_nms_proposals", "proposals", "roi_size", "fused_channels",
                     "max_detections", "heatmap_channels"):
            if getattr(self, name) < 1:
                bad(f"{name} must be >= 1.", **{name: getattr(self, name)})
        if self.proposals > self.pre_nms_proposals:
            bad("proposals must be <= pre_nms_proposals.", proposals=self.proposals,
                pre_nms_proposals=self.pre_nms_proposals)
        if len(self.fc_units) != 2 or min(self.fc_units) < 1:
            bad("fc_units needs two positive widths.", fc_units=self.fc_units)
        if self.heatmap_upsample < 2 or self.heatmap_upsample & (self.heatmap_upsample - 1):
            bad("heatmap_upsample must be a power of 2 >= 2 (2x2 deconvolutions).",
                heatmap_upsample=self.heatmap_upsample)
        if self.l2_scale <= 0:
            bad("l2_scale must be > 0.", l2_scale=self.l2_scale)
        for name in ("proposal_iou", "nms_iou"):
            if not 0 < getattr(self, name) <= 1:
                bad(f"{name} must be in (0, 1].", **{name: getattr(self, name)})
        if self.fc_sharing not in FC_SHARING:
            bad(f"fc_sharing must be one of {FC_SHARING}.", fc_sharing=self.fc_sharing)
        if self.fc_sharing != "none" and not self.shared_block:
            bad("fc_sharing needs shared_block=True: shared FCs read one block's features.",
                fc_sharing=self.fc_sharing, shared_block=self.shared_block)
        if self.fc_sharing != "none" and self.heatmap_landmarks:
            bad("the heat-map landmark subnet has no FCs to share; use fc_sharing='none'.",
                fc_sharing=self.fc_sharing, heatmap_landmarks=self.heatmap_landmarks)
        if not 0 <= self.score_threshold < 1:
            bad("score_threshold must be in [0, 1).", score_threshold=self.score_threshold)

    @property
    def strides(self) -> Tuple[int, ...]:
        """Stride of each stack's top (VGG-16: max pooling after stacks 1-4, none after 5)."""
        return (1, 2, 4, 8, 16)

    def levels_of(self, task: str) -> Tuple[int, ...]:
        """The stacks ``task``'s block reads (``fused_block``, ``shared_block`` and ``tafn`` applied)."""
        if task not in TASKS:
            raise ConfigError(f"Unknown task; tasks: {TASKS}. Received: task={task!r}")
        if self.tafn:
            return tuple(range(1, NUM_STACKS + 1))
        if not self.fused_block:
            return (NUM_STACKS,)
        if self.shared_block:
            return self.detection_levels
        return {"detection": self.detection_levels, "landmarks": self.landmark_levels,
                "attributes": self.attribute_levels}[task]
