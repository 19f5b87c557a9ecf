import dataclasses
import fnmatch

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.layers.domain_batch_norm import DomainBatchNorm
from keras_facemt.models import registry
from keras_facemt.models.ifan import model as ifan
from keras_facemt.models.ifan.backbone import FCDenseNetBackbone
from keras_facemt.models.ifan.config import IFANConfig
from keras_facemt.models.ifan.decoders import AttributeDecoder, LandmarkDecoder, ParsingDecoder
from keras_facemt.models.ifan.integrator import TaskIntegrator
from keras_facemt.models.ifan.reencoders import AttributeReencoder, LandmarkReencoder, ParsingReencoder
from keras_facemt.ops.heatmaps import render_landmark_heatmaps
from tests.helpers import run_layer_test, run_model_saving_test

TASKS3 = ("parsing", "landmarks", "emotion")


def tiny(**overrides):
    return dataclasses.replace(ifan.PRESETS["tiny"](), **overrides)


def inputs(batch=2, size=32, domains=None, seed=0):
    rng = np.random.default_rng(seed)
    domain = np.arange(batch) % 3 if domains is None else np.asarray(domains)
    return {"image": rng.random((batch, size, size, 3)).astype("float32"), "domain": domain.astype("int32")}


def randomise_bn_statistics(model, seed=0):
    rng = np.random.default_rng(seed)
    for v in model.non_trainable_variables:
        if v.path.endswith("moving_mean"):
            v.assign(rng.normal(0, 0.5, v.shape).astype("float32"))
        elif v.path.endswith("moving_variance"):
            v.assign(rng.uniform(0.5, 2.0, v.shape).astype("float32"))


# --- Config ---------------------------------------------------------------------------


def test_paper_preset_has_the_paper_sizes():
    c = ifan.PRESETS["paper"]()
    assert (c.image_size, c.num_levels, c.layers_per_block, c.growth_rate) == (128, 5, 3, 12)
    assert (c.stem_kernel, c.heatmap_radius, c.num_landmarks, c.num_parsing_classes) == (7, 5.0, 5, 11)
    assert c.tasks == TASKS3 and c.iterations == 2 and not c.shared_bn and c.reencoders
    # The radius scales with the input size, also under an image_size override.
    assert ifan.PRESETS["small"]().heatmap_radius_px == 2.5
    assert dataclasses.replace(ifan.PRESETS["tiny"](), image_size=64).heatmap_radius_px == 2.5
    assert ifan.build_model(tiny()).get_layer("reencoder_landmarks_pyramid").radius == 1.25
    assert ifan.CONFIG_CLASS is IFANConfig


@pytest.mark.parametrize("kwargs, field", [
    ({"tasks": ("landmarks", "wings")}, "tasks"),
    ({"tasks": ("detection",)}, "tasks"),
    ({"tasks": ("age",)}, "tasks"),  # regression attribute
    ({"tasks": ()}, "tasks"),
    ({"tasks": ("parsing", "parsing")}, "tasks"),
    ({"iterations": -1}, "iterations"),
    ({"iterations": 1.5}, "iterations"),
    ({"image_size": 100}, "image_size"),
    ({"num_levels": 0}, "num_levels"),
    ({"num_domains": 0}, "num_domains"),
    ({"growth_rate": 0}, "growth_rate"),
    ({"stem_kernel": 4}, "stem_kernel"),
    ({"heatmap_radius": 0}, "heatmap_radius"),
    ({"dropout": 1.0}, "dropout"),
    ({"frozen_domain": 3}, "frozen_domain"),
    ({"shared_bn": True, "frozen_domain": 1}, "frozen_domain"),
    ({"shared_bn": "yes"}, "shared_bn"),
])
def test_config_rejects_bad_values(kwargs, field):
    with pytest.raises(ConfigError, match=rf"Received: {field}=") as info:
        IFANConfig(**kwargs)
    assert str(info.value).split("Received: ")[-1].startswith(field)


def test_config_accepts_task_lists_and_any_class_attribute():
    c = IFANConfig(tasks=["landmarks", "gender", "celeba/Smiling"])
    assert c.tasks == ("landmarks", "gender", "celeba/Smiling")
    assert c.attribute_tasks == ("gender", "celeba/Smiling")
    assert c.num_classes("gender") == 2 and c.num_classes("emotion") == 7
    assert IFANConfig(shared_bn=True).bn_domains == 1


