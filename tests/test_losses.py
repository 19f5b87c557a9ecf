"""Per-example losses and their masked reduction."""

import numpy as np
import pytest
import tensorflow as tf

from keras_facemt import losses


def test_masked_sum_ignores_unlabelled_examples_even_when_their_loss_is_nan():
    loss = tf.constant([1.0, np.nan, 3.0, np.inf])
    presence = tf.constant([1.0, 0.0, 1.0, 0.0])
    assert float(losses.masked_sum(loss, presence)) == 4.0
    assert float(losses.masked_mean(loss, presence)) == 2.0


def test_masked_mean_with_no_labelled_example_is_zero_and_has_zero_gradient():
    x = tf.Variable([1.0, 2.0])
    with tf.GradientTape() as tape:
        value = losses.masked_mean(tf.square(x), tf.zeros([2]))
    assert float(value) == 0.0
    np.testing.assert_array_equal(tape.gradient(value, x).numpy(), [0.0, 0.0])


def test_masked_mean_with_a_global_count_divides_by_it():
    loss = tf.constant([2.0, 4.0])
    presence = tf.constant([1.0, 1.0])
    # Two replicas with 2 labelled examples each: each contributes its sum / 4.
    assert float(losses.masked_mean(loss, presence, count=4.0)) == pytest.approx(1.5)


def test_global_presence_count_sums_over_replicas():
    from keras_facemt.training.strategy import get_strategy

    strategy = get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])

    def step(presence):
        return losses.global_presence_count(presence)

    @tf.function
    def run():
        values = strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant([1.0, 0.0, 1.0] if ctx.replica_id_in_sync_group == 0 else [1.0, 0.0, 0.0]))
        return strategy.experimental_local_results(strategy.run(step, args=(values,)))

    assert [float(v) for v in run()] == [3.0, 3.0]


def test_euclidean_points_is_mean_distance_over_visible_points():
    y_true = tf.constant([[[0.0, 0.0], [1.0, 1.0], [0.5, 0.5]]])
    y_pred = tf.constant([[[3.0, 4.0], [1.0, 2.0], [9.0, 9.0]]])
    visible = tf.constant([[1.0, 1.0, 0.0]])
    out = losses.euclidean_points(y_true, y_pred, visible=visible)
    assert out.shape == (1,)
    assert float(out[0]) == pytest.approx((5.0 + 1.0) / 2, rel=1e-5)
    # A point that matches exactly keeps a finite gradient.
    p = tf.Variable(y_true)
    with tf.GradientTape() as tape:
        v = tf.reduce_sum(losses.euclidean_points(y_true, p))
    assert np.all(np.isfinite(tape.gradient(v, p).numpy()))


def test_l2_points_is_half_the_sum_of_squares_over_visible_points():
    y_true = tf.zeros([2, 2, 2])
    y_pred = tf.constant([[[1.0, 1.0], [2.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]])
    out = losses.l2_points(y_true, y_pred, visible=tf.constant([[1.0, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(out.numpy(), [1.0, 0.5])


def test_smooth_l1_quadratic_near_zero_linear_far_and_weighted():
    y_true = tf.zeros([1, 2, 1])
    y_pred = tf.constant([[[0.5], [3.0]]])
    np.testing.assert_allclose(losses.smooth_l1(y_true, y_pred).numpy(), [0.125 + 2.5])
    np.testing.assert_allclose(losses.smooth_l1(y_true, y_pred, weights=tf.constant([[1.0, 0.0]])).numpy(), [0.125])
    with pytest.raises(ValueError, match="beta"):
        losses.smooth_l1(y_true, y_pred, beta=0.0)


def test_sparse_softmax_cross_entropy_matches_reference_and_ignores_bad_labels():
    logits = tf.constant([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    labels = tf.constant([0, 2, -1])
    out = losses.sparse_softmax_cross_entropy(labels, logits).numpy()
    expected0 = -np.log(np.exp(2) / (np.exp(2) + 2))
    np.testing.assert_allclose(out, [expected0, np.log(3.0), 0.0], rtol=1e-5)
    smoothed = losses.sparse_softmax_cross_entropy(labels, logits, label_smoothing=0.1).numpy()
    assert smoothed[0] > out[0]
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.sparse_softmax_cross_entropy(labels, logits, label_smoothing=1.0)


def test_per_pixel_cross_entropy_averages_valid_pixels_per_image():
    logits = tf.zeros([2, 2, 2, 4])
    labels = tf.constant([[[0, 1], [2, 255]], [[255, 255], [255, 255]]])
    out = losses.per_pixel_cross_entropy(labels, logits).numpy()
    np.testing.assert_allclose(out, [np.log(4.0), 0.0], rtol=1e-5)
    # Class weights scale the pixels of that class.
    weighted = losses.per_pixel_cross_entropy(tf.constant([[[0, 1]]]), tf.zeros([1, 1, 2, 4]),
                                              class_weights=[1.0, 3.0, 1.0, 1.0]).numpy()
    np.testing.assert_allclose(weighted, [np.log(4.0)], rtol=1e-5)


def test_sigmoid_cross_entropy_masks_unlabelled_attributes():
    out = losses.sigmoid_cross_entropy(tf.constant([[1.0, 0.0]]), tf.constant([[0.0, 100.0]]),
                                       valid=tf.constant([[1.0, 0.0]]))
    np.testing.assert_allclose(out.numpy(), [np.log(2.0)], rtol=1e-5)


def test_mimic_squared_l2_per_example_and_per_face():
    teacher = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    student = tf.constant([[0.0, 0.0], [0.0, 3.0]])
    np.testing.assert_allclose(losses.mimic_squared_l2(teacher, student).numpy(), [1.0, 4.0])
    per_face = losses.mimic_squared_l2(teacher[None], student[None], weights=tf.constant([[1.0, 0.0]]))
    np.testing.assert_allclose(per_face.numpy(), [1.0])
    normalized = losses.mimic_squared_l2(teacher, 5.0 * teacher, normalize=True)
    np.testing.assert_allclose(normalized.numpy(), [0.0, 0.0], atol=1e-6)


def test_age_gaussian_is_bounded_and_blends_with_euclidean():
    y = tf.constant([30.0, 30.0, 30.0])
    a = tf.constant([30.0, 33.0, 90.0])
    sigma = tf.constant([3.0, 3.0, 0.0])
    g = losses.age_gaussian(y, a, sigma).numpy()
    np.testing.assert_allclose(g[:2], [0.0, 1.0 - np.exp(-0.5)], rtol=1e-5)
    assert g[2] <= 1.0  # a gross outlier costs at most 1 (sigma clipped to 1 year)
    e = losses.age_euclidean(y, a).numpy()
    np.testing.assert_allclose(e, [0.0, 4.5, 1800.0])
    mixed = losses.age_gaussian(y, a, sigma, euclidean_weight=0.25).numpy()
    np.testing.assert_allclose(mixed, 0.25 * e + 0.75 * g, rtol=1e-5)
    with pytest.raises(ValueError, match="euclidean_weight"):
        losses.age_gaussian(y, a, sigma, euclidean_weight=2.0)
