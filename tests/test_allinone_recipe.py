"""The All-in-One integration test: ``allinone_smoke`` through ``facemt train allinone``.

Renders the five SynthFace streams, trains the tiny preset with both Eq. 6 phases
through the shared runner, and checks that every headline metric beats its
strongest trivial baseline (under 2 minutes on an idle 2-core machine).
"""

import json

import pytest

from keras_facemt import cli
from keras_facemt.metrics.headline import beats_baseline

HEADLINE = ["scene_detection_ap_at_0.5", "detection_ap", "detection_accuracy", "landmark_nme_visible_box",
            "yaw_mae_degrees", "age_mae_years", "gender_accuracy", "smile_accuracy", "verification_accuracy_10fold"]


@pytest.mark.timeout(600)
def test_allinone_smoke_beats_every_trivial_baseline(tmp_path):
    run = tmp_path / "run"
    assert cli.main(["train", "allinone", "--experiment", "allinone_smoke", "--model-dir", str(run),
                     "--cache-dir", str(tmp_path / "cache")]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["system"] == "allinone" and results["experiment"] == "allinone_smoke"
    assert [h["metric"] for h in results["headline"]] == HEADLINE
    for h in results["headline"]:
        assert beats_baseline(h), h
    m = results["metrics"]
    assert set(m["landmarks_pose"]["nme_yaw_bins"]) == {"0-30", "30-60", "60-90"}
    assert m["detection"]["proposals"] > 500 and m["verification"]["pairs"] == 400
    assert m["scenes"]["scenes"] == 10 and m["scenes"]["faces"] > 0
    assert (run / "model.keras").exists() and (run / "results.md").read_text().startswith("# All-in-One results")
    assert results["training_examples"]["aflw"] > 1000
