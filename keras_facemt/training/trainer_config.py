"""Options of the training loop (``TrainerConfig``), validated when constructed."""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

import keras

from keras_facemt.errors import ConfigError

OPTIMIZERS = {
    "rmsprop": keras.optimizers.RMSprop,
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
}
MIXED_PRECISION_POLICIES = ("mixed_float16", "mixed_bfloat16")
MODEL_INPUT_KEYS = ("image", "domain")


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """Options of the training loop.

    Attributes:
        model_dir: run directory: checkpoints, ``history.json``, TensorBoard ``logs/``.
            A restarted run with the same directory resumes.
        steps_per_loop: updates per ``tf.function`` call. In ``alternate`` phases it
            is rounded up to a multiple of the number of streams so every call starts
            a fresh stream cycle.
        checkpoint_every_loops: save a checkpoint every this many loops (and always at
            the end of a phase).
        max_to_keep: checkpoints kept.
        optimizer: ``"rmsprop"`` (iFAN), ``"adam"`` or ``"sgd"``.
        optimizer_kwargs: extra constructor arguments (``momentum``, ``rho``, ...); the
            learning rate comes from the phases.
        clipnorm: clip the global (all-replica) gradient norm to this value.
        mixed_precision: ``None``, ``"mixed_float16"`` (with dynamic loss scaling) or
            ``"mixed_bfloat16"``.
        jit_compile: compile each replica's forward and backward pass with XLA (one
            replica, or GPU replicas).
        seed: seed of Python, NumPy, TensorFlow and Keras random state.
        deterministic: enable TensorFlow op determinism (same seed and config give
            identical weights).
        max_nonfinite_steps: skipped non-finite updates tolerated before
            ``TrainingError``.
        summaries: write TensorBoard summaries under ``model_dir/logs``.
        progress: show a progress bar on stderr.
        eval_every_steps: also call ``eval_fn`` when a loop crosses a multiple of this
            many steps (0: only at the end of each phase).
    """

    model_dir: str
    steps_per_loop: int = 10
    checkpoint_every_loops: int = 1
    max_to_keep: int = 3
    optimizer: str = "rmsprop"
    optimizer_kwargs: dict = dataclasses.field(default_factory=dict)
    clipnorm: Optional[float] = None
    mixed_precision: Optional[str] = None
    jit_compile: bool = False
    seed: int = 0
    deterministic: bool = False
    max_nonfinite_steps: int = 10
    summaries: bool = True
    progress: bool = True
    eval_every_steps: int = 0

    def __post_init__(self):
        if not isinstance(self.model_dir, str) or not self.model_dir:
            raise ConfigError(f"model_dir must be a non-empty path. Received: model_dir={self.model_dir!r}")
        for name in ("steps_per_loop", "checkpoint_every_loops", "max_to_keep"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1. Received: {name}={value!r}")
        for name in ("max_nonfinite_steps", "eval_every_steps", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0. Received: {name}={value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {sorted(OPTIMIZERS)}. Received: optimizer={self.optimizer!r}")
        if not isinstance(self.optimizer_kwargs, Mapping):
            raise ConfigError(f"optimizer_kwargs must be a dict. Received: optimizer_kwargs={self.optimizer_kwargs!r}")
        for key in ("learning_rate", "clipnorm", "global_clipnorm", "clipvalue"):
            if key in self.optimizer_kwargs:
                raise ConfigError(
                    f"optimizer_kwargs may not set {key!r}: learning rates come from the phases and clipping from "
                    f"TrainerConfig.clipnorm (applied to the all-replica gradient). "
                    f"Received: {key}={self.optimizer_kwargs[key]!r}"
                )
        if self.clipnorm is not None and not self.clipnorm > 0:
            raise ConfigError(f"clipnorm must be > 0 or None. Received: clipnorm={self.clipnorm!r}")
        if self.mixed_precision is not None and self.mixed_precision not in MIXED_PRECISION_POLICIES:
            raise ConfigError(
                f"mixed_precision must be None or one of {MIXED_PRECISION_POLICIES}. "
                f"Received: mixed_precision={self.mixed_precision!r}"
            )
