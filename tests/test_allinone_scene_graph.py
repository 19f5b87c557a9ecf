"""All-in-One's deployable two-stage graph (models/allinone/scene_graph.py).

Its pieces are checked against the Python pipeline the evaluation runs
(``scene_pipeline``): crops against the cv2 crops the network trained on, L-NMS and
the per-face averaging against ``scene_pipeline.landmark_nms``, alignment against
``data.align_crops``; the whole graph for its declared outputs, its export to
TFLite (builtin ops) and ONNX, and ``FaceAnalyzer``'s faces.
"""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.models import registry
from keras_facemt.models.allinone import proposals as P
from keras_facemt.models.allinone import scene_graph as G
from keras_facemt.models.allinone import scene_pipeline as S
from keras_facemt.models.allinone.config import PRESETS, SceneDetectorConfig

SCENE = 64


@pytest.fixture(scope="module")
def faces_everywhere():
    """A tiny model whose detection head calls most windows a face, and its deployable graph."""
    system = registry.get_system("allinone")
    cfg = dataclasses.replace(PRESETS["tiny"](), scene_size=SCENE,
                              detector=SceneDetectorConfig(min_side=0.3, max_side=0.6, stride=0.5, candidates=24,
                                                           max_detections=6))
    keras.utils.set_random_seed(0)  # the same untrained weights in every run: its detections are the test's input
    model = system.build(cfg, "tiny")
    head = model.get_layer("detection_logits")
    w, b = head.get_weights()
    head.set_weights([w, b + np.array([0.0, 3.0], np.float32)])
    return cfg, model, system.serving_model(model, cfg, "tiny")


def _image(seed, h=SCENE, w=SCENE):
    """Smooth random colours (per-pixel noise would alias in any shrink, cv2's included)."""
    import cv2

    noise = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32) * 255
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.5) * 4 - 382, 0, 255).astype(np.uint8)


def test_box_crops_match_the_cv2_crops_the_network_trained_on():
    image = _image(0, 70, 90)
    boxes = np.array([[10, 12, 16, 18], [5, 5, 37, 37], [20, 10, 70, 60], [0, 0, 90, 70], [30.4, 7.6, 41.5, 19.2],
                      [-8, -6, 20, 22], [70, 50, 100, 80]], np.float64)
    got = G.BoxCrops(32)(tf.constant(image[None] / 255.0, tf.float32), tf.constant(boxes[None], tf.float32)).numpy()
    want = np.stack([P.crop_box(image, P.rounded(b), 32) for b in boxes]) / 255.0
    err = np.abs(got - want).mean((1, 2, 3)) * 255
    # Inside the image: cv2's bilinear grid up to its uint8 rounding, ...
    assert err[[0, 1, 4]].max() < 0.3, err
    # ... its area shrink approximated by 2x2 supersampling (grey levels of 255), ...
    assert err[[2, 3]].max() < 1.5, err
    # ... and leaving it: zero padding; only the border row's interpolation differs.
    assert err[5:].max() < 3.0, err
    mirrored = G.BoxCrops(32, mirror=True)(tf.constant(image[None] / 255.0, tf.float32),
                                           tf.constant(boxes[None, :2], tf.float32)).numpy()
    np.testing.assert_allclose(mirrored[1], mirrored[0][:, ::-1])
    np.testing.assert_allclose(mirrored[0], got[0])


def test_landmark_nms_matches_the_python_pipeline():
    rng = np.random.default_rng(1)
    idx = S.defined_points()
    prior = np.array(SceneDetectorConfig().box_prior)
    base = rng.random((21, 2)) * 20
    centres = np.array([[20, 20], [60, 30], [40, 70]], np.float64)
    points = np.concatenate([base[None] + c + rng.normal(0, 1.5, (8, 21, 2)) for c in centres])  # [24, 21, 2]
    scores = rng.uniform(0.5, 1.0, len(points))
    pose = rng.normal(0, 20, (len(points), 3))
    vis = rng.random((len(points), 21))
    valid = np.ones(len(points))
    valid[::5] = 0  # invalid candidates take no part
    cfg = SceneDetectorConfig(max_detections=5)
    keep = valid > 0
    want = S.landmark_nms(points[keep], scores[keep], pose[keep], prior, idx, cfg, 100, 100)
    layer = G.LandmarkNMS(cfg.max_detections, cfg.nms_iou, cfg.average_iou, prior, idx, 100)
    f32 = lambda x: tf.constant(np.asarray(x, np.float32)[None])  # noqa: E731
    boxes, lms, _, sc, count, mask, _, pose_out = [np.asarray(t)[0] for t in layer(
        f32(points), f32(scores), f32(valid), [f32(vis), f32(pose)])]
    n = int(count)
    assert n == len(want["scores"]) == 3
    np.testing.assert_allclose(sc[:n], want["scores"], rtol=1e-6)
    np.testing.assert_allclose(lms[:n] * 100, want["landmarks"], atol=1e-3)
    np.testing.assert_allclose(boxes[:n] * 100, want["boxes"], atol=1e-3)
    np.testing.assert_allclose(pose_out[:n], want["pose"], atol=1e-3)
    assert mask.tolist() == [1, 1, 1, 0, 0] and not boxes[n:].any()


