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
    (["--seeds", "0,one"], "--seeds must be comma-separated integers"),
    (["--seeds", "1,1"], "--seeds repeats a seed"),
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


def _run(nme, se=0.001, seconds=100.0):
    return {"nme": nme, "nme_per_face_se": se, "params": 10, "seconds": seconds, "machine": {}}


def test_seeds_pool_into_mean_sd_cells_and_paired_effects(tmp_path):
    per_seed = {0: {"tfn": _run(0.100), "srmm": _run(0.130)},
                1: {"tfn": _run(0.110), "srmm": _run(0.125)},
                2: {"tfn": _run(0.105), "srmm": _run(0.135), "ormm": _run(0.2)}}
    scores = ablation.pool_seeds(per_seed)
    assert sorted(scores["tfn"]["runs"]) == [0, 1, 2] and sorted(scores["ormm"]["runs"]) == [2]
    assert ablation._cell(scores["tfn"], "nme") == "10.50 ± 0.50"  # mean and sample sd, in percent
    assert ablation._cell(scores["ormm"], "nme") == "20.00"
    # Paired differences -3.0, -1.5, -3.0 points: mean -2.5, t(2) half-width 4.303 * 0.866 / sqrt(3) = 2.15.
    assert ablation.effect(scores, "tfn", "srmm", "nme") == (
        "as in the paper (-2.50 ± 2.15, 3 seeds, as in the paper in 3 of 3)")
    assert ablation.effect(scores, "srmm", "tfn", "nme").startswith("opposite to the paper (+2.50 ± 2.15")
    per_seed[1]["srmm"] = _run(0.090)  # one seed disagrees: the interval now holds zero
    scores = ablation.pool_seeds(per_seed)
    assert ablation.effect(scores, "tfn", "srmm", "nme").startswith("within noise (") and "in 2 of 3" in \
        ablation.effect(scores, "tfn", "srmm", "nme")
    # One seed in common falls back to the single-run rule (two standard errors of the run).
    assert ablation.effect(scores, "tfn", "ormm", "nme").startswith("as in the paper (-9.50")
    exp = get_experiment("tfn_ablation")
    written = ablation.write_reports(exp, scores, str(tmp_path), "python recipes/ablate_tfn.py --seeds 0,1,2")
    text = (tmp_path / "tfn_table3_models.md").read_text()
    assert str(tmp_path / "tfn_table3_models.md") in written
    assert "seeds 0, 1, 2" in text and "| TFN (3 seeds) | - | 10.50 ± 0.50 |" in text and "| ORMM (1 seed) |" in text
    assert "of the 7 runs read for these reports: 11.7 min" in text


def test_a_report_after_a_partial_run_keeps_the_other_variants_rows(tmp_path):
    for name, nme in (("tfn", 0.1), ("srmm", 0.13)):
        os.makedirs(tmp_path / name)
        with open(tmp_path / name / "results.json", "w") as f:
            json.dump({"metrics": {"nme": nme}, "params": 5}, f)
    scores = ablation.read_scores(str(tmp_path))
    assert sorted(scores) == ["srmm", "tfn"] and scores["srmm"]["nme"] == 0.13
