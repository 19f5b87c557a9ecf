"""``--data STREAM=DIR``: converted datasets replace All-in-One's SynthFace streams.

Tiny layouts are converted by the real converters (``tests/fixtures_layouts.py``);
the streams read back must carry the records' own labels, in the frame the network
is trained in, and a dataset a stream cannot use is refused before training.
"""

import json

import keras
import numpy as np
import pytest

from keras_facemt import cli
from keras_facemt.data import batch as B
from keras_facemt.errors import DataError
from keras_facemt.models.allinone import real_data
from keras_facemt.models.allinone.data import stream_batches
from tests.fixtures_layouts import make_adience, make_aflw, make_celeba, make_identity_folders, make_morph
from tfrecords_tools.common import run_conversion
from tfrecords_tools.convert_adience import AdienceConverter
from tfrecords_tools.convert_aflw import AflwConverter
from tfrecords_tools.convert_celeba import CelebAConverter
from tfrecords_tools.convert_identity_folders import IdentityFoldersConverter
from tfrecords_tools.convert_morph import MorphConverter


def _convert(make, converter, tmp_path, name, **kwargs):
    lay = make(str(tmp_path / f"{name}_src"))
    lay.kwargs.update(kwargs)
    out = str(tmp_path / name)
    run_conversion(converter(**lay.kwargs), out, verify_records=0)
    return lay, out


def test_aflw_stream_cuts_proposals_with_the_records_points_and_pose(tmp_path):
    lay, out = _convert(make_aflw, AflwConverter, tmp_path, "aflw", val_fraction=0.0, test_fraction=0.0)
    s = real_data.load_scene_stream(out, scene_size=128, input_size=32, seed=0, jittered_per_face=3,
                                    random_per_scene=2)
    expected = [lay.expected[k] for k in sorted(lay.expected)]
    boxes = np.concatenate([np.asarray(e["bboxes"], float) for e in expected])
    assert len(s["face_box"]) == len(boxes) == 5
    # 64 x 64 images on a 128 scene: every coordinate doubles.
    order = np.lexsort((s["face_box"][:, 1], s["face_box"][:, 0]))
    want = np.lexsort((boxes[:, 1], boxes[:, 0]))
    np.testing.assert_allclose(s["face_box"][order], 2 * boxes[want], atol=0.2)
    pts = np.concatenate([np.asarray(e["landmarks"], float) for e in expected])[want]
    vis = np.concatenate([np.asarray(e["visible"], float) for e in expected])[want]
    np.testing.assert_array_equal(s["face_visible"][order], vis)
    np.testing.assert_allclose((s["face_points"][order] * vis[..., None]), 2 * pts * vis[..., None], atol=0.2)
    pose = np.concatenate([np.asarray(e["pose"], float) for e in expected])[want]
    np.testing.assert_allclose(s["face_pose"][order], pose, atol=1e-3)
    regress = s[B.HAS_LANDMARKS] > 0
    assert regress.any() and (s["detection"][s["has_detection"] > 0] == 0).any()
    assert s["image"].shape[1:] == (32, 32, 3) and np.all(s[B.HAS_POSE] == s[B.HAS_LANDMARKS])


def test_crop_streams_keep_each_faces_labels_and_presence(tmp_path):
    lay, celeba = _convert(make_celeba, CelebAConverter, tmp_path, "celeba")
    s = real_data.load_crop_stream("celeba", celeba, render_size=48, input_size=32, seed=0, aligned=True)
    train = {k: v for k, v in lay.expected.items() if v["split"] == "train"}
    assert sorted(s["smile"].tolist()) == sorted(v["attributes"]["smile"][0] for v in train.values())
    assert s["image"].shape == (len(train), 32, 32, 3) and s["image"].std() > 5
    assert np.all(s["has_smile"] == 1) and np.all(s["has_age"] == 0)
    batch = stream_batches("celeba", s)
    assert batch[B.has_attr("gender")].tolist() == s["has_gender"].tolist()

    lay, morph = _convert(make_morph, MorphConverter, tmp_path, "morph", test_fraction=0.0)
    m = real_data.load_crop_stream("morph", morph, 48, 32, 0, aligned=True)
    assert sorted(m["age"].tolist()) == sorted(v["attributes"]["age"][0] for v in lay.expected.values())

    _, folders = _convert(make_identity_folders, IdentityFoldersConverter, tmp_path, "casia")
    c = real_data.load_crop_stream("casia", folders, 48, 32, 0, aligned=True)
    assert sorted(c["identity"].tolist()) == [0, 0, 1, 1, 2, 2]
    assert real_data.identities_in(c, folders) == 3
    assert stream_batches("casia", c)[B.HAS_IDENTITY].min() == 1


