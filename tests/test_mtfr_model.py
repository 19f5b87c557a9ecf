"""MTFR model: presets, shapes, parameter counts (one derived by hand), switches, layers."""

import dataclasses

import keras
import numpy as np
import pytest

from keras_facemt.errors import ConfigError
from keras_facemt.layers.conv_bn_act import ConvBnAct
from keras_facemt.models import registry
from keras_facemt.models.mtfr import model as mtfr
from keras_facemt.models.mtfr.blocks import MTFRBlock
from keras_facemt.models.mtfr.config import ATTRIBUTE_GROUPS, ATTRIBUTES
from tests.helpers import run_layer_test, run_model_saving_test

TINY = mtfr.PRESETS["tiny"]()
TINY_PARAMS = 45531
PAPER_PARAMS = 69506390


def _conv(k, cin, cout):
    """Conv (no bias) + BN (gamma, beta, moving mean, variance) + per-channel PReLU."""
    return k * k * cin * cout + 4 * cout + cout


def _fc(cin, cout):
    return cin * cout + 4 * cout + cout


def paper_parameters_by_hand(num_identities=10575, attributes=7):
    """Sec. 3.3 with Full blocks (3 convs of 3x3): the reading documented in model.py."""
    n = _conv(3, 3, 32) + _conv(3, 32, 64)
    n += 3 * 3 * _conv(3, 64, 64)
    n += _conv(3, 64, 128) + 4 * 3 * _conv(3, 128, 128)
    n += _conv(3, 128, 256) + 6 * 3 * _conv(3, 256, 256)
    n += _conv(3, 256, 512) + 3 * 3 * _conv(3, 512, 512)
    n += _fc(7 * 6 * 512, 1024)  # f: 112x96 after 4 poolings is 7x6
    n += 1024 * num_identities + num_identities  # W_p
    n += _fc(1024, 1024) + 1024 * attributes + attributes  # g, W_a
    return n


def _image(cfg, batch=2, seed=0):
    h, w = cfg.image_size
    return {"image": np.random.default_rng(seed).uniform(0, 1, (batch, h, w, 3)).astype("float32")}


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    return mtfr.build_model(TINY)


def test_tiny_shapes_and_parameter_count(tiny_model):
    out = tiny_model(_image(TINY))
    assert out["embedding"].shape == (2, 32)
    assert out["identity_logits"].shape == (2, 20)
    assert out["attributes"].shape == (2, 7)
    assert tiny_model.count_params() == TINY_PARAMS
    assert registry.get_system("mtfr").config("tiny") == TINY


def test_paper_preset_parameter_count_matches_the_hand_formula():
    cfg = mtfr.PRESETS["paper"]()
    assert cfg.image_size == (112, 96) and cfg.feature_dim == 1024 and cfg.num_identities == 10575
    m = mtfr.build_model(cfg)
    assert m.get_layer("flatten").output.shape[-1] == 7 * 6 * 512
    assert m.count_params() == PAPER_PARAMS == paper_parameters_by_hand()
    # W_p and f dominate (spec: the FCs are most of the model).
    assert m.get_layer("identity_logits").kernel.shape == (1024, 10575)


def test_blocks_and_head_configs_change_the_architecture():
    base = dataclasses.replace(TINY, block="fast")
    counts = {b: mtfr.build_model(dataclasses.replace(base, block=b)).count_params() for b in ("fast", "full", "variant")}
    # Full adds one 3x3 conv per block; Variant adds one 1x1 conv on the bypass.
    per_fast = sum(_conv(3, f, f) for f in TINY.group_filters)
    assert counts["full"] - counts["fast"] == per_fast
    assert counts["variant"] - counts["fast"] == sum(_conv(1, f, f) for f in TINY.group_filters)
    c1 = counts["fast"]
    c2 = mtfr.build_model(dataclasses.replace(base, head_config=2)).count_params()
    c3 = mtfr.build_model(dataclasses.replace(base, head_config=3)).count_params()
    d, a, m = TINY.feature_dim, TINY.attribute_dim, len(ATTRIBUTES)
    assert c1 - c2 == _fc(d, a) + a * m - d * m  # Config-2 has no g
    assert c3 - c2 == m * (_fc(d, a) + a + 1) - (d * m + m)  # Config-3: one FC per attribute


@pytest.mark.parametrize("group", sorted(ATTRIBUTE_GROUPS))
def test_attribute_groups_select_the_outputs(group):
    cfg = dataclasses.replace(TINY, attribute_group=group)
    out = mtfr.build_model(cfg)(_image(cfg))
    if group == "none":
        assert "attributes" not in out
    else:
        assert out["attributes"].shape == (2, len(ATTRIBUTE_GROUPS[group]))
        assert cfg.attributes == tuple(a for a in ATTRIBUTES if a in ATTRIBUTE_GROUPS[group])


def test_bad_configs_are_refused():
    for bad in (dict(block="wide"), dict(head_config=4), dict(attribute_group="mouth"), dict(dropout=1.0),
                dict(group_blocks=(1, 1)), dict(image_size=(12, 24))):
        with pytest.raises(ConfigError):
            dataclasses.replace(TINY, **bad)


def test_serving_graph_outputs_unit_embedding_and_attribute_scores(tiny_model):
    serving = registry.get_system("mtfr").serving_model(tiny_model, TINY)
    assert set(serving.output) == {"embedding", "attributes"}
    out = serving(_image(TINY, batch=3))
    np.testing.assert_allclose(np.linalg.norm(out["embedding"], axis=-1), 1.0, atol=1e-5)
    a = np.asarray(out["attributes"])
    assert a.shape == (3, 7) and a.min() >= 0.0 and a.max() <= 1.0


def test_saving_round_trip(tiny_model, tmp_path):
    run_model_saving_test(tiny_model, _image(TINY), tmp_path)


@pytest.mark.parametrize("kind,weights", [("fast", 2 * 4), ("full", 3 * 4), ("variant", 3 * 4)])
def test_block_layer(kind, weights):
    x = np.random.default_rng(0).normal(size=(2, 6, 5, 8)).astype("float32")
    # Each ConvBnAct: kernel, gamma, beta, PReLU alpha trainable.
    run_layer_test(MTFRBlock, {"filters": 8, "kind": kind}, x, (2, 6, 5, 8), expected_num_trainable_weights=weights)
    with pytest.raises(ConfigError):
        MTFRBlock(8, kind="bottleneck")


def test_conv_bn_prelu_layer():
    x = np.random.default_rng(0).normal(size=(2, 6, 5, 3)).astype("float32")
    layer = ConvBnAct(4, 3, activation="prelu")
    run_layer_test(ConvBnAct, {"filters": 4, "kernel_size": 3, "activation": "prelu"}, x, (2, 6, 5, 4),
                   expected_num_trainable_weights=4)
    layer(x)
    assert layer.act.alpha.shape == (1, 1, 4)  # one slope per channel (He et al. 2015)
