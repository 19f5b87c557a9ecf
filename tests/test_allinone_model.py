"""All-in-One network (models/allinone): shapes, pinned sizes, saving and per-crop export."""

import dataclasses

import keras
import numpy as np
import pytest

from keras_facemt.errors import ConfigError
from keras_facemt.models import registry
from keras_facemt.models.allinone import model as aio
from keras_facemt.models.allinone.config import PRESETS, AllInOneConfig, feature_sizes, fusion_window
from tests.helpers import run_model_saving_test

PAPER_PARAMS = 74_296_413


@pytest.fixture(scope="module")
def tiny():
    cfg = PRESETS["tiny"]()
    return cfg, aio.build_model(cfg)


def test_tiny_outputs_and_shapes(tiny):
    cfg, model = tiny
    x = np.random.default_rng(0).random((3, 32, 32, 3)).astype(np.float32)
    out = model({"image": x}, training=False)
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    assert shapes == {"detection_logits": (3, 2), "landmarks": (3, 21, 2), "visibility": (3, 21), "pose": (3, 3),
                      "smile_logits": (3, 2), "gender_logits": (3, 2), "age": (3, 1), "embedding": (3, 64),
                      "identity_logits": (3, cfg.num_identities)}
    # The age head reads years: age_offset + age_scale * raw.
    raw = model.get_layer("age_out").output
    probe = keras.Model(model.input, raw)({"image": x}, training=False)
    np.testing.assert_allclose(np.asarray(out["age"]), cfg.age_offset + cfg.age_scale * np.asarray(probe), rtol=1e-5)


def test_fusion_maps_reach_the_common_size():
    # HyperFace's windows on the paper reading: 27x27 -> 4x4/4, 13x13 -> 2x2/2, both to 6x6.
    assert fusion_window(27, 6) == (4, 4) and fusion_window(13, 6) == (2, 2)
    assert fusion_window(8, 6) == (3, 1) and fusion_window(16, 6) == (6, 2)
    for preset in ("paper", "small", "tiny"):
        cfg = PRESETS[preset]()
        model = aio.build_model(cfg)
        for name in ("fuse1_prelu", "fuse3_prelu", "fuse5_pool"):
            assert tuple(model.get_layer(name).output.shape[1:3]) == (cfg.fused_size,) * 2, (preset, name)
        assert model.get_layer("fuse_reduce_prelu").output.shape[-1] == cfg.reduced_channels
    assert feature_sizes(PRESETS["paper"]()) == {1: 27, 2: 13, 3: 13, 4: 13, 5: 13, 6: 13, 7: 13}


def _paper_params_by_hand():
    """The paper preset's size from the layer list in config.py (no BN; every PReLU per channel)."""
    def conv(k, cin, cout):
        return k * k * cin * cout + cout + cout  # kernel, bias, PReLU

    def fc(cin, cout, prelu=True):
        return cin * cout + cout + (cout if prelu else 0)

    backbone = (conv(11, 3, 96) + conv(5, 96, 256) + conv(3, 256, 384) + conv(3, 384, 384) + conv(3, 384, 256)
                + conv(3, 256, 256))
    fusion = conv(4, 96, 256) + conv(2, 384, 256) + conv(1, 768, 256) + fc(6 * 6 * 256, 2048)
    independent = 4 * fc(2048, 512) + sum(fc(512, n, False) for n in (2, 42, 21, 3, 2))
    dependent = 2 * (fc(6 * 6 * 256, 1024) + fc(1024, 512)) + fc(512, 2, False) + fc(512, 1, False)
    identity = conv(3, 256, 256) + fc(6 * 6 * 256, 2048) + fc(2048, 512, False) + 512 + fc(512, 10548, False)
    return backbone + fusion + independent + dependent + identity


