import dataclasses

import keras
import numpy as np
import pytest

from keras_facemt.errors import ConfigError
from keras_facemt.models import registry
from keras_facemt.models.tfn import model as tfn
from keras_facemt.models.tfn.config import TFNConfig
from keras_facemt.models.tfn.landmark_encoding import decode_landmarks, encode_landmarks

SYSTEM = registry.get_system("tfn")


def tiny(**overrides):
    return dataclasses.replace(tfn.PRESETS["tiny"](), **overrides)


def _inputs(cfg, batch=2, faces=3):
    rng = np.random.default_rng(0)
    rois = np.zeros((batch, faces, 4), "float32")
    rois[:, 0] = [0.1, 0.2, 0.5, 0.6]
    rois[:, 1] = [0.5, 0.5, 0.9, 0.95]
    return {"image": rng.uniform(0, 1, (batch, cfg.image_size, cfg.image_size, 3)).astype("float32"),
            "face_rois": rois}


def test_training_graph_shapes_tiny():
    cfg = tiny()
    out = SYSTEM.build(cfg)(_inputs(cfg))
    anchors = tfn.anchors_of(cfg)
    # conv4 (12x12) and conv5 (6x6) of a 96 px input, 9 anchors per cell.
    assert len(anchors) == (12 * 12 + 6 * 6) * 9
    assert tuple(out["rpn_cls_logits"].shape) == (2, len(anchors), 2)
    assert tuple(out["rpn_box_deltas"].shape) == (2, len(anchors), 4)
    assert tuple(out["detection"].shape) == (2, cfg.proposals + 3, 10)
    # Two-step: the shaken boxes plus their refinement by the detection subnet.
    assert tuple(out["landmarks"].shape) == (2, 6, 4 + 136)
    assert tuple(out["attributes"].shape) == (2, 6, 4 + 101 + 2 + 3)
    det = np.asarray(out["detection"])
    np.testing.assert_allclose(det[:, cfg.proposals:, :4], _inputs(cfg)["face_rois"])  # the ROIs ride along


def test_serving_graph_shapes_and_padding():
    cfg = tiny(score_threshold=0.0)
    keras.utils.set_random_seed(1)
    served = SYSTEM.serving_model(SYSTEM.build(cfg), cfg)
    out = {k: np.asarray(v) for k, v in served({"image": _inputs(cfg)["image"]}).items()}
    d = cfg.max_detections
    assert set(out) == set(tfn.SERVING_KEYS) == set(SYSTEM.serving_spec(cfg).outputs)
    assert out["boxes"].shape == (2, d, 4) and out["landmarks"].shape == (2, d, 68, 2)
    assert out["age"].shape == (2, d) and out["gender_logits"].shape == (2, d, 2)
    assert out["ethnicity_logits"].shape == (2, d, 3)
    for i, n in enumerate(out["num_detections"]):
        assert 1 <= n <= d
        assert np.all(out["landmarks"][i, n:] == 0) and np.all(out["age"][i, n:] == 0)
        assert np.all((out["age"][i, :n] >= 0) & (out["age"][i, :n] <= 100))


@pytest.mark.parametrize("overrides,lm_width", [
    ({"heatmap_landmarks": True}, 4 + 20 * 20 * 68),
    ({"tafn": True}, 140),
    ({"rpn_levels": (5,), "rpn_scales": ((8.0, 16.0, 32.0, 48.0),)}, 140),
    ({"shared_block": True, "fused_block": False, "two_step": False}, 140),
])
def test_switches_build_train_and_serve(overrides, lm_width):
    cfg = tiny(**overrides)
    model = SYSTEM.build(cfg)
    out = model(_inputs(cfg))
    q = 6 if cfg.two_step else 3
    assert tuple(out["landmarks"].shape) == (2, q, lm_width)
    served = SYSTEM.serving_model(model, cfg)({"image": _inputs(cfg)["image"]})
    assert tuple(served["landmarks"].shape) == (2, cfg.max_detections, 68, 2)
    if cfg.shared_block:
        assert not any(l.name in ("landmark_block", "attribute_block") for l in model.layers)
    if cfg.tafn:
        assert all(len(model.get_layer(n).norms) == 5 for n in tfn.BLOCK_NAMES.values())


def test_task_levels_follow_the_paper_choice():
    cfg = tiny()
    model = SYSTEM.build(cfg)
    # Sec. V-A: detection and attributes fuse conv3-5, landmarks conv4-5.
    assert len(model.get_layer("detection_block").norms) == 3
    assert len(model.get_layer("landmark_block").norms) == 2
    assert len(model.get_layer("attribute_block").norms) == 3


def _conv(k, cin, cout):
    return k * k * cin * cout + cout


