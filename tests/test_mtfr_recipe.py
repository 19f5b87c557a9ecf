"""MTFR end to end: the smoke experiment through the recipe, its floors, resume, export, inference."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_facemt.errors import CheckpointError, ConfigError
from keras_facemt.inference.analyzer import FaceAnalyzer
from keras_facemt.inference.face import compare_faces
from keras_facemt.models.mtfr.config import ATTRIBUTES
from keras_facemt.models.mtfr.experiments import get_experiment
from keras_facemt.models.registry import get_system
from keras_facemt.training.runner import RunContext, run_experiment
from keras_facemt.training.train_command import main as facemt_train
from tests.conftest import ROOT
from tests.helpers import keras_weights, kill_after_a_checkpoint
from keras_facemt.models.mtfr.export import export_mtfr, load_deployable

pytestmark = pytest.mark.slow


SMOKE = ["mtfr", "--experiment", "mtfr_smoke", "--deterministic"]


def _facemt_argv(*args):
    return [sys.executable, "-m", "keras_facemt.cli", "train", *args]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The deterministic smoke run, in its own process: the reference of the resume test too."""
    root = tmp_path_factory.mktemp("mtfr")
    run, cache = str(root / "run"), str(root / "cache")
    proc = subprocess.run(_facemt_argv(*SMOKE, "--model-dir", run, "--cache-dir", cache), cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(run, "results.json")) as f:
        return run, cache, json.load(f)


def test_smoke_beats_every_trivial_baseline(smoke_run):
    run, _, results = smoke_run
    metrics = {h["metric"] for h in results["headline"]}
    assert {"verification_accuracy_10fold", "rank1_identification", "tar_at_far_0.001", "tar_at_far_0.0001",
            "mean_attribute_accuracy"} <= metrics
    for h in results["headline"]:
        assert set(h) == {"metric", "split", "model", "baseline", "baseline_name", "higher_is_better"}
        assert h["model"] > h["baseline"], h
    m = results["metrics"]
    assert m["identification"]["gallery"] == 1000 + 40  # distractors + one face per unseen person
    assert set(m["attributes"]["per_attribute"]) == set(ATTRIBUTES)
    assert 0.0 < m["threshold"] < 1.0
    assert os.path.exists(os.path.join(run, "results.md"))


def test_refuses_an_existing_checkpoint_without_resume(smoke_run):
    run, cache, _ = smoke_run
    with pytest.raises(ConfigError, match="--resume"):
        run_experiment(get_system("mtfr"), get_experiment("mtfr_smoke"),
                       RunContext(run, cache_dir=cache, log=lambda *_: None))
    assert facemt_train(["--experiment", "mtfr_smoke", "--model-dir", run, "--data", "faces=/nowhere"]) == 2


def test_resume_of_a_finished_run_reproduces_its_results(smoke_run):
    run, cache, results = smoke_run
    again = run_experiment(get_system("mtfr"), get_experiment("mtfr_smoke"),
                           RunContext(run, cache_dir=cache, resume=True, log=lambda *_: None))
    assert again["run"]["resumed"] and again["system"] == "mtfr" and again["experiment"] == "mtfr_smoke"
    assert [h["model"] for h in again["headline"]] == pytest.approx([h["model"] for h in results["headline"]])


@pytest.mark.timeout(1200)
def test_sigkill_then_resume_through_the_runner_gives_the_uninterrupted_run(smoke_run, tmp_path):
    reference, cache, results = smoke_run
    run = tmp_path / "run"
    argv = _facemt_argv(*SMOKE, "--model-dir", str(run), "--cache-dir", cache)
    killed_at = kill_after_a_checkpoint(argv, run, ROOT)
    total = json.loads(open(os.path.join(reference, "history.json")).read())["global_step"]
    assert 0 < killed_at < total, "the run finished before it could be killed"
    resumed = subprocess.run(argv + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = json.loads((run / "results.json").read_text())
    assert again["run"]["resumed"] is True
    assert json.loads((run / "history.json").read_text())["global_step"] == total
    # Same final step and same data order: the weights of the uninterrupted run.
    for a, b in zip(keras_weights(run / "model.keras"), keras_weights(os.path.join(reference, "model.keras"))):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert [h["model"] for h in again["headline"]] == pytest.approx([h["model"] for h in results["headline"]])


def test_export_and_face_analyzer(smoke_run, tmp_path):
    run, cache, results = smoke_run
    model, names, threshold = load_deployable(run)
    assert names == [f"celeba/{a}" for a in ATTRIBUTES] and threshold == results["metrics"]["threshold"]
    test_file = [f for f in os.listdir(cache) if f.startswith("test_")][0]
    with np.load(os.path.join(cache, test_file)) as z:
        faces = {k: z[k] for k in z.files}
    from keras_facemt.serving.keras_format import load_model
    from keras_facemt.serving.model_source import config_from_dict, read_run_config
    from keras_facemt.models.mtfr.config import MTFRConfig

    cfg = config_from_dict(MTFRConfig, read_run_config(run)["config"])
    out = str(tmp_path / "export")
    manifest = export_mtfr(load_model(os.path.join(run, "model.keras")), cfg, out, faces, threshold,
                           formats=("keras", "tflite"), quantizations=("float16", "int8"), log=None)
    assert manifest["verification_threshold"] == threshold
    assert manifest["serving"]["outputs"]["attributes"]["names"] == names
    checks = manifest["recognition_checks"]
    assert checks["tflite_float16"]["cosine"] >= 0.99 and checks["tflite_int8"]["cosine"] >= 0.95
    assert all(c["passed"] for k, c in checks.items() if k != "keras")

    exported, names2, threshold2 = load_deployable(out)
    assert names2 == names and threshold2 == threshold
    analyzer = FaceAnalyzer(exported)
    ids = faces["identity"]
    same = np.flatnonzero(ids == ids[0])[:2]
    other = np.flatnonzero(ids != ids[0])[0]
    a, b, c = (f[0] for f in analyzer([faces["images"][i] for i in (same[0], same[1], other)]))
    assert a.embedding.shape == (cfg.feature_dim,) and abs(np.linalg.norm(a.embedding) - 1) < 1e-5
    assert set(a.attributes) == set(names) and all(0.0 <= p <= 1.0 for p in a.attributes.values())
    s_same, s_other = compare_faces(a, b, threshold)[1], compare_faces(a, c, threshold)[1]
    assert s_same > s_other
    with pytest.raises(CheckpointError):
        load_deployable(str(tmp_path))
