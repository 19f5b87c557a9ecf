import json
import os

import numpy as np
import pytest

from keras_facemt.errors import ConfigError
from keras_facemt.metrics.matched_landmark_error import matched_landmark_nme
from keras_facemt.models.uniface import evaluation as ev
from keras_facemt.models.uniface.experiments import get_experiment
from keras_facemt.models.uniface.job import compare_variants, results_markdown


def test_experiments_are_validated():
    assert get_experiment("uniface").variants == ("A", "B", "C", "D")
    assert get_experiment("uniface_smoke", steps=10).steps == 10
    with pytest.raises(ConfigError, match="Unknown Uniface experiment"):
        get_experiment("uniface_huge")
    with pytest.raises(ConfigError, match="variant"):
        get_experiment("uniface", variants=("E",))
    with pytest.raises(ConfigError, match="field"):
        get_experiment("uniface", epochs=3)
    with pytest.raises(ConfigError, match="multiple of 20"):
        get_experiment("uniface", verification_pairs=610)


def test_pairs_are_balanced_lfw_folds():
    ids = np.repeat(np.arange(10), 5)
    pairs, same, folds = ev.make_pairs(ids, 200, seed=1)
    assert pairs.shape == (200, 2) and np.bincount(folds).tolist() == [20] * 10
    for f in range(10):
        assert same[folds == f].sum() == 10
    assert (ids[pairs[same == 1, 0]] == ids[pairs[same == 1, 1]]).all()
    assert (ids[pairs[same == 0, 0]] != ids[pairs[same == 0, 1]]).all()
    assert (pairs[same == 1, 0] != pairs[same == 1, 1]).all()


def test_random_crop_or_pad_bounds():
    rng = np.random.default_rng(0)
    img = np.ones((100, 100, 3), np.uint8)
    for _ in range(20):
        out = ev.random_crop_or_pad(img, 0.24, rng)
        assert 52 <= out.shape[0] <= 148 and 52 <= out.shape[1] <= 148


def test_baselines_and_matched_nme():
    train_boxes = [np.array([[0.1, 0.1, 0.3, 0.3]]), np.array([[0.6, 0.6, 0.8, 0.8]])]
    boxes, scores = ev.fixed_prior_detections(train_boxes, 3)
    assert len(boxes) == 3 and boxes[0].shape[0] == scores[0].shape[0] == 25
    assert np.isclose(scores[0].sum(), 1.0)
    lms = [np.tile([[0.4, 0.4], [0.6, 0.4], [0.5, 0.5], [0.4, 0.6], [0.6, 0.6]], (1, 1, 1)) * 0.2 + b[:, None, :2] * 0
           for b in train_boxes]
    shape = ev.mean_shape(train_boxes, [l + b[:, None, :2] - 0 for l, b in zip(lms, train_boxes)])
    assert shape.shape == (5, 2)
    gt_b = [np.array([[0.2, 0.2, 0.4, 0.4]])]
    gt_l = [gt_b[0][:, None, :2] + shape[None] * 0.2]
    assert ev.mean_shape_nme(shape, gt_b, gt_l, [np.ones((1, 5))]) < 1e-5
    res = matched_landmark_nme([gt_b[0]], [np.array([0.9])], [gt_l[0]], gt_b, gt_l, [np.ones((1, 5))], shape)
    assert res["nme"] < 1e-6 and res["scored_faces"] == 1 and res["nme_box_mean_shape"] < 1e-5
    res = matched_landmark_nme([np.zeros((0, 4))], [np.zeros(0)], [np.zeros((0, 5, 2))], gt_b, gt_l,
                                  [np.ones((1, 5))])
    assert res["unmatched_faces"] == 1 and np.isnan(res["nme"])


