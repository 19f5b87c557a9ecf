"""iFAN's cross-dataset hybrid training (Li et al., MM'17, Sec. 3.3, Algorithm 1) as data.

Algorithm 1 becomes a list of ``Phase`` objects run by the generic trainer:

* Stage 1, task-wise pre-training (lines 1-8): one phase per task, in task order,
  each drawing only that task's stream for ``E_P`` epochs with interaction off
  (the ``iter0`` sub-model, loss term ``<task>/iter_0``) and updating the shared
  backbone and that task's decoder (``backbone_*``, ``decoder_<task>_*``).
* Stage 2, batch-wise alternating fine-tuning (lines 9-16): one ``alternate``
  phase over all task streams, so tasks take turns update by update. Each update
  uses one task's batch and that task's loss at every interaction iteration
  ``I = 0..ITER`` (Eq. 6, summed over iterations in one gradient step) and
  updates the shared backbone, the task integrator, the task's decoder and every
  re-encoder.

The trainable set of stage 2 is written as *all* decoders (``decoder_*``) rather
than "this task's decoder": a batch carries only its own task's labels, every
other task's term is masked to zero by its presence flag, and a decoder whose
task's loss is zero receives no gradient, so the update is the same. RMSprop
leaves a variable with a zero gradient unchanged only up to its momentum; the
trainer's default RMSprop has no momentum, so the equivalence is exact there.

Stages may be cut into several phases of equal length (``eval_points``) so the
trainer's per-phase evaluation traces the curves of the paper's Fig. 7; the
learning-rate decay of stage 2 continues across its pieces.
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Sequence, Union

from keras_facemt.data import batch as B
from keras_facemt.errors import ConfigError
from keras_facemt.models.ifan.losses import task_loss
from keras_facemt.models.ifan.model import component_prefix, output_key
from keras_facemt.training.schedule import LearningRate, LossTerm, Phase

# The paper's three tasks, in its stage-1 order (Fig. 7: T1 parsing, T2 landmarks, T3 emotion).
IFAN_TASKS = ("parsing", "landmarks", "emotion")
SHARED_PATTERNS = ("backbone_*", "integrator_*")  # component_prefix("backbone"), ("integrator")


def check_tasks(tasks: Sequence[str]) -> tuple:
    """Validates iFAN task names, no repeats.

    A task is ``parsing``, ``landmarks`` or a categorical attribute (``emotion``).

    Raises:
        ConfigError: naming the unknown or repeated task.
    """
    tasks = tuple(tasks)
    if not tasks:
        raise ConfigError(f"iFAN needs at least one task, e.g. {list(IFAN_TASKS)}. Received: tasks={list(tasks)}")
    for t in tasks:
        try:
            task_loss(t)
        except ConfigError:
            raise ConfigError(f"Unknown iFAN task {t!r}; iFAN tasks: 'parsing', 'landmarks' or a categorical "
                              f"attribute such as 'emotion'. Received: tasks={list(tasks)}") from None
    if len(set(tasks)) != len(tasks):
        raise ConfigError(f"Each task may appear once. Received: tasks={list(tasks)}")
    return tasks


def ifan_loss_terms(cfg, weights: Mapping[str, float] = None, literal_stage2: bool = False) -> List[LossTerm]:
    """The loss terms of an ``IFANConfig`` (its ``tasks`` and ``iterations``); see ``task_loss_terms``.

    With ``literal_stage2`` the terms of Algorithm 1's literal stage 2 are added
    (``per_iteration_terms``).
    """
    terms = task_loss_terms(cfg.tasks, cfg.iterations, weights)
    if literal_stage2:
        terms += per_iteration_terms(cfg.tasks, cfg.iterations, weights)
    return terms


def literal_stream(task: str) -> str:
    """Name of ``task``'s stage-2 stream in the literal Algorithm 1 (each batch repeated per iteration)."""
    return f"{task}@iterations"


def iteration_presence(task: str, iteration: int) -> str:
    """Batch key of ``task``'s presence in the copy of a batch that trains iteration ``iteration``."""
    return f"{B.presence(task)}@iter_{iteration}"


