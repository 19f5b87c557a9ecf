"""Named Uniface experiments (synthetic multi-face scenes by default).

* ``uniface``: the default run of ``recipes/train_uniface.py``: SynthFace scenes with
  up to 4 faces of 40 identities, a recognition teacher trained on aligned crops of
  the same identities, the primary model (A) and the paper's ablations B, C, D
  trained alike, evaluated on held-out scenes (AP, FDDB-style ROC, 5-point NME) and
  on 6,000 verification pairs (10-fold, plus the random crop/pad robustness test).
  Sized for about 20 minutes on 2 CPU cores.
* ``uniface_smoke``: model A only at a size that runs in under 4 minutes on 2 CPU
  cores (the integration test).
* ``uniface_paper``: the paper's sizes (Inception-v3 backbone, 300x300, 128-D), for
  accelerators.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

from keras_facemt.configs.named_experiments import named_experiment
from keras_facemt.errors import ConfigError

VARIANTS: Dict[str, Dict[str, bool]] = {
    "A": {},
    "B": {"shared_backbone": False},
    "C": {"fusion": False},
    "D": {"landmark_attention": False},
}


@dataclasses.dataclass(frozen=True)
class UnifaceExperiment:
    """A Uniface training + evaluation run.

    Attributes:
        name: experiment name.
        preset: model preset (``models/uniface/model.py``).
        model_overrides: ``(field, value)`` pairs applied to the preset config.
        image_size: scene side in pixels (also the model input size).
        num_identities: identities in scenes, teacher crops and verification images.
        identity_seed: SynthFace identity population.
        domain: SynthFace domain.
        train_scenes, test_scenes: scene counts (rendering is cheap; with a few
            hundred scenes the landmark head memorises the training faces).
        min_faces, max_faces: faces per scene.
        teacher_crops: aligned crops the teacher trains on.
        teacher_size: aligned crop side.
        teacher_widths: teacher stage widths.
        teacher_steps: teacher updates.
        steps: Uniface updates per variant.
        batch_size: scenes per update.
        learning_rate: initial Adam rate (cosine decay to 5%).
        loss_weights: Eq. (2)'s (lambda1, lambda2, lambda3) and the weight of L_id.
            The mimic term is up-weighted: unit-norm teacher embeddings make its
            gradients small next to the detection terms'.
        variants: Table I models to train (``"A"``, ``"B"``, ``"C"``, ``"D"``).
        verification_images: images in the verification pool.
        verification_pairs: pairs (LFW: 6000, half same-identity), 10 folds.
        face_image_size: side of the rendered single-face verification images.
        robustness_margin: max crop/pad per side as a fraction of the side (paper:
            60 px of 250).
        fp_counts: false-positive budgets of the ROC.
        seed: seed of data, teacher and training.
    """

    name: str
    preset: str = "tiny"
    model_overrides: Tuple[Tuple[str, object], ...] = ()
    image_size: int = 96
    num_identities: int = 40
    identity_seed: int = 0
    domain: str = "studio"
    train_scenes: int = 3000
    test_scenes: int = 150
    min_faces: int = 1
    max_faces: int = 4
    teacher_crops: int = 1600
    teacher_size: int = 48
    teacher_widths: Tuple[int, ...] = (32, 64, 96)
    teacher_steps: int = 500
    steps: int = 500
    batch_size: int = 16
    learning_rate: float = 2e-3
    loss_weights: Tuple[float, float, float, float] = (1.0, 1.0, 1.0, 4.0)
    variants: Tuple[str, ...] = ("A", "B", "C", "D")
    verification_images: int = 1000
    verification_pairs: int = 6000
    face_image_size: int = 96
    robustness_margin: float = 0.24
    fp_counts: Tuple[int, ...] = (5, 10, 20, 50, 100)
    seed: int = 0

    def __post_init__(self):
        for v in self.variants:
            if v not in VARIANTS:
                raise ConfigError(f"Unknown Uniface variant {v!r}; variants: {sorted(VARIANTS)}. Received: variants={self.variants}")
        for name in ("num_identities", "train_scenes", "test_scenes", "teacher_crops", "teacher_steps", "steps",
                     "batch_size", "verification_images", "verification_pairs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1. Received: {name}={getattr(self, name)}")
        if self.verification_pairs % 20:
            raise ConfigError(f"verification_pairs must be a multiple of 20 (10 balanced folds). "
                              f"Received: verification_pairs={self.verification_pairs}")
        if not 1 <= self.min_faces <= self.max_faces:
            raise ConfigError(f"Need 1 <= min_faces <= max_faces. Received: min_faces={self.min_faces}, max_faces={self.max_faces}")
        if not 0 <= self.robustness_margin < 0.5:
            raise ConfigError(f"robustness_margin must be in [0, 0.5). Received: robustness_margin={self.robustness_margin}")


def _uniface() -> UnifaceExperiment:
    return UnifaceExperiment("uniface")


def _uniface_smoke() -> UnifaceExperiment:
    return UnifaceExperiment(
        "uniface_smoke", num_identities=12, train_scenes=1200, test_scenes=60, max_faces=3, teacher_crops=480,
        teacher_widths=(16, 32, 64), teacher_steps=200, steps=400, variants=("A",), verification_images=160,
        verification_pairs=600,
    )


def _uniface_paper() -> UnifaceExperiment:
    return UnifaceExperiment(
        "uniface_paper", preset="paper", image_size=300, num_identities=1000, train_scenes=100000,
        test_scenes=2000, max_faces=10, teacher_crops=200000, teacher_size=112, teacher_widths=(64, 128, 256, 512),
        teacher_steps=50000, steps=120000, batch_size=32, learning_rate=1e-3, face_image_size=250,
    )


EXPERIMENTS = {"uniface": _uniface, "uniface_smoke": _uniface_smoke, "uniface_paper": _uniface_paper}


def get_experiment(name: str, **overrides) -> UnifaceExperiment:
    """The named experiment with dataclass field ``overrides`` applied.

    Raises:
        ConfigError: for an unknown name (listing the known ones) or field.
    """
    return named_experiment(EXPERIMENTS, name, overrides, 'Uniface')
