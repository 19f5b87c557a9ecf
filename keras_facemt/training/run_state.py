"""A run's persistent state: the checkpoint, its manager, ``history.json`` and the step counters.

``RunState`` owns what a restarted process needs to continue: the
``tf.train.Checkpoint`` (models, optimizer and its slots, ``global_step``,
``nonfinite_steps``), the ``CheckpointManager`` writing it under
``<model_dir>/checkpoints``, and the trainer's history beside it. Saving writes the
history first and the checkpoint second, so a run killed between the two leaves the
history ahead of the checkpoint, and a restore drops the history entries past the
restored step.

Under ``MultiWorkerMirroredStrategy`` every worker takes part in a save (it may run
collectives); a non-chief worker writes into a private directory
(``<model_dir>/.workers/worker_<i>``) that is removed right after.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from typing import Dict, Mapping

import tensorflow as tf

from keras_facemt.errors import CheckpointError
from keras_facemt.training import checkpointing
from keras_facemt.training import strategy as strategy_lib

logger = logging.getLogger(__name__)


class RunState:
    """Checkpoint and history of one run directory.

    Args:
        model_dir: the run directory.
        models: ``{"main": model, <key>: sub-model}`` (weight-sharing sub-models).
        optimizer: the optimizer (its variables are checkpointed).
        chief: whether this process keeps the saves.
        max_to_keep: checkpoints kept.

    Attributes:
        step_var, nonfinite_var: the global step and the count of skipped updates
            (int64, one value for all replicas).
        checkpoint: the ``tf.train.Checkpoint``.
        history: ``{"global_step", "phases", "evals", "nonfinite_steps"}``.
    """

    def __init__(self, model_dir: str, models: Mapping[str, object], optimizer, chief: bool, max_to_keep: int):
        self.model_dir = model_dir
        self.chief = chief
        self.max_to_keep = max_to_keep
        only_first = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step", aggregation=only_first)
        self.nonfinite_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_steps",
                                         aggregation=only_first)
        main_weights = list(models["main"].weights)
        main_ids = {id(v) for v in main_weights}
        # Random-number state (the seed generators of dropout and other random layers)
        # is model state too but not a weight: without it a resumed run would draw
        # other dropout masks than the uninterrupted run from the restored step on.
        weight_ids = {id(v) for m in models.values() for v in m.weights}
        seen, seed_states = set(), []
        for m in models.values():
            for v in m.variables:
                if id(v) not in weight_ids and id(v) not in seen:
                    seen.add(id(v))
                    seed_states.append(v)
        self.checkpoint = tf.train.Checkpoint(
            global_step=self.step_var,
            nonfinite_steps=self.nonfinite_var,
            optimizer=optimizer,
            optimizer_variables=checkpointing.variable_bag(optimizer.variables, with_names=False),
            submodels={k: m for k, m in models.items() if k != "main"},
            submodel_variables=checkpointing.variable_bag(
                [v for k, m in models.items() if k != "main" for v in m.weights if id(v) not in main_ids]),
            **{checkpointing.MODEL_KEY: models["main"],
               checkpointing.MODEL_VARIABLES_KEY: checkpointing.variable_bag(main_weights)},
            random_states=checkpointing.variable_bag(seed_states),
        )
        self.history: Dict[str, object] = {"global_step": 0, "phases": [], "evals": [], "nonfinite_steps": 0}
        self._manager = None

    @property
    def global_step(self) -> int:
        return int(self.step_var.numpy())

    @property
    def nonfinite_steps(self) -> int:
        return int(self.nonfinite_var.numpy())

    def worker_directory(self) -> str:
        """A non-chief worker's private save directory."""
        return os.path.join(self.model_dir, checkpointing.WORKERS_SUBDIR, f"worker_{strategy_lib.worker_index()}")

    def _checkpoint_directory(self) -> str:
        if self.chief:
            return checkpointing.checkpoint_dir(self.model_dir)
        return os.path.join(self.worker_directory(), checkpointing.CHECKPOINT_SUBDIR)

    def _new_manager(self) -> None:
        self._manager = tf.train.CheckpointManager(self.checkpoint, self._checkpoint_directory(),
                                                   max_to_keep=self.max_to_keep, step_counter=self.step_var)

    def discard_worker_files(self) -> None:
        """Removes a non-chief worker's private save (its manager then starts empty)."""
        if self.chief:
            return
        shutil.rmtree(self.worker_directory(), ignore_errors=True)
        self._new_manager()

    def restore(self) -> int:
        """Restores the latest checkpoint of the run directory (if any) and its history; returns the step.

        Raises:
            CheckpointError: a checkpoint of another model or optimizer.
        """
        self._new_manager()
        latest = checkpointing.latest_checkpoint(self.model_dir)
        if latest is None:
            return 0
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise CheckpointError(
                f"The checkpoint in {self.model_dir!r} does not match this model and optimizer ({e}); "
                f"use a new model_dir for a different architecture. Received: checkpoint={latest!r}"
            ) from None
        step = self.global_step
        history_path = os.path.join(self.model_dir, checkpointing.HISTORY_FILE)
        if os.path.exists(history_path):
            with open(history_path) as f:
                saved = json.load(f)
            self.history["phases"] = [p for p in saved.get("phases", []) if p.get("end_step", 0) <= step]
            self.history["evals"] = [e for e in saved.get("evals", []) if e.get("step", 0) <= step]
        logger.info("Resumed from %s at step %d", latest, step)
        return step

    def save(self) -> None:
        """History, then the checkpoint of the current step (once per step)."""
        step = self.global_step
        self.history["global_step"] = step
        self.history["nonfinite_steps"] = self.nonfinite_steps
        if self.chief:
            from keras_facemt.io import write_json_atomic

            write_json_atomic(os.path.join(self.model_dir, checkpointing.HISTORY_FILE), self.history)
        if self._manager.latest_checkpoint and checkpointing.checkpoint_step(self._manager.latest_checkpoint) == step:
            return
        self._manager.save(checkpoint_number=step)
        self.discard_worker_files()

    def save_checkpoint(self) -> str:
        """Checkpoints the current state at the current step, replacing that step's checkpoint."""
        path = self._manager.save(checkpoint_number=self.global_step)
        self.discard_worker_files()
        return path

    def remove_workers_directory(self) -> None:
        """The chief removes the (then empty) ``.workers/`` at the end of a run."""
        if self.chief:
            try:
                os.rmdir(os.path.join(self.model_dir, checkpointing.WORKERS_SUBDIR))
            except OSError:
                pass  # never created (one host), or not empty: not ours to delete
