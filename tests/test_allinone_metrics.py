"""The evaluation protocols All-in-One reports (Sec. IV), on hand-computed cases.

AFW's yaw rule (round to 15 degrees, within +-15), Table II's |yaw|-binned NME with
mean and std, visibility accuracy, all-pair TAR@FAR and closed-set rank-1 splits.
"""

import math

import numpy as np
import pytest

from keras_facemt.errors import ConfigError
from keras_facemt.metrics.binned_error import error_by_bins
from keras_facemt.metrics.identification import first_image_gallery, identification
from keras_facemt.metrics.pose_error import angle_error
from keras_facemt.metrics.tar_far import all_pair_scores, measurable_fars, tar_at_far
from keras_facemt.metrics.visibility import visibility_accuracy


def test_yaw_error_rounds_the_prediction_to_15_degrees_before_the_15_degree_rule():
    # rounded predictions 0, 15, -45, 90 -> errors 0, 15, 15, 45
    r = angle_error([7.0, 22.0, -40.0, 85.0], [0.0, 30.0, -30.0, 45.0])
    assert r["rounded_mae"] == pytest.approx(18.75)
    assert r["mae"] == pytest.approx(16.25)  # 7, 8, 10, 40
    assert r["within"] == pytest.approx(0.75)
    assert r["faces"] == 4
    raw = angle_error([7.0, 22.0], [0.0, 30.0], step=0, tolerance=7.5)
    assert raw["rounded_mae"] == pytest.approx(7.5) and raw["within"] == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="Received"):
        angle_error([1.0, 2.0], [1.0])


def test_error_by_yaw_bins_gives_table2_means_and_spread():
    errors = [1.0, 2.0, 3.0, 4.0, 5.0, float("nan"), 9.0]
    yaw = [-10.0, 29.9, 30.0, -60.0, 90.0, 50.0, 95.0]  # NaN error and |yaw| > 90 are left out
    r = error_by_bins(errors, yaw)
    assert r["bins"] == {"0-30": {"count": 2, "mean": 1.5}, "30-60": {"count": 1, "mean": 3.0},
                         "60-90": {"count": 2, "mean": 4.5}}
    assert r["mean"] == pytest.approx(3.0)
    assert r["std"] == pytest.approx(math.sqrt(1.5))
    assert r["min_count"] == 1
    empty = error_by_bins([1.0], [10.0])
    assert empty["bins"]["60-90"]["count"] == 0 and math.isnan(empty["bins"]["60-90"]["mean"])
    assert empty["mean"] == 1.0 and empty["std"] == 0.0
    with pytest.raises(ConfigError, match="bins"):
        error_by_bins([1.0], [1.0], bins=((30.0, 0.0),))


def test_visibility_accuracy_overall_per_point_and_baselines():
    scores = [[0.9, 0.2, 0.6], [0.4, 0.1, 0.7]]
    visible = [[1, 0, 0], [1, 0, 1]]
    r = visibility_accuracy(scores, visible, train_visible=[[1, 1, 0], [1, 0, 0], [1, 1, 1]])
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["per_point"] == pytest.approx([0.5, 1.0, 0.5])
    assert r["all_visible_accuracy"] == pytest.approx(0.5)
    assert r["balanced_accuracy"] == pytest.approx(2 / 3)
    assert r["train_majority_accuracy"] == pytest.approx(0.5)  # majority (1, 1, 0)
    masked = visibility_accuracy(scores, visible, defined=[True, False, True])
    assert masked["accuracy"] == pytest.approx(0.5) and math.isnan(masked["per_point"][1])
    with pytest.raises(ConfigError, match="Received"):
        visibility_accuracy([[0.1, 0.2]], [[1, 0, 1]])


def test_all_pairs_feed_tar_at_far_and_unmeasurable_points_are_dropped():
    scores, same = all_pair_scores([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]], [0, 0, 1])
    assert scores == pytest.approx([1.0, 0.0, 0.0]) and same.tolist() == [True, False, False]
    assert measurable_fars((1e-2, 1e-3), 150) == (1e-2,)
    # 100 impostors at 0.00 .. 0.99; FAR 0.01 allows one above the threshold (0.98)
    imp = np.arange(100) / 100.0
    gen = np.array([0.985, 0.5, 0.995, 0.999])
    r = tar_at_far(np.concatenate([imp, gen]), np.r_[np.zeros(100), np.ones(4)], fars=(1e-2,))
    assert r["0.01"] == pytest.approx(0.75)
    with pytest.raises(ConfigError):
        all_pair_scores([[1.0, 0.0]], [0])