def test_build_model_requires_a_config():
    with pytest.raises(ConfigError, match="IFANConfig"):
        ifan.build_model({"image_size": 32})


def test_registry_builds_presets_with_overrides():
    model = registry.build_model("ifan", preset="tiny", iterations=0, tasks=("landmarks",))
    assert sorted(model.output) == ["landmarks", "landmarks/iter_0"]


# --- Parameter counts (pinned) ----------------------------------------------------------

@pytest.mark.parametrize("preset, iterations, main_params, iter0_params", [
    ("paper", 2, 1_665_332, 1_633_540),
    ("paper", 0, 1_623_172, 1_623_172),
    ("small", 2, 405_052, 397_692),
    ("small", 0, 394_812, 394_812),
    ("tiny", 2, 33_448, 31_668),
    ("tiny", 0, 31_092, 31_092),
])
def test_parameter_counts_are_pinned(preset, iterations, main_params, iter0_params):
    models = ifan.build_models(dataclasses.replace(ifan.PRESETS[preset](), iterations=iterations))
    assert models["main"].count_params() == main_params
    assert models["iter0"].count_params() == iter0_params


def _fc_densenet_params(c: IFANConfig, feedback: int) -> int:
    """Independent count of stem + backbone weights from the Sec. 4.1.2 description."""
    d, g, n, k = c.bn_domains, c.growth_rate, c.layers_per_block, c.stem_kernel
    bn = lambda ch: 4 * d * ch  # gamma, beta, moving mean, moving variance per domain
    total = k * k * 3 * c.stem_filters + bn(c.stem_filters)

    def block(ch, context):
        p = 0
        for i in range(n):
            p += bn(ch + i * g) + 9 * (ch + i * g + (context if i == 0 else 0)) * g
        return p

    skips, ch = [], c.stem_filters
    for _ in range(c.num_levels):
        total += block(ch, feedback)
        ch += n * g
        skips.append(ch)
    new = n * g
    for j in range(c.num_levels):
        total += block(ch, feedback if j == 0 else 0)
        total += 9 * new * 4 * new + 4 * new  # sub-pixel convolution (with bias)
        total += 9 * new * new + bn(new)  # the convolution after it
        ch = new + skips[c.num_levels - 1 - j]
    return total


