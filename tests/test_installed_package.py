"""``pip install .`` (not editable) gives a working ``facemt train``: no file of the checkout is needed."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SHORT_DETERMINISTIC_IFAN


@pytest.mark.timeout(900)
def test_non_editable_install_trains_outside_the_checkout(tmp_path, synth_cache_dir):
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
    assert not (target / "recipes").exists() and not (target / "keras_facemt" / "recipes").exists()
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "TF_CPP_MIN_LOG_LEVEL": "2"}
    where = subprocess.run([sys.executable, "-c", "import keras_facemt; print(keras_facemt.__file__)"], cwd=work,
                           env=env, capture_output=True, text=True, timeout=120)
    assert where.stdout.strip().startswith(str(target)), where.stdout + where.stderr
    argv = [str(facemt), "train", "ifan", *SHORT_DETERMINISTIC_IFAN[:-1], "--model-dir", "run",
            "--cache-dir", synth_cache_dir, "--epochs", "0.25,0.25"]
    run = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((work / "run" / "results.json").read_text())
    assert results["system"] == "ifan" and results["headline"]
    assert (work / "run" / "model.keras").exists()
