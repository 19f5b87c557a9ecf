"""``pip install .`` (not editable) gives a working ``facemt train``, and ``--deterministic``
runs in separate processes agree bit for bit.

The installed command trains the short deterministic iFAN run outside the checkout;
its weights, history and results must equal those of the session's reference run of
the same command from the checkout (another process, another copy of the code).
"""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.conftest import ROOT, SHORT_DETERMINISTIC_IFAN


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_non_editable_install_trains_outside_the_checkout_and_reruns_are_identical(
        tmp_path, synth_cache_dir, ifan_short_deterministic_run):
    from keras_facemt.serving.keras_format import load_model

    # What an sdist holds, copied aside so that the build leaves the checkout untouched.
    src = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("keras_facemt", "tfrecords_tools"):
        shutil.copytree(os.path.join(ROOT, folder), src / folder, ignore=skip)
    for name in ("setup.py", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    target = tmp_path / "site"
    # The dependencies are this environment's; only the package itself is installed, as a wheel.
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--target", str(target), str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    facemt = target / "bin" / "facemt"
    assert facemt.exists()
    assert not (target / "recipes").exists()
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "TF_CPP_MIN_LOG_LEVEL": "2"}
    where = subprocess.run([sys.executable, "-c", "import keras_facemt; print(keras_facemt.__file__)"], cwd=work,
                           env=env, capture_output=True, text=True, timeout=120)
    assert where.stdout.strip().startswith(str(target)), where.stdout + where.stderr

    argv = [str(facemt), "train", "ifan", *SHORT_DETERMINISTIC_IFAN, "--model-dir", "run",
            "--cache-dir", synth_cache_dir]
    run = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]

    runs = []
    for run_dir in (ifan_short_deterministic_run, work / "run"):
        results = json.loads((run_dir / "results.json").read_text())
        assert results["system"] == "ifan" and results["experiment_config"]["deterministic"] is True
        runs.append((results, load_model(str(run_dir / "model.keras"))))
    (ra, ma), (rb, mb) = runs
    assert ra["final"] == rb["final"] and ra["headline"] == rb["headline"]
    assert [h["metrics"] for h in ra["history"]] == [h["metrics"] for h in rb["history"]]
    for va, vb in zip(ma.weights, mb.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(va), keras.ops.convert_to_numpy(vb), err_msg=va.path)
