import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.layers.conv_bn_act import ConvBnAct
from keras_facemt.layers.dense_block import DenseBlock
from keras_facemt.layers.domain_batch_norm import DomainBatchNorm
from keras_facemt.layers.subpixel import SubPixelUpsampling
from tests.helpers import run_layer_test

RNG = np.random.default_rng(0)


def _x(*shape):
    return RNG.normal(size=shape).astype("float32")


@pytest.mark.parametrize("preactivation", [False, True])
def test_conv_bn_act_contract(preactivation):
    run_layer_test(
        ConvBnAct,
        {"filters": 5, "kernel_size": 3, "strides": 2, "num_domains": 2, "preactivation": preactivation},
        _x(2, 8, 8, 3), (2, 4, 4, 5),
        expected_num_trainable_weights=3, expected_num_non_trainable_weights=2,
        call_kwargs={"domain": np.array([0, 1], "int32")},
    )


def test_conv_bn_act_uses_each_examples_domain_statistics():
    layer = ConvBnAct(4, 3, num_domains=2)
    x = _x(1, 6, 6, 3)
    layer(x, domain=np.array([0], "int32"))
    bn = layer.bn
    bn.moving_mean.assign(np.stack([np.zeros(4), np.full(4, 3.0)]).astype("float32"))
    both = np.concatenate([x, x])
    out = layer(both, domain=np.array([0, 1], "int32"), training=False).numpy()
    alone0 = layer(x, domain=np.array([0], "int32"), training=False).numpy()
    alone1 = layer(x, domain=np.array([1], "int32"), training=False).numpy()
    np.testing.assert_allclose(out[0], alone0[0], atol=1e-6)
    np.testing.assert_allclose(out[1], alone1[0], atol=1e-6)
    assert not np.allclose(out[0], out[1])


def test_conv_bn_act_linear_activation_keeps_negative_values():
    layer = ConvBnAct(4, 1, activation=None)
    out = layer(_x(2, 5, 5, 3), training=False).numpy()
    assert (out < 0).any()
    relu = ConvBnAct(4, 1)
    assert (relu(_x(2, 5, 5, 3), training=False).numpy() >= 0).all()


def test_dense_block_contract_and_growth():
    run_layer_test(
        DenseBlock, {"num_layers": 3, "growth_rate": 4, "num_domains": 2, "dropout": 0.1},
        _x(2, 6, 6, 5), (2, 6, 6, 5 + 3 * 4),
        expected_num_trainable_weights=3 * 3, expected_num_non_trainable_weights=3 * 2,
        call_kwargs={"domain": np.array([1, 0], "int32")},
    )
    new_only = DenseBlock(3, 4, return_new_only=True)
    assert new_only(_x(2, 6, 6, 5)).shape == (2, 6, 6, 12)


def test_dense_block_keeps_its_input_and_preserves_resolution():
    x = _x(2, 7, 7, 3)
    out = DenseBlock(2, 5)(x, training=False).numpy()
    assert out.shape == (2, 7, 7, 13)
    np.testing.assert_array_equal(out[..., :3], x)


def test_dense_block_zero_context_equals_the_block_without_context():
    x = _x(2, 6, 6, 5)
    with_ctx = DenseBlock(2, 3)
    y = with_ctx(x, context=np.zeros((2, 6, 6, 4), "float32"), training=False).numpy()
    plain = DenseBlock(2, 3)
    plain(x, training=False)
    # Same weights, with the first kernel's context rows removed.
    for src, dst in zip(with_ctx.norms, plain.norms):
        dst.set_weights(src.get_weights())
    plain.convs[0].kernel.assign(with_ctx.convs[0].kernel.numpy()[:, :, :5, :])
    plain.convs[1].kernel.assign(with_ctx.convs[1].kernel.numpy())
    np.testing.assert_allclose(plain(x, training=False).numpy(), y, atol=1e-5)
    # A non-zero context changes the new features only.
    z = with_ctx(x, context=np.ones((2, 6, 6, 4), "float32"), training=False).numpy()
    np.testing.assert_array_equal(z[..., :5], x)
    assert not np.allclose(z[..., 5:], y[..., 5:])


def test_dense_block_rejects_bad_sizes():
    with pytest.raises(ValueError, match="num_layers"):
        DenseBlock(0, 4)
    with pytest.raises(ValueError, match="growth_rate"):
        DenseBlock(2, 0)


