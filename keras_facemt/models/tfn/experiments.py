"""Named TFN experiments on SynthFace scenes (boxes, 68 points, age, gender, ethnicity).

The paper's protocols (Sec. III-C, V) scaled to synthetic data: detection AP at IoU
0.5 with its PR curve; 300-W-protocol NME (inter-ocular) with CED AUC and failure
rate at 0.1 / 0.2 / 0.3 on the faces matched by a detection; age MAE, gender and
ethnicity accuracy on matched faces. Training follows Sec. IV-C's four-stage
alternating scheme: (1) all tasks, (2) RPN + detection, (3) the landmark subnet and
its block on shaken detection boxes, (4) the attribute subnet and its block, each
with step learning-rate decay.

Experiments:

* ``tfn``: the default of ``recipes/train_tfn.py``, ``small`` preset at 192 px,
  sized for about 15 minutes on 2 CPU cores including data rendering.
* ``tfn_smoke``: the integration test, the ``small`` network at 96 px, 560 updates.
* ``tfn_ablation``: the base of ``recipes/ablate_tfn.py`` (13 variants), the smoke
  network and schedule on more held-out scenes (150) for less noisy comparisons.
* ``tfn_morph``: the MORPH II S1 / S2 / S3 protocol (Table V, ``morph_protocol.py``;
  run with ``--data morph=DIR``): the smoke network and base stages 1-3, then 300
  stage-4 updates per fold on the training subset's photos.
* ``tfn_paper``: the paper's sizes (VGG-16 stem, 4096-wide FCs) and the Sec. V-C
  schedule (SGD, lr 1e-3, /10 every 50k of 150k iterations), for an accelerator.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

from keras_facemt.configs.named_experiments import named_experiment
from keras_facemt.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class TFNExperiment:
    """A TFN training + evaluation run.

    Attributes:
        name: experiment name.
        preset: model preset (``models/tfn/model.py``).
        model_overrides: ``(field, value)`` pairs applied to the preset config.
        train_scenes, test_scenes: SynthFace scenes rendered per split.
        min_faces, max_faces: faces per scene.
        domain: SynthFace domain.
        seed: data and training seed.
        stage_steps: updates of the four stages (Sec. IV-C).
        stage_drops: step-decay boundaries as fractions of each stage (/10 each).
        batch_size: images per update.
        optimizer: ``"adam"`` (the CPU schedules) or ``"sgd"`` (the paper's Caffe).
        learning_rates: base rate of each stage.
        momentum, weight_decay: SGD settings (UNSPEC in the paper; Caffe's usual).
        shake_shift, shake_scale, shake_copies: the "slight shaking" of the ground-truth
            boxes that become landmark / attribute samples and extra detection ROIs.
        partial_labels: JFA-like labels (Table II): faces narrower than
            ``label_min_face`` of the image and a seeded share of the others carry
            a box only; ``landmark_label_rate`` / ``attribute_label_rate`` of the
            larger faces keep their landmarks / attributes.
        flip: horizontal flip probability.
        rpn_matcher: RPN positives, ``"top_k"`` (Eq. 2: each face's 3 best anchors) or
            ``"iou"`` ([42]: IoU >= 0.7 or the face's best anchor).
    """

    name: str
    preset: str = "small"
    model_overrides: Tuple[Tuple[str, object], ...] = ()
    train_scenes: int = 2400
    test_scenes: int = 300
    min_faces: int = 1
    max_faces: int = 4
    domain: str = "studio"
    seed: int = 0
    stage_steps: Tuple[int, int, int, int] = (1200, 300, 150, 150)
    stage_drops: Tuple[float, ...] = (2 / 3,)
    batch_size: int = 8
    optimizer: str = "adam"
    learning_rates: Tuple[float, float, float, float] = (1e-3, 3e-4, 3e-4, 3e-4)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    shake_shift: float = 0.05
    shake_scale: float = 0.1
    shake_copies: int = 1
    partial_labels: bool = False
    label_min_face: float = 0.1
    landmark_label_rate: float = 0.6248
    attribute_label_rate: float = 0.6545
    flip: float = 0.5
    rpn_matcher: str = "top_k"

    def __post_init__(self):
        def bad(msg, **kv):
            raise ConfigError(f"{msg} Received: " + ", ".join(f"{k}={v!r}" for k, v in kv.items()))

        for name in ("train_scenes", "test_scenes", "batch_size", "min_faces", "shake_copies"):
            if getattr(self, name) < 1:
                bad(f"{name} must be >= 1.", **{name: getattr(self, name)})
        if self.max_faces < self.min_faces:
            bad("max_faces must be >= min_faces.", min_faces=self.min_faces, max_faces=self.max_faces)
        if len(self.stage_steps) != 4 or min(self.stage_steps) < 0 or self.stage_steps[0] + self.stage_steps[1] < 1:
            bad("stage_steps needs 4 counts >= 0 and some detection training.", stage_steps=self.stage_steps)
        if len(self.learning_rates) != 4 or min(self.learning_rates) <= 0:
            bad("learning_rates needs 4 positive rates.", learning_rates=self.learning_rates)
        if any(not 0 < f < 1 for f in self.stage_drops):
            bad("stage_drops are fractions in (0, 1).", stage_drops=self.stage_drops)
        if self.optimizer not in ("adam", "sgd"):
            bad("optimizer must be 'adam' or 'sgd'.", optimizer=self.optimizer)
        if self.rpn_matcher not in ("top_k", "iou"):
            bad("rpn_matcher must be 'top_k' or 'iou'.", rpn_matcher=self.rpn_matcher)
        for name in ("landmark_label_rate", "attribute_label_rate", "label_min_face"):
            if not 0 <= getattr(self, name) <= 1:
                bad(f"{name} must be in [0, 1].", **{name: getattr(self, name)})


def _tfn() -> TFNExperiment:
    return TFNExperiment("tfn")


def _tfn_smoke() -> TFNExperiment:
    # The small preset's network on 96 px scenes (anchor sides halved with the image):
    # the tiny preset's single-convolution stacks do not get the RPN going in this budget.
    return TFNExperiment("tfn_smoke", preset="small", train_scenes=480, test_scenes=80, max_faces=3,
                         model_overrides=(("image_size", 96), ("rpn_scales", ((8.0, 12.0, 18.0), (26.0, 36.0, 50.0))),
                                          ("pre_nms_proposals", 150), ("proposals", 16), ("max_detections", 10)),
                         stage_steps=(400, 40, 60, 60), learning_rates=(1e-3, 3e-4, 1e-3, 1e-3), batch_size=8)


def _tfn_ablation() -> TFNExperiment:
    return dataclasses.replace(_tfn_smoke(), name="tfn_ablation", test_scenes=150)


def _tfn_morph() -> TFNExperiment:
    # The smoke network and base schedule; each fold's stage 4 on a few hundred MORPH-like photos.
    return dataclasses.replace(_tfn_smoke(), name="tfn_morph", stage_steps=(400, 40, 60, 300))


def _tfn_paper() -> TFNExperiment:
    return TFNExperiment("tfn_paper", preset="paper", train_scenes=60000, test_scenes=3000, max_faces=8,
                         stage_steps=(150000, 150000, 150000, 150000), stage_drops=(1 / 3, 2 / 3), batch_size=2,
                         optimizer="sgd", learning_rates=(1e-3, 1e-3, 1e-2, 1e-2))


EXPERIMENTS = {"tfn": _tfn, "tfn_smoke": _tfn_smoke, "tfn_ablation": _tfn_ablation, "tfn_morph": _tfn_morph,
               "tfn_paper": _tfn_paper}


def get_experiment(name: str, **overrides) -> TFNExperiment:
    """The named experiment with dataclass field ``overrides`` applied.

    Raises:
        ConfigError: for an unknown name (listing the known ones) or field.
    """
    return named_experiment(EXPERIMENTS, name, overrides, "TFN")
