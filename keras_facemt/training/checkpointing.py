"""The layout of a training run directory and restoring models from it.

A ``--model-dir`` written by the trainer holds::

    checkpoints/ckpt-<step>.*   tf.train.Checkpoint(model=<main model>,
                                model_variables={position_name: variable}, optimizer=...,
                                optimizer_variables=..., global_step=..., nonfinite_steps=...)
    checkpoints/checkpoint      CheckpointManager's index (points at the latest)
    history.json                the trainer's history at the latest checkpoint
    logs/                       TensorBoard summaries
    .workers/worker_<i>/        a non-chief worker's share of a save under
                                MultiWorkerMirroredStrategy, deleted right after it
                                and gone when the run ends

Checkpoint saving goes through ``tf.train.CheckpointManager``, which writes the new
checkpoint files before updating the ``checkpoint`` index, so a run killed at any
moment leaves the previous checkpoint as "latest".
"""

from __future__ import annotations

import os
from typing import Dict, Optional

import tensorflow as tf

from keras_facemt.errors import CheckpointError

CHECKPOINT_SUBDIR = "checkpoints"
HISTORY_FILE = "history.json"
LOGS_SUBDIR = "logs"
WORKERS_SUBDIR = ".workers"
# Names inside the checkpoint object: the main model, and all its variables by position.
MODEL_KEY = "model"
MODEL_VARIABLES_KEY = "model_variables"


def variable_bag(variables, with_names: bool = True) -> Dict[str, tf.Variable]:
    """``{key: variable}`` for a checkpoint, keyed by position (and variable name).

    Keras 3 layers expose their sublayers to ``tf.train.Checkpoint`` only through
    plain attributes: sublayers a custom layer keeps in a list or dict are not in the
    checkpoint's object graph, and their variables would silently be neither saved nor
    restored. Checkpoints therefore also hold every variable under a key made of its
    position in ``variables`` and, with ``with_names``, the variable's own name (the
    last part of its path, e.g. ``00012_kernel``). Layer names are left out on purpose:
    unnamed layers get process-dependent names (``dense_7``), while the order of a
    model's weights is fixed by its architecture, so the keys are the same whenever
    the same architecture is built. A different architecture fails the restore on a
    missing key or a shape mismatch.

    Args:
        variables: Keras (or TensorFlow) variables in a deterministic order
            (``model.weights``, ``optimizer.variables``); duplicates are dropped.
        with_names: add the variable name to the key (model variables); optimizer
            slot names embed layer names, so they are keyed by position only.

    Returns:
        An ordered dict of the underlying ``tf.Variable`` objects (distributed
        variables under a strategy).
    """
    bag: Dict[str, tf.Variable] = {}
    seen = set()
    for v in variables:
        if id(v) in seen:
            continue
        seen.add(id(v))
        key = f"{len(bag):05d}"
        if with_names:
            key += "_" + (getattr(v, "path", None) or v.name).rsplit("/", 1)[-1].split(":")[0]
        bag[key] = v if isinstance(v, tf.Variable) else getattr(v, "value", v)
    return bag


def checkpoint_dir(model_dir: str) -> str:
    """Directory of the checkpoints of the run in ``model_dir``."""
    return os.path.join(model_dir, CHECKPOINT_SUBDIR)


def latest_checkpoint(model_dir: str) -> Optional[str]:
    """Path prefix of the latest checkpoint in ``model_dir`` (``None`` when there is none)."""
    return tf.train.latest_checkpoint(checkpoint_dir(model_dir))


def checkpoint_step(path: str) -> int:
    """The global step a checkpoint prefix ``.../ckpt-<step>`` was saved at."""
    try:
        return int(os.path.basename(path).rsplit("-", 1)[1])
    except (IndexError, ValueError):
        raise CheckpointError(
            f"Not a trainer checkpoint prefix (expected '.../ckpt-<step>'). Received: path={path!r}") from None


def restore_model(model, model_dir_or_checkpoint: str) -> int:
    """Loads the weights of ``model`` from a trainer run directory or checkpoint prefix.

    Only the model is restored (the optimizer state is ignored), so this serves export
    and evaluation. ``model`` must have the architecture the run trained.

    Args:
        model: the built ``keras.Model`` (the run's ``main`` model).
        model_dir_or_checkpoint: a ``--model-dir`` or a ``.../ckpt-<step>`` prefix.

    Returns:
        The global step of the restored checkpoint.

    Raises:
        CheckpointError: naming the directory when it holds no checkpoint, or when the
            checkpoint does not match the model.
    """
    path = model_dir_or_checkpoint
    if os.path.isdir(path):
        path = latest_checkpoint(path)
        if path is None:
            raise CheckpointError(
                f"No checkpoint found in {os.path.join(model_dir_or_checkpoint, CHECKPOINT_SUBDIR)!r}. "
                f"Received: model_dir={model_dir_or_checkpoint!r}"
            )
    elif not tf.io.gfile.exists(path + ".index"):
        raise CheckpointError(f"No checkpoint at this path (no .index file). Received: path={path!r}")
    objects = {MODEL_KEY: model}
    try:
        stored = [name for name, _ in tf.train.list_variables(path)]
    except (ValueError, tf.errors.OpError) as e:
        raise CheckpointError(f"Cannot read checkpoint {path!r} ({e}). Received: path={path!r}") from None
    if any(name.startswith(MODEL_VARIABLES_KEY + "/") for name in stored):
        # Trainer checkpoints: every variable by position, whatever the layer layout.
        objects[MODEL_VARIABLES_KEY] = variable_bag(model.weights)
    checkpoint = tf.train.Checkpoint(**objects)
    try:
        status = checkpoint.restore(path)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise CheckpointError(f"Checkpoint {path!r} does not match the model ({e}). Received: path={path!r}") from None
    return checkpoint_step(path)
