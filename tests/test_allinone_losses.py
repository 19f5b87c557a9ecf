"""All-in-One's losses (Eq. 4-8) with hand-computed values, and its IoU-labelled proposals."""

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.data import batch as B
from keras_facemt.errors import ConfigError
from keras_facemt.models.allinone import losses as L
from keras_facemt.models.allinone.experiments import DEFAULT_LOSS_WEIGHTS
from keras_facemt.models.allinone import proposals as P


def _c(x, dtype=tf.float32):
    return tf.constant(np.asarray(x), dtype)


def test_detection_softmax_by_hand():
    batch = {L.DETECTION: _c([1, 0], tf.int32)}
    logits = _c([[0.0, math.log(3.0)], [0.0, 0.0]])
    np.testing.assert_allclose(L.detection_loss(batch, logits).numpy(), [-math.log(0.75), math.log(2.0)], rtol=1e-6)


def test_landmark_loss_counts_only_visible_points_and_visibility_is_euclidean():
    target = np.zeros((1, 21, 2), np.float32)
    pred = np.zeros((1, 21, 2), np.float32)
    pred[0, 0] = (1.0, 1.0)   # visible: 0.5 * (1 + 1)
    pred[0, 1] = (3.0, 0.0)   # invisible: ignored
    vis = np.zeros((1, 21), np.float32)
    vis[0, 0] = 1.0
    batch = {B.LANDMARKS: _c(target), B.LANDMARKS_VISIBLE: _c(vis)}
    np.testing.assert_allclose(L.landmark_loss(batch, _c(pred)).numpy(), [1.0])
    v_pred = np.zeros((1, 21), np.float32)
    v_pred[0, 0] = 0.5  # (0.5 - 1)^2 = 0.25 -> 0.125
    np.testing.assert_allclose(L.visibility_loss(batch, _c(v_pred)).numpy(), [0.125])


def test_pose_loss_in_units_of_pose_scale():
    batch = {B.POSE: _c([[0.0, 0.0, 0.0]])}
    np.testing.assert_allclose(L.pose_loss(90.0)(batch, _c([[90.0, 45.0, 0.0]])).numpy(), [0.5 * (1 + 0.25)])


def test_gender_and_smile_are_eq4_eq5_binary_cross_entropy():
    # Eq. 4 with p_g = P(female) = softmax(...)[0] and g = 1 (female, schema class 0).
    logits = _c([[math.log(4.0), 0.0]])  # p_female = 0.8
    batch = {B.attr("gender"): _c([0], tf.int32), B.attr("smile"): _c([1], tf.int32)}
    terms = {t.name: t for t in L.loss_terms({})}
    np.testing.assert_allclose(terms["gender"].fn(batch, logits).numpy(), [-math.log(0.8)], rtol=1e-6)
    # Eq. 5 with s = 1 and p_s = 0.2.
    np.testing.assert_allclose(terms["smile"].fn(batch, logits).numpy(), [-math.log(0.2)], rtol=1e-6)


def test_eq6_lambda_switch_and_sigma_three_where_none_is_given():
    batch = {B.attr("age"): _c([30.0, 30.0]), B.attr("age_sigma"): _c([0.0, 1.5]),
             B.has_attr("age_sigma"): _c([0.0, 1.0])}
    age = _c([[33.0], [33.0]])
    np.testing.assert_allclose(L.age_loss(0.0)(batch, age).numpy(), [4.5, 4.5], rtol=1e-6)  # 0.5 * 3^2
    expected = [1 - math.exp(-9 / (2 * 9)), 1 - math.exp(-9 / (2 * 1.5 ** 2))]  # sigma 3 (missing), 1.5 (given)
    np.testing.assert_allclose(L.age_loss(1.0)(batch, age).numpy(), expected, rtol=1e-6)
    # Without any sigma key at all, sigma is 3 too.
    np.testing.assert_allclose(L.age_loss(1.0)({B.attr("age"): _c([30.0])}, _c([[33.0]])).numpy(), expected[:1],
                               rtol=1e-6)
    assert L.phase_terms(False).count("age/euclidean") == 1 and "age/gaussian" not in L.phase_terms(False)
    assert "age/gaussian" in L.phase_terms(True) and "age/euclidean" not in L.phase_terms(True)


