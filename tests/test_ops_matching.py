import numpy as np
import pytest

from keras_facemt.errors import ConfigError
from keras_facemt.ops import matching

ANCHORS = np.array(
    [[0, 0, 0.5, 0.5], [0.5, 0, 1, 0.5], [0, 0.5, 0.5, 1], [0.5, 0.5, 1, 1], [0.1, 0.1, 0.45, 0.45],
     [0.4, 0.4, 0.6, 0.6]], np.float32)


def test_ssd_matching_threshold_and_forced_best():
    # Image 0: one face overlapping anchors 0 and 4 well; a tiny face only forced.
    gt = np.array([[[0.05, 0.05, 0.5, 0.5], [0.47, 0.47, 0.53, 0.53], [0, 0, 0, 0]],
                   [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]], np.float32)
    mask = np.array([[1, 1, 0], [0, 0, 0]], np.float32)
    m = matching.match_anchors(gt, mask, ANCHORS, iou_threshold=0.5)
    idx = m.matched_index.numpy()
    assert idx[0, 0] == 0 and idx[0, 4] == 0
    assert idx[0, 5] == 1  # forced: IoU 0.09 < threshold, but it is the face's best
    assert (idx[0, [1, 2, 3]] == -1).all()
    assert (idx[1] == -1).all() and not m.positive.numpy()[1].any()
    # Without forcing the tiny face gets nothing.
    m2 = matching.match_anchors(gt, mask, ANCHORS, iou_threshold=0.5, force_best=False)
    assert (m2.matched_index.numpy()[0] != 1).all()
    # Padded ground truths never match even if they overlap.
    gt_pad = gt.copy()
    gt_pad[0, 2] = [0.5, 0.5, 1, 1]
    assert (matching.match_anchors(gt_pad, mask, ANCHORS, 0.5).matched_index.numpy()[0] != 2).all()
    with pytest.raises(ConfigError, match="iou_threshold"):
        matching.match_anchors(gt, mask, ANCHORS, iou_threshold=0.0)


def test_top_k_matching_takes_k_anchors_per_face():
    gt = np.array([[[0.4, 0.4, 0.6, 0.6], [0.6, 0.6, 0.95, 0.95]]], np.float32)
    mask = np.ones((1, 2), np.float32)
    m = matching.top_k_match(gt, mask, ANCHORS, k=3)
    idx = m.matched_index.numpy()[0]
    assert idx[5] == 0 and idx[3] == 1
    counts = np.bincount(idx[idx >= 0], minlength=2)
    assert counts.sum() <= 6 and counts[0] >= 1 and counts[1] >= 1
    # Each anchor shared by two faces goes to the one it overlaps most.
    ious = np.asarray(matching.box_ops.iou(gt[0], ANCHORS))
    for a in np.where(idx >= 0)[0]:
        assert ious[idx[a], a] >= ious[1 - idx[a], a]
        assert ious[idx[a], a] > 0
    with pytest.raises(ConfigError):
        matching.top_k_match(gt, mask, ANCHORS, k=0)


def test_gather_matched():
    vals = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    idx = np.array([[2, -1], [0, 1]], np.int32)
    got = matching.gather_matched(vals, idx).numpy()
    np.testing.assert_array_equal(got[0, 0], vals[0, 2])
    np.testing.assert_array_equal(got[1, 1], vals[1, 1])


def test_hard_negatives_keep_three_per_positive_highest_scores():
    scores = np.array([[0.9, 0.1, 0.8, 0.7, 0.2, 0.6, 0.3, 0.95],
                       [0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.9, 0.8]], np.float32)
    pos = np.zeros((2, 8), bool)
    pos[0, 7] = True  # one positive: 3 negatives, the 3 highest non-positive scores
    neg = matching.hard_negative_mask(scores, pos, ratio=3).numpy()
    assert set(np.where(neg[0])[0]) == {0, 2, 3}
    assert not neg[1].any()  # no positives, no minimum: nothing mined
    neg = matching.hard_negative_mask(scores, pos, ratio=3, min_negatives=2).numpy()
    assert set(np.where(neg[1])[0]) == {6, 7}
    assert not (neg & pos).any()
    # More requested than available: all candidates.
    pos2 = np.zeros((2, 8), bool)
    pos2[:, :3] = True
    neg = matching.hard_negative_mask(scores, pos2, ratio=3).numpy()
    assert neg.sum(1).tolist() == [5, 5]
