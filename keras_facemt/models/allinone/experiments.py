"""Named All-in-One experiments on SynthFace (Ranjan et al., FG 2017, Sec. III-C, IV).

The paper's protocols scaled to synthetic data:

* training: the five streams of Table I (``data.py``) mixed in every update (the
  paper's simultaneous sub-networks with shared parameters), Eq. 8 over all terms;
  the age loss Euclidean for ``steps_euclidean`` updates and Gaussian after
  (Eq. 6's lambda switch at 20k iterations in the paper);
* detection: face / non-face classification of held-out scene proposals (IoU > 0.5
  face, < 0.35 background): average precision and accuracy;
* scenes: stage 1's AP at IoU 0.5 and the FDDB-style discrete ROC;
* landmarks (AFLW protocol, Table II layout): each face's points are the mean of
  its proposals with IoU > 0.5, NME over visible points normalised by the face
  box, overall and in three |yaw| bins (topped up to ``yaw_bin_faces`` each) with
  the mean and std of the bins; visibility accuracy;
* pose: yaw absolute error and AFW's rule (rounded to 15 degrees, share within
  15), same averaging;
* smile, gender, age: mean over ``eval_proposals`` crops of each face of unseen
  people (aligned by noisy points with ``aligned_crops``, else face proposals with
  IoU > 0.5);
* identity: 10-fold verification on balanced pairs of unseen people (descriptor
  cosine), TAR at FAR 1e-2 / 1e-3 over every pair, closed-set rank-1.

Experiments:

* ``allinone``: the default of ``recipes/train_allinone.py``, ``small`` preset,
  sized for about 15 minutes on 2 CPU cores including rendering.
* ``allinone_smoke``: the integration test, ``tiny`` preset, under 2 minutes.
* ``allinone_micro``: seconds; exercises tooling (``recipes/ablate_allinone.py``'s
  test), its figures mean nothing.
* ``allinone_paper``: the paper's sizes (227x227, ``paper`` preset, 10,548
  identities, 20k Euclidean-age iterations), for an accelerator.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

from keras_facemt.configs.named_experiments import named_experiment
from keras_facemt.errors import ConfigError

# Eq. 8's lambda_t ("chosen empirically", regression tasks weighted higher; UNSPEC).
DEFAULT_LOSS_WEIGHTS = (("detection", 1.0), ("landmarks", 5.0), ("visibility", 0.5), ("pose", 5.0),
                        ("smile", 2.0), ("gender", 1.0), ("age", 0.005), ("identity", 1.0))
AGE_LOSSES = ("switch", "euclidean", "gaussian")
DEFAULT_BATCH_SIZES = (("aflw", 48), ("celeba", 16), ("imdb_wiki", 12), ("morph", 12), ("casia", 24))


@dataclasses.dataclass(frozen=True)
class AllInOneExperiment:
    """An All-in-One training + evaluation run.

    Attributes:
        name: experiment name.
        preset: model preset (``models/allinone/config.py``).
        model_overrides: ``(field, value)`` pairs applied to the preset config
            (``num_identities`` is always ``train_identities``).
        scene_size: side of the rendered scenes proposals are cut from.
        render_size: side of the rendered face crops of the subject-dependent streams.
        max_faces: faces per scene (1..max_faces).
        train_scenes, test_scenes: scenes of the ``aflw`` stream and its test set.
        jittered_per_face, random_per_scene: proposals per face / per scene.
        attribute_identities, faces_per_identity: each of the ``celeba``,
            ``imdb_wiki`` and ``morph`` populations.
        train_identities, images_per_identity: the ``casia`` identity population.
        identity_seed: its population seed (the attribute streams use the next ones).
        test_identity_seed: the unseen people of every test set.
        test_identities, test_images_per_identity: verification population.
        verification_pairs: balanced pairs (multiple of 20: 10 folds).
        eval_proposals: crops averaged per test face (smile, gender, age).
        aligned_crops: the subject-dependent streams and test faces are warped onto
            the 5-point template (Sec. III-D's alignment; stage 2 on scenes aligns by
            the predicted points), instead of cut by a jittered face box.
        point_noise: noise of the training alignment points, as a fraction of the
            face-box size (stage 1's predicted points are not exact).
        yaw_bin_faces: faces each |yaw| bin of Table II should hold; the bins the
            test scenes leave short are topped up with single faces posed into
            them (``data.render_yaw_faces``; 0: the test scenes' faces only).
        scene_eval_scenes: test scenes run through the stage-1 pipeline
            (``scene_pipeline.py``: dense windows, IRP, L-NMS) for AP at IoU 0.5
            (0: skipped).
        steps_euclidean, steps_gaussian: updates with Eq. 6 at lambda 0, then 1.
        batch_sizes: ``(stream, examples)`` per update (mixed).
        learning_rate: Adam's initial rate (cosine decay over the run).
        loss_weights: Eq. 8's ``(task, lambda_t)``.
        tasks: the Eq. 8 tasks trained (names of ``losses.TASK_WEIGHTS``); only the
            streams carrying them are drawn. ``()``: all (the paper's network);
            one task group gives a single-task network of the same architecture.
        age_loss: ``"switch"`` (Eq. 6: lambda 0 for ``steps_euclidean`` updates,
            then 1), ``"euclidean"`` (lambda 0 throughout) or ``"gaussian"``
            (lambda 1 throughout); the step counts stay the same.
        init_from: a ``.keras`` All-in-One model of the same preset whose weights
            initialise every layer of the same name and shapes (Sec. III-B: the
            network starts from a face-identification net); ``""``: from scratch.
        seed: data and training seed.
    """

    name: str
    preset: str = "small"
    model_overrides: Tuple[Tuple[str, object], ...] = ()
    scene_size: int = 128
    render_size: int = 80
    max_faces: int = 3
    train_scenes: int = 1200
    test_scenes: int = 200
    jittered_per_face: int = 6
    random_per_scene: int = 6
    attribute_identities: int = 300
    faces_per_identity: int = 4
    train_identities: int = 300
    images_per_identity: int = 12
    identity_seed: int = 0
    test_identity_seed: int = 202
    test_identities: int = 100
    test_images_per_identity: int = 6
    verification_pairs: int = 2000
    eval_proposals: int = 3
    aligned_crops: bool = True
    point_noise: float = 0.03
    yaw_bin_faces: int = 0
    scene_eval_scenes: int = 40
    steps_euclidean: int = 1200
    steps_gaussian: int = 400
    batch_sizes: Tuple[Tuple[str, int], ...] = DEFAULT_BATCH_SIZES
    learning_rate: float = 2e-3
    loss_weights: Tuple[Tuple[str, float], ...] = DEFAULT_LOSS_WEIGHTS
    tasks: Tuple[str, ...] = ()
    age_loss: str = "switch"
    init_from: str = ""
    seed: int = 0

    def __post_init__(self):
        for name in ("scene_size", "render_size", "max_faces", "train_scenes", "test_scenes", "attribute_identities",
                     "faces_per_identity", "train_identities", "test_identities", "eval_proposals"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1. Received: {name}={getattr(self, name)}")
        if self.yaw_bin_faces < 0:
            raise ConfigError(f"yaw_bin_faces must be >= 0. Received: yaw_bin_faces={self.yaw_bin_faces}")
        if not 0.0 <= self.point_noise < 0.5:
            raise ConfigError(f"point_noise must be in [0, 0.5). Received: point_noise={self.point_noise}")
        if not 0 <= self.scene_eval_scenes <= self.test_scenes:
            raise ConfigError(f"scene_eval_scenes must be in [0, test_scenes]. Received: scene_eval_scenes="
                              f"{self.scene_eval_scenes}, test_scenes={self.test_scenes}")
        if self.images_per_identity < 2 or self.test_images_per_identity < 2:
            raise ConfigError(f"Each person needs >= 2 images. Received: images_per_identity="
                              f"{self.images_per_identity}, test_images_per_identity={self.test_images_per_identity}")
        if self.steps_euclidean < 1 or self.steps_gaussian < 0:
            raise ConfigError(f"Need steps_euclidean >= 1 and steps_gaussian >= 0. Received: steps_euclidean="
                              f"{self.steps_euclidean}, steps_gaussian={self.steps_gaussian}")
        if self.verification_pairs < 20 or self.verification_pairs % 20:
            raise ConfigError(f"verification_pairs must be a positive multiple of 20 (10 balanced folds). "
                              f"Received: verification_pairs={self.verification_pairs}")
        if self.identity_seed <= self.test_identity_seed <= self.identity_seed + 3:
            raise ConfigError(f"test_identity_seed must differ from the training populations' seeds "
                              f"(identity_seed..identity_seed+3). Received: identity_seed={self.identity_seed}, "
                              f"test_identity_seed={self.test_identity_seed}")
        from keras_facemt.models.allinone.data import STREAMS

        sizes = dict(self.batch_sizes)
        if sorted(sizes) != sorted(STREAMS) or min(sizes.values()) < 1:
            raise ConfigError(f"batch_sizes needs a size >= 1 for each stream of {STREAMS}. "
                              f"Received: batch_sizes={self.batch_sizes}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0. Received: learning_rate={self.learning_rate}")
        from keras_facemt.models.allinone.losses import loss_terms

        loss_terms(dict(self.loss_weights))  # validates the weights
        from keras_facemt.models.allinone.losses import TASK_WEIGHTS

        unknown = sorted(set(self.tasks) - set(TASK_WEIGHTS))
        if unknown:
            raise ConfigError(f"tasks must name tasks of {TASK_WEIGHTS}. Received: tasks={self.tasks}")
        if self.age_loss not in AGE_LOSSES:
            raise ConfigError(f"age_loss must be one of {AGE_LOSSES}. Received: age_loss={self.age_loss!r}")


def _allinone() -> AllInOneExperiment:
    # Table II's test set: 450 faces, a third in each |yaw| bin.
    return AllInOneExperiment("allinone", yaw_bin_faces=150)


def _allinone_smoke() -> AllInOneExperiment:
    return AllInOneExperiment(
        "allinone_smoke", preset="tiny", scene_size=96, render_size=64, train_scenes=300, test_scenes=60,
        attribute_identities=100, faces_per_identity=3, train_identities=60, images_per_identity=8,
        test_identities=40, test_images_per_identity=4, verification_pairs=400, steps_euclidean=450,
        steps_gaussian=150, scene_eval_scenes=10,
        batch_sizes=(("aflw", 48), ("celeba", 16), ("imdb_wiki", 12), ("morph", 12), ("casia", 24)),
    )


def _allinone_paper() -> AllInOneExperiment:
    return AllInOneExperiment(
        "allinone_paper", preset="paper", scene_size=454, render_size=256, max_faces=6, train_scenes=20000,
        test_scenes=1000, attribute_identities=5000, faces_per_identity=20, train_identities=10548,
        images_per_identity=40, test_identities=1000, test_images_per_identity=10, verification_pairs=6000,
        scene_eval_scenes=1000, yaw_bin_faces=150,
        steps_euclidean=20000, steps_gaussian=20000, learning_rate=1e-4,
        batch_sizes=(("aflw", 128), ("celeba", 32), ("imdb_wiki", 32), ("morph", 32), ("casia", 64)),
    )


def _allinone_micro() -> AllInOneExperiment:
    # Seconds, not minutes: for tests of tooling around a run (the ablation recipe), never for figures.
    return AllInOneExperiment(
        "allinone_micro", preset="tiny", scene_size=64, render_size=48, max_faces=2, train_scenes=24, test_scenes=3,
        jittered_per_face=3, random_per_scene=3, attribute_identities=12, faces_per_identity=2, train_identities=8,
        images_per_identity=3, test_identities=20, test_images_per_identity=2, verification_pairs=20,
        eval_proposals=1, scene_eval_scenes=1, steps_euclidean=20, steps_gaussian=10,
        batch_sizes=(("aflw", 8), ("celeba", 4), ("imdb_wiki", 4), ("morph", 4), ("casia", 4)),
    )


EXPERIMENTS = {"allinone": _allinone, "allinone_smoke": _allinone_smoke, "allinone_paper": _allinone_paper,
               "allinone_micro": _allinone_micro}


def get_experiment(name: str, **overrides) -> AllInOneExperiment:
    """The named experiment with dataclass field ``overrides`` applied.

    Raises:
        ConfigError: for an unknown name (listing the known ones) or field.
    """
    return named_experiment(EXPERIMENTS, name, overrides, "All-in-One")
