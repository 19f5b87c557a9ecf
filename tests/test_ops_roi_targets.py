import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.ops import boxes as box_ops
from keras_facemt.ops.box_jitter import random_shake, shake_boxes
from keras_facemt.ops.roi_targets import assign_roi_targets, gather_roi_targets

GT = np.array([[[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0, 0, 0, 0]]], np.float32)
MASK = np.array([[1.0, 1.0, 0.0]], np.float32)


def test_roi_targets_hand_computed_ious_and_thresholds():
    rois = np.array([[
        [0.0, 0.0, 0.5, 0.5],    # IoU 1 with face 0
        [0.0, 0.0, 0.5, 0.25],   # IoU 0.125 / 0.25 = 0.5 exactly with face 0: not > 0.5
        [0.0, 0.0, 0.5, 0.375],  # IoU 0.1875 / 0.25 = 0.75 with face 0
        [0.5, 0.5, 1.0, 0.9],    # IoU 0.2 / 0.25 = 0.8 with face 1
        [0.3, 0.3, 0.3, 0.3],    # empty (padding)
    ]], np.float32)
    det = assign_roi_targets(rois, GT, MASK, 0.5)
    np.testing.assert_allclose(det.max_iou.numpy()[0], [1.0, 0.5, 0.75, 0.8, 0.0], atol=1e-6)
    assert det.positive.numpy()[0].tolist() == [True, False, True, True, False]
    assert det.valid.numpy()[0].tolist() == [True, True, True, True, False]
    assert det.matched_index.numpy()[0].tolist() == [0, 0, 0, 1, 0]
    face = assign_roi_targets(rois, GT, MASK, 0.7)
    assert face.positive.numpy()[0].tolist() == [True, False, True, True, False]
    strict = assign_roi_targets(rois, GT, MASK, 0.76)
    assert strict.positive.numpy()[0].tolist() == [True, False, False, True, False]
    labels = gather_roi_targets(np.array([[7, 9, 11]]), det).numpy()
    assert labels[0].tolist() == [7, 7, 7, 9, 7]


def test_roi_targets_ignore_padded_ground_truth():
    # The padded face (0, 0, 0, 0) must never be matched, even by a ROI it "contains".
    rois = np.array([[[0.0, 0.0, 0.01, 0.01]]], np.float32)
    t = assign_roi_targets(rois, GT, np.array([[0.0, 0.0, 0.0]], np.float32), 0.0)
    assert not t.positive.numpy().any() and t.max_iou.numpy()[0, 0] == 0.0


def test_roi_targets_bad_threshold():
    with pytest.raises(ConfigError, match="iou_threshold"):
        assign_roi_targets(GT, GT, MASK, 1.0)


def test_shake_boxes_hand_computed():
    box = np.array([[0.2, 0.2, 0.6, 0.4]], np.float32)  # centre (0.4, 0.3), size (0.4, 0.2)
    out = shake_boxes(box, np.array([[1.0, -1.0, 1.0, 0.0]], np.float32), shift=0.1, scale=0.5).numpy()
    # cx + 0.1 * 0.4, cy - 0.1 * 0.2, w * 1.5, h unchanged.
    np.testing.assert_allclose(out, [[0.44 - 0.3, 0.28 - 0.1, 0.44 + 0.3, 0.28 + 0.1]], atol=1e-6)
    same = shake_boxes(box, np.zeros((1, 4), np.float32)).numpy()
    np.testing.assert_allclose(same, box, atol=1e-6)


def test_random_shake_is_slight_seeded_and_copies():
    boxes = np.tile(np.array([[[0.2, 0.2, 0.6, 0.6]]], np.float32), (2, 3, 1))
    a = random_shake(boxes, [1, 2], shift=0.05, scale=0.1, copies=4).numpy()
    b = random_shake(boxes, [1, 2], shift=0.05, scale=0.1, copies=4).numpy()
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 12, 4)
    ious = box_ops.iou(tf.constant(a[:, :, None]), tf.constant(boxes[:, :1][:, None])).numpy().reshape(-1)
    # Slight: every copy stays a landmark/attribute sample (IoU > 0.7) yet moves.
    assert ious.min() > 0.7 and ious.max() < 1.0
    with pytest.raises(ConfigError, match="shift"):
        shake_boxes(boxes, np.zeros((2, 3, 4)), shift=0.6)
