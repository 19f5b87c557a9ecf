"""All-in-One network (models/allinone): shapes, pinned sizes and saving (the deployable graph: test_allinone_scene_graph)."""

import dataclasses

import keras
import numpy as np
import pytest

from keras_facemt.errors import ConfigError
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


def test_saving_round_trip(tiny, tmp_path):
    _, model = tiny
    x = np.random.default_rng(2).random((2, 32, 32, 3)).astype(np.float32)
    run_model_saving_test(model, {"image": x}, tmp_path)
