"""Global gradient clipping across replicas, and what ``--strategy auto`` picks.

Two logical CPU devices (set up in conftest) stand in for two GPUs; the strategy
tests check the choice only and start no cluster.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.training import strategy as strategy_lib
from keras_facemt.training.schedule import LearningRate, Phase
from keras_facemt.training.trainer import Trainer, TrainerConfig
from tests import trainer_fixtures as fx

LR = 0.5
CLIPNORM = 1e-2


def _trainer(tmp_path, name, strategy, steps, clipnorm=CLIPNORM):
    # Uneven labels: the two replicas' gradients differ, so clipping each replica's
    # norm would not give the clipped global gradient.
    streams = {"both": fx.stream("both", global_batch=4, labelled_every=3)}
    phases = [Phase("p", steps, ("both",), learning_rate=LearningRate(LR))]
    cfg = TrainerConfig(str(tmp_path / name), steps_per_loop=1, optimizer="sgd", progress=False, summaries=False,
                        clipnorm=clipnorm, seed=0)
    return Trainer(fx.tiny_model, fx.loss_terms(), streams, phases, config=cfg, strategy=strategy)


def _trainable(trainer):
    return [np.asarray(v.numpy(), np.float64) for v in trainer.model.trainable_weights]


def _update_norm(before, after):
    return float(np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(after, before))))


@pytest.mark.distributed
def test_two_replicas_clip_the_global_gradient_norm(tmp_path):
    mirrored = strategy_lib.get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    one = _trainer(tmp_path, "one_step", mirrored, steps=1)
    before = _trainable(one)
    one.train()
    # SGD: the update is lr * the clipped global gradient, whose norm is exactly the
    # clip norm (the unclipped gradient of an untrained model is far larger).
    assert one.strategy.num_replicas_in_sync == 2
    assert _update_norm(before, _trainable(one)) == pytest.approx(LR * CLIPNORM, rel=1e-4)
    unclipped = _trainer(tmp_path, "unclipped", tf.distribute.get_strategy(), steps=1, clipnorm=None)
    before = _trainable(unclipped)
    unclipped.train()
    assert _update_norm(before, _trainable(unclipped)) > 10 * LR * CLIPNORM

    # Several steps: two replicas end where one device on the global batches does.
    single = _trainer(tmp_path, "single", tf.distribute.get_strategy(), steps=3)
    single.train()
    double = _trainer(tmp_path, "double", strategy_lib.get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"]),
                      steps=3)
    double.train()
    for a, b in zip(single.model.weights, double.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7, err_msg=a.path)


class _Chosen(Exception):
    pass


def _record(name):
    """A stand-in strategy class whose construction reports that ``name`` was chosen."""

    class Recorded:
        _collective_key_base = 0

        def __init__(self, *args, **kwargs):
            raise _Chosen(name)

    return Recorded


def test_auto_picks_mirrored_over_two_visible_devices(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    # Two logical CPUs passed as the devices: a real two-replica MirroredStrategy.
    strategy = strategy_lib.get_strategy("auto", devices=["/cpu:0", "/cpu:1"])
    assert isinstance(strategy, tf.distribute.MirroredStrategy) and strategy.num_replicas_in_sync == 2
    # Without devices, two visible GPUs make it mirrored over all of them, one makes it default.
    gpus = [tf.config.LogicalDevice("/device:GPU:0", "GPU"), tf.config.LogicalDevice("/device:GPU:1", "GPU")]
    listed = tf.config.list_logical_devices
    monkeypatch.setattr(tf.config, "list_logical_devices",
                        lambda kind=None: gpus if kind == "GPU" else listed(kind))
    monkeypatch.setattr(tf.distribute, "MirroredStrategy", _record("mirrored"))
    with pytest.raises(_Chosen, match="mirrored"):
        strategy_lib.get_strategy("auto")
    monkeypatch.setattr(tf.config, "list_logical_devices",
                        lambda kind=None: gpus[:1] if kind == "GPU" else listed(kind))
    assert strategy_lib.get_strategy("auto") is tf.distribute.get_strategy()


def test_auto_picks_multi_worker_under_a_cluster_tf_config(monkeypatch):
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", _record("multi_worker"))
    cluster = {"cluster": {"worker": ["localhost:12345", "localhost:12346"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    with pytest.raises(_Chosen, match="multi_worker"):
        strategy_lib.get_strategy("auto")
    # A one-host "cluster" is not several hosts.
    cluster["cluster"]["worker"] = cluster["cluster"]["worker"][:1]
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    assert strategy_lib.get_strategy("auto") is tf.distribute.get_strategy()