def _zero_batch(n=2, ids=5):
    return {L.DETECTION: tf.zeros([n], tf.int32), L.HAS_DETECTION: tf.zeros([n]), B.LANDMARKS: tf.zeros([n, 21, 2]),
            B.LANDMARKS_VISIBLE: tf.zeros([n, 21]), B.HAS_LANDMARKS: tf.zeros([n]), B.POSE: tf.zeros([n, 3]),
            B.HAS_POSE: tf.zeros([n]), B.attr("smile"): tf.zeros([n], tf.int32), B.has_attr("smile"): tf.zeros([n]),
            B.attr("gender"): tf.zeros([n], tf.int32), B.has_attr("gender"): tf.zeros([n]),
            B.attr("age"): tf.zeros([n]), B.has_attr("age"): tf.zeros([n]), B.attr("age_sigma"): tf.zeros([n]),
            B.has_attr("age_sigma"): tf.zeros([n]), B.IDENTITY: tf.zeros([n], tf.int32),
            B.HAS_IDENTITY: tf.zeros([n])}


def test_a_missing_label_contributes_exactly_zero_to_eq8():
    """Zero-filled labels (what a mix phase gives a stream without them) stay finite, so
    the trainer's presence mask makes every term exactly 0."""
    rng = np.random.default_rng(0)
    outputs = {"detection_logits": _c(rng.normal(size=(2, 2))), "landmarks": _c(rng.normal(size=(2, 21, 2))),
               "visibility": _c(rng.normal(size=(2, 21))), "pose": _c(rng.normal(size=(2, 3)) * 50),
               "smile_logits": _c(rng.normal(size=(2, 2))), "gender_logits": _c(rng.normal(size=(2, 2))),
               "age": _c(rng.normal(size=(2, 1)) * 30), "identity_logits": _c(rng.normal(size=(2, 5)))}
    batch = _zero_batch()
    total = 0.0
    for term in L.loss_terms(dict(DEFAULT_LOSS_WEIGHTS)):
        values = term.fn(batch, outputs[term.output])
        assert np.all(np.isfinite(values.numpy())), term.name
        total += term.weight * float(tf.reduce_sum(batch[term.presence] * values))
    assert total == 0.0


def test_eq8_weights_are_applied_and_validated():
    terms = {t.name: t for t in L.loss_terms({"landmarks": 5.0, "age": 0.01})}
    assert terms["landmarks"].weight == 5.0 and terms["age/euclidean"].weight == terms["age/gaussian"].weight == 0.01
    assert terms["detection"].weight == 1.0
    assert [t.name for t in L.loss_terms({})] == list(L.TERMS)
    with pytest.raises(ConfigError, match="weights"):
        L.loss_terms({"emotion": 1.0})
    with pytest.raises(ConfigError, match="weights"):
        L.loss_terms({"age": -1.0})


def test_proposals_are_labelled_by_iou():
    faces = np.array([[0.0, 0.0, 10.0, 10.0]])
    props = np.array([[0.0, 0.0, 10.0, 10.0],   # IoU 1: face
                      [0.0, 0.0, 10.0, 16.0],   # IoU 0.625: face
                      [0.0, 0.0, 10.0, 25.0],   # IoU 0.4: neither, but regresses
                      [0.0, 0.0, 10.0, 40.0],   # IoU 0.25: background
                      [50.0, 50.0, 60.0, 60.0]])  # IoU 0: background
    lab = P.label_proposals(props, faces)
    np.testing.assert_allclose(lab["iou"], [1.0, 0.625, 0.4, 0.25, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(lab["detection"], [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(lab["has_detection"], [1, 1, 0, 1, 1])
    np.testing.assert_array_equal(lab["regress"], [1, 1, 1, 0, 0])
    none = P.label_proposals(props, np.zeros((0, 4)))
    assert none["has_detection"].all() and not none["detection"].any() and (none["match"] == -1).all()
    with pytest.raises(ConfigError, match="background_iou"):
        P.label_proposals(props, faces, face_iou=0.3, background_iou=0.35)


def test_points_in_the_proposal_frame_and_padded_crops():
    box = np.array([10.0, 20.0, 30.0, 60.0])
    np.testing.assert_allclose(P.to_box_frame(np.array([[10.0, 20.0], [20.0, 40.0], [40.0, 0.0]]), box),
                               [[0.0, 0.0], [0.5, 0.5], [1.5, -0.5]])
    image = np.full((20, 20, 3), 200, np.uint8)
    crop = P.crop_box(image, np.array([-10.0, -10.0, 10.0, 10.0]), 8)
    assert crop.shape == (8, 8, 3)
    assert crop[0, 0].max() == 0 and crop[-1, -1].min() == 200  # outside: zero padding; inside: the image
    rng = np.random.default_rng(0)
    jit = P.jitter_boxes(np.array([[0.0, 0.0, 10.0, 10.0]]), 50, rng, 0.3, 0.25)
    iou = P.box_iou(jit, np.array([[0.0, 0.0, 10.0, 10.0]]))[:, 0]
    assert jit.shape == (50, 4) and (iou > 0.5).any() and (iou < 0.5).any()
