"""Host-side metrics checked against hand-computed cases."""

import numpy as np
import pytest

from keras_facemt.data import schema
from keras_facemt.errors import ConfigError
from keras_facemt.metrics import classification as cls
from keras_facemt.metrics import landmark_error as le
from keras_facemt.metrics import parsing_fscore as pf
from keras_facemt.metrics.detection_ap import average_precision, average_precision_from_pr
from keras_facemt.metrics.detection_roc import detection_roc
from keras_facemt.metrics.regression_error import MeanAbsoluteErrorEvaluator, mean_absolute_error
from keras_facemt.metrics.verification import verification_accuracy

# An mtfl5 face: eye centres 0.4 apart.
MTFL = np.array([[[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]]])


# --------------------------------------------------------------------- landmarks
def test_mtfl5_nme_hand_computed():
    pred = MTFL.copy()
    pred[0, 0, 0] += 0.04  # 0.04 / 0.4 = 10% on the left eye
    pred[0, 2, 1] += 0.02  # 5% on the nose
    per_face = le.nme_per_face(pred, MTFL, "mtfl5")
    np.testing.assert_allclose(per_face, [(0.10 + 0.05) / 5])
    assert le.nme(pred, MTFL, "mtfl5") == pytest.approx(0.03)


def test_nme_ignores_invisible_points():
    pred = MTFL.copy()
    pred[0, 4] += 0.4  # huge error on an invisible point
    pred[0, 1, 0] += 0.04
    vis = np.array([[1, 1, 1, 1, 0]])
    assert le.nme(pred, MTFL, "mtfl5", visible=vis) == pytest.approx(0.1 / 4)


def test_ibug68_inter_ocular_vs_inter_pupil_vs_box():
    target = np.zeros((1, 68, 2))
    target[0, 36] = [0.2, 0.5]  # left eye outer corner
    target[0, 45] = [0.8, 0.5]  # right eye outer corner
    target[0, 37:42] = [0.3, 0.5]
    target[0, 42:45] = [0.7, 0.5]
    target[0, 46:48] = [0.7, 0.5]
    target[0, 0] = [0.0, 0.0]
    target[0, 8] = [0.5, 1.0]
    pred = target.copy()
    pred[:, :, 0] += 0.06
    # Outer corners 0.6 apart; eye centres: mean of 6 points each.
    left_c = target[0, 36:42].mean(0)
    right_c = target[0, 42:48].mean(0)
    pupil = np.linalg.norm(left_c - right_c)
    assert le.nme(pred, target, "ibug68", normalization="inter_ocular") == pytest.approx(0.06 / 0.6)
    assert le.nme(pred, target, "ibug68", normalization="inter_pupil") == pytest.approx(0.06 / pupil)
    # Points span x in [0, 0.8], y in [0, 1]: sqrt(0.8 * 1.0).
    assert le.nme(pred, target, "ibug68", normalization="box") == pytest.approx(0.06 / np.sqrt(0.8))
    box = np.array([[0.0, 0.0, 0.5, 0.5]])
    assert le.nme(pred, target, "ibug68", normalization="box", boxes=box) == pytest.approx(0.06 / 0.5)


def test_failure_rate_ced_and_auc():
    per_face = np.array([0.02, 0.05, 0.08, 0.2])
    assert le.failure_rate(per_face, 0.1) == 0.25
    xs, ys = le.ced_curve(per_face, cutoff=0.1, num_bins=10)
    np.testing.assert_allclose(xs[[2, 5, 8]], [0.02, 0.05, 0.08])
    np.testing.assert_allclose(ys[[0, 2, 5, 8, 10]], [0, 0.25, 0.5, 0.75, 0.75])
    # Perfect predictions: AUC 1; all errors beyond the cut-off: AUC 0.
    assert le.ced_auc(np.zeros(3), 0.1) == pytest.approx(1.0)
    assert le.ced_auc(np.full(3, 0.5), 0.1) == 0.0
    # Uniform errors on [0, 0.1]: the CED is the diagonal, AUC 0.5.
    assert le.ced_auc(np.linspace(0, 0.1, 10001), 0.1) == pytest.approx(0.5, abs=1e-3)