def _dense(cin, cout):
    return cin * cout + cout


def test_paper_parameter_count_pinned_and_by_hand():
    cfg = TFNConfig()
    model = SYSTEM.build(cfg, preset="paper")
    # VGG-16's 13 convolutions.
    widths, convs = (64, 128, 256, 512, 512), (2, 2, 3, 3, 3)
    stem, cin = 0, 3
    for w, n in zip(widths, convs):
        for _ in range(n):
            stem += _conv(3, cin, w)
            cin = w
    assert stem == 14_714_688  # keras.applications.VGG16(include_top=False)
    # Multilayer RPN: 3x3x256 on conv4_3 and conv5_3, 9 anchors x (2 + 4).
    rpn = 2 * (_conv(3, 512, 256) + _conv(1, 256, 18) + _conv(1, 256, 36))

    def block(channels):  # ParseNet scales + 1x1 fusion to 512
        return sum(channels) + _dense(sum(channels), 512)

    trunk = _dense(7 * 7 * 512, 4096) + _dense(4096, 4096)
    det = block((256, 512, 512)) + trunk + _dense(4096, 2) + _dense(4096, 4)
    lm = block((512, 512)) + trunk + _dense(4096, 136)
    attr = block((256, 512, 512)) + trunk + _dense(4096, 101) + _dense(4096, 2) + _dense(4096, 3)
    assert model.count_params() == stem + rpn + det + lm + attr
    assert model.count_params() == 378_596_004


def test_landmark_encoding_is_eq5():
    box = np.array([[0.2, 0.4, 0.6, 0.6]], "float32")  # centre (0.4, 0.5), size (0.4, 0.2)
    pts = np.array([[[0.3, 0.55]]], "float32")
    q = np.asarray(encode_landmarks(pts, box))
    np.testing.assert_allclose(q, [[[(0.4 - 0.3) / 0.4, (0.5 - 0.55) / 0.2]]], atol=1e-6)
    np.testing.assert_allclose(np.asarray(decode_landmarks(q, box)), pts, atol=1e-6)


@pytest.mark.parametrize("field,value", [("image_size", 100), ("rpn_levels", (2, 5)), ("landmark_levels", (5, 4)),
                                         ("proposals", 5000), ("heatmap_upsample", 6), ("stack_convs", (1, 1))])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ConfigError, match=field):
        TFNConfig(**{field: value})


def test_tiny_model_saves_and_loads(tmp_path):
    from tests.helpers import run_model_saving_test

    cfg = tiny()
    run_model_saving_test(SYSTEM.build(cfg), _inputs(cfg), tmp_path)


@pytest.mark.parametrize("sharing,heads,absent", [
    ("all", {"region_head"}, {"detection_head", "landmark_head", "attribute_head", "face_head"}),
    ("face", {"detection_head", "face_head"}, {"landmark_head", "attribute_head", "region_head"}),
])
def test_fc_sharing_puts_tasks_behind_one_pair_of_fcs(sharing, heads, absent):
    # Sec. V-B: ORMM (all tasks behind the detection FCs), TRMM (landmarks + attributes share).
    base = tiny(shared_block=True, fused_block=False)
    cfg = dataclasses.replace(base, fc_sharing=sharing)
    model = SYSTEM.build(cfg)
    names = {l.name for l in model.layers}
    assert heads <= names and not (absent & names)
    fcs = [v.path for v in model.weights if "_fc6/" in v.path]
    assert len(fcs) == (2 if sharing == "all" else 4)  # kernel + bias per fc6 left
    # Each shared pair of FCs removes whole FC trunks from the parameter count.
    fc = (cfg.roi_size ** 2 * cfg.stack_widths[-1] + 1) * cfg.fc_units[0] + (cfg.fc_units[0] + 1) * cfg.fc_units[1]
    removed = 2 if sharing == "all" else 1
    assert SYSTEM.build(base).count_params() - model.count_params() == removed * fc
    out = model(_inputs(cfg))
    assert tuple(out["landmarks"].shape)[-1] == 140 and tuple(out["attributes"].shape)[-1] == 110
    served = SYSTEM.serving_model(model, cfg)({"image": _inputs(cfg)["image"]})
    assert tuple(served["landmarks"].shape) == (2, cfg.max_detections, 68, 2)


def test_fc_sharing_needs_one_block_and_fc_landmarks():
    with pytest.raises(ConfigError, match="shared_block"):
        tiny(fc_sharing="face")
    with pytest.raises(ConfigError, match="heatmap_landmarks"):
        tiny(fc_sharing="all", shared_block=True, heatmap_landmarks=True)
    with pytest.raises(ConfigError, match="fc_sharing='some'"):
        tiny(fc_sharing="some", shared_block=True)
