"""``recipes/train_ifan.py``: bad input fails before training; the smoke experiment end to end."""

import json
import os

import numpy as np
import pytest

from keras_facemt.models.ifan import reports

from tests.helpers import load_script


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEMT_CACHE_DIR", str(tmp_path / "cache"))
    recipe = load_script("recipes", "train_ifan")

    def call(*argv):
        code = recipe.main(list(argv) + ["--model-dir", str(tmp_path / "run")])
        return code, capsys.readouterr().err

    return call


def _nothing_trained(tmp_path):
    assert not os.path.exists(tmp_path / "run" / "checkpoints")
    # Rejected before any data was rendered either.
    assert not os.path.exists(tmp_path / "cache")


def test_unknown_task_fails_before_training(run, tmp_path):
    code, err = run("--experiment", "ifan_3t_smoke", "--tasks", "parsing,pose")
    assert code == 2
    assert "Unknown iFAN task 'pose'" in err and "tasks=['parsing', 'pose']" in err
    _nothing_trained(tmp_path)


def test_negative_iter_fails_before_training(run, tmp_path):
    code, err = run("--experiment", "ifan_3t_smoke", "--iter", "-1")
    assert code == 2 and "--iter must be >= 0" in err and "--iter -1" in err
    _nothing_trained(tmp_path)


def test_task_without_data_fails_before_training(run, tmp_path):
    code, err = run("--experiment", "ifan_3t_smoke", "--tasks", "parsing,gender")
    assert code == 2
    assert "['gender'] have no data" in err and "--data TASK=DIR" in err
    _nothing_trained(tmp_path)


def test_unknown_experiment_lists_known_ones(run, tmp_path):
    code, err = run("--experiment", "ifan_9t")
    assert code == 2 and "ifan_3t_smoke" in err and "experiment='ifan_9t'" in err


def test_data_dir_without_the_tasks_labels_fails_before_training(run, tmp_path):
    from keras_facemt.data.synthetic import write_synthetic

    emotion_only = str(tmp_path / "emotion_only")
    write_synthetic(emotion_only, tasks=("emotion",), count=6, shards=1, image_size=32,
                    splits=(("train", 0.5), ("test", 0.5)))
    code, err = run("--experiment", "ifan_3t_smoke", "--tasks", "landmarks", "--data", f"landmarks={emotion_only}")
    assert code == 2
    assert emotion_only in err and "task 'landmarks'" in err
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_bad_data_flag(run, tmp_path):
    code, err = run("--experiment", "ifan_3t_smoke", "--data", "landmarks")
    assert code == 2 and "--data expects TASK=DIR" in err
    code, err = run("--experiment", "ifan_3t_smoke", "--data", f"emotion={tmp_path / 'missing'}", "--tasks", "emotion")
    assert code == 2 and "missing" in err


def test_second_run_into_a_directory_with_a_checkpoint_is_refused_without_resume(run, tmp_path, monkeypatch):
    import tensorflow as tf

    from keras_facemt.models.ifan import job as ifan_job

    def rendering_started(*args, **kwargs):  # fail fast instead of training when not refused
        raise AssertionError("the run went on to render data: not refused")

    monkeypatch.setattr(ifan_job, "prepare_data", rendering_started)

    ckpt_dir = tmp_path / "run" / "checkpoints"
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=tf.Variable(7)), str(ckpt_dir), max_to_keep=1)
    manager.save(checkpoint_number=7)
    before = {p.name: p.read_bytes() for p in ckpt_dir.iterdir()}
    code, err = run("--experiment", "ifan_3t_smoke")
    assert code == 2
    assert "already holds a checkpoint" in err and "--resume" in err and str(tmp_path / "run") in err
    # Nothing rendered, nothing written, the old checkpoint untouched.
    assert not os.path.exists(tmp_path / "cache")
    assert sorted(os.listdir(tmp_path / "run")) == ["checkpoints"]
    assert {p.name: p.read_bytes() for p in ckpt_dir.iterdir()} == before


