"""Test-session set-up: quiet TF, two logical CPU devices for MirroredStrategy tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:  # already initialised
    pass


import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def synth_cache_dir(tmp_path_factory):
    """One SynthFace cache for the whole session (``FACEMT_CACHE_DIR`` when set, so that
    later sessions reuse it too). Rendered data is keyed by its generation settings, so
    tests that ask for the same data share one rendering."""
    return os.environ.get("FACEMT_CACHE_DIR") or str(tmp_path_factory.mktemp("synth_cache"))


def load_recipe(name: str):
    """``recipes/<name>.py`` as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "recipes", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def ifan_smoke_run(tmp_path_factory, synth_cache_dir):
    """The ``ifan_3t_smoke`` experiment trained once per session; tests read (never
    write) its run directory."""
    run_dir = tmp_path_factory.mktemp("ifan_smoke") / "run"
    code = load_recipe("train_ifan").main(["--experiment", "ifan_3t_smoke", "--model-dir", str(run_dir),
                                           "--cache-dir", synth_cache_dir])
    assert code == 0, "the ifan_3t_smoke run failed (its log is in the captured output above)"
    return run_dir


# A short deterministic iFAN run: the reference of the determinism and the
# SIGKILL-resume tests, which each start one more process of the same command.
SHORT_DETERMINISTIC_IFAN = ["--experiment", "ifan_3t_smoke", "--tasks", "landmarks,emotion", "--epochs", "0.5,0.5",
                            "--deterministic"]


def ifan_recipe_argv(model_dir, cache_dir, *extra):
    """The command line of one short deterministic ``recipes/train_ifan.py`` process."""
    import sys

    return [sys.executable, os.path.join(ROOT, "recipes", "train_ifan.py"), *SHORT_DETERMINISTIC_IFAN,
            "--model-dir", str(model_dir), "--cache-dir", str(cache_dir), *extra]


@pytest.fixture(scope="session")
def ifan_short_deterministic_run(tmp_path_factory, synth_cache_dir):
    """One uninterrupted short deterministic iFAN run, in its own process."""
    import subprocess

    run_dir = tmp_path_factory.mktemp("ifan_short") / "run"
    proc = subprocess.run(ifan_recipe_argv(run_dir, synth_cache_dir), cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir
