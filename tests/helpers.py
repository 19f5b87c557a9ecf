"""Shared test runners (the KerasHub TestCase pattern, as plain functions)."""

from __future__ import annotations

import os

import keras
import numpy as np


def load_script(folder: str, name: str):
    """``<folder>/<name>.py`` of the checkout (``recipes``, ``bench``) as a module."""
    import importlib.util

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(name, os.path.join(root, folder, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def run_layer_test(layer_cls, init_kwargs, input_data, expected_output_shape,
                   expected_num_trainable_weights=None, expected_num_non_trainable_weights=None,
                   call_kwargs=None, rtol=1e-5):
    """Checks a layer: eager and symbolic call, shapes, weight counts, config round-trip.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments; each must appear in ``get_config()``.
        input_data: positional input(s) as numpy arrays (a list for several).
        expected_output_shape: full output shape (tuple) of the eager call.
        call_kwargs: extra keyword arguments for ``call`` (tensors allowed).

    Returns:
        The eager output.
    """
    call_kwargs = dict(call_kwargs or {})
    layer = layer_cls(**init_kwargs)
    inputs = _as_list(input_data)
    out = layer(*inputs, **call_kwargs)
    assert tuple(out.shape) == tuple(expected_output_shape), (out.shape, expected_output_shape)
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights
    config = layer.get_config()
    for k, v in init_kwargs.items():
        assert k in config, f"get_config() lacks constructor argument {k!r}"
        assert config[k] == v, (k, config[k], v)
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    # Symbolic call.
    sym_inputs = [keras.Input(shape=np.shape(x)[1:], dtype=np.asarray(x).dtype.name) for x in inputs]
    sym_kwargs = {
        k: keras.Input(shape=np.shape(v)[1:], dtype=np.asarray(v).dtype.name) if isinstance(v, np.ndarray) else v
        for k, v in call_kwargs.items()
    }
    sym_out = layer_cls(**init_kwargs)(*sym_inputs, **sym_kwargs)
    assert tuple(sym_out.shape[1:]) == tuple(expected_output_shape[1:])
    return out


def run_model_saving_test(model, inputs, tmp_path, atol=1e-5):
    """``.keras`` save/load round trip in safe mode gives equal outputs."""
    path = os.path.join(str(tmp_path), "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    a = model(inputs, training=False)
    b = restored(inputs, training=False)
    a_flat = keras.tree.flatten(a)
    b_flat = keras.tree.flatten(b)
    assert len(a_flat) == len(b_flat)
    for x, y in zip(a_flat, b_flat):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol)
    return restored


def run_export_test(model, batches, tmp_path, formats=("keras", "saved_model", "tflite", "onnx"),
                    quantizations=("float32", "float16", "dynamic", "int8"), max_examples=16, **options):
    """Exports ``model`` to each format and checks it in its runtime against Keras.

    Args:
        model: a functional keras-facemt model (dict inputs/outputs).
        batches: pipeline batches (dicts with ``image``, ``domain`` and labels) used
            as real verification inputs and int8 calibration data.
        tmp_path: where the export directory is written.
        formats, quantizations: what to export.
        options: other ``keras_facemt.serving.exporter.ExportOptions`` fields.

    Returns:
        The manifest; every check in it passed (``export_model`` raises otherwise).
    """
    from keras_facemt.serving.exporter import ExportOptions, export_model
    from keras_facemt.serving.verify import VerificationData

    data = VerificationData.from_batches(batches, max_examples, source="run_export_test")
    out = os.path.join(str(tmp_path), "export")
    manifest = export_model(model, out, data, ExportOptions(formats=tuple(formats), quantizations=tuple(quantizations),
                                                            **options), log=None)
    assert manifest["verification"]["passed"]
    assert all(c["passed"] for c in manifest["verification"]["checks"])
    return manifest


def kill_after_a_checkpoint(argv, run_dir, cwd, timeout_s: float = 600.0) -> int:
    """Starts ``argv`` (a training command writing into ``run_dir``) and SIGKILLs it as
    soon as a checkpoint past step 0 exists; returns the checkpoint's step.

    Raises:
        AssertionError: when the process ended (or the time ran out) before a
            checkpoint past step 0 appeared, with its stderr.
    """
    import signal
    import subprocess
    import time

    from keras_facemt.training.checkpointing import checkpoint_step, latest_checkpoint

    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed_at = None
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and proc.poll() is None:
            latest = latest_checkpoint(str(run_dir))
            if latest is not None and checkpoint_step(latest) > 0:
                killed_at = checkpoint_step(latest)
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None and killed_at is None:
            proc.kill()
        err = proc.communicate(timeout=120)[1].decode(errors="replace")
    assert killed_at is not None and proc.returncode == -signal.SIGKILL, err[-3000:]
    return killed_at


def keras_weights(path):
    """The weights of a saved ``.keras`` model, as NumPy arrays."""
    from keras_facemt.serving.keras_format import load_model

    return [np.asarray(w) for w in load_model(str(path)).weights]
