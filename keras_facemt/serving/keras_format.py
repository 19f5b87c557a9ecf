"""The ``.keras`` format: atomic save and a safe loader that needs only ``keras_facemt``.

A ``.keras`` file holds the model's config (JSON) and weights (HDF5) in a zip.
``save_model`` adds one member, ``keras_facemt.json``: the model's ``ModelInfo``
(system, preset, config, BN domain names and the output declaration), which
``load_model`` attaches to the loaded model, so a model file alone says what it is.
Keras ignores the member; a file saved by plain ``model.save`` loads too, without
info.
Loading always runs with ``safe_mode=True``: no lambdas, no pickled Python code.
Custom classes are resolved through the Keras registry, so the loader first
imports the ``keras_facemt`` modules named in the file's config (and only those:
a module outside the package is never imported on behalf of a file), which makes
``keras_facemt.load_model(path)`` work in a fresh process that imported nothing
but ``keras_facemt``.
"""

from __future__ import annotations

import importlib
import json
import os
import zipfile
from typing import Iterator, Set, Tuple

from keras_facemt.errors import CheckpointError

_PACKAGE = "keras_facemt"
_CONFIG_MEMBER = "config.json"
INFO_MEMBER = "keras_facemt.json"


def save_model(model, path: str, overwrite: bool = True, info=None) -> str:
    """Saves ``model`` (config + weights + its ``ModelInfo``) to a ``.keras`` file atomically.

    The file is written beside ``path`` under a temporary name and moved into
    place, so a killed save never leaves a truncated ``.keras`` file.

    Args:
        model: a functional ``keras.Model`` built from registered classes.
        path: destination ending in ``.keras``.
        overwrite: replace an existing file.
        info: the ``ModelInfo`` to store (default: the one attached to ``model``, if any).

    Returns:
        The absolute path written.

    Raises:
        CheckpointError: if ``path`` does not end in ``.keras`` or exists and
            ``overwrite`` is False.
    """
    path = os.path.abspath(path)
    if not path.endswith(".keras"):
        raise CheckpointError(f"A Keras model file must end in '.keras'. Received: path={path!r}")
    if os.path.exists(path) and not overwrite:
        raise CheckpointError(f"{path}: file exists; pass overwrite=True to replace it.")
    from keras_facemt.io import atomic_path
    from keras_facemt.models.model_info import info_of

    info = info if info is not None else info_of(model)
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp, overwrite=True)
        if info is not None:
            with zipfile.ZipFile(tmp, "a") as archive:
                archive.writestr(INFO_MEMBER, json.dumps(info.to_json(), indent=1, sort_keys=True))
    return path


def _walk_custom_objects(node) -> Iterator[Tuple[str, str]]:
    """Yields ``(module, registered_name)`` of every serialised object in a config."""
    if isinstance(node, dict):
        module = node.get("module")
        if isinstance(module, str) and "class_name" in node:
            yield module, str(node.get("registered_name") or node.get("class_name"))
        for value in node.values():
            yield from _walk_custom_objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_custom_objects(value)


def _read_config(path: str) -> dict:
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such Keras model file.")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a '.keras' model file (not a zip archive).")
    with zipfile.ZipFile(path) as archive:
        if _CONFIG_MEMBER not in archive.namelist():
            raise CheckpointError(f"{path}: not a '.keras' model file (no {_CONFIG_MEMBER} inside).")
        try:
            return json.loads(archive.read(_CONFIG_MEMBER))
        except ValueError as e:
            raise CheckpointError(f"{path}: {_CONFIG_MEMBER} is not valid JSON ({e}).") from None


def read_model_info(path: str):
    """The ``ModelInfo`` stored in a ``.keras`` file, or None for a file saved without one.

    Raises:
        CheckpointError: naming the file when it is not a ``.keras`` archive or its
            info member is malformed.
    """
    from keras_facemt.errors import ConfigError
    from keras_facemt.models.model_info import ModelInfo

    _read_config(path)
    with zipfile.ZipFile(path) as archive:
        if INFO_MEMBER not in archive.namelist():
            return None
        try:
            return ModelInfo.from_json(json.loads(archive.read(INFO_MEMBER)))
        except (ValueError, ConfigError) as e:
            raise CheckpointError(f"{path}: {INFO_MEMBER} is malformed ({e}).") from None


def required_modules(path: str) -> Set[str]:
    """The ``keras_facemt`` modules whose classes a ``.keras`` file refers to."""
    config = _read_config(path)
    return {
        module for module, _ in _walk_custom_objects(config) if module == _PACKAGE or module.startswith(_PACKAGE + ".")
    }


def load_model(path: str, compile: bool = False):
    """Loads a keras-facemt ``.keras`` file in safe mode.

    Args:
        path: a ``.keras`` file written by ``save_model`` or ``model.save``.
        compile: restore the training configuration too (rarely needed for
            inference; the trainer does not compile).

    Returns:
        The ``keras.Model``.

    Raises:
        CheckpointError: naming the file when it is missing, not a ``.keras``
            archive, or refers to a class that is not registered (including
            lambdas, which safe mode refuses).
    """
    import keras

    path = os.path.abspath(str(path))
    for module in sorted(required_modules(path)):
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise CheckpointError(
                f"{path}: the model uses classes from {module!r}, which cannot be imported ({e})."
            ) from None
    info = read_model_info(path)
    try:
        model = keras.saving.load_model(path, compile=compile, safe_mode=True)
    except (TypeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: cannot be loaded with registered keras_facemt classes in safe mode: {first}"
        ) from e
    if info is not None:
        from keras_facemt.models.model_info import attach

        attach(model, info)
    return model
