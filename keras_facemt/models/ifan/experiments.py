"""Named experiments: data, model, schedule and trainer options in one frozen dataclass.

An experiment says *what* to train on (one dataset per task: a SynthFace spec
generated into a cache on first use, or a directory of user shards), *which* model
(a registry preset plus overrides), and *how long* (epochs, turned into steps from
dataset sizes and batch sizes). Recipes take an experiment name and optional
overrides; nothing else in a run is hard-coded.

Experiments:

* ``ifan_3t``: the default main job of ``recipes/train_ifan.py``: parsing,
  5-point landmarks and emotion from three disjoint SynthFace datasets in three
  domains, ITER=2, sized to finish (data generation and evaluation included) in
  about 15 minutes on 2 CPU cores.
* ``ifan_3t_smoke``: the same at a size that finishes in under 3 minutes on 2 CPU
  cores (the integration test).
* ``ifan_multihost_check``: landmarks and emotion in 8 unshuffled updates, the
  multi-worker end-to-end test (two workers must end where one process ends).
* ``ifan_2t``: parsing and landmarks only (the paper's 2T setting).
* ``ifan_3t_paper``: the paper's hyper-parameters (Sec. 4.1.2: RMSprop, batch
  24/64/96 for parsing/landmarks/emotion, 30 pre-training epochs at 1e-3, 200
  fine-tuning epochs decaying 1e-3 -> 1e-6, 128x128 inputs, ``paper`` preset), for
  accelerators.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Optional, Tuple

from keras_facemt.configs.named_experiments import named_experiment
from keras_facemt.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class TaskData:
    """The dataset of one task (each its own BN domain, disjoint from the others).

    Attributes:
        task: iFAN task the dataset labels (``parsing``, ``landmarks``, ``emotion``).
        domain: SynthFace domain the images are rendered in (``synthetic.DOMAINS``).
        train_count: synthetic training examples.
        test_count: synthetic held-out examples.
        batch_size: examples per update of this task (Sec. 4.1.2: 24/64/96).
        data_dir: user shards (``dataset.json`` with ``train`` and ``test`` splits);
            when set, the synthetic fields are unused.
    """

    task: str
    domain: str = "studio"
    train_count: int = 512
    test_count: int = 128
    batch_size: int = 32
    data_dir: Optional[str] = None

    def __post_init__(self):
        for name in ("train_count", "test_count"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TaskData {self.task!r}: {name} must be >= 1. Received: {name}={getattr(self, name)}")
        if self.batch_size < 1:
            raise ConfigError(f"TaskData {self.task!r}: batch_size must be >= 1. Received: batch_size={self.batch_size}")


@dataclasses.dataclass(frozen=True)
class IFANExperiment:
    """A complete iFAN training run (Algorithm 1) and its evaluation.

    Attributes:
        name: experiment name.
        description: one line shown by the recipe.
        data: one ``TaskData`` per task; their order is the stage-1 order and the BN
            domain ids (0, 1, ...).
        model_preset: iFAN preset (``paper``, ``small``, ``tiny``).
        model_overrides: ``(field, value)`` pairs applied to the preset.
        iterations: ITER, task-interaction iterations.
        image_size: input side S (the pipeline resizes images and label maps to it).
        pretrain_epochs: E_P, stage-1 epochs per task.
        finetune_epochs: stage-2 epochs (one epoch: every task's dataset traversed once).
        pretrain_lr: stage-1 learning rate.
        finetune_lr, finetune_final_lr: stage-2 exponential decay.
        eval_points: evaluations per stage-1 task and in stage 2 (Fig. 7 curve points).
        steps_per_loop: updates per ``tf.function`` call of the trainer.
        augment: random flips/scale/colour in training.
        landmark_scheme: scheme the landmark task is trained and evaluated in.
        optimizer: trainer optimizer name (RMSprop in the paper).
        seed: seed of data order, augmentation and initialisation.
        synth_seed: seed of SynthFace generation (part of the cache key).
        eval_batch_size: batch size of evaluation.
        num_predictions: faces drawn in ``predictions.png`` per task.
        recalibrate_bn: recompute per-domain BatchNorm statistics from training
            batches before each evaluation (short runs leave the moving averages
            near their initial values; see ``layers/batch_norm_recalibration``).
        calibration_batches: training batches per task used for that.
        init_landmark_prior: start the landmark decoder at the mean training shape
            (``job.initialize_landmark_prior``).
        deterministic: TensorFlow op determinism (``TrainerConfig.deterministic``):
            the same experiment, seed and thread count give the same weights and
            results on one machine.
        shuffle: shuffle the training examples. Without it the global batches do
            not depend on how many input pipelines (workers) read the shards, which
            lets a multi-worker run be compared with a single process.
        literal_stage2: Algorithm 1's stage 2 to the letter (lines 12-14): every
            sampled batch gets ITER + 1 separate updates, one per interaction
            iteration's loss. Off (default): one update on the sum of the
            iterations' losses (Eq. 6's objective, one backward pass). Both consume
            the same number of batches per epoch.
    """

    name: str
    description: str
    data: Tuple[TaskData, ...]
    model_preset: str = "tiny"
    model_overrides: Tuple[Tuple[str, object], ...] = ()
    iterations: int = 2
    image_size: int = 64
    pretrain_epochs: float = 2.0
    finetune_epochs: float = 4.0
    pretrain_lr: float = 1e-3
    finetune_lr: float = 1e-3
    finetune_final_lr: float = 1e-4
    eval_points: int = 2
    steps_per_loop: int = 10
    augment: bool = False
    landmark_scheme: str = "mtfl5"
    optimizer: str = "rmsprop"
    seed: int = 0
    synth_seed: int = 1234
    eval_batch_size: int = 64
    num_predictions: int = 6
    recalibrate_bn: bool = True
    calibration_batches: int = 2
    init_landmark_prior: bool = True
    deterministic: bool = False
    shuffle: bool = True
    literal_stage2: bool = False

    def __post_init__(self):
        from keras_facemt.models.ifan.hybrid import check_tasks

        check_tasks(self.tasks)
        if self.iterations < 0:
            raise ConfigError(f"iterations (ITER) must be >= 0. Received: iterations={self.iterations}")
        if self.pretrain_epochs < 0 or self.finetune_epochs < 0:
            raise ConfigError(f"epochs must be >= 0. Received: pretrain_epochs={self.pretrain_epochs}, "
                              f"finetune_epochs={self.finetune_epochs}")
        if self.eval_points < 1 or self.steps_per_loop < 1 or self.eval_batch_size < 1:
            raise ConfigError(f"eval_points, steps_per_loop and eval_batch_size must be >= 1. Received: "
                              f"eval_points={self.eval_points}, steps_per_loop={self.steps_per_loop}, "
                              f"eval_batch_size={self.eval_batch_size}")
        if self.image_size < 8:
            raise ConfigError(f"image_size must be >= 8. Received: image_size={self.image_size}")

    @property
    def tasks(self) -> Tuple[str, ...]:
        return tuple(d.task for d in self.data)

    def task_data(self, task: str) -> TaskData:
        for d in self.data:
            if d.task == task:
                return d
        raise ConfigError(f"Experiment {self.name!r} has no data for task {task!r}; its tasks: "
                          f"{list(self.tasks)}. Received: task={task!r}")

    def domain_id(self, task: str) -> int:
        """BN domain id of ``task``'s dataset (its position in ``data``)."""
        return self.tasks.index(self.task_data(task).task)

    def with_tasks(self, tasks) -> "IFANExperiment":
        """The experiment restricted to (and reordered as) ``tasks``.

        Raises:
            ConfigError: for an unknown task or one this experiment has no data for.
        """
        from keras_facemt.models.ifan.hybrid import check_tasks

        tasks = check_tasks(tasks)
        return dataclasses.replace(self, data=tuple(self.task_data(t) for t in tasks))

    def with_data_dir(self, task: str, data_dir: str) -> "IFANExperiment":
        """The experiment with ``task`` read from user shards in ``data_dir``.

        A task the experiment does not have yet is added (batch size of the first task).
        """
        from keras_facemt.models.ifan.hybrid import check_tasks

        check_tasks([task])
        if task in self.tasks:
            data = tuple(dataclasses.replace(d, data_dir=data_dir) if d.task == task else d for d in self.data)
        else:
            data = self.data + (TaskData(task, batch_size=self.data[0].batch_size, data_dir=data_dir),)
        return dataclasses.replace(self, data=data)

    def model_config(self):
        """The ``IFANConfig``: the preset with this experiment's tasks, ITER, size and domains."""
        from keras_facemt.data.landmarks import num_points
        from keras_facemt.models.registry import get_system

        overrides = dict(self.model_overrides)
        overrides.setdefault("tasks", self.tasks)
        overrides.setdefault("iterations", self.iterations)
        overrides.setdefault("image_size", self.image_size)
        overrides.setdefault("num_domains", len(self.tasks))
        overrides.setdefault("num_landmarks", num_points(self.landmark_scheme))
        return get_system("ifan").config(self.model_preset, **overrides)