def test_age_groups_are_refused_not_mapped_to_invented_years(tmp_path):
    _, adience = _convert(make_adience, AdienceConverter, tmp_path, "adience")
    with pytest.raises(DataError, match="age groups only"):
        real_data.check_labels("imdb_wiki", adience)
    _, celeba = _convert(make_celeba, CelebAConverter, tmp_path, "celeba")
    with pytest.raises(DataError, match="'age'"):
        real_data.check_labels("morph", celeba)


@pytest.mark.timeout(300)
def test_train_reads_converted_streams_end_to_end(tmp_path, capsys):
    _, aflw = _convert(make_aflw, AflwConverter, tmp_path, "aflw", val_fraction=0.0, test_fraction=0.0)
    lay, morph = _convert(make_morph, MorphConverter, tmp_path, "morph", test_fraction=0.0)
    _, adience = _convert(make_adience, AdienceConverter, tmp_path, "adience")
    base = ["train", "allinone", "--experiment", "allinone_micro", "--cache-dir", str(tmp_path / "cache")]
    assert cli.main(base + ["--data", f"morph={adience}", "--model-dir", str(tmp_path / "bad")]) == 2
    assert "age groups only" in capsys.readouterr().err
    run = tmp_path / "run"
    assert cli.main(base + ["--data", f"aflw={aflw}", "--data", f"morph={morph}", "--model-dir", str(run)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["training_sources"] == {"aflw": aflw, "celeba": "synthface", "imdb_wiki": "synthface",
                                           "morph": morph, "casia": "synthface"}
    assert results["training_examples"]["morph"] == len(lay.expected)
    run_config = json.loads((run / "run_config.json").read_text())
    assert run_config["datasets"]["morph"] == morph
    # Two converted directories next to SynthFace: three BN domains, named for --domain.
    assert results["config"]["bn_domains"] == 3
    assert run_config["domains"]["synthface"] == 0 and {run_config["domains"][s] for s in ("aflw", "morph")} == {1, 2}


def test_converted_streams_get_their_own_bn_domains(tmp_path):
    from keras_facemt.models.allinone import job
    from keras_facemt.models.allinone.experiments import get_experiment
    from keras_facemt.models.allinone.predict import predict
    from keras_facemt.models.registry import get_system

    _, morph = _convert(make_morph, MorphConverter, tmp_path, "morph", test_fraction=0.0)
    d = job.bn_domains({"morph": morph, "imdb_wiki": morph})
    assert d["streams"] == {"morph": 1, "imdb_wiki": 1} and d["names"]["synthface"] == 0
    assert d["names"]["morph"] == 1
    cfg = job.model_config(get_experiment("allinone_micro", model_overrides=(("bn_domains", 3),)))
    keras.utils.set_random_seed(0)  # the same untrained weights in every run
    model = get_system("allinone").build(cfg, "tiny")
    assert set(model.input) == {"image", "domain"}
    images = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3)).astype(np.uint8)
    a, b = predict(model, images, domain=0), predict(model, images, domain=2)
    np.testing.assert_allclose(a["age"], b["age"], atol=1e-5)  # fresh statistics are equal...
    bn = next(layer for layer in model.layers if layer.name == "conv1_bn")
    shift = np.zeros(tuple(bn.moving_mean.shape), np.float32)
    shift[2] = 1.0
    bn.moving_mean.assign(bn.moving_mean + shift)  # ...until domain 2's statistics move
    assert np.abs(predict(model, images, domain=2)["age"] - a["age"]).max() > 1e-4
    np.testing.assert_allclose(predict(model, images, domain=0)["age"], a["age"], atol=1e-5)
    # The deployable graph routes the caller's domain to every crop of both stages.
    head = model.get_layer("detection_logits")
    head.set_weights([head.get_weights()[0], head.get_weights()[1] + np.array([0.0, 3.0], np.float32)])
    served = get_system("allinone").serving_model(model, cfg, "tiny", {"synthface": 0, "morph": 1, "aflw": 2})
    assert set(served.input) == {"image", "domain"}
    scenes = np.random.default_rng(1).random((1, cfg.scene_size, cfg.scene_size, 3)).astype("float32")
    out = {d: served({"image": scenes, "domain": np.full(1, d, "int32")}) for d in (0, 2)}
    assert int(out[0]["num_detections"][0]) > 0
    n = min(int(out[0]["num_detections"][0]), int(out[2]["num_detections"][0]))
    assert np.abs(np.asarray(out[2]["age"])[0, :n] - np.asarray(out[0]["age"])[0, :n]).max() > 1e-4