def test_first_image_gallery_gives_closed_set_rank1():
    ids = np.array([5, 3, 5, 3, 7])
    gallery, probes = first_image_gallery(ids)
    assert gallery.tolist() == [0, 1, 4] and probes.tolist() == [2, 3]
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [1.0, 0.2], [0.7, 0.7]])
    r = identification(emb[probes], ids[probes], emb[gallery], ids[gallery])
    assert r["rank1"] == pytest.approx(0.5)  # probe 2 finds 5 first, probe 3 finds 5 before 3
    with pytest.raises(ConfigError, match="two faces"):
        first_image_gallery([1, 2, 3])


def test_epsilon_error_is_lap2015s_gaussian_error():
    from keras_facemt.metrics.regression_error import epsilon_error

    # errors 0 and 3 with sigma 3: 1 - exp(0) = 0 and 1 - exp(-1/2)
    assert epsilon_error([20.0, 33.0], [20.0, 30.0], 3.0) == pytest.approx((1 - math.exp(-0.5)) / 2)
    assert epsilon_error([10.0], [12.0], [2.0]) == pytest.approx(1 - math.exp(-0.5))
    with pytest.raises(ConfigError, match="sigma"):
        epsilon_error([1.0], [1.0], 0.0)


def test_evaluate_scores_pose_by_the_afw_rule_and_landmarks_in_yaw_bins():
    """``facemt evaluate``'s declared-output metrics on a dataset with points and pose (AFLW-like)."""
    from keras_facemt.configs.outputs import OutputSpec
    from keras_facemt.data import batch as B
    from keras_facemt.evaluation.declared_metrics import evaluate_declared_outputs
    from keras_facemt.configs.outputs import ServingSpec

    truth = np.zeros((3, 5, 2))
    truth[:, 0], truth[:, 1] = (0.3, 0.4), (0.7, 0.4)  # mtfl5 eyes 0.4 apart
    truth[:, 2:] = (0.5, 0.6)
    pred = truth.copy()
    pred[0, :, 0] += 0.04  # every point 0.04 off: NME 0.1
    pred[2, :, 0] += 0.08  # NME 0.2
    pose_true = np.array([[10.0, 0, 0], [40.0, 0, 0], [-70.0, 0, 0]])
    pose_pred = np.array([[22.0, 0, 0], [40.0, 0, 0], [-40.0, 0, 0]])  # rounded 15 / 45 / -45: errors 5, 5, 25
    labels = {B.LANDMARKS: truth, B.HAS_LANDMARKS: np.ones(3), B.POSE: pose_true, B.HAS_POSE: np.ones(3)}
    spec = ServingSpec({"landmarks": OutputSpec("landmarks", task="landmarks", scheme="mtfl5"),
                        "pose": OutputSpec("pose", task="pose")})
    r = evaluate_declared_outputs(spec, {"landmarks": pred, "pose": pose_pred}, labels)
    lm, pose = r["landmarks"], r["pose"]
    assert lm["nme_yaw_0-30"] == pytest.approx(0.1) and lm["nme_yaw_30-60"] == pytest.approx(0.0)
    assert lm["nme_yaw_60-90"] == pytest.approx(0.2) and lm["faces_yaw_60-90"] == 1
    assert lm["nme_yaw_bin_mean"] == pytest.approx(0.1) and lm["nme_yaw_bin_std"] == pytest.approx(math.sqrt(2 / 300))
    assert pose["yaw_within_15_afw_rule"] == pytest.approx(2 / 3)
    assert pose["yaw_rounded_mae"] == pytest.approx(35 / 3) and pose["yaw_mae"] == pytest.approx(14.0)
    del labels[B.POSE]
    assert "nme_yaw_bin_mean" not in evaluate_declared_outputs(spec, {"landmarks": pred, "pose": pose_pred},
                                                                labels)["landmarks"]
