"""The trainer under MirroredStrategy (2 logical CPUs) and MultiWorkerMirroredStrategy (2 processes)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.training import strategy as strategy_lib
from keras_facemt.training.schedule import LearningRate, Phase
from keras_facemt.training.trainer import Trainer, TrainerConfig
from tests import trainer_fixtures as fx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(REPO, "tests", "trainer_worker.py")


def _train(tmp_path, name, strategy, phases, streams):
    cfg = TrainerConfig(str(tmp_path / name), steps_per_loop=2, optimizer="sgd", progress=False, summaries=False)
    trainer = Trainer(fx.tiny_model, fx.loss_terms(), streams, phases, config=cfg, strategy=strategy)
    trainer.train()
    return trainer


@pytest.mark.distributed
def test_two_replicas_match_one_device_with_uneven_labels_and_domain_bn(tmp_path):
    # Labels on every third example only, so the replicas hold different numbers of
    # labelled examples: each term must be normalised by the global count for the
    # summed gradients to equal the single-device gradient of the global batch.
    streams = {"both": fx.stream("both", global_batch=4, labelled_every=3),
               "landmarks": fx.stream("landmarks", global_batch=4, seed=5, labelled_every=2)}
    phases = [Phase("p", 4, ("both", "landmarks"), learning_rate=LearningRate(0.5))]
    single = _train(tmp_path, "single", tf.distribute.get_strategy(), phases, streams)
    mirrored = strategy_lib.get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    double = _train(tmp_path, "mirrored", mirrored, phases, streams)
    assert double.strategy.num_replicas_in_sync == 2
    for a, b in zip(single.model.weights, double.model.weights):
        assert a.path == b.path
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
    # Both replicas hold the same values (including DomainBatchNorm's moving statistics).
    for v in double.model.weights:
        values = [np.asarray(x) for x in mirrored.experimental_local_results(v.value)]
        np.testing.assert_array_equal(values[0], values[1], err_msg=v.path)
    bn = double.model.get_layer("backbone_bn")
    assert not np.allclose(bn.moving_mean.numpy(), 0.0)


@pytest.mark.distributed
def test_jit_compile_on_cpu_replicas_is_a_config_error(tmp_path):
    strategy = strategy_lib.get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    cfg = TrainerConfig(str(tmp_path), jit_compile=True, progress=False)
    with pytest.raises(ConfigError, match="jit_compile with several replicas needs GPU replicas"):
        Trainer(fx.tiny_model, fx.loss_terms(), {"l": fx.stream("both")}, [Phase("p", 1, ("l",))], config=cfg,
                strategy=strategy)


def test_get_strategy_names_and_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert strategy_lib.get_strategy("default") is tf.distribute.get_strategy()
    assert strategy_lib.get_strategy("auto") is tf.distribute.get_strategy()  # no GPUs, no cluster
    with pytest.raises(ConfigError, match="Unknown strategy.*name='horovod'"):
        strategy_lib.get_strategy("horovod")
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        strategy_lib.get_strategy("multi_worker")
    with pytest.raises(ConfigError, match="devices"):
        strategy_lib.get_strategy("default", devices=["/cpu:0"])
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
        strategy_lib.get_strategy("auto")
    cluster = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    assert strategy_lib.cluster_size() == 2
    assert strategy_lib.worker_index() == 1
    assert not strategy_lib.is_chief()
    cluster["task"]["index"] = 0
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    assert strategy_lib.is_chief()


def _free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.distributed
@pytest.mark.slow
def test_multi_worker_mirrored_two_processes_end_with_equal_weights(tmp_path):
    ports = _free_ports(2)
    workers = [f"127.0.0.1:{p}" for p in ports]
    model_dir = tmp_path / "run"
    procs, outs = [], []
    for index in range(2):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        out = tmp_path / f"worker{index}"
        outs.append(out)
        log = open(tmp_path / f"worker{index}.log", "w")
        procs.append((subprocess.Popen(
            [sys.executable, WORKER, "--strategy", "multi_worker", "--model-dir", str(model_dir), "--out", str(out),
             "--steps", "6", "--steps-per-loop", "3"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    try:
        for proc, _ in procs:
            proc.wait(timeout=300)
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    logs = [(tmp_path / f"worker{i}.log").read_text()[-3000:] for i in range(2)]
    assert [p.returncode for p, _ in procs] == [0, 0], logs
    results = [np.load(str(o) + ".npz") for o in outs]
    assert int(results[0]["global_step"]) == int(results[1]["global_step"]) == 6
    np.testing.assert_array_equal(results[0]["weights"], results[1]["weights"])
    # Only the chief (worker 0) keeps checkpoints and history in the model dir.
    from keras_facemt.training.checkpointing import latest_checkpoint

    assert latest_checkpoint(str(model_dir)).endswith("ckpt-6")
    assert json.loads((model_dir / "history.json").read_text())["global_step"] == 6
    assert not list(model_dir.glob(".workers/*/checkpoints/*.index"))
