"""The strategy-aware custom training loop every recipe uses (DESIGN.md, "Training").

One ``Trainer`` runs a list of ``Phase`` over named data streams and ``LossTerm``:

* Models, optimizer, step counters and the checkpoint live under ``strategy.scope()``;
  the optimizer is built on every trainable variable before the loop, so phases that
  train a subset never create optimizer slots inside a ``tf.function``.
* A replica step evaluates the phase's loss terms on the replica's batch. A term is
  ``weight * sum_b(presence_b * loss_b) / N`` with N the number of labelled examples of
  the *global* batch (all-reduced), so the replicas' contributions add up to the
  single-device loss of the global batch and the summed gradients (the optimizer
  all-reduces with SUM) equal the single-device gradient.
* ``steps_per_loop`` updates run inside one ``tf.function`` (a ``tf.range`` loop whose
  body is unrolled over the phase's stream cycle, since streams have different batch
  shapes). Between loops, on the host: metrics, TensorBoard, progress bar,
  checkpoints, evaluation.
* Phases are data (``training/schedule.py``): which streams feed the updates
  (``alternate``: update i uses ``streams[i % n]``; ``mix``: one batch of each stream
  concatenated), which loss terms count, which variables train, the learning rate.
  iFAN's Algorithm 1 and TFN's four stages are lists of phases.
* Resume: a restarted trainer with the same ``model_dir`` restores the latest
  checkpoint and continues at its global step. Each stream is rebuilt and skips the
  batches the schedule already consumed, so the resumed run sees the data order an
  uninterrupted run would have seen (given deterministic datasets).
* Non-finite guard: an update whose loss or gradient is not finite is skipped (the
  optimizer state is untouched) and counted in the graph; the host warns and raises
  ``TrainingError`` once more than ``max_nonfinite_steps`` were skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import time
import warnings
from typing import Callable, Dict, Mapping, Optional, Sequence, Union

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from keras_facemt.data.error_log import DEFAULT_ERROR_LOG, raise_data_errors
from keras_facemt.errors import CheckpointError, ConfigError, TrainingError
from keras_facemt.losses.masked_reduction import masked_sum, presence_count
from keras_facemt.training import checkpointing
from keras_facemt.training import strategy as strategy_lib
from keras_facemt.training.progress import ProgressBar
from keras_facemt.training.schedule import LossTerm, Phase, phase_at, total_steps, validate_schedule

logger = logging.getLogger(__name__)

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


# A stream: a DataConfig, or callable(input_context) -> tf.data.Dataset of batch dicts.
StreamSpec = Union[object, Callable[[Optional[tf.distribute.InputContext]], tf.data.Dataset]]


def _is_data_config(spec) -> bool:
    from keras_facemt.configs.data import DataConfig

    return isinstance(spec, DataConfig)


def _consumed_batches(phases: Sequence[Phase], phase_index: int, step_in_phase: int) -> Dict[str, int]:
    """Batches (global steps' worth) each stream gave before ``(phase_index, step_in_phase)``."""
    counts: Dict[str, int] = {}
    for i, phase in enumerate(phases[: phase_index + 1]):
        k = phase.steps if i < phase_index else step_in_phase
        if phase.mode == "mix":
            for s in phase.streams:
                counts[s] = counts.get(s, 0) + k
        else:
            n = len(phase.streams)
            for j, s in enumerate(phase.streams):
                counts[s] = counts.get(s, 0) + (-(-(k - j) // n) if k > j else 0)
    return counts


def _concat_batches(names: Sequence[str], batches: Sequence[dict]) -> dict:
    """Concatenates one batch per stream along the batch axis (``mix`` phases).

    Keys are the union; a stream lacking a key contributes zeros, which for ``has_*``
    keys means "not labelled".

    Raises:
        ConfigError: a key whose per-example shape differs between streams.
    """
    keys = []
    for b in batches:
        keys.extend(k for k in b if k not in keys)
    out = {}
    for key in keys:
        ref_name, ref = next((n, b[key]) for n, b in zip(names, batches) if key in b)
        parts = []
        for name, b in zip(names, batches):
            if key in b:
                if not b[key].shape[1:].is_compatible_with(ref.shape[1:]) or b[key].dtype != ref.dtype:
                    raise ConfigError(
                        f"mix phase: batch key {key!r} has per-example shape {b[key].shape[1:]} ({b[key].dtype.name}) "
                        f"in stream {name!r} but {ref.shape[1:]} ({ref.dtype.name}) in stream {ref_name!r}. "
                        f"Received: streams={tuple(names)}"
                    )
                parts.append(b[key])
            else:
                if key == "image":
                    raise ConfigError(
                        f"mix phase: stream {name!r} yields batches without 'image'. Received: keys={sorted(b)}")
                n = tf.shape(b["image"])[0]
                shape = tf.concat([[n], tf.shape(ref)[1:]], axis=0)
                parts.append(tf.zeros(shape, ref.dtype))
        out[key] = tf.concat(parts, axis=0)
    return out


def write_scalar_summary(name: str, value: float, step: int) -> None:
    """Writes a TensorBoard scalar to the default summary writer.

    ``tf.summary.scalar`` needs the ``tensorboard`` package installed; this writes the
    same event (a float32 tensor tagged for the ``scalars`` plugin) with TensorFlow
    alone, so training works without it and TensorBoard still reads the logs.
    """
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    tf.summary.write(name, tf.constant(float(value), tf.float32), step=step,
                     metadata=metadata.SerializeToString())


class Trainer:
    """Trains a (multi-task) model through a list of phases under a ``tf.distribute`` strategy.

    Args:
        model_fn: ``() -> keras.Model`` or ``{"main": keras.Model, <key>: keras.Model}``
            (other keys: weight-sharing sub-models that phases select with
            ``Phase.model``). Called once inside ``strategy.scope()``.
        loss_terms: the ``LossTerm`` of the system.
        streams: ``{name: DataConfig}`` (built with ``data.pipeline.build_dataset``) or
            ``{name: callable(input_context) -> tf.data.Dataset}`` of batch dicts
            (``data/batch.py``) of the per-replica batch size.
        phases: the schedule.
        config: ``TrainerConfig``.
        strategy: a ``tf.distribute.Strategy``; ``None``: ``get_strategy("auto")``.
        eval_fn: ``eval_fn(trainer, global_step, phase_name) -> {name: float}``, called
            at the end of each phase (and every ``eval_every_steps``); results go to
            TensorBoard (``eval/<name>``) and ``history["evals"]``.

    Attributes:
        model: the ``main`` model. models: every model by key. optimizer.
        strategy. global_step: the step reached (int). history: see ``train``.
    """

    def __init__(self, model_fn: Callable, loss_terms: Sequence[LossTerm], streams: Mapping[str, StreamSpec],
                 phases: Sequence[Phase], config: TrainerConfig, strategy: Optional[tf.distribute.Strategy] = None,
                 eval_fn: Optional[Callable] = None):
        if not isinstance(config, TrainerConfig):
            raise ConfigError(f"config must be a TrainerConfig. Received: config={type(config).__name__}")
        if not streams:
            raise ConfigError(f"streams must name at least one data stream. Received: streams={streams!r}")
        for name, spec in streams.items():
            if not (_is_data_config(spec) or callable(spec)):
                raise ConfigError(
                    f"stream {name!r} must be a DataConfig or a callable(input_context) -> tf.data.Dataset. "
                    f"Received: {name}={type(spec).__name__}"
                )
        phases = tuple(phases)
        loss_terms = tuple(loss_terms)
        if not phases:
            raise ConfigError("phases must hold at least one Phase. Received: phases=()")
        for phase in phases:
            if phase.mode == "mix" and len(set(phase.streams)) != len(phase.streams):
                raise ConfigError(
                    f"Phase {phase.name!r}: a mix phase lists each stream once. Received: streams={phase.streams}")
        validate_schedule(phases, loss_terms, list(streams), models=_ANY_MODEL)
        self.config = config
        self.loss_terms = loss_terms
        self.streams = dict(streams)
        self.phases = phases
        self.eval_fn = eval_fn
        self.strategy = strategy if strategy is not None else strategy_lib.get_strategy()
        self._chief = strategy_lib.is_chief(self.strategy)
        self._check_jit_support()

        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(config.seed)

        previous_policy = keras.mixed_precision.global_policy()
        if config.mixed_precision:
            keras.mixed_precision.set_dtype_policy(config.mixed_precision)
        try:
            with self.strategy.scope():
                built = model_fn()
                self.models = self._as_model_dict(built)
                self.optimizer = self._make_optimizer(phases[0].learning_rate.initial)
                self._all_variables = self._union_trainable_variables()
                self.optimizer.build(self._all_variables)
                only_first = tf.VariableAggregation.ONLY_FIRST_REPLICA
                self._step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step",
                                             aggregation=only_first)
                self._nonfinite_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_steps",
                                                  aggregation=only_first)
                main_weights = list(self.models["main"].weights)
                main_ids = {id(v) for v in main_weights}
                self.checkpoint = tf.train.Checkpoint(
                    global_step=self._step_var,
                    nonfinite_steps=self._nonfinite_var,
                    optimizer=self.optimizer,
                    optimizer_variables=checkpointing.variable_bag(self.optimizer.variables, with_names=False),
                    submodels={k: m for k, m in self.models.items() if k != "main"},
                    submodel_variables=checkpointing.variable_bag(
                        [v for k, m in self.models.items() if k != "main" for v in m.weights
                         if id(v) not in main_ids]),
                    **{checkpointing.MODEL_KEY: self.models["main"],
                       checkpointing.MODEL_VARIABLES_KEY: checkpointing.variable_bag(main_weights)},
                )
        finally:
            keras.mixed_precision.set_dtype_policy(previous_policy)
        validate_schedule(phases, loss_terms, list(streams), models=list(self.models))
        self._check_outputs()
        self._phase_variables = [self._select_variables(p) for p in phases]
        self._loop_fns: Dict[tuple, Callable] = {}
        self._manager: Optional[tf.train.CheckpointManager] = None
        self._writer = None
        self.history = {"global_step": 0, "phases": [], "evals": [], "nonfinite_steps": 0}

    # ------------------------------------------------------------------ set-up

    def _check_jit_support(self):
        """XLA with several replicas needs GPU replicas.

        The compiled replica step contains cross-replica sums (loss normalisation,
        synchronised BatchNorm). TensorFlow compiles them into the XLA program only on
        GPUs; on CPU replicas it needs a ``merge_call``, which cannot run inside a
        compiled function.
        """
        if not self.config.jit_compile or self.strategy.num_replicas_in_sync <= 1:
            return
        if isinstance(self.strategy, tf.distribute.TPUStrategy):
            return
        devices = list(self.strategy.extended.worker_devices)
        if not all("GPU" in d.upper() for d in devices):
            raise ConfigError(
                "jit_compile with several replicas needs GPU replicas (cross-replica sums cannot be compiled on "
                f"CPU replicas); use jit_compile=False or one replica. Received: devices={devices}"
            )

    @property
    def model(self) -> keras.Model:
        return self.models["main"]

    @property
    def global_step(self) -> int:
        return int(self._step_var.numpy())

    @staticmethod
    def _as_model_dict(built) -> Dict[str, keras.Model]:
        if isinstance(built, keras.Model):
            return {"main": built}
        if isinstance(built, Mapping) and "main" in built and all(isinstance(m, keras.Model) for m in built.values()):
            return dict(built)
        raise ConfigError(
            "model_fn must return a keras.Model or a dict of keras.Model with a 'main' key. "
            f"Received: {type(built).__name__}{sorted(built) if isinstance(built, Mapping) else ''}"
        )

    def _make_optimizer(self, learning_rate: float):
        cls = OPTIMIZERS[self.config.optimizer]
        try:
            optimizer = cls(learning_rate=learning_rate, **dict(self.config.optimizer_kwargs))
        except TypeError as e:
            raise ConfigError(f"Bad optimizer_kwargs for {self.config.optimizer!r} ({e}). "
                              f"Received: optimizer_kwargs={dict(self.config.optimizer_kwargs)}") from None
        if self.config.mixed_precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    def _union_trainable_variables(self) -> list:
        seen, out = set(), []
        for m in self.models.values():
            for v in m.trainable_variables:
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        if not out:
            raise ConfigError("The model has no trainable variables. Received: models=" + str(sorted(self.models)))
        return out

    def _check_outputs(self):
        """Every active term of a phase reads an output its model has (functional models)."""
        for phase in self.phases:
            struct = getattr(self.models[phase.model], "_outputs_struct", None)
            if not isinstance(struct, Mapping):
                continue
            for term in phase.active_terms(self.loss_terms):
                if term.output not in struct:
                    raise ConfigError(
                        f"LossTerm {term.name!r} (phase {phase.name!r}) reads model output {term.output!r}, "
                        f"which model {phase.model!r} does not produce; outputs: {sorted(struct)}. "
                        f"Received: output={term.output!r}"
                    )

    def _select_variables(self, phase: Phase) -> list:
        variables = [v for v in self.models[phase.model].trainable_variables if phase.selects_variable(v.path)]
        if not variables:
            examples = [v.path for v in self.models[phase.model].trainable_variables[:6]]
            raise ConfigError(
                f"Phase {phase.name!r}: trainable patterns select no variable of model {phase.model!r} "
                f"(variable paths look like {examples}). Received: trainable={phase.trainable}"
            )
        return variables

    @property
    def _uses_loss_scale(self) -> bool:
        return isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)

    # ------------------------------------------------------------------ data

    def _stream_dataset(self, name: str, input_context, skip_steps: int) -> tf.data.Dataset:
        spec = self.streams[name]
        if _is_data_config(spec):
            from keras_facemt.data.pipeline import build_dataset

            dataset = build_dataset(spec, input_context)
        else:
            dataset = spec(input_context)
        if not isinstance(dataset, tf.data.Dataset):
            raise ConfigError(f"stream {name!r} must produce a tf.data.Dataset. Received: {type(dataset).__name__}")
        if not isinstance(dataset.element_spec, Mapping) or "image" not in dataset.element_spec:
            raise ConfigError(
                f"stream {name!r} must yield dict batches with an 'image' key (data/batch.py). "
                f"Received: element_spec={dataset.element_spec}"
            )
        if skip_steps:
            # One global step takes one batch from each replica this pipeline feeds.
            per_step = 1
            if input_context is not None:
                per_step = max(input_context.num_replicas_in_sync // max(input_context.num_input_pipelines, 1), 1)
            dataset = dataset.skip(skip_steps * per_step)
        return dataset

    def _make_iterators(self, phase_index: int, step_in_phase: int):
        """Distributed iterators of the phase and the cycle plan (iterator index per update)."""
        phase = self.phases[phase_index]
        consumed = _consumed_batches(self.phases, phase_index, step_in_phase)
        if phase.mode == "mix":
            names = tuple(phase.streams)

            def mixed_fn(ctx):
                parts = tuple(self._stream_dataset(s, ctx, consumed.get(s, 0)) for s in names)
                return tf.data.Dataset.zip(parts).map(lambda *b: _concat_batches(names, b),
                                                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

            dist = self.strategy.distribute_datasets_from_function(mixed_fn)
            self._check_stream_keys(phase, names, dist.element_spec)
            return [iter(dist)], [0], [names]
        unique = list(dict.fromkeys(phase.streams))
        iterators = []
        keys = set()
        for s in unique:
            dist = self.strategy.distribute_datasets_from_function(
                lambda ctx, s=s: self._stream_dataset(s, ctx, consumed.get(s, 0)))
            self._check_stream_keys(phase, (s,), dist.element_spec)
            keys.update(dist.element_spec)
            iterators.append(iter(dist))
        presences = [t.presence for t in phase.active_terms(self.loss_terms)]
        if not any(p in keys for p in presences):
            raise ConfigError(
                f"Phase {phase.name!r}: none of its streams {phase.streams} yields a presence key of its loss terms "
                f"({sorted(set(presences))}), so it would train nothing. Received: batch keys={sorted(keys)}"
            )
        plan = [unique.index(s) for s in phase.streams]
        return iterators, plan, [(s,) for s in unique]

    def _check_stream_keys(self, phase: Phase, names: Sequence[str], element_spec) -> None:
        """The batches of ``names`` carry every input the phase's model declares."""
        struct = getattr(self.models[phase.model], "_inputs_struct", None)
        if isinstance(struct, Mapping):
            missing = [k for k in struct if k not in element_spec]
            if missing:
                raise ConfigError(
                    f"Phase {phase.name!r}: stream {'+'.join(names)!r} lacks model input(s) {missing} of model "
                    f"{phase.model!r}. Received: batch keys={sorted(element_spec)}"
                )

    # ------------------------------------------------------------------ graph

    def _model_inputs(self, model: keras.Model, batch: dict, stream: str):
        struct = getattr(model, "_inputs_struct", None)
        if isinstance(struct, Mapping):
            missing = [k for k in struct if k not in batch]
            if missing:
                raise ConfigError(
                    f"stream {stream!r} lacks model input(s) {missing}. Received: batch keys={sorted(batch)}")
            return {k: batch[k] for k in struct}
        if struct is not None and not isinstance(struct, (list, tuple)):
            return batch["image"]
        return {k: batch[k] for k in MODEL_INPUT_KEYS if k in batch}

    def _replica_step(self, batch, phase_index: int, stream_names: Sequence[str], variables: list):
        """One update on this replica's batch; returns all-reduced statistics."""
        phase = self.phases[phase_index]
        model = self.models[phase.model]
        terms = phase.active_terms(self.loss_terms)
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync

        def all_sum(values):
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, values) if replicas > 1 else values

        # A term counts on this stream only when the stream carries its presence key;
        # static per stream, hence identical on every replica.
        present = [t for t in terms if t.presence in batch]
        local_counts = tf.stack([presence_count(batch[t.presence]) for t in present] + [tf.constant(0.0)])
        examples = tf.cast(tf.shape(batch["image"])[0], tf.float32)
        counts_and_examples = all_sum(tf.concat([local_counts, [examples]], axis=0))
        global_counts = counts_and_examples[: len(present)]
        global_examples = counts_and_examples[-1]

        inputs = self._model_inputs(model, batch, "+".join(stream_names))

        def forward_backward(inputs, batch, global_counts):
            with tf.GradientTape() as tape:
                outputs = model(inputs, training=True)
                if not isinstance(outputs, Mapping):
                    outputs = {"output": outputs}
                contributions = []
                for i, term in enumerate(present):
                    if term.output not in outputs:
                        raise ConfigError(
                            f"LossTerm {term.name!r} reads model output {term.output!r}, which model "
                            f"{phase.model!r} does not produce; outputs: {sorted(outputs)}. "
                            f"Received: output={term.output!r}"
                        )
                    prediction = outputs[term.output]
                    if prediction.dtype in (tf.float16, tf.bfloat16):
                        prediction = tf.cast(prediction, tf.float32)
                    loss = term.fn(batch, prediction)
                    if loss.shape.rank is not None and loss.shape.rank != 1:
                        raise ConfigError(
                            f"LossTerm {term.name!r}: fn must return per-example losses [batch]. "
                            f"Received: shape={loss.shape}"
                        )
                    contributions.append(
                        term.weight * tf.math.divide_no_nan(masked_sum(loss, batch[term.presence]), global_counts[i]))
                total = tf.add_n(contributions) if contributions else tf.constant(0.0)
                if model.losses:
                    # Every replica adds the same regularisation; the SUM of gradients
                    # across replicas must count it once.
                    total += tf.add_n([tf.cast(l, tf.float32) for l in model.losses]) / replicas
                scaled = self.optimizer.scale_loss(total) if self._uses_loss_scale else total
            grads = tape.gradient(scaled, variables)
            terms_vec = tf.stack(contributions + [tf.constant(0.0)])[:-1] if contributions else tf.zeros([0])
            return terms_vec, total, grads

        if self.config.jit_compile:
            forward_backward = tf.function(forward_backward, jit_compile=True, autograph=False)
        local_terms, local_total, grads = forward_backward(inputs, batch, global_counts)
        # Variables the step's terms do not reach (a decoder whose task has no labels
        # in this stream) get no update at all rather than a zero one.
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        grads = [g for g, _ in pairs]
        used = [v for _, v in pairs]

        def values(g):
            return g.values if isinstance(g, tf.IndexedSlices) else g

        sumsq = (tf.add_n([tf.reduce_sum(tf.square(tf.cast(values(g), tf.float32))) for g in grads])
                 if grads else tf.constant(0.0))
        stats = all_sum(tf.concat([local_terms, [local_total, sumsq]], axis=0))
        global_terms, global_total, global_sumsq = stats[:-2], stats[-2], stats[-1]
        finite = tf.math.is_finite(global_total)
        if not self._uses_loss_scale:
            # Loss scaling detects overflowing gradients itself (and must not count them).
            finite = tf.logical_and(finite, tf.math.is_finite(global_sumsq))

        if self.config.clipnorm is not None and grads:
            grads = [tf.convert_to_tensor(g) for g in grads]
            global_grads = all_sum(grads)
            norm = tf.linalg.global_norm([tf.cast(g, tf.float32) for g in global_grads])
            if self._uses_loss_scale:
                norm = norm / tf.cast(self.optimizer.dynamic_scale, tf.float32)
            factor = tf.minimum(1.0, self.config.clipnorm / tf.maximum(norm, 1e-12))
            # Scaling each replica's gradient scales their sum: the optimizer's
            # all-reduce then yields the clipped global gradient.
            grads = [g * tf.cast(factor, g.dtype) for g in grads]

        if grads:
            self._apply_if_finite(finite, grads, used)

        # Per-term vector over all active terms (0 where the stream lacks the label).
        full_terms, full_counts = [], []
        by_name = {t.name: i for i, t in enumerate(present)}
        for t in terms:
            if t.name in by_name:
                full_terms.append(global_terms[by_name[t.name]])
                full_counts.append(global_counts[by_name[t.name]])
            else:
                full_terms.append(tf.constant(0.0))
                full_counts.append(tf.constant(0.0))
        return {
            "terms": tf.stack(full_terms),
            "counts": tf.stack(full_counts),
            "total": global_total,
            "finite": finite,
            "examples": global_examples,
        }

    def _apply_if_finite(self, finite, grads, variables):
        """Applies gradients when ``finite`` (identical on all replicas), else leaves all state untouched."""
        optimizer = self.optimizer
        if self._uses_loss_scale:
            # LossScaleOptimizer skips non-finite updates itself and lowers its scale.
            optimizer.apply(grads, variables)
            return

        def apply(grads):
            optimizer.apply(grads, variables)

        if tf.__internal__.distribute.strategy_supports_no_merge_call():
            tf.cond(finite, lambda: apply(grads), lambda: None)
            return

        def cross_replica(distribution, finite, grads):
            # The condition must run in cross-replica context: a replica-context cond
            # may not contain the optimizer's merge_call.
            first = distribution.experimental_local_results(finite)[0]
            tf.cond(first, lambda: distribution.extended.call_for_each_replica(apply, args=(grads,)), lambda: None)

        tf.distribute.get_replica_context().merge_call(cross_replica, args=(finite, grads))

    def _loop_fn(self, phase_index: int, plan: Sequence[int], stream_names: Sequence[Sequence[str]], remainder: int):
        phase = self.phases[phase_index]
        variables = self._phase_variables[phase_index]
        # Phases that differ only in length or learning rate (e.g. a stage cut into
        # pieces for evaluation) share one traced function.
        key = (phase.model, phase.mode, tuple(t.name for t in phase.active_terms(self.loss_terms)),
               tuple(id(v) for v in variables), tuple(tuple(n) for n in stream_names), tuple(plan), remainder)
        if key in self._loop_fns:
            return self._loop_fns[key]
        num_terms = len(phase.active_terms(self.loss_terms))
        n = len(plan)
        strategy = self.strategy

        def one_update(iterator, names, lr, acc):
            self.optimizer.learning_rate = lr
            batch = next(iterator)
            out = strategy.run(self._replica_step, args=(batch, phase_index, names, variables))
            # Every replica holds the same all-reduced values.
            out = {k: strategy.experimental_local_results(v)[0] for k, v in out.items()}
            bad = tf.logical_not(out["finite"])
            self._nonfinite_var.assign_add(tf.cast(bad, tf.int64))
            self._step_var.assign_add(1)
            step = self._step_var.read_value()
            labelled = out["counts"] > 0
            term_ok = tf.logical_and(labelled, tf.math.is_finite(out["terms"]))
            return {
                "term_sum": acc["term_sum"] + tf.where(term_ok, out["terms"], 0.0),
                "term_steps": acc["term_steps"] + tf.cast(term_ok, tf.float32),
                "term_bad": acc["term_bad"] + tf.cast(
                    tf.logical_and(labelled, tf.logical_not(tf.math.is_finite(out["terms"]))), tf.float32),
                "total_sum": acc["total_sum"] + tf.where(bad, 0.0, out["total"]),
                "finite_steps": acc["finite_steps"] + tf.cast(out["finite"], tf.float32),
                "bad_steps": acc["bad_steps"] + tf.cast(bad, tf.float32),
                "first_bad": tf.where(tf.logical_and(bad, acc["first_bad"] < 0), step, acc["first_bad"]),
                "examples": acc["examples"] + out["examples"],
            }

        def loop(iterators, num_cycles, lrs):
            acc = {
                "term_sum": tf.zeros([num_terms]),
                "term_steps": tf.zeros([num_terms]),
                "term_bad": tf.zeros([num_terms]),
                "total_sum": tf.constant(0.0),
                "finite_steps": tf.constant(0.0),
                "bad_steps": tf.constant(0.0),
                "first_bad": tf.constant(-1, tf.int64),
                "examples": tf.constant(0.0),
            }
            for c in tf.range(num_cycles):
                for j in range(n):
                    acc = one_update(iterators[plan[j]], stream_names[plan[j]], lrs[c * n + j], acc)
            for j in range(remainder):
                acc = one_update(iterators[plan[j]], stream_names[plan[j]], lrs[num_cycles * n + j], acc)
            return acc

        fn = tf.function(loop)
        self._loop_fns[key] = fn
        return fn

    # ------------------------------------------------------------------ host

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run's outputs (always, except non-chief workers of a cluster)."""
        return self._chief

    def _worker_directory(self) -> str:
        # Non-chief workers must take part in saving (it may run collectives) but
        # write to a private directory that is removed right after.
        return os.path.join(self.config.model_dir, checkpointing.WORKERS_SUBDIR,
                            f"worker_{strategy_lib.worker_index()}")

    def _checkpoint_directory(self) -> str:
        if self._chief:
            return checkpointing.checkpoint_dir(self.config.model_dir)
        return os.path.join(self._worker_directory(), checkpointing.CHECKPOINT_SUBDIR)

    def _new_manager(self) -> None:
        self._manager = tf.train.CheckpointManager(self.checkpoint, self._checkpoint_directory(),
                                                   max_to_keep=self.config.max_to_keep, step_counter=self._step_var)

    def _discard_worker_files(self) -> None:
        """Removes a non-chief worker's private save (its manager then starts empty)."""
        if self._chief:
            return
        shutil.rmtree(self._worker_directory(), ignore_errors=True)
        self._new_manager()

    def _restore(self) -> int:
        self._new_manager()
        latest = checkpointing.latest_checkpoint(self.config.model_dir)
        if latest is None:
            return 0
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise CheckpointError(
                f"The checkpoint in {self.config.model_dir!r} does not match this model and optimizer ({e}); "
                f"use a new model_dir for a different architecture. Received: checkpoint={latest!r}"
            ) from None
        step = self.global_step
        history_path = os.path.join(self.config.model_dir, checkpointing.HISTORY_FILE)
        if os.path.exists(history_path):
            import json

            with open(history_path) as f:
                saved = json.load(f)
            self.history["phases"] = [p for p in saved.get("phases", []) if p.get("end_step", 0) <= step]
            self.history["evals"] = [e for e in saved.get("evals", []) if e.get("step", 0) <= step]
        logger.info("Resumed from %s at step %d", latest, step)
        return step

    def save_checkpoint(self) -> str:
        """Checkpoints the current state at the current step, replacing that step's checkpoint.

        For state changed after training ends (e.g. BatchNorm statistics recomputed
        before the final evaluation), so the checkpoint matches what was evaluated.

        Every worker of a multi-worker run must call it (saving may run collectives);
        only the chief's checkpoint is kept.

        Returns:
            The checkpoint path (a non-chief worker's is already deleted).
        """
        path = self._manager.save(checkpoint_number=self.global_step)
        self._discard_worker_files()
        return path

    def _save(self):
        step = self.global_step
        self.history["global_step"] = step
        self.history["nonfinite_steps"] = int(self._nonfinite_var.numpy())
        if self._chief:
            from keras_facemt.io import write_json_atomic

            # History first: a kill between the two leaves history ahead of the
            # checkpoint, and resume drops entries past the restored step.
            write_json_atomic(os.path.join(self.config.model_dir, checkpointing.HISTORY_FILE), self.history)
        if self._manager.latest_checkpoint and checkpointing.checkpoint_step(self._manager.latest_checkpoint) == step:
            return
        self._manager.save(checkpoint_number=step)
        self._discard_worker_files()

    def _summaries(self, scalars: Dict[str, float], step: int):
        if self._writer is None:
            return
        with self._writer.as_default(step=step):
            for name, value in scalars.items():
                write_scalar_summary(name, value, step)
        self._writer.flush()

    def _evaluate(self, step: int, phase_name: str):
        if self.eval_fn is None:
            return
        results = self.eval_fn(self, step, phase_name) or {}
        if not isinstance(results, Mapping):
            raise ConfigError(f"eval_fn must return a dict of floats. Received: {type(results).__name__}")
        results = {str(k): float(v) for k, v in results.items()}
        self.history["evals"].append({"step": step, "phase": phase_name, **results})
        self._summaries({f"eval/{k}": v for k, v in results.items()}, step)

    def train(self) -> dict:
        """Runs (or resumes) the schedule to its end.

        Returns:
            ``{"global_step": int, "phases": [{"name", "start_step", "end_step",
            "seconds", "metrics": {...}, "data_issues": {...}}], "evals": [{"step", "phase", ...}],
            "nonfinite_steps": int, "data_issues": {stream: {action: count}}}``
            (``data_issues``: records the input pipeline skipped/truncated and shard
            files it lost, from ``DEFAULT_ERROR_LOG``); also saved as ``model_dir/history.json``.

        Raises:
            TrainingError: more than ``max_nonfinite_steps`` non-finite updates, or a
                stream that ran out of data.
        """
        cfg = self.config
        if self._chief:
            os.makedirs(cfg.model_dir, exist_ok=True)
        self._restore()
        if self._chief and cfg.summaries and self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(cfg.model_dir, checkpointing.LOGS_SUBDIR))
        total = total_steps(self.phases)
        bar = ProgressBar(total) if (cfg.progress and self._chief) else None
        try:
            while True:
                phase_index, step_in_phase = phase_at(self.phases, self.global_step)
                if phase_index >= len(self.phases):
                    break
                with self._lost_worker_check("training"):
                    self._run_phase(phase_index, step_in_phase, bar)
        finally:
            if bar is not None:
                bar.close()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self.history["global_step"] = self.global_step
        self.history["nonfinite_steps"] = int(self._nonfinite_var.numpy())
        self.history["data_issues"] = DEFAULT_ERROR_LOG.counts()
        return self.history

    @contextlib.contextmanager
    def _lost_worker_check(self, what: str):
        """Turns the runtime's error for a lost peer of a multi-worker run into a ``TrainingError``."""
        try:
            yield
        except strategy_lib.LOST_PEER_ERRORS as e:
            if not strategy_lib.in_multi_worker_mode(self.strategy):
                raise
            latest = checkpointing.latest_checkpoint(self.config.model_dir)
            resume_step = checkpointing.checkpoint_step(latest) if latest else 0
            raise TrainingError(strategy_lib.lost_worker_message(e, self.global_step, what, resume_step)) from None

    def finish(self) -> None:
        """Ends the run on every worker together; call it last, after the chief's own work.

        A worker that leaves a ``MultiWorkerMirroredStrategy`` cluster stops sending
        heartbeats, and the coordination service reports it as crashed to whoever is
        still running. So every worker waits here until all (the chief last, after its
        evaluation, saving and reports) have arrived, and they leave together. A
        non-chief worker's private directory is removed first, and the chief removes
        the then empty ``.workers/``. A no-op apart from that on one host.

        Raises:
            TrainingError: a worker was lost before reaching the barrier.
        """
        self._discard_worker_files()
        with self._lost_worker_check("the final barrier"):
            strategy_lib.wait_for_all_workers(self.strategy, "keras_facemt_run_end")
        if self._chief:
            try:
                os.rmdir(os.path.join(self.config.model_dir, checkpointing.WORKERS_SUBDIR))
            except OSError:
                pass  # never created (one host), or not empty: not ours to delete

    def _run_phase(self, phase_index: int, step_in_phase: int, bar: Optional[ProgressBar]):
        cfg = self.config
        phase = self.phases[phase_index]
        terms = phase.active_terms(self.loss_terms)
        iterators, plan, names = self._make_iterators(phase_index, step_in_phase)
        n = len(plan)
        # Rotate the cycle so update i of the phase still uses streams[i % n] when a
        # run resumes mid-cycle.
        plan = [plan[(step_in_phase + j) % n] for j in range(n)]
        loop_len = -(-cfg.steps_per_loop // n) * n
        phase_start = self.global_step - step_in_phase
        started = time.monotonic()
        loops = 0
        s = step_in_phase
        phase_acc = None  # running sums over this run's loops of the phase
        phase_seconds = 0.0
        while s < phase.steps:
            m = min(loop_len, phase.steps - s)
            cycles, remainder = divmod(m, n)
            fn = self._loop_fn(phase_index, plan, names, remainder)
            rates = [phase.learning_rate.at(s + i, phase.steps) for i in range(m)]
            # Padded to the loop length so every call has the same signature.
            lrs = tf.constant(rates + [rates[-1]] * (loop_len - m), tf.float32)
            t0 = time.monotonic()
            try:
                with raise_data_errors():  # a fail-policy record error arrives typed
                    acc = fn(iterators, tf.constant(cycles, tf.int32), lrs)
            except tf.errors.OutOfRangeError:
                raise TrainingError(
                    f"Phase {phase.name!r}: a stream of {phase.streams} ran out of data near step "
                    f"{self.global_step}; training streams must repeat. Received: streams={phase.streams}"
                ) from None
            acc = {k: v.numpy() for k, v in acc.items()}
            seconds = time.monotonic() - t0
            s += m
            loops += 1
            step = self.global_step
            metrics = self._loop_metrics(terms, acc, seconds)
            phase_acc = acc if phase_acc is None else {k: phase_acc[k] + v for k, v in acc.items()}
            phase_seconds += seconds
            self._check_nonfinite(phase, terms, acc)
            lr_now = rates[-1]
            self._summaries({**{f"loss/{k}": v for k, v in metrics.items() if k not in ("examples_per_sec",)},
                             "learning_rate": lr_now, "examples_per_sec": metrics["examples_per_sec"]}, step)
            if bar is not None:
                bar.update(step, phase.name, metrics["total"], metrics["examples_per_sec"], seconds, m,
                           force=s >= phase.steps)
            phase_end = s >= phase.steps
            if cfg.eval_every_steps and (step // cfg.eval_every_steps) > ((step - m) // cfg.eval_every_steps) \
                    and not phase_end:
                self._evaluate(step, phase.name)
            if phase_end:
                self.history["phases"].append({
                    "name": phase.name,
                    "start_step": phase_start,
                    "end_step": step,
                    "seconds": time.monotonic() - started,
                    "metrics": self._loop_metrics(terms, phase_acc, phase_seconds),
                    # Records skipped, faces truncated and shard files lost so far
                    # ({stream: {action: count}}): less data than dataset.json promises shows.
                    "data_issues": DEFAULT_ERROR_LOG.counts(),
                })
                if len(DEFAULT_ERROR_LOG) and self._chief:
                    logger.warning("end of phase %r: %s", phase.name, DEFAULT_ERROR_LOG.summary())
                self._evaluate(step, phase.name)
            if phase_end or loops % cfg.checkpoint_every_loops == 0:
                self._save()

    @staticmethod
    def _loop_metrics(terms, acc, seconds: float) -> Dict[str, float]:
        """Mean of each term over the updates that had its labels, mean total, throughput."""
        metrics = {}
        for i, t in enumerate(terms):
            if acc["term_steps"][i] > 0:
                metrics[t.name] = float(acc["term_sum"][i] / acc["term_steps"][i])
        metrics["total"] = float(acc["total_sum"] / acc["finite_steps"]) if acc["finite_steps"] > 0 else float("nan")
        metrics["examples_per_sec"] = float(acc["examples"] / seconds) if seconds > 0 else 0.0
        return metrics

    def _check_nonfinite(self, phase: Phase, terms, acc):
        bad = int(acc["bad_steps"])
        if not bad:
            return
        total_bad = int(self._nonfinite_var.numpy())
        bad_terms = [t.name for i, t in enumerate(terms) if acc["term_bad"][i] > 0]
        where = (f"phase {phase.name!r}, first at step {int(acc['first_bad'])}, "
                 f"non-finite terms: {bad_terms or 'none (gradient or regularisation)'}")
        if total_bad > self.config.max_nonfinite_steps:
            raise TrainingError(
                f"{total_bad} updates had a non-finite loss or gradient and were skipped ({where}); more than "
                f"max_nonfinite_steps={self.config.max_nonfinite_steps}. Lower the learning rate, enable clipnorm, "
                f"or check the labels of those terms. Received: nonfinite_steps={total_bad}"
            )
        warnings.warn(f"Skipped {bad} update(s) with a non-finite loss or gradient ({where}); "
                      f"{total_bad}/{self.config.max_nonfinite_steps} tolerated.", RuntimeWarning, stacklevel=2)


class _AnyModel:
    """Accepts every model key when the schedule is checked before the models exist."""

    def __contains__(self, item):
        return True

    def __iter__(self):
        return iter(())


_ANY_MODEL = _AnyModel()
