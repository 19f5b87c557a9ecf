import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.ops import nms


def test_batched_nms_per_image_padded_with_counts():
    boxes = np.array([
        [[0.1, 0.1, 0.4, 0.4], [0.11, 0.1, 0.41, 0.4], [0.6, 0.6, 0.9, 0.9], [0.0, 0.0, 0.1, 0.1]],
        [[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.6, 0.6], [0.6, 0.6, 0.9, 0.9], [0.2, 0.2, 0.3, 0.3]],
    ], np.float32)
    scores = np.array([[0.9, 0.95, 0.7, 0.2], [0.1, 0.2, 0.3, 0.4]], np.float32)
    det = nms.batched_nms(boxes, scores, max_detections=3, iou_threshold=0.5, score_threshold=0.5)
    assert det.boxes.shape == (2, 3, 4) and det.scores.shape == (2, 3)
    assert det.num_detections.numpy().tolist() == [2, 0]
    np.testing.assert_array_equal(det.indices.numpy()[0, :2], [1, 2])  # overlap suppressed, descending
    np.testing.assert_allclose(det.scores.numpy()[0], [0.95, 0.7, 0.0])
    np.testing.assert_allclose(det.boxes.numpy()[1], 0.0)  # image without faces: well-formed zeros
    assert det.valid.numpy().tolist() == [[True, True, False], [False, False, False]]
    lms = np.arange(2 * 4 * 5 * 2, dtype=np.float32).reshape(2, 4, 5, 2) + 1
    got = nms.gather_detections(lms, det).numpy()
    np.testing.assert_array_equal(got[0, 0], lms[0, 1])
    np.testing.assert_array_equal(got[0, 2], 0)


def test_batched_nms_inside_tf_function_and_bad_args():
    fn = tf.function(lambda b, s: nms.batched_nms(b, s, 2, 0.5, 0.1).num_detections)
    b = tf.random.uniform([3, 10, 2])
    boxes = tf.concat([b, b + 0.1], -1)
    assert fn(boxes, tf.random.uniform([3, 10])).shape == (3,)
    with pytest.raises(ConfigError, match="max_detections"):
        nms.batched_nms(boxes, tf.ones([3, 10]), max_detections=0)
    with pytest.raises(ConfigError, match="iou_threshold"):
        nms.batched_nms(boxes, tf.ones([3, 10]), iou_threshold=1.5)
