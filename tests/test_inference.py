import json

import cv2
import numpy as np
import pytest

from keras_facemt.cli import main
from keras_facemt.errors import ConfigError, DataError
from keras_facemt.inference.analyzer import FaceAnalyzer
from keras_facemt.data.letterbox import resize_image, to_rgb_float
from keras_facemt.models.registry import build_model
from keras_facemt.serving.keras_format import save_model


@pytest.fixture(scope="module")
def tiny_ifan():
    return build_model("ifan", "tiny")


def test_letterbox_maps_points_back_to_original_pixels():
    img = np.full((50, 100, 3), 255, np.uint8)
    out, lb = resize_image(img, (64, 64), keep_aspect=True)
    # Top-left placement, as the training pipeline letterboxes scenes: the 100x50
    # image becomes 64x32 content over rows 0..31, zero padding below.
    assert (lb.pad_x, lb.pad_y) == (0, 0)
    assert out[:32].min() > 0.9999 and out[32:].max() == 0.0
    pts = np.array([[0.0, 0.0], [1.0, 32 / 64], [0.5, 0.25]])
    np.testing.assert_allclose(lb.points_to_pixels(pts), [[0, 0], [100, 50], [50, 25]], atol=1e-4)


def test_any_channel_layout_is_accepted():
    assert to_rgb_float(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    assert to_rgb_float(np.zeros((5, 6, 4), np.float32)).shape == (5, 6, 3)
    with pytest.raises(ConfigError, match=r"Received: shape=\(5, 6, 2\)"):
        to_rgb_float(np.zeros((5, 6, 2)))


def test_batch_first_results_in_original_coordinates(tiny_ifan):
    analyzer = FaceAnalyzer(tiny_ifan, domain=1, batch_size=2)
    images = [np.full((50, 70, 3), 128, np.uint8), np.zeros((20, 20), np.uint8), np.random.rand(40, 30, 4)]
    results = analyzer(images)
    assert len(results) == 3 and all(len(r) == 1 for r in results)
    for (h, w), faces in zip([(50, 70), (20, 20), (40, 30)], results):
        f = faces[0]
        np.testing.assert_array_equal(f.box, [0, 0, w, h])
        assert f.parsing.shape == (h, w) and f.parsing.max() < 11
        assert f.landmarks.shape == (5, 2)
        probs = f.attributes["emotion"]
        assert probs.shape == (7,) and abs(float(probs.sum()) - 1) < 1e-5
        assert f.label("emotion") in ("happy", "surprised", "disgusted", "puzzled", "concentrated", "tired", "distracted")
    # Batch results equal one-by-one results (batching must not mix images).
    single = analyzer([images[1]])[0][0]
    np.testing.assert_allclose(single.landmarks, results[1][0].landmarks, atol=1e-4)


def test_single_image_array_is_rejected(tiny_ifan):
    with pytest.raises(ConfigError, match="batch-first"):
        FaceAnalyzer(tiny_ifan)(np.zeros((32, 32, 3), np.uint8))


def test_predict_command_writes_json_and_drawings(tiny_ifan, tmp_path):
    model_path = save_model(tiny_ifan, str(tmp_path / "m.keras"))
    img_path = str(tmp_path / "face.png")
    cv2.imwrite(img_path, np.random.default_rng(0).integers(0, 255, (48, 40, 3), dtype=np.uint8))
    out = str(tmp_path / "pred.json")
    assert main(["predict", "--model", model_path, "--out", out, "--draw", str(tmp_path / "draw"), img_path]) == 0
    report = json.load(open(out))
    face = report[0]["faces"][0]
    assert report[0]["image"] == img_path and len(face["landmarks"]) == 5
    assert face["attributes"]["emotion"]["label"]
    assert (tmp_path / "draw" / "face.png").exists()


def test_predict_command_bad_image(tiny_ifan, tmp_path, capsys):
    model_path = save_model(tiny_ifan, str(tmp_path / "m.keras"))
    bad = tmp_path / "notimage.jpg"
    bad.write_bytes(b"plain text, not an image")
    assert main(["predict", "--model", model_path, str(bad)]) == 2
    assert "notimage.jpg: not a decodable image" in capsys.readouterr().err
    with pytest.raises(DataError, match="does not exist"):
        from keras_facemt.inference.predict_command import read_images

        read_images([str(tmp_path / "missing.png")])


def test_a_model_that_does_not_say_what_it_is_is_refused(tiny_ifan, tmp_path):
    """Nothing guesses a model's outputs from key names: a plain Keras save (no
    declaration, no run beside it) is refused with a message saying what to do."""
    import keras

    plain = keras.Model(tiny_ifan.input, tiny_ifan.output)
    with pytest.raises(ConfigError, match="does not say which keras-facemt system"):
        FaceAnalyzer(plain)
    path = str(tmp_path / "plain.keras")
    tiny_ifan.save(path)
    from keras_facemt.errors import CheckpointError

    with pytest.raises(CheckpointError, match="keras_facemt.save_model"):
        FaceAnalyzer(path)


def test_domain_by_training_dataset_name(tiny_ifan, tmp_path):
    from keras_facemt.models.model_info import attach, info_of

    named = attach(tiny_ifan, info_of(tiny_ifan).replace(domains={"synth_studio": 0, "synth_webcam": 1}))
    assert FaceAnalyzer(named, domain="synth_webcam").domain == 1
    with pytest.raises(ConfigError, match="synth_webcam"):
        FaceAnalyzer(named, domain="helen")