def per_iteration_terms(tasks: Sequence[str], iterations: int, weights: Mapping[str, float] = None
                        ) -> List[LossTerm]:
    """Terms ``"<task>/update_iter_<i>"``: the iteration-``i`` loss, present only in the
    ``i``-th copy of a batch (``per_iteration_copies``), so each copy is one of
    Algorithm 1's ITER + 1 separate updates (lines 12-14)."""
    weights = dict(weights or {})
    return [LossTerm(f"{task}/update_iter_{i}", output_key(task, i), iteration_presence(task, i), task_loss(task),
                     float(weights.get(task, 1.0)))
            for task in check_tasks(tasks) for i in range(iterations + 1)]


def per_iteration_copies(dataset, task: str, iterations: int):
    """Each batch of ``dataset`` as ITER + 1 consecutive copies; copy ``i`` carries
    ``iteration_presence(task, i)`` = the task's presence flags, the other iterations' 0.

    Args:
        dataset: ``tf.data.Dataset`` of batch dicts of ``task``.
        task: the task whose presence key (``has_landmarks``, ...) is split.
        iterations: ITER.

    Returns:
        The dataset of copies, ``(ITER + 1)`` times as long.
    """
    import tensorflow as tf

    key = B.presence(task)

    def copies(batch):
        def one(i):
            flags = {iteration_presence(task, j): batch[key] * tf.cast(tf.equal(i, j), batch[key].dtype)
                     for j in range(iterations + 1)}
            return {**batch, **flags}

        return tf.data.Dataset.range(iterations + 1).map(one)

    return dataset.flat_map(copies)


def task_loss_terms(tasks: Sequence[str], iterations: int, weights: Mapping[str, float] = None) -> List[LossTerm]:
    """One masked loss term per task and interaction iteration (Eq. 5).

    Args:
        tasks: iFAN tasks the model predicts.
        iterations: ITER; terms exist for ``iter_0 .. iter_ITER``.
        weights: optional per-task loss weights (default 1).

    Returns:
        ``LossTerm`` named ``"<task>/iter_<i>"`` reading ``output_key(task, i)``,
        weighted by the task's presence flag (``has_landmarks``, ``has_parsing``,
        ``has_attr/emotion``).
    """
    tasks = check_tasks(tasks)
    if iterations < 0:
        raise ConfigError(f"iterations (ITER) must be >= 0. Received: iterations={iterations}")
    weights = dict(weights or {})
    terms = []
    for task in tasks:
        fn = task_loss(task)
        for i in range(iterations + 1):
            terms.append(LossTerm(f"{task}/iter_{i}", output_key(task, i), B.presence(task), fn,
                                  float(weights.get(task, 1.0))))
    return terms


def _split(total: int, pieces: int) -> List[int]:
    pieces = max(1, min(pieces, total)) if total > 0 else 1
    base, extra = divmod(total, pieces)
    return [base + (1 if k < extra else 0) for k in range(pieces)]