def test_subpixel_contract():
    run_layer_test(SubPixelUpsampling, {"filters": 3, "scale": 2, "kernel_size": 3},
                   _x(2, 4, 5, 6), (2, 8, 10, 3), expected_num_trainable_weights=2,
                   expected_num_non_trainable_weights=0)


def test_subpixel_is_a_periodic_shuffle_of_the_convolution():
    layer = SubPixelUpsampling(2, scale=3)
    x = _x(1, 3, 4, 5)
    out = layer(x).numpy()
    conv = layer.conv(x).numpy()  # [1, 3, 4, 9 * 2]
    for i in range(3):
        for j in range(3):
            np.testing.assert_allclose(out[0, i::3, j::3, :], conv[0, :, :, (i * 3 + j) * 2:(i * 3 + j + 1) * 2],
                                       atol=1e-6)
    with pytest.raises(ValueError, match="scale"):
        SubPixelUpsampling(2, scale=1)


def test_layers_keep_bn_statistics_float32_under_mixed_precision():
    import keras

    layer = ConvBnAct(4, 3, num_domains=2, dtype="mixed_float16")
    y = layer(_x(2, 6, 6, 3), domain=np.array([0, 1], "int32"), training=True)
    assert y.dtype == tf.float16
    bn = layer.bn
    assert isinstance(bn, DomainBatchNorm) and bn.moving_mean.dtype == "float32"
    block = DenseBlock(2, 3, dtype=keras.DTypePolicy("mixed_float16"))
    assert block(_x(2, 6, 6, 3), domain=np.array([0, 0], "int32")).dtype == tf.float16


def test_l2_normalization_hand_computed():
    from keras_facemt.layers.l2_normalization import L2Normalization

    x = np.array([[[3.0, 4.0], [0.0, 0.0]]], "float32")  # [1, 2, 2]
    out = run_layer_test(L2Normalization, {"scale_init": 10.0, "epsilon": 1e-6}, x, (1, 2, 2),
                         expected_num_trainable_weights=1)
    # (3, 4) / 5 * 10; an all-zero vector (a padded ROI) stays zero.
    np.testing.assert_allclose(out.numpy(), [[[6.0, 8.0], [0.0, 0.0]]], atol=1e-5)


def test_l2_normalization_scale_is_per_channel():
    from keras_facemt.layers.l2_normalization import L2Normalization

    layer = L2Normalization(1.0)
    x = np.array([[1.0, 1.0]], "float32")
    layer(x)
    layer.gamma.assign([2.0, 3.0])
    s = 1 / np.sqrt(2)
    np.testing.assert_allclose(layer(x).numpy(), [[2 * s, 3 * s]], atol=1e-6)


def test_squeeze_excitation_single_conv_gate_hand_computed():
    from keras_facemt.layers.squeeze_excitation import SqueezeExcitation

    x = np.ones((1, 2, 2, 2), "float32")
    x[..., 1] = 2.0
    out = run_layer_test(SqueezeExcitation, {"reduction": None}, x, (1, 2, 2, 2),
                         expected_num_trainable_weights=2)
    layer = SqueezeExcitation(None)
    layer(x)
    # Pooled (1, 2); gate = sigmoid(pooled @ I + (0, 1)) = sigmoid(1), sigmoid(3).
    layer.excite.set_weights([np.eye(2, dtype="float32"), np.array([0.0, 1.0], "float32")])
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    got = layer(x).numpy()
    np.testing.assert_allclose(got[..., 0], sig(1.0), atol=1e-6)
    np.testing.assert_allclose(got[..., 1], 2 * sig(3.0), atol=1e-6)
    assert out.shape == x.shape


def test_squeeze_excitation_gates_each_roi_of_a_stack():
    from keras_facemt.layers.squeeze_excitation import SqueezeExcitation

    run_layer_test(SqueezeExcitation, {"reduction": 2}, _x(2, 3, 4, 4, 6), (2, 3, 4, 4, 6),
                   expected_num_trainable_weights=4)
    layer = SqueezeExcitation(None)
    x = _x(1, 2, 3, 3, 4)
    both = layer(x).numpy()
    first = layer(x[:, :1]).numpy()
    np.testing.assert_allclose(both[:, :1], first, atol=1e-6)  # ROI 0's gate ignores ROI 1
