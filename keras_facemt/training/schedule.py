"""Training schedules as data: loss terms and phases.

A system describes *what* can be trained as a list of ``LossTerm`` (one per model
output and task) and *how* as a list of ``Phase``. The trainer runs phases in order;
within a phase, each update draws one batch from a stream (round-robin over
``streams`` in ``alternate`` mode, so tasks take turns; by weight in ``mix`` mode),
evaluates only the phase's loss terms and updates only the variables its
``trainable`` patterns select. iFAN's Algorithm 1 and TFN's four stages are lists
of phases, not code branches.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from typing import Callable, Optional, Sequence, Tuple

from keras_facemt.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class LossTerm:
    """One masked loss.

    Attributes:
        name: unique term name, e.g. ``"landmarks/iter_1"`` (phases select by glob).
        output: model output key the term reads, e.g. ``"landmarks/iter_1"``.
        presence: batch key of the ``[batch]`` presence weights (``has_landmarks``).
        fn: ``fn(batch, prediction) -> [batch]`` unreduced per-example loss.
        weight: multiplier in the sum over terms.

    The trainer reduces a term as ``sum_b(presence_b * loss_b) / N`` where N is the
    global (all-replica) count of labelled examples of the step, so a task's loss
    does not depend on how its examples are split across replicas.
    """

    name: str
    output: str
    presence: str
    fn: Callable
    weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class LearningRate:
    """Learning-rate schedule of a phase: constant, decay from ``initial`` to ``final``, or steps.

    Attributes:
        initial: rate at the phase's first step.
        final: rate at its last step (``None``: constant). Unused by ``"step"``.
        decay: ``"exponential"`` (geometric, as 1e-3 -> 1e-6 in iFAN), ``"cosine"`` or
            ``"step"`` (multiplied by ``factor`` at each of ``boundaries``, the Caffe
            "multistep" policy of MTFR Sec. 4.4: 0.01, /10 at 40k and 58k).
        warmup_steps: linear warm-up steps.
        boundaries: ``"step"``: steps within the phase at which the rate drops.
        factor: ``"step"``: the multiplier at each boundary.
    """

    initial: float = 1e-3
    final: Optional[float] = None
    decay: str = "exponential"
    warmup_steps: int = 0
    boundaries: Tuple[int, ...] = ()
    factor: float = 0.1

    def __post_init__(self):
        if self.initial <= 0 or (self.final is not None and self.final <= 0):
            raise ConfigError(f"learning rates must be > 0. Received: initial={self.initial}, final={self.final}")
        if self.decay not in ("exponential", "cosine", "step"):
            raise ConfigError(f"decay must be 'exponential', 'cosine' or 'step'. Received: decay={self.decay!r}")
        b = tuple(self.boundaries)
        if any(int(x) < 1 for x in b) or list(b) != sorted(set(b)):
            raise ConfigError(f"boundaries must be increasing steps >= 1. Received: boundaries={self.boundaries}")
        if not 0 < self.factor <= 1:
            raise ConfigError(f"factor must be in (0, 1]. Received: factor={self.factor}")

    def at(self, step: int, total: int) -> float:
        """Learning rate at ``step`` (0-based) of a phase of ``total`` steps."""
        import math

        if self.warmup_steps and step < self.warmup_steps:
            return self.initial * (step + 1) / self.warmup_steps
        if self.decay == "step":
            return self.initial * self.factor ** sum(1 for b in self.boundaries if step >= b)
        if self.final is None or total <= 1:
            return self.initial
        t = min(max(step - self.warmup_steps, 0) / max(total - 1 - self.warmup_steps, 1), 1.0)
        if self.decay == "exponential":
            return self.initial * (self.final / self.initial) ** t
        return self.final + 0.5 * (self.initial - self.final) * (1 + math.cos(math.pi * t))


@dataclasses.dataclass(frozen=True)
class Phase:
    """A span of training steps with fixed streams, losses and trainable variables.

    Attributes:
        name: phase name (shown in logs, summaries and ``results.json``).
        steps: number of optimizer updates in the phase.
        streams: stream names the updates draw batches from.
        mode: ``"alternate"``: update i uses ``streams[i % len(streams)]`` (tasks take
            turns, iFAN Algorithm 1 stage 2); ``"mix"``: one batch from each stream is
            concatenated per update (weights via the streams' batch sizes).
        loss_terms: glob patterns over ``LossTerm.name``; a term is active when it
            matches (``("*",)``: all).
        trainable: glob patterns over variable paths (``variable.path``, e.g.
            ``"backbone/*"``); ``()`` trains every trainable variable.
        learning_rate: the phase's schedule.
        model: key of the (weight-sharing) model that runs in this phase, for systems
            that expose cheaper sub-models (e.g. iFAN without interaction).
    """

    name: str
    steps: int
    streams: Tuple[str, ...]
    mode: str = "alternate"
    loss_terms: Tuple[str, ...] = ("*",)
    trainable: Tuple[str, ...] = ()
    learning_rate: LearningRate = LearningRate()
    model: str = "main"

    def __post_init__(self):
        if self.steps < 0:
            raise ConfigError(f"Phase {self.name!r}: steps must be >= 0. Received: steps={self.steps}")
        if not self.streams:
            raise ConfigError(f"Phase {self.name!r}: needs at least one stream. Received: streams={self.streams}")
        if self.mode not in ("alternate", "mix"):
            raise ConfigError(f"Phase {self.name!r}: mode must be 'alternate' or 'mix'. Received: mode={self.mode!r}")

    def active_terms(self, terms: Sequence[LossTerm]) -> Tuple[LossTerm, ...]:
        """The terms whose names match ``loss_terms``."""
        return tuple(t for t in terms if any(fnmatch.fnmatchcase(t.name, p) for p in self.loss_terms))

    def selects_variable(self, path: str) -> bool:
        return not self.trainable or any(fnmatch.fnmatchcase(path, p) for p in self.trainable)


def validate_schedule(phases: Sequence[Phase], terms: Sequence[LossTerm], streams: Sequence[str],
                      models: Optional[Sequence[str]] = ("main",)) -> None:
    """Checks that every phase names known streams, at least one term and (unless
    ``models`` is None, before the models exist) a known model.

    Raises:
        ConfigError: naming the phase and the unknown name.
    """
    names = [t.name for t in terms]
    if len(set(names)) != len(names):
        raise ConfigError(f"LossTerm names must be unique. Received: {names}")
    for p in phases:
        for s in p.streams:
            if s not in streams:
                raise ConfigError(f"Phase {p.name!r} uses unknown stream {s!r}; streams: {sorted(streams)}. Received: stream={s!r}")
        if not p.active_terms(terms):
            raise ConfigError(f"Phase {p.name!r}: loss_terms {p.loss_terms} match no LossTerm; terms: {names}")
    if models is not None:
        check_phase_models(phases, models)


def check_phase_models(phases: Sequence[Phase], models: Sequence[str]) -> None:
    """Every phase names one of ``models``.

    Raises:
        ConfigError: naming the phase and its unknown model.
    """
    for p in phases:
        if p.model not in models:
            raise ConfigError(f"Phase {p.name!r} uses unknown model {p.model!r}; models: {sorted(models)}.")


def phase_at(phases: Sequence[Phase], global_step: int) -> Tuple[int, int]:
    """Maps a global step to (phase index, step within the phase); past the end -> (len, 0)."""
    start = 0
    for i, p in enumerate(phases):
        if global_step < start + p.steps:
            return i, global_step - start
        start += p.steps
    return len(phases), 0


def total_steps(phases: Sequence[Phase]) -> int:
    return sum(p.steps for p in phases)
