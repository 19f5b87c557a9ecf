"""Where an export's model comes from: a training run directory or a ``.keras`` file.

A run directory (``--model-dir``) is what the trainer writes: a
``tf.train.Checkpoint`` of the model (through ``tf.train.CheckpointManager``) plus
``run_config.json`` recording how to rebuild it::

    {"system": "ifan", "preset": "small", "config": {...IFANConfig fields...},
     "domains": {"<dataset name>": <BN domain id>, ...}}      # domains optional

The model is rebuilt from the system registry with that config, and the latest
checkpoint is restored into it by ``training.checkpointing.restore_model``, which
checks that every model variable is matched, so a checkpoint of another model never
exports random weights.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Tuple

from keras_facemt.configs.serialization import config_from_dict
from keras_facemt.errors import CheckpointError

from keras_facemt.models.model_info import RUN_CONFIG  # noqa: E402,F401  (re-exported for readers of runs)


def read_run_config(model_dir: str) -> Dict[str, object]:
    """Reads ``run_config.json`` of a run directory.

    Raises:
        CheckpointError: naming the directory when it is missing or malformed.
    """
    path = os.path.join(model_dir, RUN_CONFIG)
    if not os.path.exists(path):
        raise CheckpointError(
            f"{model_dir}: no {RUN_CONFIG}; cannot tell which system/config to rebuild. Expected "
            '{"system": ..., "preset": ..., "config": {...}} written by the training recipe.'
        )
    try:
        with open(path) as f:
            info = json.load(f)
    except ValueError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e}).") from None
    if not isinstance(info, dict) or "system" not in info:
        raise CheckpointError(f"{path}: must be an object with a 'system' key. Received: {str(info)[:80]}")
    return info


def restore_all_variables(model, prefix: str) -> None:
    """Restores a trainer checkpoint and proves every model variable came from it.

    ``tf.train.Checkpoint`` matching only checks the objects it can see; Keras 3
    layers kept in Python lists inside a custom layer are invisible to it, so
    their variables are neither saved nor restored and would silently keep their
    random initial values. Every variable is therefore set to NaN first; any still
    NaN after the restore was not in the checkpoint.

    Raises:
        CheckpointError: naming the checkpoint and the variables it lacks.
    """
    import numpy as np

    from keras_facemt.training import checkpointing

    floats = [v for v in model.weights if "float" in str(v.dtype)]
    for v in floats:
        v.assign(np.full(v.shape, np.nan, dtype=str(v.dtype)))
    checkpointing.restore_model(model, prefix)
    missing = [v.path for v in floats if np.isnan(np.asarray(v.numpy(), np.float64)).any()]
    if missing:
        raise CheckpointError(
            f"{prefix}: the checkpoint holds {len(floats) - len(missing)} of the model's "
            f"{len(floats)} variables; missing e.g. {missing[:3]}. Layers kept in Python lists inside "
            "a custom layer are not tracked by tf.train.Checkpoint under Keras 3, so this checkpoint cannot "
            "restore the model; export from the run's model.keras instead."
        )


def _run_config_if_any(directory: str) -> Dict[str, object]:
    """``run_config.json`` of ``directory``, or ``{}`` when it has none."""
    return read_run_config(directory) if os.path.exists(os.path.join(directory, RUN_CONFIG)) else {}


def _source_record(source: str, model_info, datasets=None) -> Dict[str, object]:
    """What the manifest records about where a model came from and what it is."""
    domains = dict(model_info.domains)
    return {
        "source": source,
        "system": model_info.system,
        "preset": model_info.preset,
        "config": dict(model_info.config),
        "domains": domains,
        "datasets": list(datasets or sorted(domains)),
        "serving": model_info.serving,
    }


def _keras_file_source(path: str, run: Dict[str, object]) -> Tuple[object, Dict[str, object]]:
    """A ``.keras`` file, made deployable, and its record.

    The file's own ``ModelInfo`` says what it is; a file saved without one (plain
    ``model.save``) is described by its run's ``run_config.json`` (``run``) when the
    file sits in a run directory.

    Raises:
        CheckpointError: when neither says which system the file holds.
    """
    from keras_facemt.models.model_info import attach, info_of
    from keras_facemt.models.registry import get_system
    from keras_facemt.serving.keras_format import load_model

    model = load_model(path)
    info = info_of(model)
    if info is None:
        if not run.get("config"):
            raise CheckpointError(
                f"{path}: the file does not say which system it holds (saved without keras_facemt.save_model) and "
                f"no {RUN_CONFIG} with the system's config is beside it. Save it with keras_facemt.save_model."
            )
        system = get_system(str(run["system"]))
        config = config_from_dict(system.config_class, dict(run["config"]))
        info = system.model_info(config, run.get("preset"), run.get("domains"), deployable=True)
        attach(model, info)
    else:
        # What the file leaves open (a model saved without its preset or domain names),
        # its run's run_config.json fills in.
        missing = {k: v for k, v in (("preset", run.get("preset")), ("domains", dict(run.get("domains") or {})))
                   if v and not getattr(info, k)}
        if missing:
            info = info.replace(**missing)
            attach(model, info)
    if not info.deployable:
        model = get_system(info.system).deployable(model, info)
        info = info_of(model)
    return model, _source_record(path, info, run.get("datasets"))


def load_model_source(path: str) -> Tuple[object, Dict[str, object]]:
    """Loads the model to export and what the manifest should record about it.

    Args:
        path: a ``.keras`` file, a directory holding ``model.keras``, or a run
            directory with ``run_config.json`` and a checkpoint.

    Returns:
        ``(model, info)``: the deployable model (its ``ModelInfo`` attached) and info
        keys ``system``, ``preset``, ``config``, ``domains``, ``datasets``, ``source``,
        ``serving`` (the ``ServingSpec``).

    Raises:
        CheckpointError: naming ``path`` when it holds no usable checkpoint.
    """
    from keras_facemt.training import checkpointing

    path = os.path.abspath(path)
    if os.path.isfile(path):
        if not path.endswith(".keras"):
            raise CheckpointError(f"{path}: not a '.keras' file or a run directory.")
        # A run directory's model.keras: its run_config.json says which domains are which.
        return _keras_file_source(path, _run_config_if_any(os.path.dirname(path)))
    if not os.path.isdir(path):
        raise CheckpointError(f"{path}: no such model directory or '.keras' file.")
    info = _run_config_if_any(path)
    prefix = checkpointing.latest_checkpoint(path)
    if prefix is None:
        keras_file = os.path.join(path, "model.keras")
        if os.path.exists(keras_file):
            return _keras_file_source(keras_file, info)
        raise CheckpointError(
            f"{path}: no checkpoint found (looked for a trainer checkpoint in "
            f"{checkpointing.checkpoint_dir(path)} and for model.keras)."
        )
    if not info:
        read_run_config(path)  # raises with the expected format
    from keras_facemt.models.registry import get_system

    system = get_system(str(info["system"]))
    preset = info.get("preset") or "small"
    if info.get("config"):
        config = config_from_dict(system.config_class, dict(info["config"]))
    else:
        config = system.config(preset)
    domains = dict(info.get("domains") or {})
    model = system.build(config, preset, domains)
    if isinstance(model, dict):
        model = model["main"]
    restore_all_variables(model, prefix)
    model = system.serving_model(model, config, preset, domains)
    from keras_facemt.models.model_info import info_of

    return model, _source_record(prefix, info_of(model), info.get("datasets"))
