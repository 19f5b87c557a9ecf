"""``recipes/ablate_tfn.py``: flags checked before anything trains; one tiny variant end to end."""

import json
import os

import pytest

from keras_facemt.models.tfn import ablation
from keras_facemt.models.tfn.experiments import get_experiment
from keras_facemt.models.tfn.job import model_config

from tests.helpers import load_script


@pytest.mark.parametrize("argv,message", [
    (["--variants", "tfn,ormm2"], "Unknown variant 'ormm2'"),
    (["--steps", "1,2"], "--steps must be S1,S2,S3,S4"),
    (["--scenes", "10"], "TRAIN,TEST"),
    (["--experiment", "tfn_nope"], "tfn_ablation"),
])
def test_bad_flags_fail_before_anything_runs(tmp_path, capsys, argv, message):
    out = tmp_path / "runs"
    assert load_script("recipes", "ablate_tfn").main(argv + ["--out-dir", str(out), "--reports-dir", str(tmp_path / "reports")]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "reports").exists()


def test_every_variant_is_a_valid_distinct_configuration():
    exp = get_experiment("tfn_ablation")
    base = model_config(exp)
    seen = set()
    for name in ablation.VARIANTS:
        run = ablation.variant_experiment(exp, name, base)
        key = (model_config(run), run.rpn_matcher, run.stage_steps)
        assert key not in seen, name
        seen.add(key)
    ormm = model_config(ablation.variant_experiment(exp, "ormm", base))
    assert ormm.rpn_levels == (5,) and len(ormm.rpn_scales[0]) == 6 and not ormm.two_step
    joint = ablation.variant_experiment(exp, "tfn_joint", base)
    assert joint.stage_steps == (sum(exp.stage_steps), 0, 0, 0)


def test_one_tiny_variant_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEMT_CACHE_DIR", str(tmp_path / "cache"))
    reports, out = tmp_path / "reports", tmp_path / "runs"
    # One stage: one graph to trace, one to evaluate (the runner needs a matched face for its baselines).
    argv = ["--variants", "tfn_iou_match", "--preset", "small", "--steps", "3,0,0,0", "--scenes", "8,4",
            "--out-dir", str(out),
            "--cache-dir", str(tmp_path / "cache"), "--reports-dir", str(reports)]
    assert load_script("recipes", "ablate_tfn").main(argv) == 0
    with open(out / "tfn_iou_match" / "results.json") as f:
        results = json.load(f)
    assert results["experiment_config"]["rpn_matcher"] == "iou" and results["experiment_config"]["preset"] == "small"
    text = (reports / "tfn_matching.md").read_text()
    assert "IoU >= 0.7 or best anchor" in text and "top-3 anchors (TFN)" not in text  # only what ran
    assert "| top-3 detects small faces better | not run |" in text
    assert "Machine:" in text and "--variants tfn_iou_match" in text
    assert sorted(os.listdir(reports)) == ["tfn_matching.md"]
    # A finished variant is read back, not retrained.
    mtime = os.path.getmtime(out / "tfn_iou_match" / "results.json")
    assert load_script("recipes", "ablate_tfn").main(argv) == 0
    assert os.path.getmtime(out / "tfn_iou_match" / "results.json") == mtime


def test_effect_statements_follow_the_measurement():
    s = {"a": {"nme": 0.10, "nme_per_face_se": 0.001, "ap": 0.9}, "b": {"nme": 0.12, "nme_per_face_se": 0.001,
                                                                          "ap": 0.95}}
    assert ablation.effect(s, "a", "b", "nme").startswith("as in the paper (-2.00")
    assert ablation.effect(s, "b", "a", "nme").startswith("opposite to the paper (+2.00")
    assert ablation.effect(s, "a", "b", "auc0.1") == "not measurable"
    s["a"]["ced"] = {"0.1": {"auc": 0.3}}
    s["b"]["ced"] = {"0.1": {"auc": 0.2}}
    assert ablation.effect(s, "a", "b", "auc0.1") == "as in the paper (+0.10, no error bar)"
    s["a"]["test_faces"] = s["b"]["test_faces"] = 10000  # 2 s.e. about 0.5 points of AP
    assert ablation.effect(s, "a", "b", "ap").startswith("opposite to the paper (-5.00")
    s["a"]["test_faces"] = s["b"]["test_faces"] = 20
    assert ablation.effect(s, "a", "b", "ap").startswith("within noise (-5.00")
    s["b"]["nme_per_face_se"] = 0.02
    assert ablation.effect(s, "a", "b", "nme").startswith("within noise")
    assert ablation.effect(s, "a", "c", "nme") == "not run"
