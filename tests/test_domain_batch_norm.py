import keras
import numpy as np
import tensorflow as tf

from keras_facemt.layers.domain_batch_norm import DomainBatchNorm
from tests.helpers import run_layer_test, run_model_saving_test


def test_layer_contract():
    x = np.random.default_rng(0).normal(size=(4, 5, 5, 3)).astype("float32")
    d = np.array([0, 1, 1, 0], "int32")
    run_layer_test(DomainBatchNorm, {"num_domains": 2, "momentum": 0.9}, x, (4, 5, 5, 3),
                   expected_num_trainable_weights=2, expected_num_non_trainable_weights=2,
                   call_kwargs={"domain": d})


def test_training_uses_per_domain_statistics_and_updates_only_present_domains():
    rng = np.random.default_rng(0)
    a = rng.normal(5.0, 2.0, size=(6, 4, 4, 2)).astype("float32")
    b = rng.normal(-3.0, 0.5, size=(6, 4, 4, 2)).astype("float32")
    x = np.concatenate([a, b])
    d = np.array([0] * 6 + [2] * 6, "int32")
    layer = DomainBatchNorm(num_domains=3, momentum=0.0, epsilon=1e-6)
    y = layer(x, domain=d, training=True).numpy()
    # Each domain is standardised by its own statistics.
    np.testing.assert_allclose(y[:6].mean(), 0, atol=1e-4)
    np.testing.assert_allclose(y[:6].std(), 1, atol=1e-3)
    np.testing.assert_allclose(y[6:].std(), 1, atol=1e-3)
    mm = layer.moving_mean.numpy()
    np.testing.assert_allclose(mm[0], a.mean(axis=(0, 1, 2)), rtol=1e-4)
    np.testing.assert_allclose(mm[2], b.mean(axis=(0, 1, 2)), rtol=1e-4)
    np.testing.assert_array_equal(mm[1], 0)  # absent domain untouched
    np.testing.assert_array_equal(layer.moving_variance.numpy()[1], 1)
    # Inference gathers each example's domain statistics.
    z = layer(x, domain=d, training=False).numpy()
    np.testing.assert_allclose(z, y, atol=1e-3)


def test_frozen_domain_ignores_input_domain():
    x = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    layer = DomainBatchNorm(num_domains=2, frozen_domain=1)
    layer.build((None, 4))
    layer.moving_mean.assign(np.array([[0.0] * 4, [1.0] * 4], "float32"))
    out = layer(x, domain=np.array([0, 0, 0], "int32"), training=False).numpy()
    np.testing.assert_allclose(out, (x - 1.0) / np.sqrt(1 + 1e-3), atol=1e-5)


def test_affine_domains_share_gamma_beta_across_statistic_sets():
    """K=4 statistic sets, A=2 affine sets: set k is normalised by its own statistics and uses affine set k % 2."""
    import pytest

    x = np.random.default_rng(2).normal(size=(4, 3)).astype("float32")
    layer = DomainBatchNorm(num_domains=4, affine_domains=2, epsilon=0.0)
    layer.build((None, 3))
    assert layer.gamma.shape == (2, 3) and layer.beta.shape == (2, 3) and layer.moving_mean.shape == (4, 3)
    layer.gamma.assign(np.array([[2.0] * 3, [3.0] * 3], "float32"))
    layer.beta.assign(np.array([[0.5] * 3, [-1.0] * 3], "float32"))
    layer.moving_mean.assign(np.arange(4, dtype="float32")[:, None] * np.ones((1, 3), "float32"))
    d = np.array([0, 1, 2, 3], "int32")
    out = layer(x, domain=d, training=False).numpy()
    gamma, beta = np.array([2.0, 3.0, 2.0, 3.0])[:, None], np.array([0.5, -1.0, 0.5, -1.0])[:, None]
    np.testing.assert_allclose(out, gamma * (x - d[:, None]) + beta, atol=1e-5)
    # Training mode gathers the same affine sets (batch statistics of single examples: x - x = 0;
    # an epsilon keeps their zero variance finite).
    layer.epsilon = 1e-3
    np.testing.assert_allclose(layer(x, domain=d, training=True).numpy(), np.repeat(beta, 3, axis=1), atol=1e-5)
    assert DomainBatchNorm.from_config(layer.get_config()).affine_domains == 2
    with pytest.raises(ValueError, match="affine_domains"):
        DomainBatchNorm(num_domains=3, affine_domains=2)


def test_synchronised_across_replicas():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(0, 1, (4, 3)), rng.normal(10, 1, (4, 3))]).astype("float32")
    d = np.zeros(8, "int32")
    with strategy.scope():
        layer = DomainBatchNorm(num_domains=1, momentum=0.0)
        layer.build((None, 3))

    def step(xb, db):
        return layer(xb, domain=db, training=True)

    ds = tf.data.Dataset.from_tensor_slices((x, d)).batch(8)
    dist = strategy.experimental_distribute_dataset(ds)
    for xb, db in dist:
        strategy.run(step, (xb, db))
    # Each replica saw one half; synchronised stats equal the global batch's.
    np.testing.assert_allclose(layer.moving_mean.numpy()[0], x.mean(0), rtol=1e-4)


def test_model_saving_round_trip(tmp_path):
    img = keras.Input((6, 6, 2), name="image")
    dom = keras.Input((), dtype="int32", name="domain")
    h = keras.layers.Conv2D(4, 3, padding="same")(img)
    h = DomainBatchNorm(num_domains=3)(h, domain=dom)
    model = keras.Model({"image": img, "domain": dom}, {"out": h})
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if isinstance(layer, DomainBatchNorm):
            layer.moving_mean.assign(rng.normal(size=(3, 4)).astype("float32"))
    inputs = {"image": rng.normal(size=(3, 6, 6, 2)).astype("float32"), "domain": np.array([0, 1, 2], "int32")}
    run_model_saving_test(model, inputs, tmp_path)
