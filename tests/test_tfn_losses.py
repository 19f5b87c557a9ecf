import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.models import registry
from keras_facemt.models.tfn import losses
from keras_facemt.models.tfn import model as tfn_model
from keras_facemt.models.tfn.landmark_encoding import encode_landmarks

RNG = np.random.default_rng(0)
FACES = np.array([[[0.1, 0.1, 0.4, 0.5], [0.5, 0.4, 0.9, 0.9]]], np.float32)


def _batch(has_lm=(1.0, 1.0), has_gender=(1.0, 1.0), gender=(0, 1)):
    lms = RNG.uniform(0, 1, (1, 2, 68, 2)).astype(np.float32)
    return {
        "bbox": FACES, "face_mask": np.ones((1, 2), np.float32), "has_boxes": np.ones(1, np.float32),
        "landmarks": lms, "landmarks_visible": np.ones((1, 2, 68), np.float32),
        "has_landmarks": np.array([has_lm], np.float32),
        "attr/gender": np.array([gender], np.int32), "has_attr/gender": np.array([has_gender], np.float32),
    }


def _samples():
    # Each face as a sample, plus a background ROI that is never a face sample.
    return np.concatenate([FACES, np.array([[[0.0, 0.0, 0.05, 0.05]]], np.float32)], axis=1)


def _landmark_pred(width=136):
    return tf.constant(np.concatenate([_samples(), RNG.normal(size=(1, 3, width)).astype(np.float32)], -1))


def _attribute_pred():
    return tf.constant(np.concatenate([_samples(), RNG.normal(size=(1, 3, 106)).astype(np.float32)], -1))


def test_landmark_loss_of_an_unlabelled_face_is_exactly_zero():
    fn = losses.landmark_loss()
    pred = _landmark_pred()
    none = _batch(has_lm=(0.0, 0.0))
    assert float(fn(none, pred)[0]) == 0.0
    one = _batch(has_lm=(1.0, 0.0))
    other = dict(one, landmarks=one["landmarks"].copy())
    other["landmarks"][0, 1] = 123.0  # the unlabelled face's (garbage) points do not matter
    a, b = float(fn(one, pred)[0]), float(fn(other, pred)[0])
    assert a > 0 and a == b
    with tf.GradientTape() as tape:
        tape.watch(pred)
        loss = fn(one, pred)
    grad = tape.gradient(loss, pred).numpy()[0]
    assert np.all(grad[1:] == 0) and np.any(grad[0, 4:] != 0)  # only face 0's sample learns


def test_landmark_loss_is_zero_at_the_eq5_target():
    b = _batch()
    target = encode_landmarks(b["landmarks"], FACES).numpy().reshape(1, 2, 136)
    pred = np.concatenate([_samples(), np.concatenate([target, np.zeros((1, 1, 136), np.float32)], 1)], -1)
    assert float(losses.landmark_loss()(b, tf.constant(pred))[0]) == pytest.approx(0.0, abs=1e-6)


def test_heatmap_landmark_loss_respects_indicators():
    fn = losses.landmark_loss(heatmap_size=4)
    pred = _landmark_pred(4 * 4 * 68)
    assert float(fn(_batch(has_lm=(0.0, 0.0)), pred)[0]) == 0.0
    assert float(fn(_batch(), pred)[0]) > 0


def test_attribute_loss_of_a_missing_label_is_exactly_zero_never_a_negative():
    fn = losses.attribute_loss("gender")
    pred = _attribute_pred()
    assert float(fn(_batch(has_gender=(0.0, 0.0)), pred)[0]) == 0.0
    a = float(fn(_batch(has_gender=(1.0, 0.0), gender=(0, 0)), pred)[0])
    b = float(fn(_batch(has_gender=(1.0, 0.0), gender=(0, 1)), pred)[0])
    assert a > 0 and a == b
    # With only face 0 labelled, the loss is face 0's own cross-entropy (not averaged with a zero).
    logits = pred.numpy()[0, 0, 4 + 101:4 + 103]
    ce = -np.log(np.exp(logits[0]) / np.exp(logits).sum())
    assert a == pytest.approx(ce, rel=1e-5)


