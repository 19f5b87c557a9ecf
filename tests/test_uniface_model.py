import dataclasses

import keras
import numpy as np
import pytest

from keras_facemt.errors import ConfigError
from keras_facemt.models import registry
from keras_facemt.models.uniface import model as uniface
from keras_facemt.models.uniface.config import UnifaceConfig
from keras_facemt.models.uniface.landmark_attention import LandmarkAttention
from keras_facemt.models.uniface.postprocess import UnifacePostprocess, detect_faces
from keras_facemt.ops import boxes as box_ops
from tests.helpers import run_layer_test, run_model_saving_test

TINY = uniface.PRESETS["tiny"]()
TINY_PARAMS = 178248


def _inputs(cfg, batch=2, faces=3, seed=0):
    rng = np.random.default_rng(seed)
    s = cfg.image_size
    c = rng.uniform(0.3, 0.7, (batch, faces, 2))
    wh = rng.uniform(0.2, 0.4, (batch, faces, 2))
    boxes = np.concatenate([c - wh / 2, c + wh / 2], -1).astype("float32")
    lms = (c[:, :, None] + rng.uniform(-0.1, 0.1, (batch, faces, 5, 2))).astype("float32")
    return {"image": rng.uniform(0, 1, (batch, s, s, 3)).astype("float32"), "bbox": boxes, "landmarks": lms}


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    return uniface.build_model(TINY)


def test_tiny_shapes_and_parameter_count(tiny_model):
    out = tiny_model(_inputs(TINY))
    num_anchors = (12 * 12 + 6 * 6 + 3 * 3 + 2 * 2) * 3
    assert out["cls_logits"].shape == (2, num_anchors, 2)
    assert out["box_offsets"].shape == (2, num_anchors, 4)
    assert out["landmark_offsets"].shape == (2, num_anchors, 5, 2)
    assert out["embedding"].shape == (2, 3, 32)
    assert tiny_model.count_params() == TINY_PARAMS
    assert uniface.model_anchors(tiny_model, TINY.level_anchor_sizes(), TINY.aspect_ratios).shape == (num_anchors, 4)
    assert registry.get_system("uniface").config("tiny") == TINY


def test_paper_preset_follows_the_paper():
    m = uniface.build_model(uniface.PRESETS["paper"]())
    features = m.get_layer(uniface.FEATURES_NAME)
    # Six bottom-up levels from Inception-v3 (35, 17, 8) plus extra layers halving the map.
    assert uniface.feature_sizes(m) == ((35, 35), (17, 17), (8, 8), (4, 4), (2, 2), (1, 1))
    # F_r: 64 channels after two deconvolutions (paper: 64x144x144).
    assert tuple(features.output["recognition_features"].shape[1:]) == (140, 140, 64)
    assert m.get_layer(uniface.ATTENTION_NAME).fc.kernel.shape == (1024, 128)
    assert m.count_params() == 26597376


def test_ablation_switches_change_the_architecture(tiny_model):
    base = tiny_model.count_params()
    b = uniface.build_model(dataclasses.replace(TINY, shared_backbone=False))
    assert b.get_layer(uniface.FEATURES_NAME).get_layer("recognition_backbone") is not None
    assert b.count_params() > base
    c = uniface.build_model(dataclasses.replace(TINY, fusion=False))
    names = [layer.name for layer in c.get_layer(uniface.FEATURES_NAME).layers]
    assert "fusion_single_level" in names and not any(n.startswith("fusion_lateral") for n in names)
    d = uniface.build_model(dataclasses.replace(TINY, landmark_attention=False))
    att = d.get_layer(uniface.ATTENTION_NAME)
    assert not att.use_landmarks and att.face_conv2.filters == TINY.face_vector_dim + 4 * TINY.landmark_vector_dim
    for m in (b, c, d):
        assert m(_inputs(TINY, faces=1))["embedding"].shape == (2, 1, 32)
    assert dataclasses.replace(TINY, fusion=False, landmark_attention=False).variant == "CD"
    assert TINY.variant == "A"


def test_landmark_attention_layer_contract():
    rng = np.random.default_rng(0)
    fr = rng.normal(size=(2, 16, 16, 4)).astype("float32")
    boxes = np.tile(np.array([[[0.2, 0.2, 0.7, 0.8]]], "float32"), (2, 3, 1))
    lms = rng.uniform(0.3, 0.6, (2, 3, 5, 2)).astype("float32")
    out = run_layer_test(LandmarkAttention, {"embedding_dim": 8, "face_roi_size": 8, "landmark_roi_size": 4,
                                             "channels": 4, "face_dim": 6, "landmark_dim": 5},
                         [fr, boxes, lms], (2, 3, 8), expected_num_trainable_weights=10)
    # Embeddings depend on where the landmarks are.
    layer = LandmarkAttention(8, 8, 4, channels=4, face_dim=6, landmark_dim=5)
    a = layer(fr, boxes, lms).numpy()
    b = layer(fr, boxes, lms[:, ::-1]).numpy()
    assert not np.allclose(a[:, 0], b[:, 0])
    assert np.isfinite(out.numpy()).all()


