"""The trainer under MirroredStrategy (2 logical CPUs) and MultiWorkerMirroredStrategy (2 processes)."""

import json
import os
import time

import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.training.checkpointing import checkpoint_step, latest_checkpoint
from keras_facemt.training import strategy as strategy_lib
from keras_facemt.training.schedule import LearningRate, Phase
from keras_facemt.training.trainer import Trainer, TrainerConfig
from tests import trainer_fixtures as fx
from tests.multihost_cluster import Cluster, error_lines, finish_single, run_single

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


def test_distribution_is_described_and_a_lost_worker_is_named(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    single = strategy_lib.describe_distribution(tf.distribute.get_strategy(), {"landmarks": 32, "emotion": 16})
    assert single == {"strategy": "default", "workers": 1, "replicas": 1, "replicas_per_worker": 1,
                      "global_batch_size": {"landmarks": 32, "emotion": 16},
                      "per_replica_batch_size": {"landmarks": 32, "emotion": 16}}
    mirrored = strategy_lib.get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    two = strategy_lib.describe_distribution(mirrored, {"scenes": 16})
    assert (two["strategy"], two["workers"], two["replicas"], two["per_replica_batch_size"]) == \
        ("mirrored", 1, 2, {"scenes": 8})
    assert strategy_lib.distribution_line(two) == "mirrored strategy: 1 worker, 2 replicas, global batch 16 (8 per replica)"

    cluster = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    error = tf.errors.UnavailableError(None, None, "Graph execution error:\n\nCollective ops is aborted by: Error "
                                       "reported from /job:worker/task:1: The following tasks are unhealthy "
                                       "(stopped sending heartbeats):\n/job:worker/replica:0/task:1\nThe tasks "
                                       "have crashed.")
    message = strategy_lib.lost_worker_message(error, 12, resume_step=9)
    assert message.startswith("Lost contact with /job:worker/replica:0/task:1 during training at step 12; "
                              "this worker (/job:worker/replica:0/task:0) stops.")
    assert "same commands again with --resume: all of them continue from the chief's last checkpoint (step 9)" \
        in message
    assert message.endswith("Received: UnavailableError: Collective ops is aborted by: Error reported from "
                            "/job:worker/task:1: The following tasks are unhealthy (stopped sending heartbeats):")


WORKER_ARGS = ["--strategy", "multi_worker", "--steps-per-loop", "3", "--optimizer", "sgd"]


def _saved_step(model_dir) -> int:
    latest = latest_checkpoint(str(model_dir))
    return checkpoint_step(latest) if latest else 0


def _reference(tmp_path, steps):
    """The uninterrupted single-process run over the same global batches (default strategy)."""
    return run_single([WORKER, "--strategy", "default", "--model-dir", str(tmp_path / "reference"),
                       "--out", str(tmp_path / "reference"), "--steps", str(steps), "--steps-per-loop", "3",
                       "--optimizer", "sgd"],
                      tmp_path / "reference.log")


def _check_against_reference(tmp_path, model_dir, steps, reference):
    assert finish_single(reference, timeout=300) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    expected = np.load(str(tmp_path / "reference.npz"))
    results = [np.load(f"{tmp_path / 'out'}_w{i}.npz") for i in range(2)]
    assert int(results[0]["global_step"]) == int(results[1]["global_step"]) == int(expected["global_step"]) == steps
    # Synchronous all-reduce keeps the workers equal whatever the sharding; the
    # single process on the same global batches checks the sharding, the loss
    # normalisation and the synchronised BatchNorm.
    np.testing.assert_array_equal(results[0]["weights"], results[1]["weights"])
    np.testing.assert_allclose(results[0]["weights"], expected["weights"], rtol=1e-4, atol=1e-5)
    # Only the chief keeps checkpoints and history in the model dir; no worker files remain.
    assert latest_checkpoint(str(model_dir)).endswith(f"ckpt-{steps}")
    assert json.loads((model_dir / "history.json").read_text())["global_step"] == steps
    assert not (model_dir / ".workers").exists(), sorted(str(p) for p in model_dir.rglob("*"))


@pytest.mark.distributed
@pytest.mark.slow
def test_two_worker_processes_match_one_process_on_the_same_global_batches(tmp_path):
    model_dir = tmp_path / "run"
    reference = _reference(tmp_path, 6)
    argv = [WORKER, *WORKER_ARGS, "--model-dir", str(model_dir), "--out", str(tmp_path / "out"), "--steps", "6"]
    with Cluster(argv, tmp_path) as cluster:
        codes = cluster.wait(timeout=300)
        logs = [cluster.log(i) for i in range(2)]
    assert codes == [0, 0], [log[-3000:] for log in logs]
    # A clean run ends together: no worker reports another as crashed.
    assert [error_lines(log) for log in logs] == [[], []], logs
    # A worker's share of a save is gone as soon as the save returns, not only at the end.
    assert all("worker files after the final save: False" in log for log in logs), logs
    _check_against_reference(tmp_path, model_dir, 6, reference)


@pytest.mark.distributed
@pytest.mark.slow
def test_a_lost_worker_stops_the_other_and_the_pair_resumes_to_the_same_end(tmp_path):
    steps = 24
    model_dir = tmp_path / "run"
    reference = _reference(tmp_path, steps)
    # Evaluation sleeps keep the pair in the middle of the run long enough to kill one.
    argv = [WORKER, *WORKER_ARGS, "--model-dir", str(model_dir), "--out", str(tmp_path / "out"),
            "--steps", str(steps), "--eval-sleep", "2"]
    with Cluster(argv, tmp_path, name="first") as cluster:
        deadline = time.monotonic() + 300
        while _saved_step(model_dir) < 6:
            assert time.monotonic() < deadline, [cluster.log(i)[-2000:] for i in range(2)]
            assert all(p.poll() is None for p in cluster.procs), [cluster.log(i)[-2000:] for i in range(2)]
            time.sleep(0.2)
        cluster.kill(1)
        killed = time.monotonic()
        # The survivor stops on its own, within a bounded time (the heartbeat timeout
        # plus start-up of the error path), instead of waiting for the lost worker.
        (code,) = cluster.wait(timeout=strategy_lib.HEARTBEAT_TIMEOUT_S + 110, indices=[0])
        waited = time.monotonic() - killed
        chief_log = cluster.log(0)
    assert code == 2, chief_log[-3000:]
    assert waited < strategy_lib.HEARTBEAT_TIMEOUT_S + 110
    assert "Lost contact with /job:worker/replica:0/task:1" in chief_log, chief_log[-3000:]
    assert "start the same commands again with --resume" in chief_log
    stopped_at = _saved_step(model_dir)
    assert 0 < stopped_at < steps
    assert f"continue from the chief's last checkpoint (step {stopped_at})" in chief_log

    with Cluster(argv, tmp_path, name="resumed") as cluster:
        codes = cluster.wait(timeout=300)
        logs = [cluster.log(i) for i in range(2)]
    assert codes == [0, 0], [log[-3000:] for log in logs]
    assert [error_lines(log) for log in logs] == [[], []], logs
    # Both restored the chief's checkpoint (not step 0) and ran only the rest.
    for log in logs:
        assert f"starting at step {stopped_at}" in log
    # Same final step and, through the weights, the same data order as the
    # uninterrupted single process.
    _check_against_reference(tmp_path, model_dir, steps, reference)