def test_rpn_positives_are_each_faces_top3_anchors():
    anchors = np.array([[0.1, 0.1, 0.4, 0.5], [0.12, 0.1, 0.4, 0.5], [0.1, 0.1, 0.38, 0.5], [0.1, 0.15, 0.4, 0.5],
                        [0.6, 0.0, 0.9, 0.2]], np.float32)
    b = _batch()
    b["face_mask"] = np.array([[1.0, 0.0]], np.float32)
    fns = losses.rpn_losses(anchors, min_negatives=1)
    logits = tf.zeros((1, 5, 2))
    # 3 positives, 1 negative (the far anchor), each CE = log 2; / 3 positives.
    assert float(fns["cls"](b, logits)[0]) == pytest.approx(4 * np.log(2) / 3, rel=1e-5)
    # Anchor 0 equals the face: zero box loss there; the others need small shifts.
    assert float(fns["box"](b, tf.zeros((1, 5, 4)))[0]) > 0


def test_detection_loss_uses_iou_above_half():
    b = _batch()
    rois = np.array([[[0.1, 0.1, 0.4, 0.5], [0.1, 0.1, 0.4, 0.2], [0.5, 0.4, 0.9, 0.9], [0, 0, 0, 0]]], np.float32)
    logits = np.zeros((1, 4, 2), np.float32)
    logits[0, :, 1] = [10.0, -10.0, 10.0, 10.0]  # right on faces and background; padding ignored
    pred = tf.constant(np.concatenate([rois, logits, np.zeros((1, 4, 4), np.float32)], -1))
    fns = losses.detection_losses(min_negatives=4)
    assert float(fns["cls"](b, pred)[0]) < 1e-3
    assert float(fns["box"](b, pred)[0]) == pytest.approx(0.0, abs=1e-6)
    assert set(losses.loss_functions(np.zeros((5, 4), np.float32))) == set(losses.TERM_NAMES)


def test_rpn_iou_matcher_is_the_faster_rcnn_rule_not_top3():
    # Anchors 0-3 all overlap face 0 by IoU > 0.7: [42]'s rule takes all four, top-3 three.
    anchors = np.array([[0.1, 0.1, 0.4, 0.5], [0.12, 0.1, 0.4, 0.5], [0.1, 0.1, 0.38, 0.5], [0.1, 0.15, 0.4, 0.5],
                        [0.6, 0.0, 0.9, 0.2]], np.float32)
    b = _batch()
    b["face_mask"] = np.array([[1.0, 0.0]], np.float32)
    logits = tf.zeros((1, 5, 2))
    iou = losses.rpn_losses(anchors, min_negatives=1, matcher="iou")
    assert float(iou["cls"](b, logits)[0]) == pytest.approx(5 * np.log(2) / 4, rel=1e-5)
    top3 = losses.rpn_losses(anchors, min_negatives=1, matcher="top_k")
    assert float(top3["cls"](b, logits)[0]) == pytest.approx(4 * np.log(2) / 3, rel=1e-5)
    # A small face overlapping no anchor by 0.7 gets only its best anchor under [42]'s rule.
    small = dict(b, bbox=np.array([[[0.1, 0.1, 0.25, 0.3], [0, 0, 0, 0]]], np.float32))
    # (1 positive + 3 hard negatives) / 1 against (3 positives + the 2 remaining candidates) / 3.
    assert float(iou["cls"](small, logits)[0]) == pytest.approx(4 * np.log(2) / 1, rel=1e-5)
    assert float(top3["cls"](small, logits)[0]) == pytest.approx(5 * np.log(2) / 3, rel=1e-5)
    with pytest.raises(ConfigError, match="matcher='ssd'"):
        losses.rpn_losses(anchors, matcher="ssd")


def test_experiment_rpn_matcher_reaches_the_loss_terms():
    from keras_facemt.models.tfn import job
    from keras_facemt.models.tfn.experiments import get_experiment

    cfg = registry.get_system("tfn").config("tiny")
    with pytest.raises(ConfigError, match="rpn_matcher"):
        get_experiment("tfn_smoke", rpn_matcher="best")
    anchors = tfn_model.anchors_of(cfg)
    b = _batch()
    logits = tf.zeros((1, anchors.shape[0], 2))
    rpn = {m: next(t for t in job.loss_terms(cfg, m) if t.name == "rpn/cls") for m in ("top_k", "iou")}
    values = {m: float(t.fn(b, logits)[0]) for m, t in rpn.items()}
    assert values["top_k"] != pytest.approx(values["iou"])