def test_aligned_crops_are_stage2s_alignment():
    from keras_facemt.data.landmarks import convert_points
    from keras_facemt.models.allinone.data import align_crops

    image = _image(2, 80, 80)
    points = np.random.default_rng(2).uniform(20, 60, (1, 2, 21, 2)).astype(np.float32)
    got = G.AlignedCrops(32)(tf.constant(image[None] / 255.0, tf.float32), tf.constant(points)).numpy()
    five, _ = convert_points(points[0], np.ones((2, 21), np.float32), "aflw21", "mtfl5")
    want = align_crops(np.repeat(image[None], 2, 0), five / 80.0, 32) / 255.0
    assert np.abs(got[0::2] - want).max() < 1.0 / 255 + 1e-6  # align_crops rounds to uint8
    np.testing.assert_allclose(got[1::2], got[0::2][:, :, ::-1])


def test_scene_graph_serves_every_declared_output_padded(faces_everywhere):
    cfg, model, served = faces_everywhere
    spec = registry.get_system("allinone").serving_spec(cfg)
    assert spec.detecting and set(served.output) == set(spec.outputs)
    assert "identity_logits" not in served.output and spec.outputs["landmarks"].scheme == "aflw21"
    out = {k: np.asarray(v) for k, v in served({"image": np.stack([_image(3), _image(4)]) / 255.0}).items()}
    d = cfg.detector.max_detections
    assert out["boxes"].shape == (2, d, 4) and out["landmarks"].shape == (2, d, 21, 2)
    assert out["visibility"].shape == (2, d, 21) and out["pose"].shape == (2, d, 3)
    assert out["smile_logits"].shape == (2, d, 2) and out["age"].shape == (2, d) and out["embedding"].shape == (2, d, 64)
    for i, n in enumerate(out["num_detections"]):
        assert 1 <= n <= d
        assert np.all(np.diff(out["scores"][i, :n]) <= 0) and np.all(out["scores"][i, :n] > 0.5)
        np.testing.assert_allclose(np.exp(out["gender_logits"][i, :n]).sum(-1), 1.0, rtol=1e-5)
        for key in ("boxes", "landmarks", "embedding", "age"):
            assert not out[key][i, n:].any(), key
    # Faces kept by L-NMS overlap each other by at most nms_iou.
    from keras_facemt.models.allinone.proposals import box_iou

    n = int(out["num_detections"][0])
    overlap = box_iou(out["boxes"][0, :n], out["boxes"][0, :n])
    assert overlap[np.triu_indices(n, 1)].max(initial=0) <= cfg.detector.nms_iou + 0.2


@pytest.mark.timeout(900)
def test_scene_graph_exports_to_tflite_and_onnx_and_matches_keras(faces_everywhere, tmp_path):
    from tests.helpers import run_export_test

    _, _, served = faces_everywhere
    batch = {"image": np.stack([_image(5), _image(6)]).astype(np.float32) / 255.0}
    manifest = run_export_test(served, [batch], tmp_path, formats=("keras", "tflite", "onnx"),
                               quantizations=("float32",), max_examples=2)
    formats = {c["artifact"].rsplit(".", 1)[-1] for c in manifest["verification"]["checks"]}
    assert {"tflite", "onnx", "keras"} <= formats, formats


def test_face_analyzer_returns_each_face_with_every_task(faces_everywhere, tmp_path):
    from keras_facemt.inference.analyzer import FaceAnalyzer
    from keras_facemt.serving.keras_format import save_model

    cfg, model, served = faces_everywhere
    path = save_model(model, str(tmp_path / "model.keras"), info=registry.get_system("allinone").model_info(cfg, "tiny"))
    image = _image(7, 48, 96)  # letterboxed into the 64x64 input
    analyzer = FaceAnalyzer(path, batch_size=32)
    assert analyzer.batch_size == 4  # the graph's declared max_batch: every window of every image runs
    faces = analyzer([image])[0]
    assert 1 <= len(faces) <= cfg.detector.max_detections
    for face in faces:
        assert face.landmarks.shape == (21, 2) and face.visibility.shape == (21,) and face.pose.shape == (3,)
        assert np.isclose(np.linalg.norm(face.embedding), 1.0, atol=1e-5)
        assert {"smile", "gender", "age"} <= set(face.attributes)
        assert np.isclose(float(np.sum(face.attributes["smile"])), 1.0, atol=1e-5)
        assert 0 <= face.box[0] < face.box[2] and face.box[1] < face.box[3]
    assert faces[0].score >= faces[-1].score