def _synth3(train: int, test: int, batch: int, tasks=("parsing", "landmarks", "emotion")) -> Tuple[TaskData, ...]:
    # Three disjoint datasets in three different domains, as Helen / MTFL / BNU-LSVED.
    # Emotion lives in the finest facial detail (brow and eyelid shapes), so its
    # dataset gets the sharper of the non-studio domains; landmarks survive blur.
    domains = {"parsing": "studio", "landmarks": "webcam", "emotion": "outdoor"}
    return tuple(TaskData(t, domains[t], train, test, batch) for t in tasks)


def _ifan_3t() -> IFANExperiment:
    return IFANExperiment(
        name="ifan_3t",
        description="iFAN 3T (parsing, 5-pt landmarks, emotion), ITER=2, SynthFace in 3 domains; ~15 min on 2 CPU cores",
        data=_synth3(train=1536, test=192, batch=32),
        model_preset="tiny",
        image_size=64,
        pretrain_epochs=6.0,
        finetune_epochs=8.0,
        finetune_final_lr=1e-4,
        eval_points=2,
        steps_per_loop=32,
        augment=True,
        eval_batch_size=96,
    )


def _ifan_3t_smoke() -> IFANExperiment:
    return IFANExperiment(
        name="ifan_3t_smoke",
        description="iFAN 3T smoke test: tiny model, 32x32 faces, ITER=1; < 3 min on 2 CPU cores",
        # Emotion at 32x32 is the hardest task: with 640 crops it stayed within noise of
        # the majority class (20.8% vs 16.7%); 1,536 crops (and 288 held out, to
        # tell a 5-point gain from noise) let it learn within the budget.
        data=(TaskData("parsing", "studio", 384, 96, 32), TaskData("landmarks", "webcam", 384, 96, 32),
              TaskData("emotion", "outdoor", 1536, 288, 32)),
        model_preset="tiny",
        iterations=1,
        image_size=32,
        pretrain_epochs=10.0,
        finetune_epochs=3.0,
        finetune_final_lr=1e-4,
        eval_points=1,
        steps_per_loop=24,
        augment=False,
        eval_batch_size=96,
    )


