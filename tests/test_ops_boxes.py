import numpy as np
import pytest

from keras_facemt.errors import ConfigError
from keras_facemt.ops import anchors as anchor_ops
from keras_facemt.ops import boxes as box_ops


def test_tf_order_round_trip_and_single_conversion_point():
    b = np.array([[0.1, 0.2, 0.5, 0.9]], np.float32)
    tf_b = box_ops.to_tf_order(b).numpy()
    np.testing.assert_allclose(tf_b, [[0.2, 0.1, 0.9, 0.5]])
    np.testing.assert_allclose(box_ops.from_tf_order(tf_b).numpy(), b)


def test_iou_known_values():
    a = np.array([[0, 0, 0.5, 0.5], [0, 0, 1, 1]], np.float32)
    b = np.array([[0.25, 0.25, 0.75, 0.75], [0.6, 0.6, 0.9, 0.9], [0, 0, 0, 0]], np.float32)
    got = box_ops.iou(a, b).numpy()
    np.testing.assert_allclose(got[0], [0.0625 / (0.25 + 0.25 - 0.0625), 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(got[1], [0.25, 0.09, 0.0], atol=1e-6)
    # Batched broadcast.
    assert box_ops.iou(a[None].repeat(3, 0), b[None]).shape == (3, 2, 3)


def test_box_encoding_round_trip_and_zero_for_anchor_itself():
    anchors = anchor_ops.ssd_anchors([(4, 4)], [0.3], [0.95, 0.8, 0.65])
    rng = np.random.default_rng(0)
    c = rng.uniform(0.2, 0.8, (anchors.shape[0], 2))
    wh = rng.uniform(0.05, 0.4, (anchors.shape[0], 2))
    boxes = np.concatenate([c - wh / 2, c + wh / 2], -1).astype(np.float32)
    enc = box_ops.encode_boxes(boxes, anchors)
    np.testing.assert_allclose(box_ops.decode_boxes(enc, anchors).numpy(), boxes, atol=1e-5)
    np.testing.assert_allclose(box_ops.encode_boxes(anchors, anchors).numpy(), 0, atol=1e-5)
    # Variances scale the offsets.
    enc2 = box_ops.encode_boxes(boxes, anchors, variances=(0.2, 0.4)).numpy()
    np.testing.assert_allclose(enc2, enc.numpy() / 2, rtol=1e-4, atol=1e-6)


def test_point_encoding_round_trip_batched():
    anchors = anchor_ops.ssd_anchors([(2, 2)], [0.5], [0.8])
    pts = np.random.default_rng(1).uniform(0, 1, (3, 4, 5, 2)).astype(np.float32)
    enc = box_ops.encode_points(pts, anchors)
    assert enc.shape == (3, 4, 5, 2)
    np.testing.assert_allclose(box_ops.decode_points(enc, anchors).numpy(), pts, atol=1e-5)
    # A point at the anchor centre encodes to 0.
    centre = box_ops.corners_to_center(anchors).numpy()[:, None, :2]
    np.testing.assert_allclose(box_ops.encode_points(centre, anchors).numpy(), 0, atol=1e-6)


def test_clip_and_bad_variances():
    np.testing.assert_allclose(box_ops.clip_boxes([[-0.2, 0.1, 1.3, 0.5]]).numpy(), [[0, 0.1, 1, 0.5]])
    with pytest.raises(ConfigError, match="variances"):
        box_ops.encode_boxes([[0, 0, 1, 1]], [[0, 0, 1, 1]], variances=(0.1, -1))


def test_ssd_anchors_layout_sizes_and_ratios():
    a = anchor_ops.ssd_anchors([(3, 3), (1, 1)], [0.2, [0.6, 0.9]], [0.95, 0.8, 0.65])
    assert a.shape == (3 * 3 * 3 + 1 * 2 * 3, 4)
    assert anchor_ops.anchors_per_cell([0.2, [0.6, 0.9]], [0.95, 0.8, 0.65]) == (3, 6)
    c = box_ops.corners_to_center(a).numpy()
    # Level 0 cell (0,0) centres at (1/6, 1/6); the order is y, x, anchor.
    np.testing.assert_allclose(c[0, :2], [1 / 6, 1 / 6], atol=1e-6)
    np.testing.assert_allclose(c[3, :2], [0.5, 1 / 6], atol=1e-6)
    np.testing.assert_allclose(c[:3, 2] / c[:3, 3], [0.95, 0.8, 0.65], rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(c[:3, 2] * c[:3, 3]), 0.2, rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(c[-3:, 2] * c[-3:, 3]), 0.9, rtol=1e-5)
    with pytest.raises(ConfigError, match="one size entry per feature level"):
        anchor_ops.ssd_anchors([(3, 3)], [0.2, 0.3], [1.0])
    with pytest.raises(ConfigError, match="aspect_ratios"):
        anchor_ops.ssd_anchors([(3, 3)], [0.2], [0.0])


def test_rpn_anchors_scales_times_ratios():
    a = anchor_ops.rpn_anchors((2, 3), 16, [16, 32, 64], [0.5, 1, 2], (32, 48))
    assert a.shape == (2 * 3 * 9, 4)
    c = box_ops.corners_to_center(a).numpy()
    np.testing.assert_allclose(c[0, :2], [8 / 48, 8 / 32], atol=1e-6)
    np.testing.assert_allclose(c[:9, 2] * 48 / (c[:9, 3] * 32), [0.5, 1, 2] * 3, rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(c[4, 2] * 48 * c[4, 3] * 32), 32, rtol=1e-5)
    with pytest.raises(ConfigError, match="stride"):
        anchor_ops.rpn_anchors((2, 2), 0, [16], [1], (32, 32))
