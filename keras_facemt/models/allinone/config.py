"""All-in-One configuration (Ranjan et al., "An All-In-One Convolutional Neural Network
for Face Analysis", FG 2017).

``AllInOneConfig`` is a frozen dataclass validated on construction;
``model.model_args`` turns it into the plain arguments of ``build_allinone``.

The backbone is the face-identification network of [41] (Sec. III-B: "seven
convolutional layers followed by three fully connected layers", PReLU). Its sizes
and the input size are in Fig. 3, whose table did not survive, so the ``paper``
preset is this reading (README, All-in-One departures):

* input 227x227 (the HyperFace [36] input the fusion recipe comes from);
* conv1 11x11/4 96 (valid) -> 3x3/2 max-pool (27x27); conv2 5x5 256 -> 3x3/2 pool
  (13x13); conv3 3x3 384; conv4 3x3 384; conv5 3x3 256; conv6 3x3 256 (all 13x13);
  conv7 3x3 256 (unshared, identity only);
* identity: conv7 -> 3x3/2 pool (6x6) -> FC 2048 -> FC 512 (the descriptor,
  Sec. III-D) -> FC 10,548 (Eq. 7);
* hyper-feature fusion to 6x6 (the only sizes the text gives: 6x6, 256 maps, FC 2048,
  FC 512 per task): pooled conv1 -> 4x4/4 conv, conv3 -> 2x2/2 conv, conv5 -> pool
  (HyperFace's conv1a / conv3a / pool5), concat -> 1x1 conv to 256 -> FC 2048;
* age and gender: conv6 -> 3x3/2 max-pool (6x6) -> "3-layered" FC: FC 1024 ->
  FC 512 -> output.

BatchNorm after every convolution is not in the paper (Caffe-era [41] has none); it
is on in ``small`` and ``tiny`` so they train from scratch on a CPU in minutes and
off in ``paper``.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

from keras_facemt.errors import ConfigError

# SynthFace's mean face box in the frame of its aflw21 points' extent (scene_pipeline.box_prior).
BOX_PRIOR = (-0.12, -0.27, 1.12, 1.0)


@dataclasses.dataclass(frozen=True)
class SceneDetectorConfig:
    """Stage 1 on whole images (Sec. III-D, without Selective Search): ``scene_pipeline``
    and the deployable graph (``scene_graph``) read the same settings.

    Attributes:
        min_side, max_side: smallest / largest window side as a fraction of the
            image's shorter side.
        scale_step: ratio between consecutive window sides.
        stride: window step as a fraction of its side.
        score_threshold: face probability a window needs to be kept.
        candidates: the most windows (highest scores) kept for IRP, so the
            deployable graph has fixed shapes.
        iterations: IRP rounds.
        nms_iou: L-NMS overlap threshold.
        average_iou: overlap of the candidates averaged into a kept face.
        max_detections: faces kept per image.
        box_prior: the mean face box in the frame of its defined points' extent
            ``(x0, y0, x1, y1)`` (``scene_pipeline.box_prior``, fitted on the training
            faces by the job; the default is SynthFace's).
    """

    min_side: float = 0.12
    max_side: float = 0.6
    scale_step: float = 1.3
    stride: float = 0.3
    score_threshold: float = 0.5
    candidates: int = 256
    iterations: int = 1
    nms_iou: float = 0.3
    average_iou: float = 0.5
    max_detections: int = 50
    box_prior: Tuple[float, float, float, float] = BOX_PRIOR

    def __post_init__(self):
        object.__setattr__(self, "box_prior", tuple(float(v) for v in self.box_prior))
        if not 0 < self.min_side <= self.max_side <= 1 or self.scale_step <= 1 or not 0 < self.stride <= 1:
            raise ConfigError(f"Need 0 < min_side <= max_side <= 1, scale_step > 1 and 0 < stride <= 1. Received: "
                              f"min_side={self.min_side}, max_side={self.max_side}, scale_step={self.scale_step}, "
                              f"stride={self.stride}")
        if self.iterations < 0 or self.max_detections < 1 or self.candidates < 1:
            raise ConfigError(f"Need iterations >= 0, max_detections >= 1 and candidates >= 1. Received: "
                              f"iterations={self.iterations}, max_detections={self.max_detections}, "
                              f"candidates={self.candidates}")
        if len(self.box_prior) != 4 or not (self.box_prior[0] < self.box_prior[2] and
                                             self.box_prior[1] < self.box_prior[3]):
            raise ConfigError(f"box_prior is (x0, y0, x1, y1) with x0 < x1 and y0 < y1. Received: "
                              f"box_prior={self.box_prior}")


# One backbone conv layer: (filters, kernel, stride, padding, pool_after).
ConvSpec = Tuple[int, int, int, str, bool]


@dataclasses.dataclass(frozen=True)
class AllInOneConfig:
    """All-in-One model configuration.

    Attributes:
        image_size: side of the square proposal crop the network reads.
        convs: the 7 backbone conv layers ``(filters, kernel, stride, padding,
            pool_after)``; conv1-conv6 shared, conv7 identity-only (Sec. III-B).
        pool_size, pool_stride: the backbone's max-pooling (paper reading 3/2).
        fused_size: side of the common hyper-feature map (paper: 6).
        fused_channels: channels of each conv1 / conv3 fusion branch.
        reduced_channels: maps after the dimensionality reduction (paper: 256).
        shared_fc: the FC shared by the subject-independent tasks (paper: 2048).
        task_fc: the FC of each subject-independent task (paper: 512).
        subject_fc: the two hidden FCs of the age and gender heads (3 layers with
            the output layer; widths UNSPEC).
        identity_fc: hidden FC of the identity branch before the descriptor.
        descriptor_dim: identity descriptor (paper: 512).
        num_identities: identity classes of the training set (paper: 10,548).
        num_landmarks: AFLW's 21 points (scheme ``aflw21``).
        batch_norm: BN after every convolution (not in the paper).
        dropout: dropout on the FC layers.
        age_offset, age_scale: the age output is ``age_offset + age_scale * raw``
            (years), so a zero-initialised head starts near the mean age.
        pose_scale: the pose output is ``pose_scale * raw`` degrees.
        bn_domains: per-dataset BN (``layers.DomainBatchNorm``): statistic sets, one
            per training domain; above 1 the model takes a ``domain`` input. The job
            sets it when converted datasets (``--data``) join the SynthFace streams.
        scene_size: side of the square (letterboxed) image the deployable two-stage
            graph reads (``scene_graph``); not part of the trained network.
        detector: stage 1's windows, IRP, L-NMS and box prior (``SceneDetectorConfig``).
        stage2_aligned: stage 2 reads each face aligned by its predicted points (the
            paper; the job sets it from the experiment's ``aligned_crops``), or the
            crop of its detected box.
    """

    image_size: int = 48
    convs: Tuple[ConvSpec, ...] = ((12, 3, 1, "same", True), (24, 3, 1, "same", True), (32, 3, 1, "same", False),
                                   (48, 3, 1, "same", True), (64, 3, 1, "same", False),
                                   (96, 3, 1, "same", False), (96, 3, 1, "same", False))
    pool_size: int = 2
    pool_stride: int = 2
    fused_size: int = 6
    fused_channels: int = 32
    reduced_channels: int = 64
    shared_fc: int = 256
    task_fc: int = 64
    subject_fc: Tuple[int, int] = (128, 64)
    identity_fc: int = 256
    descriptor_dim: int = 128
    num_identities: int = 300
    num_landmarks: int = 21
    batch_norm: bool = True
    dropout: float = 0.0
    age_offset: float = 40.0
    age_scale: float = 20.0
    pose_scale: float = 90.0
    bn_domains: int = 1
    scene_size: int = 128
    detector: SceneDetectorConfig = SceneDetectorConfig()
    stage2_aligned: bool = True

    def __post_init__(self):
        if isinstance(self.detector, dict):  # read back from JSON
            object.__setattr__(self, "detector", SceneDetectorConfig(**self.detector))
        object.__setattr__(self, "convs", tuple(tuple(c) for c in self.convs))
        object.__setattr__(self, "subject_fc", tuple(int(v) for v in self.subject_fc))
        if len(self.convs) != 7:
            raise ConfigError(f"The backbone has 7 conv layers (Sec. III-B). Received: convs={self.convs}")
        for c in self.convs:
            if len(c) != 5 or min(c[:3]) < 1 or c[3] not in ("same", "valid"):
                raise ConfigError(f"Each conv is (filters, kernel, stride, 'same'|'valid', pool_after). "
                                  f"Received: conv={c}")
        if len(self.subject_fc) != 2:
            raise ConfigError(f"subject_fc holds the 2 hidden FCs of the 3-layer age/gender heads. "
                              f"Received: subject_fc={self.subject_fc}")
        for name in ("scene_size", "bn_domains", "image_size", "pool_size", "pool_stride", "fused_size", "fused_channels", "reduced_channels",
                     "shared_fc", "task_fc", "identity_fc", "descriptor_dim", "num_identities", "num_landmarks"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1. Received: {name}={getattr(self, name)}")
        if min(self.subject_fc) < 1:
            raise ConfigError(f"subject_fc widths must be >= 1. Received: subject_fc={self.subject_fc}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")
        if self.age_scale <= 0 or self.pose_scale <= 0:
            raise ConfigError(f"age_scale and pose_scale must be > 0. Received: age_scale={self.age_scale}, "
                              f"pose_scale={self.pose_scale}")
        sizes = feature_sizes(self)
        for layer in (1, 3, 5):
            if sizes[layer] < self.fused_size:
                raise ConfigError(f"conv{layer}'s map ({sizes[layer]}x{sizes[layer]}) is smaller than fused_size. "
                                  f"Received: fused_size={self.fused_size}, image_size={self.image_size}")


def _conv_out(size: int, kernel: int, stride: int, padding: str) -> int:
    if padding == "same":
        return -(-size // stride)
    return (size - kernel) // stride + 1


def pool_out(size: int, pool: int, stride: int) -> int:
    """Side after a valid max-pool (at least 1: a map smaller than the window is pooled whole)."""
    return max((size - pool) // stride + 1, 1) if size >= pool else 1


def feature_sizes(config: AllInOneConfig) -> dict:
    """Side of each backbone map: ``{k: side of conv k after its pooling, if any}`` (k = 1..7)."""
    size, out = int(config.image_size), {}
    for k, (_, kernel, stride, padding, pool) in enumerate(config.convs, start=1):
        size = _conv_out(size, kernel, stride, padding)
        if size < 1:
            raise ConfigError(f"conv{k} leaves no map. Received: image_size={config.image_size}, convs={config.convs}")
        if pool:
            size = pool_out(size, config.pool_size, config.pool_stride)
        out[k] = size
    return out


def fusion_window(size: int, target: int) -> Tuple[int, int]:
    """``(kernel, stride)`` of a valid conv/pool taking a ``size`` map to ``target``.

    Non-overlapping windows (stride = kernel = size // target) where they land on
    ``target`` exactly (HyperFace's 4x4/4 on 27x27 and 2x2/2 on 13x13); otherwise the
    stride is kept and the kernel grown to fit.
    """
    stride = max(size // target, 1)
    if (size - stride) // stride + 1 == target:
        return stride, stride
    return size - (target - 1) * stride, stride


def _small() -> AllInOneConfig:
    return AllInOneConfig()


def _tiny() -> AllInOneConfig:
    return AllInOneConfig(
        image_size=32,
        convs=((8, 3, 1, "same", True), (16, 3, 1, "same", True), (24, 3, 1, "same", False),
               (32, 3, 1, "same", True), (48, 3, 1, "same", False), (64, 3, 1, "same", False),
               (64, 3, 1, "same", False)),
        fused_size=4, fused_channels=16, reduced_channels=32, shared_fc=128, task_fc=32, subject_fc=(64, 32),
        identity_fc=128, descriptor_dim=64, num_identities=60,
    )


def _paper() -> AllInOneConfig:
    return AllInOneConfig(
        image_size=227,
        convs=((96, 11, 4, "valid", True), (256, 5, 1, "same", True), (384, 3, 1, "same", False),
               (384, 3, 1, "same", False), (256, 3, 1, "same", False), (256, 3, 1, "same", False),
               (256, 3, 1, "same", False)),
        pool_size=3, pool_stride=2, fused_size=6, fused_channels=256, reduced_channels=256, shared_fc=2048,
        task_fc=512, subject_fc=(1024, 512), identity_fc=2048, descriptor_dim=512, num_identities=10548,
        batch_norm=False, dropout=0.5,
    )


PRESETS = {"paper": _paper, "small": _small, "tiny": _tiny}