def _ifan_multihost_check() -> IFANExperiment:
    # Two equal shards per split and no shuffling: two input pipelines (one per
    # worker) then give exactly the global batches one process reads.
    return IFANExperiment(
        name="ifan_multihost_check",
        description="iFAN 2T (landmarks, emotion): 8 alternating updates, unshuffled, no stage 1; checks "
                    "multi-worker training against one process",
        data=(TaskData("landmarks", "webcam", 64, 32, 16), TaskData("emotion", "outdoor", 64, 32, 16)),
        model_preset="tiny",
        iterations=0,
        image_size=32,
        pretrain_epochs=0.0,
        finetune_epochs=1.0,
        eval_points=1,
        steps_per_loop=4,
        augment=False,
        shuffle=False,
        eval_batch_size=32,
        num_predictions=2,
    )


def _ifan_2t() -> IFANExperiment:
    exp = _ifan_3t()
    return dataclasses.replace(
        exp.with_tasks(("parsing", "landmarks")),
        name="ifan_2t",
        description="iFAN 2T (parsing, 5-pt landmarks), ITER=2, SynthFace in 2 domains",
    )


def _ifan_3t_paper() -> IFANExperiment:
    data = (
        TaskData("parsing", "studio", 2000, 330, 24),
        TaskData("landmarks", "outdoor", 10000, 2995, 64),
        TaskData("emotion", "webcam", 4880, 1220, 96),
    )
    return IFANExperiment(
        name="ifan_3t_paper",
        description="iFAN 3T with the paper's hyper-parameters (Sec. 4.1.2); needs an accelerator",
        data=data,
        model_preset="paper",
        image_size=128,
        pretrain_epochs=30.0,
        finetune_epochs=200.0,
        pretrain_lr=1e-3,
        finetune_lr=1e-3,
        finetune_final_lr=1e-6,
        eval_points=10,
        steps_per_loop=100,
        augment=True,
        eval_batch_size=64,
    )


EXPERIMENTS: Dict[str, Callable[[], IFANExperiment]] = {
    "ifan_3t": _ifan_3t,
    "ifan_3t_smoke": _ifan_3t_smoke,
    "ifan_multihost_check": _ifan_multihost_check,
    "ifan_2t": _ifan_2t,
    "ifan_3t_paper": _ifan_3t_paper,
}


def list_experiments():
    return sorted(EXPERIMENTS)


def get_experiment(name: str, **overrides) -> IFANExperiment:
    """The named experiment with dataclass field ``overrides`` applied.

    Raises:
        ConfigError: for an unknown name (listing the known ones) or field.
    """
    return named_experiment(EXPERIMENTS, name, overrides, '')