def test_landmark_evaluator_streams_and_reports_per_point():
    ev = le.LandmarkErrorEvaluator("mtfl5")
    pred = MTFL.copy()
    pred[0, 3, 0] += 0.08  # 20%: a failure on the left mouth corner
    ev.update(pred, MTFL)
    ev.update(MTFL, MTFL)
    ev.update(pred, MTFL, weights=[0])  # unlabelled face: skipped
    r = ev.result()
    assert r["count"] == 2
    assert r["nme"] == pytest.approx((0.2 / 5) / 2)
    assert r["per_point_nme"]["mouth_left"] == pytest.approx(0.1)
    assert r["per_point_failure_rate"]["mouth_left"] == 0.5
    assert r["per_point_failure_rate"]["nose"] == 0.0
    assert r["failure_rate"] == 0.0


def test_landmark_bad_input():
    with pytest.raises(ConfigError, match="normalization='pixels'"):
        le.nme(MTFL, MTFL, "mtfl5", normalization="pixels")
    with pytest.raises(ConfigError, match=r"\[batch, 5, 2\]"):
        le.nme(MTFL[:, :4], MTFL[:, :4], "mtfl5")


# --------------------------------------------------------------------- parsing
def _ids(*names):
    return [schema.PARSING_CLASSES.index(n) for n in names]


def test_parsing_fscores_hand_computed():
    bg, skin, le_, re_, nose, ul, im = _ids("background", "face_skin", "left_eye", "right_eye", "nose",
                                             "upper_lip", "inner_mouth")
    target = np.array([[[bg, skin, le_, re_, nose, ul, im, bg]]])
    pred = np.array([[[bg, skin, re_, re_, nose, im, im, nose]]])
    r = pf.parsing_fscores(pred, target)
    # Left eye: 0 TP, 1 FN -> 0. Right eye: 1 TP, 1 FP -> 2/3. Eyes merged: 2 TP -> 1.
    assert r["per_class"]["left_eye"] == 0.0
    assert r["per_class"]["right_eye"] == pytest.approx(2 / 3)
    assert r["table2"]["eyes"] == 1.0
    # Nose: 1 TP, 1 FP -> 2/3. Mouth-All: upper lip predicted as inner mouth still mouth -> 1.
    assert r["table2"]["nose"] == pytest.approx(2 / 3)
    assert r["mouth_all"] == 1.0
    assert r["table2"]["inner_mouth"] == pytest.approx(2 / 3)  # 1 TP, 1 FP
    assert r["table2"]["upper_lip"] == 0.0
    # Overall: eyes (2,0,0) + nose (1,1,0) + inner (1,1,0) + upper (0,0,1) -> TP 4, FP 2, FN 1.
    assert r["overall"] == pytest.approx(8 / 11)
    # Brows never occur: undefined, not zero.
    assert np.isnan(r["table2"]["brows"])


def test_parsing_evaluator_accumulates_pixels_not_images():
    ev = pf.ParsingFScoreEvaluator()
    nose = _ids("nose")[0]
    big_t = np.full((1, 4, 4), nose)
    ev.update(big_t, big_t)  # 16 correct nose pixels
    small_t = np.array([[[nose, 0]]])
    small_p = np.array([[[0, 0]]])
    ev.update(small_p, small_t)  # 1 missed nose pixel
    ev.update(np.full((1, 1, 2), nose), np.zeros((1, 1, 2), int), weights=[0])  # skipped
    r = ev.result()
    assert r["count"] == 2
    assert r["table2"]["nose"] == pytest.approx(32 / 33)
    logits = np.zeros((1, 1, 2, schema.NUM_PARSING_CLASSES))
    logits[..., nose] = 1.0
    ev.reset()
    ev.update(logits, np.full((1, 1, 2), nose))
    assert ev.result()["table2"]["nose"] == 1.0


def test_parsing_bad_input():
    with pytest.raises(ConfigError, match="shapes differ"):
        pf.parsing_fscores(np.zeros((1, 2, 2)), np.zeros((1, 2, 3)))
    with pytest.raises(ConfigError, match="target class ids"):
        pf.parsing_fscores(np.zeros((1, 2, 2)), np.full((1, 2, 2), 11))


