"""Input-pipeline configuration (one ``DataConfig`` per dataset stream)."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from keras_facemt.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation (``data/augment.py``).

    Attributes:
        flip: probability of a horizontal flip (landmarks permuted, parsing classes
            left/right swapped).
        scale_range: random zoom factor range applied around the face.
        shift: maximum translation as a fraction of the image size.
        brightness, contrast, saturation, hue: colour jitter strengths.
    """

    flip: float = 0.5
    scale_range: Tuple[float, float] = (0.9, 1.1)
    shift: float = 0.05
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.02


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """One dataset stream.

    Attributes:
        name: stream name (used by schedules, e.g. ``"landmarks"``).
        data_dir: directory written by ``ShardWriter`` (has ``dataset.json``).
        split: ``train``, ``val`` or ``test``.
        mode: ``crops`` (one face per example) or ``scenes`` (up to ``max_faces``).
        image_size: output (height, width).
        global_batch_size: batch size across all replicas.
        domain: BN domain id stamped on every example of this stream.
        tasks: tasks whose labels are decoded (schema task names; attributes by name).
        landmark_scheme: target scheme; records in another scheme are mapped by
            ``landmarks.subset_matrix`` (``None``: keep the records' scheme).
        max_faces: faces per image in scenes mode (extra faces dropped, reported).
        embedding_dim: teacher-embedding size to decode (0: none).
        augment: augmentation, or None for evaluation.
        shuffle_buffer: examples in the shuffle buffer (0: no shuffle).
        repeat: repeat forever (training) or one pass (evaluation).
        seed: seed of shuffling and augmentation (same seed: same order).
        error_policy: ``skip`` (count, report with source_id, drop) or ``fail``.
        cache: cache decoded examples in memory before augmentation.
    """

    name: str
    data_dir: str
    split: str = "train"
    mode: str = "crops"
    image_size: Tuple[int, int] = (128, 128)
    global_batch_size: int = 32
    domain: int = 0
    tasks: Tuple[str, ...] = ()
    landmark_scheme: Optional[str] = None
    max_faces: int = 20
    embedding_dim: int = 0
    augment: Optional[AugmentConfig] = None
    shuffle_buffer: int = 1024
    repeat: bool = True
    seed: int = 0
    error_policy: str = "skip"
    cache: bool = False

    def __post_init__(self):
        if self.mode not in ("crops", "scenes"):
            raise ConfigError(f"mode must be 'crops' or 'scenes'. Received: mode={self.mode!r}")
        if self.error_policy not in ("skip", "fail"):
            raise ConfigError(f"error_policy must be 'skip' or 'fail'. Received: error_policy={self.error_policy!r}")
        if self.global_batch_size < 1:
            raise ConfigError(f"global_batch_size must be >= 1. Received: global_batch_size={self.global_batch_size}")
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ConfigError(f"image_size must be (height, width) >= 8. Received: image_size={self.image_size}")
        if self.max_faces < 1:
            raise ConfigError(f"max_faces must be >= 1. Received: max_faces={self.max_faces}")
        from keras_facemt.data.schema import validate_tasks

        validate_tasks(self.tasks)
