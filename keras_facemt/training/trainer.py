"""The strategy-aware custom training loop every recipe uses (DESIGN.md, "Training").

One ``Trainer`` runs a list of ``Phase`` over named data streams and ``LossTerm``.
It is the host loop; its parts live beside it:

* ``trainer_config.TrainerConfig``: the options, validated once.
* ``streams.Streams``: the named streams, each phase's distributed iterators and the
  batches a resumed run skips (each stream's contract checked once, when a phase's
  iterators are made).
* ``replica_step.ReplicaStep``: one replica's update: the loss terms normalised by
  the *global* labelled count, gradients, global-norm clipping, the non-finite guard.
* ``run_state.RunState``: the checkpoint, its manager, ``history.json`` and the step
  counters: restore and save.

The host loop: models, optimizer and run state are created under
``strategy.scope()`` (the optimizer is built on every trainable variable before the
loop, so phases that train a subset never create optimizer slots inside a
``tf.function``); ``steps_per_loop`` updates run inside one ``tf.function`` (a
``tf.range`` loop whose body is unrolled over the phase's stream cycle, since streams
have different batch shapes); between loops, on the host: metrics, TensorBoard, the
progress bar, checkpoints, evaluation. Phases are data (``training/schedule.py``):
which streams feed the updates (``alternate``: update i uses ``streams[i % n]``;
``mix``: one batch of each stream concatenated), which loss terms count, which
variables train, the learning rate. A restarted trainer with the same ``model_dir``
continues at the restored global step with the data order an uninterrupted run
would have seen. An update whose loss or gradient is not finite is skipped and
counted; the host warns and raises ``TrainingError`` once more than
``max_nonfinite_steps`` were skipped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from typing import Callable, Dict, Mapping, Optional, Sequence

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from keras_facemt.data.error_log import DEFAULT_ERROR_LOG, raise_data_errors
from keras_facemt.errors import ConfigError, TrainingError
from keras_facemt.progress import ProgressBar
from keras_facemt.training import checkpointing
from keras_facemt.training import strategy as strategy_lib
from keras_facemt.training.replica_step import ReplicaStep, missing_output_error
from keras_facemt.training.run_state import RunState
from keras_facemt.training.schedule import (LossTerm, Phase, check_phase_models, phase_at, total_steps,
                                            validate_schedule)
from keras_facemt.training.streams import StreamSpec, Streams
from keras_facemt.training.trainer_config import OPTIMIZERS, TrainerConfig

logger = logging.getLogger(__name__)

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
        self.streams = Streams(streams)
        phases = tuple(phases)
        loss_terms = tuple(loss_terms)
        if not phases:
            raise ConfigError("phases must hold at least one Phase. Received: phases=()")
        for phase in phases:
            if phase.mode == "mix" and len(set(phase.streams)) != len(phase.streams):
                raise ConfigError(
                    f"Phase {phase.name!r}: a mix phase lists each stream once. Received: streams={phase.streams}")
        # Streams and terms now, before any model is built; the phases' models once they exist.
        validate_schedule(phases, loss_terms, self.streams.names, models=None)
        self.config = config
        self.loss_terms = loss_terms
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
                self.state = RunState(config.model_dir, self.models, self.optimizer, self._chief, config.max_to_keep)
        finally:
            keras.mixed_precision.set_dtype_policy(previous_policy)
        check_phase_models(phases, list(self.models))
        self._check_outputs()
        self._phase_variables = [self._select_variables(p) for p in phases]
        self._replica_step = ReplicaStep(self.models, phases, loss_terms, self.optimizer, config)
        self._loop_fns: Dict[tuple, Callable] = {}
        self._writer = None

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
        return self.state.global_step

    @property
    def checkpoint(self) -> tf.train.Checkpoint:
        return self.state.checkpoint

    @property
    def history(self) -> dict:
        return self.state.history

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
                    raise missing_output_error(term, phase, sorted(struct))

    def _select_variables(self, phase: Phase) -> list:
        variables = [v for v in self.models[phase.model].trainable_variables if phase.selects_variable(v.path)]
        if not variables:
            examples = [v.path for v in self.models[phase.model].trainable_variables[:6]]
            raise ConfigError(
                f"Phase {phase.name!r}: trainable patterns select no variable of model {phase.model!r} "
                f"(variable paths look like {examples}). Received: trainable={phase.trainable}"
            )
        return variables

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
            out = strategy.run(self._replica_step, args=(batch, phase_index, variables))
            # Every replica holds the same all-reduced values.
            out = {k: strategy.experimental_local_results(v)[0] for k, v in out.items()}
            bad = tf.logical_not(out["finite"])
            self.state.nonfinite_var.assign_add(tf.cast(bad, tf.int64))
            self.state.step_var.assign_add(1)
            step = self.state.step_var.read_value()
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

    def save_checkpoint(self) -> str:
        """Checkpoints the current state at the current step, replacing that step's checkpoint.

        For state changed after training ends (e.g. BatchNorm statistics recomputed
        before the final evaluation), so the checkpoint matches what was evaluated.

        Every worker of a multi-worker run must call it (saving may run collectives);
        only the chief's checkpoint is kept.

        Returns:
            The checkpoint path (a non-chief worker's is already deleted).
        """
        return self.state.save_checkpoint()

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
        self.state.restore()
        if self._chief and cfg.summaries and self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(cfg.model_dir, checkpointing.LOGS_SUBDIR))
        total = total_steps(self.phases)
        bar = ProgressBar(total, unit="steps/s", initial=self.global_step) if (cfg.progress and self._chief) else None
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
        self.history["nonfinite_steps"] = self.state.nonfinite_steps
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
        self.state.discard_worker_files()
        with self._lost_worker_check("the final barrier"):
            strategy_lib.wait_for_all_workers(self.strategy, "keras_facemt_run_end")
        self.state.remove_workers_directory()

    def _run_phase(self, phase_index: int, step_in_phase: int, bar: Optional[ProgressBar]):
        cfg = self.config
        phase = self.phases[phase_index]
        terms = phase.active_terms(self.loss_terms)
        iterators, plan, names = self.streams.phase_iterators(self.strategy, self.phases, phase_index, step_in_phase,
                                                              self.loss_terms, self.models[phase.model])
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
                bar.update(done=step, label=phase.name, seconds=seconds, force=s >= phase.steps,
                           postfix=f"loss {metrics['total']:.4g} {metrics['examples_per_sec']:.1f} ex/s")
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
                self.state.save()

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
        total_bad = self.state.nonfinite_steps
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
