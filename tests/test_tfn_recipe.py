"""TFN end to end: the smoke experiment through the recipe, every metric against its
trivial baseline, resume refusal, the saved model and its deployable graph."""

import json
import os

import numpy as np
import pytest

from keras_facemt.errors import ConfigError
from keras_facemt.models.tfn.experiments import get_experiment
from keras_facemt.models.registry import get_system
from keras_facemt.training.runner import RunContext, run_experiment
from keras_facemt.training.train_command import main as facemt_train


def main(argv):
    return facemt_train(["tfn", *argv])

pytestmark = pytest.mark.slow

METRICS = {"detection_ap@0.5", "landmark_nme_inter_ocular", "age_mae_years", "gender_accuracy", "ethnicity_accuracy"}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfn")
    run, cache = str(root / "run"), str(root / "cache")
    assert main(["--experiment", "tfn_smoke", "--model-dir", run, "--cache-dir", cache]) == 0
    with open(os.path.join(run, "results.json")) as f:
        return run, cache, json.load(f)


@pytest.mark.timeout(600)
def test_smoke_beats_every_trivial_baseline(smoke_run):
    run, _, results = smoke_run
    assert {h["metric"] for h in results["headline"]} == METRICS
    for h in results["headline"]:
        assert set(h) == {"metric", "split", "model", "baseline", "baseline_name", "higher_is_better"}
        better = h["model"] > h["baseline"] if h["higher_is_better"] else h["model"] < h["baseline"]
        assert better, h
    assert results["system"] == "tfn" and results["experiment"] == "tfn_smoke"
    m = results["metrics"]
    assert m["nme_scored_faces"] > 0 and m["age_faces"] > 0 and m["gender_faces"] > 0
    assert set(m["ced"]) == {"0.1", "0.2", "0.3"}
    assert list(results["final_losses"]) == ["stage1_joint", "stage2_detection", "stage3_landmarks",
                                             "stage4_attributes"]
    assert os.path.exists(os.path.join(run, "results.md"))


def test_refuses_an_existing_checkpoint_without_resume(smoke_run):
    run, cache, _ = smoke_run
    with pytest.raises(ConfigError, match="--resume"):
        run_experiment(get_system("tfn"), get_experiment("tfn_smoke"), RunContext(run, cache_dir=cache,
                                                                                   log=lambda *_: None))
    assert main(["--experiment", "tfn_smoke", "--model-dir", run, "--data", "faces=/nowhere"]) == 2
    assert main(["--experiment", "tfn_smoke", "--model-dir", run, "--steps", "1,2"]) == 2


def test_resume_of_a_finished_run_reproduces_its_results(smoke_run):
    run, cache, results = smoke_run
    again = run_experiment(get_system("tfn"), get_experiment("tfn_smoke"),
                           RunContext(run, cache_dir=cache, resume=True, log=lambda *_: None))
    assert again["run"]["resumed"] is True
    assert [h["model"] for h in again["headline"]] == pytest.approx([h["model"] for h in results["headline"]])


def test_saved_model_knows_its_system_and_deploys(smoke_run):
    from keras_facemt.models.model_info import info_of
    from keras_facemt.models.registry import get_system
    from keras_facemt.serving.keras_format import load_model

    run, _, results = smoke_run
    model = load_model(os.path.join(run, "model.keras"))
    info = info_of(model)
    assert info.system == "tfn" and info.preset == "small"
    system = get_system("tfn")
    served = system.deployable(model, info)
    image = np.random.default_rng(0).uniform(0, 1, (1, 96, 96, 3)).astype("float32")
    out = served({"image": image})
    assert set(out) == set(system.serving_spec(system.config("small")).outputs)
    assert tuple(out["landmarks"].shape) == (1, 10, 68, 2)


def test_face_analyzer_reports_68_points_age_gender_ethnicity(smoke_run):
    """FaceAnalyzer reads the saved file's declaration: per face a box, a score, 68 points,
    age in years and gender / ethnicity probabilities, in the original image's pixels."""
    from keras_facemt.data.synthetic import SynthFace
    from keras_facemt.inference.analyzer import FaceAnalyzer

    run, _, _ = smoke_run
    analyzer = FaceAnalyzer(os.path.join(run, "model.keras"))
    synth = SynthFace(seed=99, image_size=96)
    found = [f for faces in analyzer([synth.render_scene(i, max_faces=1)[0] for i in range(8)]) for f in faces]
    assert found, "no face found in 8 single-face SynthFace scenes"
    for face in found:
        assert face.landmarks.shape == (68, 2) and 0 <= face.score <= 1
        assert 0 <= face.attributes["age"] <= 100
        assert face.attributes["gender"].shape == (2,) and face.attributes["ethnicity"].shape == (3,)
        np.testing.assert_allclose(face.attributes["ethnicity"].sum(), 1.0, atol=1e-5)
        assert np.all(face.box[2:] <= 96.5)
