import numpy as np

from keras_facemt.ops.heatmaps import heatmap_expected_points, point_pixel_index, render_landmark_heatmaps


def test_point_pixel_index_hand_computed():
    pts = np.array([[[0.0, 0.0], [0.99, 0.0], [0.5, 0.26], [1.0, 1.0], [-0.2, 0.6]]], np.float32)
    idx = np.asarray(point_pixel_index(pts, 4, 8))
    # (col, row): (0, 0), (7, 0), (4, 1), clamped (7, 3), clamped (0, 2).
    assert idx.tolist() == [[0, 7, 12, 31, 16]]


def test_heatmap_expected_points_reads_back_a_peak():
    logits = np.full((1, 4, 8, 2), -50.0, np.float32)
    logits[0, 1, 4, 0] = 50.0  # pixel (col 4, row 1): centre (4.5 / 8, 1.5 / 4)
    logits[0, :, :, 1] = 0.0  # uniform: the map's centre
    pts = np.asarray(heatmap_expected_points(logits))
    np.testing.assert_allclose(pts[0], [[4.5 / 8, 1.5 / 4], [0.5, 0.5]], atol=1e-5)


def test_render_then_read_back_is_close():
    pts = np.array([[[0.3, 0.7]]], np.float32)
    maps = np.asarray(render_landmark_heatmaps(pts, 32, 2.0))
    back = np.asarray(heatmap_expected_points(np.log(maps + 1e-6) * 5.0))
    np.testing.assert_allclose(back[0, 0], pts[0, 0], atol=1.0 / 32)