def algorithm1_phases(
    tasks: Sequence[str],
    pretrain_steps: Union[int, Mapping[str, int]],
    finetune_steps: int,
    pretrain_lr: float = 1e-3,
    finetune_lr: float = 1e-3,
    finetune_final_lr: float = 1e-6,
    iterations: int = 2,
    eval_points: int = 1,
    literal_stage2: bool = False,
) -> List[Phase]:
    """Algorithm 1 as phases.

    Args:
        tasks: task order of stage 1 (the paper pre-trains parsing, then landmarks,
            then emotion: Fig. 7's T1, T2, T3).
        pretrain_steps: updates per task in stage 1 (``E_P`` epochs of the task's
            dataset); an int applies to every task.
        finetune_steps: updates in stage 2 (rounded down to whole rounds, one update
            per task per round, so every task gets the same number of updates).
        pretrain_lr: constant stage-1 learning rate (1e-3 in Sec. 4.1.2).
        finetune_lr, finetune_final_lr: stage-2 exponential decay (1e-3 -> 1e-6).
        iterations: ITER; stage 2 trains ``<task>/iter_0 .. iter_ITER``.
        eval_points: pieces each stage-1 task and stage 2 are cut into; the trainer
            evaluates at the end of every piece.
        literal_stage2: stage 2 as Algorithm 1 writes it: each task's batch is used
            for ITER + 1 consecutive updates, update ``i`` on the iteration-``i`` loss
            alone (streams ``literal_stream(task)``, terms ``per_iteration_terms``);
            ``finetune_steps`` then counts sampled batches, and the phase makes
            ITER + 1 times as many updates.

    Returns:
        phases named ``pretrain_<task>[_k]`` (model ``iter0``) then ``finetune[_k]``.
    """
    tasks = check_tasks(tasks)
    if iterations < 0:
        raise ConfigError(f"iterations (ITER) must be >= 0. Received: iterations={iterations}")
    if eval_points < 1:
        raise ConfigError(f"eval_points must be >= 1. Received: eval_points={eval_points}")
    if isinstance(pretrain_steps, Mapping):
        missing = [t for t in tasks if t not in pretrain_steps]
        if missing:
            raise ConfigError(f"pretrain_steps has no entry for tasks {missing}. Received: "
                              f"pretrain_steps={dict(pretrain_steps)}")
        per_task: Dict[str, int] = {t: int(pretrain_steps[t]) for t in tasks}
    else:
        per_task = {t: int(pretrain_steps) for t in tasks}
    for t, n in per_task.items():
        if n < 0:
            raise ConfigError(f"pretrain_steps must be >= 0. Received: pretrain_steps[{t!r}]={n}")
    rounds = int(finetune_steps) // len(tasks)
    if finetune_steps < 0:
        raise ConfigError(f"finetune_steps must be >= 0. Received: finetune_steps={finetune_steps}")

    phases: List[Phase] = []
    for task in tasks:
        pieces = _split(per_task[task], eval_points)
        for k, steps in enumerate(pieces):
            if steps == 0 and len(pieces) > 1:
                continue
            suffix = f"_{k + 1}" if len(pieces) > 1 else ""
            phases.append(Phase(
                name=f"pretrain_{task}{suffix}",
                steps=steps,
                streams=(task,),
                loss_terms=(f"{task}/iter_0",),
                trainable=(component_prefix("backbone") + "*", component_prefix("decoder", task) + "*"),
                learning_rate=LearningRate(pretrain_lr),
                model="iter0",
            ))

    # A model without re-encoders (the Sec. 4.3.2 ablation) simply has no variable
    # matching "reencoder_*".
    trainable = SHARED_PATTERNS + ("decoder_*", "reencoder_*")
    # Pieces hold whole rounds so each piece starts with the first task again.
    round_pieces = _split(rounds, eval_points)
    copies = iterations + 1 if literal_stage2 else 1
    total = rounds * len(tasks) * copies
    done = 0
    ratio = finetune_final_lr / finetune_lr
    for k, r in enumerate(round_pieces):
        steps = r * len(tasks) * copies
        if steps == 0 and len(round_pieces) > 1:
            continue
        # Geometric decay over the whole stage, continued piece to piece.
        start = finetune_lr * ratio ** (done / max(total - 1, 1))
        end = finetune_lr * ratio ** (min(done + steps - 1, max(total - 1, 0)) / max(total - 1, 1))
        lr = LearningRate(start, end if steps > 1 and end != start else None)
        suffix = f"_{k + 1}" if len(round_pieces) > 1 else ""
        phases.append(Phase(
            name=f"finetune{suffix}",
            steps=steps,
            streams=tuple(literal_stream(t) for t in tasks for _ in range(copies)) if literal_stage2 else tasks,
            mode="alternate",
            loss_terms=tuple(f"{t}/update_iter_*" if literal_stage2 else f"{t}/iter_*" for t in tasks),
            trainable=trainable,
            learning_rate=lr,
            model="main",
        ))
        done += steps
    return phases


def steps_for_epochs(epochs: float, count: int, batch_size: int) -> int:
    """Updates in ``epochs`` passes over ``count`` examples at ``batch_size`` (at least 1 when epochs > 0)."""
    if epochs < 0 or count < 0 or batch_size < 1:
        raise ConfigError(f"Need epochs >= 0, count >= 0, batch_size >= 1. Received: epochs={epochs}, "
                          f"count={count}, batch_size={batch_size}")
    if epochs == 0 or count == 0:
        return 0
    return max(1, math.ceil(epochs * count / batch_size))