# --------------------------------------------------------------------- classification, regression
def test_accuracy_and_confusion_matrix():
    pred = np.array([0, 1, 1, 2])
    target = np.array([0, 1, 2, 2])
    cm = cls.confusion_matrix(pred, target, 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 1, 0], [0, 1, 1]])
    assert cls.accuracy(pred, target, 3) == 0.75
    logits = np.eye(3)[pred]
    assert cls.accuracy(logits, target, 3, weights=[1, 1, 0, 1]) == 1.0
    ev = cls.ClassificationEvaluator(3, ("a", "b", "c"))
    ev.update(logits, target)
    r = ev.result()
    assert r["accuracy"] == 0.75 and r["per_class_recall"]["c"] == 0.5 and r["confusion_matrix"][2] == [0, 1, 1]
    assert cls.majority_accuracy([2, 2, 1], target) == 0.5
    with pytest.raises(ConfigError, match=r"pred class ids must be in \[0, 3\)"):
        cls.accuracy([3], [0], 3)


def test_age_mae():
    assert mean_absolute_error([20, 30, 40], [25, 30, 50], weights=[1, 1, 0]) == 2.5
    ev = MeanAbsoluteErrorEvaluator()
    ev.update([20, 30], [25, 30])
    ev.update([40], [50])
    assert ev.result()["mae"] == pytest.approx(5.0)
    with pytest.raises(ConfigError, match="differ in length"):
        mean_absolute_error([1, 2], [1])


# --------------------------------------------------------------------- detection
def test_voc_average_precision_hand_computed():
    gt = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([[0, 0, 10, 10]])]
    dets = [
        (np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]]), np.array([0.9, 0.8, 0.7])),
        (np.array([[1, 1, 10, 10]]), np.array([0.6])),
    ]
    # Score order: TP (0.9), FP duplicate (0.8), FP (0.7), TP (0.6, IoU 0.81); 3 positives.
    r = average_precision(dets, gt)
    np.testing.assert_allclose(r["recall"], [1 / 3, 1 / 3, 1 / 3, 2 / 3])
    np.testing.assert_allclose(r["precision"], [1, 0.5, 1 / 3, 0.5])
    # All-point interpolation: 1/3 * 1 + 1/3 * 0.5.
    assert r["ap"] == pytest.approx(0.5)
    assert average_precision_from_pr(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == 1.0


def test_ignored_boxes_are_neither_found_nor_false():
    gt = [(np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([False, True]))]
    dets = [(np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([0.5, 0.9]))]
    r = average_precision(dets, gt)
    assert r["num_positives"] == 1 and r["ap"] == 1.0


def test_fddb_roc_tpr_at_fixed_false_positives():
    gt = [np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10]])]
    dets = [(np.array([[0, 0, 10, 10], [40, 40, 50, 50]]), np.array([0.9, 0.8])),
            (np.array([[0, 0, 10, 10]]), np.array([0.7]))]
    r = detection_roc(dets, gt, fp_counts=(0, 1))
    assert r["tpr_at"] == {0: 0.5, 1: 1.0}
    with pytest.raises(ConfigError, match="fp_counts"):
        detection_roc(dets, gt, fp_counts=(-1,))


# --------------------------------------------------------------------- verification
def test_verification_threshold_chosen_on_other_folds():
    # Separable everywhere except fold 0's first pair, a same pair scoring low.
    scores = np.array([0.9, 0.1] * 10, float)
    same = np.array([1, 0] * 10)
    scores[0] = 0.05
    r = verification_accuracy(scores, same, num_folds=10)
    assert len(r["fold_accuracies"]) == 10
    assert r["fold_accuracies"][0] == 0.5
    assert all(a == 1.0 for a in r["fold_accuracies"][1:])
    assert r["accuracy"] == pytest.approx(0.95)
    # Thresholds come from the nine other folds: fold 0's tuned threshold separates 0.1 and 0.9.
    assert 0.1 < r["thresholds"][0] < 0.9
    with pytest.raises(ConfigError, match="num_folds"):
        verification_accuracy(scores[:5], same[:5], num_folds=10)