def test_paper_preset_parameter_count_is_pinned_and_matches_the_hand_formula():
    model = aio.build_model(PRESETS["paper"]())
    assert model.count_params() == PAPER_PARAMS == _paper_params_by_hand()
    assert tuple(model.input["image"].shape[1:]) == (227, 227, 3)
    assert model.output["embedding"].shape[-1] == 512 and model.output["identity_logits"].shape[-1] == 10548
    assert model.get_layer("shared_fc").units == 2048 and model.get_layer("smile_fc").units == 512


def test_small_and_tiny_parameter_counts():
    assert aio.build_model(PRESETS["small"]()).count_params() == 1_403_357
    assert aio.build_model(PRESETS["tiny"]()).count_params() == 265_149


def test_bad_configs_are_refused():
    with pytest.raises(ConfigError, match="7 conv"):
        AllInOneConfig(convs=((8, 3, 1, "same", True),) * 6)
    with pytest.raises(ConfigError, match="fused_size"):
        AllInOneConfig(fused_size=40)
    with pytest.raises(ConfigError, match="padding|same"):
        AllInOneConfig(convs=((8, 3, 1, "full", True),) * 7)
    with pytest.raises(ConfigError, match="dropout"):
        dataclasses.replace(PRESETS["tiny"](), dropout=1.5)


def test_registry_builds_and_serves_without_the_identity_classifier(tiny):
    cfg, model = tiny
    system = registry.get_system("allinone")
    assert system.job == "keras_facemt.models.allinone.job"
    served = system.serving_model(model, cfg)
    spec = system.serving_spec(cfg)
    assert set(served.output) == set(spec.outputs)
    assert "identity_logits" not in served.output and "visibility" not in served.output
    assert spec.outputs["landmarks"].scheme == "aflw21" and spec.outputs["age"].unit == "years"
    assert spec.outputs["gender_logits"].names == ("female", "male")
    x = np.random.default_rng(1).random((2, 32, 32, 3)).astype(np.float32)
    a, b = model({"image": x}, training=False), served({"image": x}, training=False)
    for k in served.output:
        np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]), atol=1e-6)


def test_saving_round_trip(tiny, tmp_path):
    _, model = tiny
    x = np.random.default_rng(2).random((2, 32, 32, 3)).astype(np.float32)
    run_model_saving_test(model, {"image": x}, tmp_path)


@pytest.mark.timeout(600)
def test_per_crop_graph_exports_to_tflite_and_onnx_and_matches_keras(tiny, tmp_path):
    from tests.helpers import run_export_test

    cfg, model = tiny
    served = registry.get_system("allinone").serving_model(model, cfg)
    rng = np.random.default_rng(3)
    batch = {"image": rng.random((8, 32, 32, 3)).astype(np.float32), "domain": np.zeros(8, np.int32)}
    manifest = run_export_test(served, [batch], tmp_path, formats=("keras", "tflite", "onnx"),
                               quantizations=("float32",), max_examples=8)
    formats = {c["artifact"].rsplit(".", 1)[-1] for c in manifest["verification"]["checks"]}
    assert {"tflite", "onnx", "keras"} <= formats, formats


def test_face_analyzer_reads_every_declared_output_of_a_crop(tiny, tmp_path):
    from keras_facemt.inference.analyzer import FaceAnalyzer
    from keras_facemt.serving.keras_format import save_model

    cfg, model = tiny
    system = registry.get_system("allinone")
    path = save_model(model, str(tmp_path / "model.keras"), info=system.model_info(cfg, "tiny"))
    image = (np.random.default_rng(4).random((50, 40, 3)) * 255).astype(np.uint8)
    face = FaceAnalyzer(path)([image])[0][0]
    assert np.asarray(face.landmarks).shape == (21, 2) and np.asarray(face.pose).shape == (3,)
    assert np.asarray(face.embedding).shape == (64,)
    assert np.isclose(np.linalg.norm(face.embedding), 1.0, atol=1e-5)
    assert {"smile", "gender", "age", "detection_logits"} <= set(face.attributes)
    assert np.isclose(float(np.sum(face.attributes["gender"])), 1.0, atol=1e-5)
