"""The investigation switches of iFAN's interaction (reports/ifan_iterations.md).

``feedback_to="every_block"`` must give every dense block of the backbone the
integrator's feedback; ``iteration_bn=True`` must give each interaction iteration its
own BatchNorm statistics, selected by gathering (the model still exports).
"""

import dataclasses

import numpy as np
import pytest

from keras_facemt.errors import ConfigError
from keras_facemt.layers.dense_block import DenseBlock
from keras_facemt.layers.domain_batch_norm import DomainBatchNorm
from keras_facemt.models.ifan import model as ifan


def tiny(**overrides):
    return dataclasses.replace(ifan.PRESETS["tiny"](), **overrides)


def inputs(batch=3, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.random((batch, size, size, 3)).astype("float32"),
            "domain": (np.arange(batch) % 3).astype("int32")}


def backbone_of(model):
    return model.get_layer("backbone_fcdensenet")


def bns(layer):
    return [l for l in layer._flatten_layers(include_self=False, recursive=True) if isinstance(l, DomainBatchNorm)]


def test_config_rejects_unknown_feedback_target_and_non_bool_iteration_bn():
    with pytest.raises(ConfigError, match="feedback_to"):
        tiny(feedback_to="everywhere")
    with pytest.raises(ConfigError, match="iteration_bn"):
        tiny(iteration_bn=1)


def test_defaults_keep_the_model_unchanged():
    assert tiny().feedback_to == "first_conv" and tiny().iteration_bn is False
    # The pinned tiny ITER=2 parameter count (test_ifan_model) with the switches at their defaults.
    assert ifan.build_model(tiny(iterations=2, feedback_to="first_conv", iteration_bn=False)).count_params() == 33_448


@pytest.mark.parametrize("feedback_to", ["first_conv", "every_block"])
def test_feedback_reaches_the_configured_blocks(feedback_to):
    c = tiny(iterations=1, feedback_to=feedback_to)
    backbone = backbone_of(ifan.build_model(c))
    blocks = [l for l in backbone._flatten_layers(include_self=False, recursive=True) if isinstance(l, DenseBlock)]
    assert len(blocks) == 2 * c.num_levels
    readers = set()
    for block in blocks:
        first = block.convs[0].kernel.shape[2]
        plain = block.norms[0].gamma.shape[-1]
        assert first in (plain, plain + c.integrator_filters)
        if first == plain + c.integrator_filters:
            readers.add(block.name)
    down = {f"down_{l}" for l in range(c.num_levels)}
    if feedback_to == "first_conv":
        assert readers == down | {"up_0"}
    else:
        assert readers == down | {f"up_{j}" for j in range(c.num_levels)}


def test_iteration_bn_builds_statistics_per_iteration_and_dataset_and_shares_affine():
    c = tiny(iterations=2, iteration_bn=True)
    model = ifan.build_model(c)
    layers = bns(backbone_of(model))
    assert layers and all(l.num_domains == 3 * 3 and l.affine_domains == 3 for l in layers)
    assert all(l.moving_mean.shape[0] == 9 and l.gamma.shape[0] == 3 for l in layers)
    # Only the backbone runs once per iteration; the stem keeps per-dataset statistics.
    assert model.get_layer("backbone_stem").bn.num_domains == 3
    # gamma / beta are shared by the iterations: the trainable parameters are unchanged.
    def trainable(m):
        return sum(int(np.prod(v.shape)) for v in m.trainable_weights)

    assert trainable(model) == trainable(ifan.build_model(tiny(iterations=2)))


def test_iteration_bn_uses_each_iterations_own_statistics():
    model = ifan.build_model(tiny(iterations=2, iteration_bn=True))
    x = inputs()
    before = model(x, training=False)
    rng = np.random.default_rng(1)
    for layer in bns(backbone_of(model)):
        # Iteration 1's sets are ids 3..5 (iteration * num_domains + domain).
        mean = layer.moving_mean.numpy()
        mean[3:6] = rng.normal(0, 0.5, mean[3:6].shape)
        layer.moving_mean.assign(mean)
    after = model(x, training=False)
    for key in ("landmarks", "parsing_logits", "emotion_logits"):
        np.testing.assert_allclose(after[f"{key}/iter_0"], before[f"{key}/iter_0"], atol=1e-6)
        assert not np.allclose(after[f"{key}/iter_1"], before[f"{key}/iter_1"], atol=1e-4)


def test_iteration_bn_training_updates_every_iterations_statistics():
    model = ifan.build_model(tiny(iterations=2, iteration_bn=True))
    model(inputs(), training=True)
    layer = bns(backbone_of(model))[0]
    moved = np.abs(layer.moving_mean.numpy()).max(axis=1) > 0
    assert moved.all(), moved


def test_iteration_bn_frozen_domain_matches_that_domain(tmp_path):
    base = ifan.build_model(tiny(iterations=1, iteration_bn=True))
    rng = np.random.default_rng(2)
    for v in base.non_trainable_variables:
        if v.path.endswith("moving_mean"):
            v.assign(rng.normal(0, 0.5, v.shape).astype("float32"))
    frozen = ifan.build_model(tiny(iterations=1, iteration_bn=True, frozen_domain=2))
    frozen.set_weights(base.get_weights())
    x = inputs(batch=2)
    want = base({"image": x["image"], "domain": np.array([2, 2], "int32")}, training=False)
    got = frozen(x, training=False)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-5)


def test_switched_model_round_trips_and_converts_to_tflite(tmp_path):
    """Both switches on: .keras round trip and a float TFLite file equal to Keras (the gather exports)."""
    from keras_facemt.serving.keras_format import load_model, save_model
    from keras_facemt.serving.saved_model import export_saved_model
    from keras_facemt.serving.signatures import signature_output_name
    from keras_facemt.serving.tflite import TFLiteRunner, convert_tflite

    from keras_facemt.models.registry import get_system

    model = get_system("ifan").build(tiny(iterations=1, iteration_bn=True, feedback_to="every_block"))
    model(inputs(), training=True)  # moves the statistics off their initial values
    x = inputs()
    want = model(x, training=False)
    path = str(tmp_path / "m.keras")
    save_model(model, path)
    loaded = load_model(path)
    assert loaded.get_layer("backbone_fcdensenet").get_config()["iteration_bn_sets"] == 2
    got = loaded(x, training=False)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-5)
    export_dir = str(tmp_path / "sm" / "1")
    names = export_saved_model(model, export_dir, frozen_domain=1, signature_names=("serving_default",))
    runner = TFLiteRunner(convert_tflite(export_dir, "float32"))
    out = runner({"image": x["image"]})
    ref = model({"image": x["image"], "domain": np.full(3, 1, "int32")}, training=False)
    key = "landmarks"
    np.testing.assert_allclose(out[names.get(key, signature_output_name(key))], ref[key], atol=1e-4)