def test_reports_render_from_a_results_dict(tmp_path):
    lm = {"nme": 0.05, "failure_rate": 0.1, "auc": 0.5, "count": 3,
          "per_point_nme": {k: 0.05 for k in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")},
          "per_point_failure_rate": {}}
    table2 = {k: 0.8 for k, _ in reports._TABLE2_COLUMNS}
    parsing = {"overall": 0.7, "table2": table2, "per_class": {}, "mouth_all": 0.8, "count": 3}
    emo = {"accuracy": 0.4, "confusion_matrix": np.eye(7, dtype=int).tolist(), "class_names": list("abcdefg")}
    results = {
        "experiment": "unit", "tasks": ["parsing", "landmarks", "emotion"], "iterations": 1,
        "final": {"parsing": {"iter_0": parsing, "iter_1": parsing}, "landmarks": {"iter_0": lm, "iter_1": lm},
                  "emotion": {"iter_0": emo, "iter_1": emo}},
        "baselines": {"parsing": {"majority_class": {**parsing, "overall": 0.0}},
                      "landmarks": {"mean_shape": {**lm, "nme": 0.3}},
                      "emotion": {"majority": 0.15, "chance": 1 / 7}},
        "history": [{"phase": "pretrain_parsing", "stage": "pretrain_parsing", "step": 5,
                     "metrics": {"parsing": {"iter_0": 0.5}}},
                    {"phase": "finetune", "stage": "finetune", "step": 9,
                     "metrics": {"parsing": {"iter_0": 0.6, "iter_1": 0.7}, "landmarks": {"iter_0": 0.1, "iter_1": 0.05},
                                 "emotion": {"iter_0": 0.3, "iter_1": float("nan")}}}],
    }
    md = reports.results_markdown(results)
    assert "| iFAN 3T Iter1 | 5.00 | 5.00 | 5.00 | 5.00 | 5.00 | 5.00 | 10.00 |" in md
    assert "| Mean shape (trivial baseline) |" in md and "| Majority class (trivial baseline) | 15.00 |" in md
    assert "| iFAN 3T Iter0 | 80.00 |" in md
    reports.write_results_json(str(tmp_path / "r.json"), results)
    with open(tmp_path / "r.json") as f:
        assert json.load(f)["history"][1]["metrics"]["emotion"]["iter_1"] is None  # NaN -> null
    img = reports.curves_image(results)
    assert img.ndim == 3 and img.shape[1] == 3 * 520 and img.dtype == np.uint8
    # Something other than white was drawn in every panel.
    assert all((img[:, k * 520:(k + 1) * 520] < 200).any() for k in range(3))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smoke_experiment_beats_the_strongest_trivial_baselines(ifan_smoke_run):
    out_dir = ifan_smoke_run
    for name in ("results.json", "results.md", "curves.png", "predictions.png"):
        assert (out_dir / name).stat().st_size > 0, name
    assert list((out_dir / "checkpoints").glob("ckpt-*.index"))
    assert list((out_dir / "logs").iterdir())
    with open(out_dir / "results.json") as f:
        results = json.load(f)
    final, base = results["final"], results["baselines"]
    last = f"iter_{results['iterations']}"
    # Every task against its strongest trivial baseline, by a margin well beyond
    # run-to-run noise. Measured on this configuration (2 cores): landmarks NME 20.1%
    # against the mean shape's 31.2%; parsing overall F 31.6% against the per-pixel
    # prior map's 21.6% (the stronger of the two trivial parsers); emotion 26.7%
    # against 14.3% (the stronger of chance and the majority class; 288 held-out
    # crops, so one standard error is about 2.5 points).
    strongest = {h["metric"]: h for h in results["headline"]}
    assert strongest["parsing_overall"]["baseline_name"] == "per-pixel prior map"
    assert base["parsing"]["prior_map"]["overall"] > base["parsing"]["majority_class"]["overall"]
    assert final["landmarks"][last]["nme"] < base["landmarks"]["mean_shape"]["nme"] - 0.05
    assert final["parsing"][last]["overall"] > base["parsing"]["prior_map"]["overall"] + 0.05
    emotion_baseline = max(base["emotion"]["chance"], base["emotion"]["majority"])
    assert strongest["emotion_accuracy"]["baseline"] == pytest.approx(emotion_baseline)
    assert final["emotion"][last]["accuracy"] > emotion_baseline + 0.06
    # Every stage was evaluated (Fig. 7): three pre-training stages and fine-tuning.
    # run_config.json names every training dataset's BN domain (and each task's), so
    # `facemt export --data DIR` verifies each directory in the domain it trained in.
    with open(out_dir / "run_config.json") as f:
        run_config = json.load(f)
    for task, data_dir in run_config["datasets"].items():
        with open(os.path.join(data_dir, "dataset.json")) as f:
            names = list(json.load(f)["datasets"])
        assert names and all(run_config["domains"][n] == run_config["domains"][task] for n in names), task
    assert sorted(run_config["domains"][t] for t in run_config["datasets"]) == [0, 1, 2]
    stages = [h["stage"] for h in results["history"]]
    assert stages[:3] == ["pretrain_parsing", "pretrain_landmarks", "pretrain_emotion"] and stages[-1] == "finetune"
    # The run is exportable both ways: model.keras and the checkpoint rebuilt from
    # run_config.json hold the same trained weights.
    from keras_facemt.serving.keras_format import load_model
    from keras_facemt.serving.model_source import load_model_source

    from_keras = load_model(str(out_dir / "model.keras"))
    from_ckpt, info = load_model_source(str(out_dir))
    assert info["system"] == "ifan"
    feed = {"image": np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32"),
            "domain": np.array([0, 2], "int32")}
    a, b = from_keras(feed, training=False), from_ckpt(feed, training=False)
    for key in ("landmarks", "parsing_logits", "emotion_logits"):
        np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), atol=1e-5)
