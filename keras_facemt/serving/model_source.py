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

import dataclasses
import json
import os
import typing
from typing import Dict, Tuple

from keras_facemt.errors import CheckpointError, ConfigError

RUN_CONFIG = "run_config.json"


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


def _to_field_type(value, annotation):
    """JSON lists back to tuples where the dataclass field is a tuple."""
    text = str(annotation)
    if isinstance(value, list) and ("Tuple" in text or "tuple" in text):
        return tuple(_to_field_type(v, "") for v in value)
    if isinstance(value, list):
        return [_to_field_type(v, "") for v in value]
    return value


def config_from_dict(config_class, values: Dict[str, object]):
    """Builds a frozen config dataclass from JSON values (lists -> tuples).

    Raises:
        ConfigError: for unknown fields (validation errors come from the class).
    """
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{config_class.__name__} has no fields {unknown}. Received: config keys={sorted(values)}")
    try:
        hints = typing.get_type_hints(config_class)
    except Exception:
        hints = {}
    kwargs = {k: _to_field_type(v, hints.get(k, fields[k].type)) for k, v in values.items()}
    return config_class(**kwargs)


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


def _keras_file_source(path: str, info: Dict[str, object]) -> Tuple[object, Dict[str, object]]:
    """A ``.keras`` file and what its run's ``run_config.json`` (``info``, may be empty) records."""
    from keras_facemt.serving.keras_format import load_model

    return load_model(path), {
        "source": path,
        "domains": info.get("domains") or {},
        "system": info.get("system"),
        "preset": info.get("preset"),
        "config": info.get("config"),
    }


def load_model_source(path: str) -> Tuple[object, Dict[str, object]]:
    """Loads the model to export and what the manifest should record about it.

    Args:
        path: a ``.keras`` file, a directory holding ``model.keras``, or a run
            directory with ``run_config.json`` and a checkpoint.

    Returns:
        ``(model, info)`` with info keys ``system``, ``preset``, ``config``,
        ``domains``, ``datasets``, ``source``.

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
    model = system.build(config)
    if isinstance(model, dict):
        model = model["main"]
    restore_all_variables(model, prefix)
    model = system.serving_model(model, config)
    return model, {
        "source": prefix,
        "system": system.name,
        "preset": preset,
        "config": dataclasses.asdict(config),
        "domains": dict(info.get("domains") or {}),
        "datasets": list(info.get("datasets") or sorted(info.get("domains") or {})),
    }
