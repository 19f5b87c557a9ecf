"""TFN's MORPH II S1 / S2 / S3 protocol (Table V) through ``facemt train tfn --data morph=DIR``:
a MORPH-layout album of SynthFace portraits, converted with ``--protocol s123``, a micro run of
both folds, and the refusal of directories that are not such a conversion."""

import json
import os
import shutil

import numpy as np
import pytest

from keras_facemt.errors import ConfigError, DataError
from keras_facemt.models.tfn import morph_protocol
from keras_facemt.training.train_command import main as facemt_train
from tests.fixtures_layouts import read_dataset

MICRO = ["--experiment", "tfn_morph", "--preset", "tiny", "--steps", "2,0,0,2", "--scenes", "6,3"]


def _convert(root, out, protocol="s123"):
    from tfrecords_tools.common import run_conversion
    from tfrecords_tools.convert_morph import MorphConverter

    run_conversion(MorphConverter(root, protocol=protocol, subset_size=8), out, workers=1)
    return out


@pytest.fixture(scope="module")
def morph(tmp_path_factory):
    from keras_facemt.data.synth_morph import write_morph_layout

    tmp = tmp_path_factory.mktemp("morph")
    root = str(tmp / "album")
    write_morph_layout(root, subjects=24, photos_per_subject=(1, 2), size=(40, 48), hispanic_share=0.1)
    return root, _convert(root, str(tmp / "s123"))


@pytest.fixture(scope="module")
def protocol_run(morph, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    run = str(tmp / "run")
    assert facemt_train(["tfn", *MICRO, "--data", f"morph={morph[1]}", "--model-dir", run,
                         "--cache-dir", str(tmp / "cache")]) == 0
    with open(os.path.join(run, "results.json")) as f:
        return run, json.load(f)


def _by_split(data_dir):
    """``{split: [(identity, age), ...]}`` read back from the records."""
    out = {}
    for rec in read_dataset(data_dir).values():
        out.setdefault(rec.split, []).append((int(rec.identity[0]), float(rec.attributes["age"][0])))
    return out


def test_both_folds_train_and_test_on_disjoint_subsets(morph, protocol_run):
    run, results = protocol_run
    photos = _by_split(morph[1])
    folds = results["morph"]["folds"]
    assert [(f["train"], f["test"]) for f in folds] == [("s1", ["s2", "s3"]), ("s2", ["s1", "s3"])]
    for f in folds:
        assert f["train_photos"] == len(photos[f["train"]])
        assert f["test_photos"] == {s: len(photos[s]) for s in f["test"]}
        train_ids = {i for i, _ in photos[f["train"]]}
        test_ids = {i for s in f["test"] for i, _ in photos[s]}
        assert not train_ids & test_ids and f["subjects"] == {"train": len(train_ids), "test": len(test_ids),
                                                              "in_both": 0}
        # Every test photo is scored through the record box; the baseline is the training subset's mean age.
        m, b = f["record_box"]["metrics"], f["record_box"]["baselines"]
        test_ages = np.array([a for s in f["test"] for _, a in photos[s]])
        train_mean = np.mean([a for _, a in photos[f["train"]]])
        assert m["age_faces"] == len(test_ages)
        assert b["training_mean_age_mae"] == pytest.approx(np.abs(train_mean - test_ages).mean(), rel=1e-6)
        assert 0 <= m["gender_accuracy"] <= 1 and 0 <= b["gender_majority"] <= 1
        assert m["ethnicity_faces"] < m["age_faces"]  # the H subjects carry no ethnicity label
        assert f["deployable"]["detected_photos"] <= m["age_faces"]
        assert os.path.exists(os.path.join(run, f"fold_{f['train']}", "model.keras"))
        assert list(f["final_losses"]) == ["stage4_attributes"]
    r = results["morph"]["record_box"]
    assert r["avg_e"] == pytest.approx(np.mean([f["record_box"]["metrics"]["age_mae"] for f in folds]))
    assert r["avg_e_training_mean_age"] == pytest.approx(
        np.mean([f["record_box"]["baselines"]["training_mean_age_mae"] for f in folds]))
    head = {h["metric"]: h for h in results["headline"]}
    assert head["morph_age_avg_e_years"]["model"] == pytest.approx(r["avg_e"])
    assert head["morph_age_avg_e_years"]["baseline_name"] == "training-mean age"
    assert {"morph_gender_accuracy", "morph_ethnicity_accuracy", "base_detection_ap@0.5"} <= set(head)
    assert list(results["base"]["final_losses"]) == ["stage1_joint"]
    with open(os.path.join(run, "results.md")) as f:
        table = f.read()
    assert "| Paper TFN (MORPH II) | S1 | S2+S3 | 3.23 | 3.205 | 98.71% | 98.05% |" in table
    assert "Measured TFN, record box | S2 | S1+S3 |" in table


def test_refuses_a_directory_that_is_not_an_s123_conversion(morph, tmp_path, capsys):
    root, s123 = morph
    partial = str(tmp_path / "no_s3")
    shutil.copytree(s123, partial)
    with open(os.path.join(partial, "dataset.json")) as f:
        manifest = json.load(f)
    del manifest["counts"]["s3"]
    with open(os.path.join(partial, "dataset.json"), "w") as f:
        json.dump(manifest, f)
    with pytest.raises(DataError, match="split 's3' is missing"):
        morph_protocol.check_protocol_dir(partial)
    ratio = _convert(root, str(tmp_path / "ratio"), protocol="ratio")
    with pytest.raises(DataError, match="not a MORPH S1/S2/S3 conversion"):
        morph_protocol.check_protocol_dir(ratio)
    with pytest.raises(DataError, match="does not exist"):
        morph_protocol.check_protocol_dir(str(tmp_path / "nowhere"))
    # The command fails with the reason, before rendering or training anything.
    run = str(tmp_path / "run")
    assert facemt_train(["tfn", *MICRO, "--data", f"morph={partial}", "--model-dir", run]) == 2
    assert "split 's3' is missing" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(run, "base"))
    with pytest.raises(ConfigError, match="stage_steps"):
        from keras_facemt.models.tfn.experiments import get_experiment
        from keras_facemt.training.runner import RunContext

        morph_protocol.run(get_experiment("tfn_morph", preset="tiny", stage_steps=(2, 0, 0, 0)),
                           RunContext(str(tmp_path / "run0"), data={"morph": s123}))
    assert facemt_train(["tfn", *MICRO[:-2], "--scenes", "6", "--data", f"morph={s123}", "--model-dir", run]) == 2