def test_comparisons_state_the_direction():
    v = {"A": {"verification": {"accuracy": 0.9}, "verification_robust": {"accuracy": 0.8}, "ap": 0.8, "nme": 0.05,
               "nme_box": 0.02},
         "D": {"verification": {"accuracy": 0.95}, "verification_robust": {"accuracy": 0.7}, "ap": 0.7, "nme": 0.06,
               "nme_box": 0.03}}
    out = compare_variants(v)
    assert any("verification" in s and "D better" in s for s in out)
    assert any(s.startswith("ap") and "A better" in s for s in out)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_uniface_smoke_beats_trivial_baselines(tmp_path):
    from keras_facemt import cli

    exp = get_experiment("uniface_smoke")
    assert cli.main(["train", "uniface", "--experiment", "uniface_smoke", "--model-dir", str(tmp_path)]) == 0
    with open(os.path.join(tmp_path, "results.json")) as f:
        res = json.load(f)
    assert res["system"] == "uniface" and res["experiment"] == "uniface_smoke"
    assert os.path.exists(os.path.join(tmp_path, "results.md"))
    scenes = res["paths"]["scenes"]
    for h in res["headline"]:  # AP, NME and verification each beat their strongest trivial baseline
        assert (h["model"] > h["baseline"]) if h["higher_is_better"] else (h["model"] < h["baseline"]), h
    assert {h["metric"] for h in res["headline"]} == {"ap_at_iou_0.5", "nme_inter_ocular",
                                                      "verification_accuracy_10fold"}
    # How the figures were produced: one process, one replica, the experiment's batch.
    distribution = {"strategy": "default", "workers": 1, "replicas": 1, "replicas_per_worker": 1,
                    "global_batch_size": {"scenes": exp.batch_size}, "per_replica_batch_size": {"scenes": exp.batch_size}}
    assert res["distribution"] == distribution
    with open(os.path.join(tmp_path, "model_A", "run_config.json")) as f:
        assert json.load(f)["distribution"] == distribution
    a, b = res["variants"]["A"], res["baselines"]
    # Observed on 2 cores: AP 0.99 vs 0.005, box-NME 0.112 vs 0.135, verification 0.745.
    assert a["ap"] > b["fixed_prior_ap"] + 0.5
    assert a["nme_box"] < 0.9 * b["mean_shape_nme_box"]
    assert a["nme_box"] < a["mean_shape_in_detections_nme_box"]
    assert a["verification"]["accuracy"] > 0.6

    # The trained variant leaves through the export path: its run directory rebuilds the
    # deployable graph (decoding, NMS, landmark attention) from the checkpoint, and every
    # format is checked in its runtime on held-out scenes; the quantized ones by
    # detection AP and landmark NME against the labels and embedding agreement.
    out = str(tmp_path / "export")
    # The export runs its runtimes in process; the --verify-only pass below also puts
    # each signature through saved_model_cli, the graph loader TF Serving uses.
    argv = ["export", "--model-dir", str(tmp_path / "model_A"), "--output", out, "--skip-saved-model-cli",
            "--data", scenes, "--examples", "16", "--calibration-samples", "32"]
    assert cli.main(argv) == 0
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["system"] == "uniface"
    checks = manifest["verification"]["checks"]
    assert all(c["passed"] for c in checks) and len(checks) == 7, checks
    int8 = next(c for c in checks if c["artifact"].endswith("model_int8.tflite"))
    assert set(int8["metrics"]) == {"detection", "landmarks", "embedding"}
    assert int8["metrics"]["detection"]["reference"] == "labels"
    assert int8["metrics"]["detection"]["keras"] > 0.5
    assert cli.main(["export", "--verify-only", "--output", out, "--data", scenes,
                     "--examples", "8"]) == 0


def test_results_markdown_has_the_table():
    res = {"experiment": "x", "experiment_config": {"name": "x", "fp_counts": [5]}, "run": {"data": {}},
           "headline": [{"metric": "ap_at_iou_0.5", "split": "held-out scenes", "model": 0.5, "baseline": 0.01,
                         "baseline_name": "fixed prior boxes", "higher_is_better": True}],
           "machine": {"platform": "p", "cpus": 2, "tensorflow": "t"}, "timings_seconds": {"total": 1.0},
           "variants": {"A": {"params": 10, "ap": 0.5, "tpr_at_fp": {"5": 0.4}, "nme": 0.1, "nme_box": 0.05,
                              "verification": {"accuracy": 0.7, "std": 0.01},
                              "verification_robust": {"accuracy": 0.6, "std": 0.02},
                              "mean_shape_in_detections_nme": 0.4, "mean_shape_in_detections_nme_box": 0.2}},
           "baselines": {"fixed_prior_ap": 0.01, "fixed_prior_tpr_at_fp": {"5": 0.0}, "mean_shape_nme": 0.3,
                         "mean_shape_nme_box": 0.1, "teacher_on_aligned_crops": {"accuracy": 0.9, "std": 0.0}},
           "comparisons": []}
    md = results_markdown(res)
    assert "Trained with the" not in md  # results written before runs recorded their distribution
    res["distribution"] = {"strategy": "default", "workers": 1, "replicas": 1, "global_batch_size": {"scenes": 16},
                           "per_replica_batch_size": {"scenes": 16}}
    assert "Trained with the default strategy: 1 worker, 1 replica, global batch 16 (16 per replica)." in \
        results_markdown(res)
    md = results_markdown(res)
    assert "| A | 10 | 0.500 | 0.400 | 0.1000 | 0.0500 | 0.700 ± 0.010 | 0.600 ± 0.020 |" in md
    assert "| ap_at_iou_0.5 | held-out scenes | 0.5000 | fixed prior boxes: 0.0100 |" in md
    assert "only one variant" in md and "A: 0.4000 / 0.2000" in md