def test_save_load_round_trip_and_inference_graph(tiny_model, tmp_path):
    inputs = _inputs(TINY)
    restored = run_model_saving_test(tiny_model, inputs, tmp_path)
    a = uniface.build_inference_from_config(tiny_model, TINY)({"image": inputs["image"]})
    b = uniface.build_inference_from_config(restored, TINY)({"image": inputs["image"]})
    for k in uniface.INFERENCE_KEYS:
        np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]), atol=1e-5)
    # The builtin-op ROI path gives the same embeddings.
    g = uniface.build_inference_from_config(tiny_model, TINY, roi_method="gather")({"image": inputs["image"]})
    np.testing.assert_allclose(np.asarray(g["embeddings"]), np.asarray(a["embeddings"]), atol=1e-4)


def test_postprocess_decodes_confident_anchors_and_handles_no_faces():
    post = UnifacePostprocess([(4, 4)], [0.3], [0.8], max_detections=5, score_threshold=0.5, iou_threshold=0.4)
    a = post.anchors.shape[0]
    logits = np.zeros((2, a, 2), "float32")
    logits[..., 0] = 5.0  # background everywhere
    logits[0, 0] = [0.0, 5.0]
    logits[0, 15] = [0.0, 4.0]
    box = np.zeros((2, a, 4), "float32")
    pts = np.zeros((2, a, 5, 2), "float32")
    boxes, scores, lms, num = post(logits, box, pts)
    assert num.numpy().tolist() == [2, 0]
    np.testing.assert_allclose(boxes.numpy()[0, 0], np.clip(post.anchors[0], 0, 1), atol=1e-6)
    np.testing.assert_allclose(boxes.numpy()[0, 1], np.clip(post.anchors[15], 0, 1), atol=1e-6)
    centre = box_ops.corners_to_center(post.anchors[15]).numpy()[:2]
    np.testing.assert_allclose(lms.numpy()[0, 1], np.tile(centre, (5, 1)), atol=1e-6)
    assert scores.numpy()[1].max() == 0 and lms.shape == (2, 5, 5, 2)
    clone = UnifacePostprocess.from_config(post.get_config())
    np.testing.assert_array_equal(clone.anchors, post.anchors)


def test_detect_faces_accepts_any_image(tiny_model):
    inf = uniface.build_inference_from_config(tiny_model, TINY)
    rng = np.random.default_rng(0)
    images = [
        (rng.uniform(0, 255, (50, 170)).astype("uint8")),  # gray, wide
        rng.uniform(0, 1, (200, 64, 4)).astype("float32"),  # RGBA, tall
        np.zeros((33, 33, 3), "uint8"),
    ]
    res = detect_faces(inf, images, batch_size=2)
    assert len(res) == 3
    for r, img in zip(res, images):
        n = len(r["scores"])
        assert r["boxes"].shape == (n, 4) and r["landmarks"].shape == (n, 5, 2) and r["embeddings"].shape == (n, 32)
        if n:
            assert r["boxes"][:, 2].max() <= img.shape[1] + 1e-3 and r["boxes"].min() >= 0
    strict = uniface.build_inference_model(tiny_model, TINY.level_anchor_sizes(), score_threshold=0.999999)
    empty = detect_faces(strict, [np.zeros((40, 60, 3), "uint8")])[0]
    assert empty["boxes"].shape == (0, 4) and empty["embeddings"].shape == (0, 32)
    assert detect_faces(inf, []) == []
    with pytest.raises(ConfigError, match="An image must be"):
        detect_faces(inf, [np.zeros((10, 10, 2), "uint8")])


def test_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="backbone"):
        UnifaceConfig(backbone="vgg")
    with pytest.raises(ConfigError, match="image_size"):
        UnifaceConfig(image_size=64)
    with pytest.raises(ConfigError, match="anchor_sizes"):
        dataclasses.replace(TINY, anchor_sizes=(0.1, 0.2))
    with pytest.raises(ConfigError, match="roi_method"):
        dataclasses.replace(TINY, roi_method="roi_pool")
    with pytest.raises(ConfigError, match="weights file not found"):
        uniface.build_model(dataclasses.replace(uniface.PRESETS["paper"](), backbone_weights="/nonexistent.h5"))


def _module_params(model):
    return model.get_layer(uniface.ATTENTION_NAME).count_params()


@pytest.mark.parametrize("preset", ["tiny", "small", "paper"])
def test_model_d_keeps_the_recognition_module_parameter_count(preset):
    """Sec. IV-D.3: Model D doubles the rest of the recognition module "to keep the
    parameter's number unchanged": its module must stay within 5% of Model A's."""
    cfg = uniface.PRESETS[preset]()
    if preset == "paper":
        cfg = dataclasses.replace(cfg, backbone="compact")  # the module does not depend on the body
    a = uniface.build_model(cfg)
    d = uniface.build_model(dataclasses.replace(cfg, landmark_attention=False))
    pa, pd = _module_params(a), _module_params(d)
    assert abs(pd - pa) <= 0.05 * pa, (preset, pa, pd)
    if preset == "paper":
        # Hand count at the paper's sizes (F_r 64 channels, 128-channel branches, 512-D face
        # vector, 4 x 128-D landmark vectors, FC 1024 -> 128):
        #   face 3x3 64->128: 73,856; 3x3 128->512: 590,336; landmark 3x3 64->128: 73,856;
        #   3x3 128->128: 147,584; FC: 131,200.
        assert pa == 73_856 + 590_336 + 73_856 + 147_584 + 131_200 == 1_016_832
        # Model D: 3x3 64->90: 51,930; 3x3 90->1024: 830,464; the same FC: 131,200.
        assert pd == 51_930 + 830_464 + 131_200 == 1_013_594
