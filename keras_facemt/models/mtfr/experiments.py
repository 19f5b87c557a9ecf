"""Named MTFR experiments (SynthFace identities with derived attributes by default).

The paper's protocols (Sec. 4.3) scaled to synthetic data:

* training: aligned crops of ``train_identities`` people (population
  ``identity_seed``), ``images_per_identity`` each, with identity labels and the 7
  attribute labels, optionally made noisy per image and repaired by the
  per-identity vote (Sec. 3.2);
* verification: LFW-style 10-fold accuracy on balanced pairs of people never seen
  in training (population ``test_identity_seed``); the deployed threshold is chosen
  on pairs of a third population (``val_identity_seed``);
* identification: MegaFace-style rank-1 / CMC of probes of the unseen people
  against a gallery of one face per person plus ``distractors`` faces of other
  people (population ``distractor_identity_seed``), and TAR at FAR 1e-3 / 1e-4
  over probe-gallery scores (1e-6 would need a million distractors);
* attributes: per-attribute accuracy on the unseen people (Table 4 layout).

Experiments:

* ``mtfr``: the default of ``recipes/train_mtfr.py``, the ``small`` preset, sized for
  about 15 minutes on 2 CPU cores including data rendering.
* ``mtfr_smoke``: the integration test, ``tiny`` preset, under 3 minutes.
* ``mtfr_paper``: the paper's sizes and schedule (112x96, Full blocks, 70k + 30k
  iterations, batch 40, lr 0.01 / 0.001 with its steps), for an accelerator.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

from keras_facemt.configs.named_experiments import named_experiment
from keras_facemt.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class MTFRExperiment:
    """An MTFR training + evaluation run.

    Attributes:
        name: experiment name.
        preset: model preset (``models/mtfr/config.py``).
        model_overrides: ``(field, value)`` pairs applied to the preset config
            (``num_identities`` is always set to ``train_identities``).
        render_size: side of the rendered SynthFace image the aligned crop is cut from.
        train_identities, images_per_identity: the training population.
        identity_seed: training population seed.
        val_identity_seed, test_identity_seed, distractor_identity_seed: disjoint
            populations (threshold selection, evaluation, distractors).
        val_identities, test_identities, test_images_per_identity: held-out sizes.
        verification_pairs: balanced pairs of unseen people (multiple of 20: 10 folds).
        distractors: gallery distractor faces (MegaFace: 1M; here >= 10,000).
        attribute_noise: per-image flip rate of the training attribute labels.
        vote: repair them by the per-identity majority vote (Sec. 3.2).
        stage1_steps, stage2_steps: Sec. 4.4's two stages (70k + 30k in the paper).
        batch_size: images per update (paper: 40 Full, 48 Fast).
        learning_rate: stage 1 base rate (paper 0.01); stage 2 uses a tenth.
        stage1_drops, stage2_drops: step-decay boundaries as fractions of each stage
            (paper: 40k/70k, 58k/70k; 10k/30k, 20k/30k), each dividing the rate by 10.
        momentum, weight_decay: SGD settings (UNSPEC in the paper; Caffe's usual).
        attribute_weight: lambda1 of stage 2 (paper 0.1, kept by ``mtfr_paper``;
            lambda2 = 1). The CPU schedules use 1.0: at 1/50 of the paper's stage 2
            the attribute head barely leaves its initialisation with 0.1.
        flip: horizontal flip probability.
        seed: data and training seed.
    """

    name: str
    preset: str = "small"
    model_overrides: Tuple[Tuple[str, object], ...] = ()
    render_size: int = 80
    train_identities: int = 300
    images_per_identity: int = 20
    identity_seed: int = 0
    val_identity_seed: int = 101
    test_identity_seed: int = 202
    distractor_identity_seed: int = 303
    val_identities: int = 100
    test_identities: int = 200
    test_images_per_identity: int = 8
    verification_pairs: int = 6000
    distractors: int = 10000
    attribute_noise: float = 0.15
    vote: bool = True
    stage1_steps: int = 1400
    stage2_steps: int = 600
    batch_size: int = 64
    learning_rate: float = 0.05
    stage1_drops: Tuple[float, ...] = (40 / 70, 58 / 70)
    stage2_drops: Tuple[float, ...] = (1 / 3, 2 / 3)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    attribute_weight: float = 1.0
    flip: float = 0.5
    seed: int = 0

    def __post_init__(self):
        for name in ("train_identities", "images_per_identity", "val_identities", "test_identities",
                     "batch_size", "verification_pairs", "render_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1. Received: {name}={getattr(self, name)}")
        if self.images_per_identity < 2 or self.test_images_per_identity < 2:
            raise ConfigError(f"Each person needs >= 2 images. Received: images_per_identity="
                              f"{self.images_per_identity}, test_images_per_identity={self.test_images_per_identity}")
        if self.stage1_steps < 1 or self.stage2_steps < 0:
            raise ConfigError(f"Need stage1_steps >= 1 and stage2_steps >= 0. Received: stage1_steps="
                              f"{self.stage1_steps}, stage2_steps={self.stage2_steps}")
        if self.verification_pairs % 20:
            raise ConfigError(f"verification_pairs must be a multiple of 20 (10 balanced folds). "
                              f"Received: verification_pairs={self.verification_pairs}")
        seeds = (self.identity_seed, self.val_identity_seed, self.test_identity_seed, self.distractor_identity_seed)
        if len(set(seeds)) != 4:
            raise ConfigError(f"The four populations need distinct identity seeds. Received: {seeds}")
        if not 0.0 <= self.attribute_noise < 0.5:
            raise ConfigError(f"attribute_noise must be in [0, 0.5). Received: attribute_noise={self.attribute_noise}")
        if self.distractors < 0 or self.attribute_weight < 0 or self.learning_rate <= 0:
            raise ConfigError(f"Need distractors >= 0, attribute_weight >= 0, learning_rate > 0. Received: "
                              f"distractors={self.distractors}, attribute_weight={self.attribute_weight}, "
                              f"learning_rate={self.learning_rate}")


def _mtfr() -> MTFRExperiment:
    return MTFRExperiment("mtfr")


def _mtfr_smoke() -> MTFRExperiment:
    return MTFRExperiment(
        "mtfr_smoke", preset="tiny", render_size=48, train_identities=40, images_per_identity=12,
        val_identities=30, test_identities=40, test_images_per_identity=5, verification_pairs=600,
        distractors=1000, stage1_steps=240, stage2_steps=120, batch_size=32,
    )


def _mtfr_paper() -> MTFRExperiment:
    return MTFRExperiment(
        "mtfr_paper", preset="paper", render_size=160, train_identities=10575, images_per_identity=42,
        val_identities=500, test_identities=1000, test_images_per_identity=10, verification_pairs=6000,
        distractors=100000, stage1_steps=70000, stage2_steps=30000, batch_size=40, learning_rate=0.01,
        attribute_noise=0.0, attribute_weight=0.1,
    )


EXPERIMENTS = {"mtfr": _mtfr, "mtfr_smoke": _mtfr_smoke, "mtfr_paper": _mtfr_paper}


def get_experiment(name: str, **overrides) -> MTFRExperiment:
    """The named experiment with dataclass field ``overrides`` applied.

    Raises:
        ConfigError: for an unknown name (listing the known ones) or field.
    """
    return named_experiment(EXPERIMENTS, name, overrides, 'MTFR')
