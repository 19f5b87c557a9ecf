"""The All-in-One integration test: ``allinone_smoke`` through ``facemt train allinone``.

Renders the five SynthFace streams, trains the tiny preset with both Eq. 6 phases
through the shared runner, and checks that every headline metric beats its
strongest trivial baseline (under 2 minutes on an idle 2-core machine).
"""

import json

import pytest

from keras_facemt import cli
from keras_facemt.metrics.headline import beats_baseline

HEADLINE = ["scene_detection_ap_at_0.5", "scene_detection_ap_at_0.5_deployable_graph", "detection_ap", "detection_accuracy", "landmark_nme_visible_box",
            "landmark_nme_table2_yaw_bin_mean", "yaw_mae_degrees", "yaw_within_15_degrees_afw_rule", "age_mae_years",
            "gender_accuracy", "smile_accuracy", "verification_accuracy_10fold", "verification_tar_at_far_0.01",
            "verification_tar_at_far_0.001", "identification_rank1"]


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
    roc = m["scenes"]["roc_tpr_at_fp"]
    assert sorted(roc, key=int) == ["0", "1", "2", "5", "10", "20", "50"] and roc["50"] >= roc["0"]
    assert 0.5 < m["landmarks_pose"]["visibility"]["accuracy"] <= 1.0
    assert m["verification"]["probes"] == 40 * 3 and m["verification"]["gallery"] == 40
    assert (run / "model.keras").exists() and (run / "results.md").read_text().startswith("# All-in-One results")
    assert results["training_examples"]["aflw"] > 1000
    # The deployable graph runs the Python pipeline's two stages: the same scenes, close AP.
    graph = m["scenes_graph"]
    assert graph["faces"] == m["scenes"]["faces"] and abs(graph["ap"] - m["scenes"]["ap"]) < 0.1
    assert graph["stage2"]["aligned"] and graph["stage2"]["faces"] > 0
    _serves_whole_photos(run, tmp_path)


def _serves_whole_photos(run, tmp_path):
    """``FaceAnalyzer`` and ``facemt predict --draw`` on the trained run: every face of a
    rendered scene, with all seven tasks, in the photo's pixels."""
    import cv2
    import numpy as np

    from keras_facemt.data.synthetic import SynthFace
    from keras_facemt.inference.analyzer import FaceAnalyzer

    image, _ = SynthFace(seed=2, image_size=120).render_scene(0, max_faces=2, min_faces=2)  # faces 16 and 50 px
    photo = cv2.copyMakeBorder(image, 0, 0, 20, 20, cv2.BORDER_CONSTANT)  # 120 x 160: letterboxed
    faces = FaceAnalyzer(str(run / "model.keras"))([photo])[0]
    assert faces, "no face found in a two-face scene"
    for face in faces:
        assert face.landmarks.shape == (21, 2) and face.visibility.shape == (21,) and face.pose.shape == (3,)
        assert {"smile", "gender", "age"} <= set(face.attributes) and face.embedding.shape == (64,)
        assert 0 <= face.box[0] < face.box[2] <= 160 and 0 <= face.box[1] < face.box[3] <= 120
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), photo[..., ::-1])
    assert cli.main(["predict", "--model", str(run / "model.keras"), "--draw", str(tmp_path / "drawn"),
                     str(path)]) == 0
    assert list((tmp_path / "drawn").glob("*.png"))


def test_command_line_takes_the_shared_flags_and_eq6_steps(capsys, tmp_path):
    from keras_facemt.models.allinone import job
    from keras_facemt.training.train_command import find_system_of_experiment

    assert cli.main(["train", "allinone", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--experiment", "--model-dir", "--resume", "--cache-dir", "--preset", "--seed", "--steps"):
        assert flag in out, flag
    assert find_system_of_experiment("allinone_smoke").name == "allinone"
    assert job.parse_steps("300,100") == {"steps_euclidean": 300, "steps_gaussian": 100}
    assert cli.main(["train", "allinone", "--steps", "0,5", "--model-dir", str(tmp_path / "r")]) == 2
    assert "--steps" in capsys.readouterr().err
    assert cli.main(["train", "allinone", "--preset", "nosuch", "--model-dir", str(tmp_path / "r")]) == 2
    assert "nosuch" in capsys.readouterr().err
