"""``recipes/ablate_ifan.py --investigate-iterations`` (reports/ifan_iterations.md): one tiny variant end to end."""

import json
import os

import pytest

from tests.helpers import load_script


def _main(argv):
    return load_script("recipes", "ablate_ifan").main(argv)


def test_variants_change_one_factor_each():
    from keras_facemt.models.ifan.experiments import get_experiment

    base = get_experiment("ifan_3t_smoke")
    runs = {name: exp for name, _, exp in load_script("recipes", "ablate_ifan").investigation_variants(base, 2)}
    assert all(exp.iterations == 2 for exp in runs.values())
    cfg = {name: exp.model_config() for name, exp in runs.items()}
    assert cfg["every_block"].feedback_to == "every_block" and cfg["baseline"].feedback_to == "first_conv"
    assert cfg["iteration_bn"].iteration_bn and not cfg["baseline"].iteration_bn
    assert not cfg["no_reencoders"].reencoders
    assert runs["literal"].literal_stage2 and not runs["baseline"].literal_stage2
    assert runs["baseline_seed1"].seed == base.seed + 1
    assert runs["longer"].finetune_epochs > base.finetune_epochs
    # The shared smoke experiment itself is left as it is.
    assert base.iterations == 1 and base.finetune_epochs == 3.0


def test_study_needs_an_interaction(tmp_path, capsys):
    code = _main(["--investigate-iterations", "--experiment", "ifan_multihost_check", "--iter", "0",
                 "--out-dir", str(tmp_path / "out")])
    assert code == 2 and "ITER >= 1" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out")


def _tiny_study_experiment():
    from keras_facemt.models.ifan.experiments import IFANExperiment, TaskData

    # Two tasks, 32x32 faces, no stage 1 and two stage-2 updates: the pipeline, not the result.
    return IFANExperiment(
        name="ifan_iteration_study_tiny", description="two updates of landmarks and emotion",
        data=(TaskData("landmarks", "webcam", 8, 8, 8), TaskData("emotion", "outdoor", 8, 8, 8)),
        model_preset="tiny", iterations=1, image_size=32, pretrain_epochs=0.0, finetune_epochs=1.0,
        eval_points=1, steps_per_loop=2, eval_batch_size=8, num_predictions=1, calibration_batches=1)


def test_one_tiny_variant_end_to_end(tmp_path, monkeypatch, capsys):
    from keras_facemt.models.ifan import experiments

    monkeypatch.setenv("FACEMT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(experiments.EXPERIMENTS, "ifan_iteration_study_tiny", _tiny_study_experiment)
    out = tmp_path / "study"
    code = _main(["--investigate-iterations", "--experiment", "ifan_iteration_study_tiny",
                 "--only", "iteration_bn", "--out-dir", str(out)])
    assert code == 0, capsys.readouterr().err
    run_config = json.load(open(out / "iteration_bn" / "run_config.json"))
    assert run_config["config"]["iteration_bn"] is True
    md = open(out / "iterations.md").read()
    assert "| Per-iteration BN | Iter0 |" in md and "| Per-iteration BN | Iter1 |" in md
    study = json.load(open(out / "iterations.json"))
    run = study["runs"]["iteration_bn"]
    assert set(run["final"]["landmarks"]) == {"iter_0", "iter_1"}
    nme = run["final"]["landmarks"]
    assert run["changes"]["landmarks"] == pytest.approx(nme["iter_1"]["nme"] - nme["iter_0"]["nme"])
    assert run["changes"]["parsing"] is None  # not a task of this experiment
    # Run again: the finished run is read back, not trained again, and gives the same table.
    mtime = os.path.getmtime(out / "iteration_bn" / "results.json")
    capsys.readouterr()
    assert _main(["--investigate-iterations", "--experiment", "ifan_iteration_study_tiny",
                 "--only", "iteration_bn", "--out-dir", str(out)]) == 0
    assert "finished before" in capsys.readouterr().out
    assert os.path.getmtime(out / "iteration_bn" / "results.json") == mtime
    assert open(out / "iterations.md").read().split("Machine:")[0] == md.split("Machine:")[0]


def test_a_finished_run_is_reused_only_for_the_same_experiment(tmp_path):
    import dataclasses

    from keras_facemt.models.ifan.experiments import get_experiment

    recipe = load_script("recipes", "ablate_ifan")
    exp = get_experiment("ifan_3t_smoke", iterations=2)
    assert recipe.finished_results(str(tmp_path), exp) is None
    with open(tmp_path / "results.json", "w") as f:
        json.dump({"experiment_config": dataclasses.asdict(exp), "final": {}}, f)
    assert recipe.finished_results(str(tmp_path), exp)["final"] == {}
    assert recipe.finished_results(str(tmp_path), dataclasses.replace(exp, literal_stage2=True)) is None
