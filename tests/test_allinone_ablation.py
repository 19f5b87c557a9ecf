"""``recipes/ablate_allinone.py`` and the experiment switches its variants use.

One tiny variant end to end (the ``allinone_micro`` experiment: seconds, figures
meaningless), plus the pieces each variant depends on: which streams and loss terms
a task subset and an Eq. 6 setting train, and the identity-net initialisation.
"""

import json
import os

import numpy as np
import pytest

from keras_facemt.errors import ConfigError
from keras_facemt.models.allinone import ablation, job, task
from keras_facemt.models.allinone.experiments import get_experiment

from tests.helpers import load_script


def _main(argv):
    return load_script("recipes", "ablate_allinone").main(argv)


@pytest.mark.timeout(300)
def test_recipe_runs_one_tiny_variant_into_reports(tmp_path):
    out, reports = tmp_path / "out", tmp_path / "reports"
    code = _main(["--experiment", "allinone_micro", "--variants", "mtl_scratch", "--steps", "16,0",
                 "--yaw-bin-faces", "3",
                 "--out-dir", str(out), "--reports-dir", str(reports), "--cache-dir", str(tmp_path / "c")])
    assert code == 0
    run = json.loads((out / "mtl_scratch" / "results.json").read_text())
    assert run["experiment"] == "allinone_micro_mtl_scratch" and run["system"] == "allinone"
    assert run["experiment_config"]["steps_euclidean"] == 16
    assert min(b["faces"] for b in run["metrics"]["landmarks_pose"]["nme_yaw_bins"].values()) >= 3
    table6 = (reports / "allinone_table6.md").read_text()
    assert "| predicted | multitask |" in table6 and "| ground truth | multitask |" in table6
    assert "identity only" not in table6  # that network was not trained
    multitask = (reports / "allinone_multitask.md").read_text()
    assert "| All-in-One, from scratch |" in multitask and "--variants mtl_scratch" in multitask
    summary = json.loads((reports / "allinone_ablation.json").read_text())
    assert summary["machine"]["usable_cores"] >= 1 and "mtl_scratch" in summary["scores"]
    assert not (reports / "allinone_age_loss.md").exists()  # needs two age-loss runs
    assert summary["stage2_smile"]["faces"] >= 0 and summary["stage2_smile"]["model"].endswith("model.keras")
    # A finished run is reused only for the configuration it ran.
    assert _main(["--experiment", "allinone_micro", "--variants", "mtl_scratch", "--steps", "17,0",
                 "--out-dir", str(out), "--reports-dir", str(reports)]) == 2


def test_recipe_refuses_an_unknown_variant(capsys, tmp_path):
    assert _main(["--variants", "mtl,nosuch", "--out-dir", str(tmp_path)]) == 2
    assert "nosuch" in capsys.readouterr().err


def test_variants_train_their_streams_and_terms_only():
    base = get_experiment("allinone_smoke")
    smile = ablation.variant_experiment(base, "single_smile", "/runs")
    assert task.active_streams(smile) == ("celeba",)
    assert [p.loss_terms for p in job.phases(smile)] == [("smile",), ("smile",)]
    age = ablation.variant_experiment(base, "single_age", "/runs")
    assert task.active_streams(age) == ("imdb_wiki", "morph")
    assert [p.loss_terms for p in job.phases(age)] == [("age/euclidean",), ("age/gaussian",)]
    for name, terms in (("age_euclidean", ("age/euclidean", "age/euclidean")),
                        ("age_gaussian", ("age/gaussian", "age/gaussian")), ("mtl_scratch", ("age/euclidean",
                                                                                                "age/gaussian"))):
        phases = job.phases(ablation.variant_experiment(base, name, "/runs"))
        assert tuple(t for p in phases for t in p.loss_terms if t.startswith("age")) == terms, name
        assert [p.steps for p in phases] == [450, 150] and len({p.name for p in phases}) == 2
    init = ablation.variant_experiment(base, "mtl_id_init", "/runs")
    assert init.init_from == os.path.join("/runs", "identity_only", "model.keras")
    assert ablation.order(["mtl_id_init", "mtl_scratch"]) == ["identity_only", "mtl_id_init", "mtl_scratch"]
    with pytest.raises(ConfigError, match="tasks"):
        get_experiment("allinone_smoke", tasks=("smiles",))
    with pytest.raises(ConfigError, match="age_loss"):
        get_experiment("allinone_smoke", age_loss="huber")


def test_effects_are_stated_against_the_noise_of_a_difference():
    assert ablation.effect(0.90, 0.80, 0.01) == "better by 10.0 points"
    assert ablation.effect(0.80, 0.90, 0.01) == "worse by 10.0 points"
    assert ablation.effect(0.81, 0.80, 0.01).startswith("within noise (+1.0 points")
    assert ablation.effect(0.10, 0.20, 0.001, higher_is_better=False) == "better by 10.0 points"


def test_init_from_copies_every_matching_layer(tmp_path):
    from keras_facemt.models.registry import get_system

    system = get_system("allinone")
    cfg = job.model_config(get_experiment("allinone_micro"))
    source = system.build(cfg, "tiny")
    path = str(tmp_path / "source.keras")
    source.save(path)
    target = system.build(cfg, "tiny")
    assert any(not np.array_equal(a, b) for a, b in zip(source.get_weights(), target.get_weights()))
    assert job.initialise_from(target, path, log=lambda _: None) > 0
    for a, b in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="init_from"):
        job.initialise_from(target, str(tmp_path / "missing.keras"))


def test_prior_correction_moves_smile_odds_to_the_scene_prior():
    from keras_facemt.models.allinone.stage2_study import prior_corrected

    # odds x (0.2 / 0.8) / (0.5 / 0.5): 0.5 -> 0.2; 0.8 (odds 4) -> odds 1 -> 0.5
    np.testing.assert_allclose(prior_corrected([0.5, 0.8], 0.5, 0.2), [0.2, 0.5], atol=1e-6)
    np.testing.assert_allclose(prior_corrected([0.3], 0.4, 0.4), [0.3], atol=1e-6)