def _ifan_params(c: IFANConfig) -> int:
    """Independent count of the whole 3T model (Sec. 4.1-4.2): FC-DenseNet backbone,
    the three decoders on the up path, and with ITER > 0 the re-encoders and the
    integrator that feeds their fused features back into every level."""
    L, ng, f, S = c.num_levels, c.layers_per_block * c.growth_rate, c.stem_filters, c.image_size
    P, K, E = c.num_parsing_classes, c.num_landmarks, 7
    df, dh, r, q, ah = c.decoder_filters, c.decoder_hidden, c.reencoder_filters, c.integrator_filters, c.attribute_hidden
    feedback = c.iterations > 0
    # Up-path output j (0 = coarsest, at S / 2**L): ng new features + the skip of its level.
    up = lambda j: ng + f + (L - j) * ng
    total = _fc_densenet_params(c, q if feedback else 0)
    total += up(L - 1) * P + P  # parsing: 1x1 classifier at full resolution
    # Landmarks (S / 2**(L-1)) and emotion (S / 2**L): 1x1 reduction, flatten, hidden, output.
    total += up(1) * df + df + (S // 2 ** (L - 1)) ** 2 * df * dh + dh + dh * 2 * K + 2 * K
    total += up(0) * df + df + (S // 2 ** L) ** 2 * df * dh + dh + dh * E + E
    if feedback:
        pyramid = L * (9 * r * r + r)  # a 3x3 convolution per further level
        total += 9 * P * r + r + pyramid  # parsing maps -> pyramid
        total += 9 * K * r + r + pyramid  # landmark heat maps -> pyramid
        total += E * ah + ah + ah * r + r  # emotion probabilities -> code
        total += (L + 1) * (3 * r * q + q)  # integrator: 1x1 fusion of the 3 tasks per level
    return total


@pytest.mark.parametrize("preset", ["paper", "small", "tiny"])
@pytest.mark.parametrize("iterations", [0, 2])
def test_whole_model_parameter_count_from_the_paper_description(preset, iterations):
    config = dataclasses.replace(ifan.PRESETS[preset](), iterations=iterations)
    assert ifan.build_model(config).count_params() == _ifan_params(config)


@pytest.mark.parametrize("preset", ["paper", "small", "tiny"])
def test_backbone_is_the_fc_densenet_of_the_paper(preset):
    config = ifan.PRESETS[preset]()
    model = ifan.build_model(config)
    backbone = sum(int(np.prod(v.shape)) for v in model.weights if v.path.startswith("backbone_"))
    assert backbone == _fc_densenet_params(config, config.integrator_filters)
    blocks = model.get_layer("backbone_fcdensenet")
    assert len(blocks.down_blocks) == len(blocks.up_blocks) == config.num_levels


# --- Outputs ----------------------------------------------------------------------------

def _expected_shapes(config, batch):
    s = config.image_size
    shapes = {}
    for task in config.tasks:
        if task == "landmarks":
            shape = (batch, config.num_landmarks, 2)
        elif task == "parsing":
            shape = (batch, s, s, config.num_parsing_classes)
        else:
            shape = (batch, config.num_classes(task))
        for i in range(config.iterations + 1):
            shapes[ifan.output_key(task, i)] = shape
        shapes[ifan.output_key(task)] = shape
    return shapes


@pytest.mark.parametrize("tasks, iterations", [
    (TASKS3, 0), (TASKS3, 1), (TASKS3, 2),
    (("landmarks", "parsing"), 1), (("emotion",), 2), (("gender", "landmarks"), 0), (("parsing",), 1),
])
def test_output_keys_and_shapes(tasks, iterations):
    config = tiny(tasks=tasks, iterations=iterations)
    model = ifan.build_model(config)
    expected = _expected_shapes(config, 2)
    out = model(inputs(), training=False)
    assert set(out) == set(expected)
    for key, shape in expected.items():
        assert tuple(out[key].shape) == shape, key
        assert out[key].dtype == tf.float32
    if "parsing_logits" in out:
        assert "parsing_logits/iter_0" in out
    if "emotion" in tasks:
        assert "emotion_logits" in out and out["emotion_logits"].shape[-1] == 7


def test_paper_output_shapes_symbolic():
    model = ifan.build_model(ifan.PRESETS["paper"]())
    shapes = {k: tuple(v.shape) for k, v in model.output.items()}
    assert shapes == _expected_shapes(ifan.PRESETS["paper"](), None)
    features = model.get_layer("backbone_fcdensenet").compute_output_shape((None, 128, 128, 48))
    # Landmarks read the 8x8 down-path features, emotion the 4x4 ones, parsing 128x128.
    assert features["point"][1:3] == (8, 8) and features["global"][1:3] == (4, 4)
    assert features["pixel"][1:3] == (128, 128)


def test_final_aliases_equal_the_last_iteration_and_feedback_changes_predictions():
    model = ifan.build_model(tiny(iterations=2))
    out = model(inputs(batch=3), training=False)
    for base in ("landmarks", "parsing_logits", "emotion_logits"):
        np.testing.assert_array_equal(out[base], out[f"{base}/iter_2"])
        assert not np.allclose(out[f"{base}/iter_0"], out[f"{base}/iter_1"])


def test_landmarks_are_normalised_coordinates_usable_by_the_reencoder():
    model = ifan.build_model(tiny(tasks=("landmarks",), iterations=1))
    out = model(inputs(), training=False)["landmarks"]
    assert out.shape == (2, 5, 2) and np.isfinite(out).all()
    # The decoder's output vector is read as (x, y) pairs in [0, 1]: with its last layer
    # fixed to known normalised points, every iteration outputs exactly those points,
    # and the landmark re-encoder draws them at those fractions of its map.
    points = np.array([[0.25, 0.75], [0.5, 0.5], [0.125, 0.375], [0.875, 0.25], [0.625, 0.875]], "float32")
    head = model.get_layer("decoder_landmarks_head").out
    head.kernel.assign(np.zeros(head.kernel.shape, "float32"))
    head.bias.assign(points.reshape(-1))
    out = model(inputs(), training=False)
    for key in ("landmarks/iter_0", "landmarks/iter_1"):
        np.testing.assert_allclose(out[key], np.broadcast_to(points, (2, 5, 2)), atol=1e-6, err_msg=key)
    maps = render_landmark_heatmaps(points[None], 32, 2.0).numpy()[0]
    for k, (x, y) in enumerate(points):
        assert maps[int(y * 32), int(x * 32), k] == 1 and maps[..., k].sum() < 16


# --- Weight sharing and the iteration-0 model ---------------------------------------

def test_iterations_share_weights():
    counts = set()
    for iterations in (1, 2, 3):
        model = ifan.build_model(tiny(iterations=iterations))
        counts.add((model.count_params(), len(model.trainable_variables)))
        # The same layer objects run once per iteration (the stem once).
        assert len(model.get_layer("backbone_fcdensenet")._inbound_nodes) == iterations + 1
        assert len(model.get_layer("decoder_landmarks_head")._inbound_nodes) == iterations + 1
        assert len(model.get_layer("reencoder_parsing_pyramid")._inbound_nodes) == iterations
        assert len(model.get_layer("integrator_fuse")._inbound_nodes) == iterations
        assert len(model.get_layer("backbone_stem")._inbound_nodes) == 1
    assert len(counts) == 1
    plain = ifan.build_model(tiny(iterations=0))
    assert not any(v.path.startswith(("reencoder_", "integrator_")) for v in plain.weights)


def test_iter0_model_shares_weights_and_matches_iteration_0():
    models = ifan.build_models(tiny(iterations=2))
    main, iter0 = models["main"], models["iter0"]
    assert set(iter0.output) == {"parsing_logits/iter_0", "landmarks/iter_0", "emotion_logits/iter_0"}
    main_ids = {id(v) for v in main.weights}
    assert all(id(v) in main_ids for v in iter0.weights)
    assert not any(v.path.startswith(("reencoder_", "integrator_")) for v in iter0.trainable_variables)
    x = inputs(batch=3)
    a, b = main(x, training=False), iter0(x, training=False)
    for key in iter0.output:
        np.testing.assert_allclose(a[key], b[key], atol=1e-6)
    # Training the iteration-0 model moves the main model's iteration-0 output.
    var = iter0.get_layer("decoder_emotion_head").out.bias
    var.assign(var + 1.0)
    np.testing.assert_allclose(main(x, training=False)["emotion_logits/iter_0"], a["emotion_logits/iter_0"] + 1.0,
                               atol=1e-5)


def test_gradients_reach_every_trainable_variable():
    models = ifan.build_models(tiny(iterations=2))
    x = inputs(batch=4)
    for model in models.values():
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = tf.add_n([tf.reduce_mean(tf.square(v)) for k, v in out.items() if "/iter_" in k])
        grads = tape.gradient(loss, model.trainable_variables)
        missing = [v.path for v, g in zip(model.trainable_variables, grads) if g is None]
        assert not missing
        assert all(np.isfinite(tf.convert_to_tensor(g).numpy()).all() for g in grads)


@pytest.mark.parametrize("tasks", [TASKS3, ("landmarks", "celeba/Smiling", "pose_bin")])
def test_every_trainable_variable_has_exactly_one_component_prefix(tasks):
    model = ifan.build_model(tiny(tasks=tasks, iterations=1))
    prefixes = [ifan.component_prefix("backbone"), ifan.component_prefix("integrator")]
    prefixes += [ifan.component_prefix(c, t) for t in tasks for c in ("decoder", "reencoder")]
    for v in model.trainable_variables:
        matches = [p for p in prefixes if fnmatch.fnmatch(v.path, p + "*")]
        assert len(matches) == 1, (v.path, matches)
    for prefix in prefixes:
        assert any(v.path.startswith(prefix) for v in model.trainable_variables), prefix
    assert ifan.component_prefix("decoder", "celeba/Smiling") == "decoder_celeba_Smiling_"
    with pytest.raises(ConfigError, match="component"):
        ifan.component_prefix("head")
    with pytest.raises(ConfigError, match="task"):
        ifan.component_prefix("decoder")


# --- Ablations and BN domains ----------------------------------------------------------

def test_plain_resizing_ablation_has_no_reencoder_weights_and_runs():
    model = ifan.build_model(tiny(reencoders=False, iterations=2))
    assert not any(v.path.startswith("reencoder_") for v in model.weights)
    assert any(v.path.startswith("integrator_") for v in model.trainable_variables)
    out = model(inputs(), training=False)
    assert out["parsing_logits"].shape == (2, 32, 32, 11)
    assert not np.allclose(out["landmarks/iter_0"], out["landmarks/iter_1"])


def test_per_dataset_bn_changes_outputs_with_the_domain():
    model = ifan.build_model(tiny(iterations=1))
    randomise_bn_statistics(model)
    x = inputs(batch=1, domains=[0])
    same_image = {"image": np.repeat(x["image"], 3, axis=0), "domain": np.array([0, 1, 2], "int32")}
    out = model(same_image, training=False)
    for key in ("landmarks", "parsing_logits", "emotion_logits"):
        assert not np.allclose(out[key][0], out[key][1])
        assert not np.allclose(out[key][1], out[key][2])
        # Mixed-domain batches give each example its own domain's result.
        alone = model({"image": x["image"], "domain": np.array([2], "int32")}, training=False)[key]
        np.testing.assert_allclose(out[key][2], alone[0], atol=1e-4)


def test_shared_bn_accepts_and_ignores_the_domain():
    model = ifan.build_model(tiny(shared_bn=True, iterations=1))
    assert all(layer.num_domains == 1 for layer in _domain_bns(model))
    randomise_bn_statistics(model)
    x = inputs(batch=1)
    batch = {"image": np.repeat(x["image"], 3, axis=0), "domain": np.array([0, 1, 2], "int32")}
    out = model(batch, training=False)
    for key in out:
        np.testing.assert_allclose(out[key][0], out[key][2], atol=1e-5)


def test_frozen_domain_matches_that_domain_of_the_unfrozen_model():
    base = ifan.build_model(tiny(iterations=1))
    randomise_bn_statistics(base)
    frozen = ifan.build_model(tiny(iterations=1, frozen_domain=2))
    frozen.set_weights(base.get_weights())
    x = inputs(batch=2, domains=[0, 1])
    want = base({"image": x["image"], "domain": np.array([2, 2], "int32")}, training=False)
    got = frozen(x, training=False)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-5)


def _domain_bns(model):
    found = []

    def visit(layer):
        if isinstance(layer, DomainBatchNorm):
            found.append(layer)
        for sub in layer._layers if hasattr(layer, "_layers") else []:
            visit(sub)

    for layer in model.layers:
        visit(layer)
    return found


def test_backbone_uses_domain_batch_norm_throughout():
    model = ifan.build_model(tiny())
    bns = _domain_bns(model)
    config = tiny()
    # stem + 2 * levels * layers (dense blocks) + levels (convs after the sub-pixel layers)
    assert len(bns) == 1 + 2 * config.num_levels * config.layers_per_block + config.num_levels
    assert all(b.num_domains == 3 for b in bns)
    assert not any(v.path.startswith("backbone_") and "batch_normalization" in v.path for v in model.weights)


# --- Persistence and precision ---------------------------------------------------------

def test_keras_round_trip_gives_equal_outputs(tmp_path):
    model = ifan.build_model(tiny(iterations=2, tasks=("parsing", "landmarks", "emotion", "gender")))
    randomise_bn_statistics(model)
    restored = run_model_saving_test(model, inputs(batch=3), tmp_path)
    assert sorted(restored.output) == sorted(model.output)


def test_outputs_are_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = ifan.build_model(tiny(iterations=1))
        out = model(inputs(), training=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(v.dtype == tf.float32 for v in out.values())
    assert all(np.isfinite(v.numpy()).all() for v in out.values())


# --- Components ---------------------------------------------------------------------------

def test_landmark_heatmaps_are_discs_of_the_radius():
    points = np.array([[[0.5, 0.25], [2.0, 2.0]]], "float32")  # second point off the image
    maps = render_landmark_heatmaps(points, 32, 3.0).numpy()
    assert maps.shape == (1, 32, 32, 2)
    assert maps[..., 1].sum() == 0
    assert maps.min() >= 0 and maps.max() <= 1
    ys, xs = np.mgrid[0:32, 0:32]
    dist = np.hypot(xs + 0.5 - 16, ys + 0.5 - 8)
    # 1 inside the disc, 0 beyond its anti-aliased rim (about half a pixel wide each side).
    assert np.all(maps[0, ..., 0][dist <= 2.4] == 1) and np.all(maps[0, ..., 0][dist >= 3.6] == 0)
    assert abs(maps[0, ..., 0].sum() - np.pi * 9) < 3
    big = render_landmark_heatmaps(points, 128, 5.0).numpy()
    assert abs(big[0, ..., 0].sum() - np.pi * 25) < 3


def test_landmark_heatmaps_are_continuous_in_the_points():
    """A point moved by float rounding moves the maps by as little (no flipped rim pixel),
    so runtimes that round differently agree after the feedback loop."""
    # Pixel (x=16, y=8) has its centre at (16.5, 8.5), 3.04 px from the point: on the rim.
    points = np.array([[[16.0 / 32, 5.5 / 32]]], "float32")
    moved = points + np.float32(1e-6)
    a = render_landmark_heatmaps(points, 32, 3.0).numpy()
    b = render_landmark_heatmaps(moved, 32, 3.0).numpy()
    assert 0 < a[0, 8, 16, 0] < 1  # on the rim, neither in nor out
    assert np.abs(a - b).max() < 1e-3


@pytest.mark.parametrize("learnable", [True, False])
def test_reencoders_produce_a_pyramid_per_level(learnable):
    b, s, levels = 2, 16, 2
    landmarks = LandmarkReencoder(s, levels, 6, 2.0, learnable=learnable)
    parsing = ParsingReencoder(levels, 6, learnable=learnable)
    attribute = AttributeReencoder(s, levels, 6, 8, learnable=learnable)
    pyramids = [
        landmarks(np.full((b, 5, 2), 0.5, "float32")),
        parsing(np.random.default_rng(0).normal(size=(b, s, s, 11)).astype("float32")),
        attribute(np.random.default_rng(1).normal(size=(b, 7)).astype("float32")),
    ]
    channels = [6, 6, 6] if learnable else [5, 11, 7]
    for pyramid, c in zip(pyramids, channels):
        assert [tuple(p.shape) for p in pyramid] == [(b, s >> l, s >> l, c) for l in range(levels + 1)]
    if not learnable:
        # Plain resizing: parsing levels are still probability maps, attributes tiled.
        np.testing.assert_allclose(np.sum(pyramids[1][2], axis=-1), 1.0, atol=1e-5)
        np.testing.assert_allclose(pyramids[2][1][:, 0, 0], pyramids[2][1][:, -1, -1])
        assert not landmarks.weights and not parsing.weights and not attribute.weights
    fused = TaskIntegrator(levels, 4)(pyramids)
    assert [tuple(f.shape) for f in fused] == [(b, s >> l, s >> l, 4) for l in range(levels + 1)]
    for layer in (landmarks, parsing, attribute):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()


def test_decoder_contracts():
    x8 = np.random.default_rng(0).normal(size=(2, 8, 8, 6)).astype("float32")
    run_layer_test(LandmarkDecoder, {"num_landmarks": 5, "filters": 3, "hidden": 7, "dropout": 0.1}, x8,
                   (2, 5, 2), expected_num_trainable_weights=6)
    run_layer_test(AttributeDecoder, {"num_classes": 7, "filters": 3, "hidden": 7}, x8, (2, 7),
                   expected_num_trainable_weights=6)
    run_layer_test(ParsingDecoder, {"num_classes": 11}, x8, (2, 8, 8, 11), expected_num_trainable_weights=2)


def test_backbone_contract_and_feedback_validation():
    layer = FCDenseNetBackbone(2, 2, 3, feedback_filters=2, num_domains=2)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 4)).astype("float32")
    out = layer(x, domain=np.array([0, 1], "int32"))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        k: tuple(v) for k, v in layer.compute_output_shape((2, 16, 16, 4)).items()}
    clone = FCDenseNetBackbone.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="feedback"):
        layer(x, feedback=[np.zeros((2, 16, 16, 2), "float32")])
