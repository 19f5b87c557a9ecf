"""``facemt predict --detector D --analyzer A ...`` and ``facemt compare``."""

import dataclasses
import json
import os

import cv2
import keras
import numpy as np
import pytest

from keras_facemt.cli import main
from keras_facemt.data.synthetic import SynthFace
from keras_facemt.models import registry
from keras_facemt.serving.keras_format import save_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline_cli")
    keras.utils.set_random_seed(3)
    uniface = registry.get_system("uniface")
    cfg = dataclasses.replace(uniface.config("tiny"), score_threshold=0.2, max_detections=6)
    paths = {"detector": save_model(uniface.serving_model(uniface.build(cfg, "tiny"), cfg, "tiny"),
                                    str(root / "uniface.keras")),
             "ifan": save_model(registry.build_model("ifan", "tiny"), str(root / "ifan.keras"))}
    run = root / "mtfr_run"
    run.mkdir()
    paths["mtfr"] = save_model(registry.build_model("mtfr", "tiny"), str(run / "model.keras"))
    # A finished run records the threshold chosen on its held-out pairs.
    (run / "results.json").write_text(json.dumps({"metrics": {"threshold": 0.5}}))
    for i in range(2):
        photo = SynthFace(seed=2, image_size=200).render_scene(i, max_faces=4, min_faces=2)[0]
        paths[f"photo{i}"] = str(root / f"photo{i}.png")
        cv2.imwrite(paths[f"photo{i}"], cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    return paths


def test_predict_pipeline_writes_one_record_per_face_and_drawings(models, tmp_path):
    out, draw = str(tmp_path / "faces.json"), str(tmp_path / "draw")
    argv = ["predict", "--detector", models["detector"], "--analyzer", models["ifan"], "--analyzer", models["mtfr"],
            "--max-faces", "4", "--out", out, "--draw", draw, models["photo0"], models["photo1"]]
    assert main(argv) == 0
    report = json.load(open(out))
    assert [r["image"] for r in report["images"]] == [models["photo0"], models["photo1"]]
    # The untrained detector finds its maximum (6); 4 are analysed, 2 reported per image.
    assert [(r["faces"], r["dropped_faces"]) for r in report["images"]] == [(4, 2), (4, 2)]
    assert len(report["faces"]) == 8
    face = report["faces"][0]
    assert face["image"] == models["photo0"] and face["face"] == 0
    for key in ("box", "score", "landmarks", "parsing_pixels", "embedding", "attributes", "sources"):
        assert key in face, key
    assert face["attributes"]["emotion"]["label"] and "celeba/Male" in face["attributes"]
    assert face["sources"]["embedding"] == "mtfr" and face["sources"]["parsing"] == "ifan"
    drawing = cv2.imread(os.path.join(draw, "photo0.png"))
    assert drawing is not None and drawing.shape[:2] == (256, 256)  # small photos are enlarged for legibility
    # The drawing differs from the photo where faces are (boxes, points, overlay).
    photo = cv2.resize(cv2.imread(models["photo0"]), (256, 256))
    assert np.abs(drawing.astype(int) - photo).mean() > 1.0


def test_predict_with_one_model_still_writes_one_record_per_image(models, tmp_path):
    out = str(tmp_path / "one.json")
    assert main(["predict", "--model", models["ifan"], "--out", out, models["photo0"]]) == 0
    report = json.load(open(out))
    assert len(report) == 1 and len(report[0]["faces"]) == 1


def test_compare_prints_cosine_and_verdict_at_the_recorded_threshold(models, capsys):
    assert main(["compare", models["photo0"], models["photo0"], "--model", models["mtfr"],
                 "--detector", models["detector"]]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("cosine 1.0000  same") and "threshold 0.5000" in line
    assert main(["compare", models["photo0"], models["photo1"], "--model", os.path.dirname(models["mtfr"]),
                 "--detector", models["detector"], "--threshold", "0.99999"]) == 0
    line = capsys.readouterr().out.strip()
    cosine = float(line.split()[1])
    assert cosine < 0.99999 and "different" in line and "threshold 1.0000" in line
