import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.ops import roi


def test_gather_path_matches_crop_and_resize():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(2, 9, 11, 3)).astype(np.float32)
    rois = np.array([[[0.1, 0.2, 0.6, 0.9], [-0.2, -0.1, 0.5, 0.4]],
                     [[0.3, 0.3, 1.2, 0.8], [0.0, 0.0, 1.0, 1.0]]], np.float32)
    a = roi.crop_rois(feats, rois, (5, 4), "crop_and_resize").numpy()
    b = roi.crop_rois(feats, rois, (5, 4), "gather").numpy()
    assert a.shape == (2, 2, 5, 4, 3)
    np.testing.assert_allclose(a, b, atol=1e-5)
    # A full-image ROI at full size reproduces the map.
    full = roi.crop_rois(feats, rois[:, 1:], (9, 11), "gather").numpy()
    np.testing.assert_allclose(full[1, 0], feats[1], atol=1e-5)


def test_single_bin_and_symbolic_n():
    feats = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    got = roi.crop_rois(feats, [[[0, 0, 1, 1]]], (1, 1), "gather").numpy()
    np.testing.assert_allclose(got.ravel(), [7.5])
    fn = tf.function(lambda f, r: roi.crop_rois(f, r, (2, 2), "gather"),
                     input_signature=[tf.TensorSpec([None, 4, 4, 1]), tf.TensorSpec([None, None, 4])])
    assert fn(feats, np.zeros((1, 3, 4), np.float32)).shape == (1, 3, 2, 2, 1)


def test_bilinear_sample_values_and_outside_zero():
    feats = np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1)
    pts = np.array([[[0.5, 0.5], [2, 1], [3.5, 0], [-0.1, 0]]], np.float32)
    got = roi.bilinear_sample(feats, pts).numpy()[0, :, 0]
    np.testing.assert_allclose(got, [2.0, 5.0, 0.0, 0.0])


def test_boxes_around_points_and_errors():
    pts = np.array([[[[0.5, 0.5]]]], np.float32)
    face = np.array([[[0.3, 0.2, 0.7, 0.8]]], np.float32)
    np.testing.assert_allclose(roi.boxes_around_points(pts, face, 0.5).numpy().ravel(),
                               [0.4, 0.35, 0.6, 0.65], atol=1e-6)
    with pytest.raises(ConfigError, match="method"):
        roi.crop_rois(np.zeros((1, 2, 2, 1)), np.zeros((1, 1, 4)), (2, 2), "bogus")
    with pytest.raises(ConfigError, match="output_size"):
        roi.crop_rois(np.zeros((1, 2, 2, 1)), np.zeros((1, 1, 4)), (0, 2))
