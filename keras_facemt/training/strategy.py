"""Choosing a ``tf.distribute.Strategy`` from a flag or from ``TF_CONFIG``.

The same recipe runs on one CPU, on several GPUs of one host (``MirroredStrategy``),
on several hosts (``MultiWorkerMirroredStrategy``, configured by the ``TF_CONFIG``
environment variable every worker sets) and on a TPU (``TPUStrategy``), because the
trainer only talks to the strategy API. See the README section "Distributed training".
"""

from __future__ import annotations

import json
import os
import re
from typing import Mapping, Optional, Sequence

import tensorflow as tf

from keras_facemt.errors import ConfigError

STRATEGY_NAMES = ("auto", "default", "mirrored", "multi_worker", "tpu")
# A worker that sends no heartbeat for this long is declared lost: the coordination
# service aborts the collectives of every other worker, which then stop with a
# ``TrainingError`` instead of waiting for it forever. A killed worker is noticed
# within about this time; a live one sends heartbeats from a native thread, so a
# busy host (a long evaluation, a loaded CPU) does not trip it.
HEARTBEAT_TIMEOUT_S = 10
# Workers wait this long at the final barrier for the chief to finish its reports.
FINAL_BARRIER_TIMEOUT_S = 24 * 3600
# Errors a collective or a coordination call raises when a peer is gone.
LOST_PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError)


def tf_config() -> dict:
    """The parsed ``TF_CONFIG`` environment variable (``{}`` when unset).

    Raises:
        ConfigError: if ``TF_CONFIG`` is not valid JSON or not an object.
    """
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({e}). Received: TF_CONFIG={raw[:200]!r}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"TF_CONFIG must be a JSON object. Received: TF_CONFIG={raw[:200]!r}")
    return config


def cluster_size(config: Optional[dict] = None) -> int:
    """Number of training hosts (chief + workers) in ``TF_CONFIG``'s cluster; 0 without one."""
    config = tf_config() if config is None else config
    cluster = config.get("cluster") or {}
    return sum(len(cluster.get(job, ()) or ()) for job in ("chief", "worker"))


def is_chief(strategy: Optional[tf.distribute.Strategy] = None) -> bool:
    """Whether this process writes checkpoints, summaries and reports.

    Single-host strategies always are. Under ``MultiWorkerMirroredStrategy`` the chief
    is the ``chief`` task, or worker 0 when the cluster has no ``chief`` job.
    """
    config = tf_config()
    if cluster_size(config) <= 1:
        return True
    if strategy is not None and not in_multi_worker_mode(strategy):
        return True
    task = config.get("task") or {}
    task_type, task_id = task.get("type"), int(task.get("index", 0) or 0)
    if task_type == "chief":
        return True
    has_chief = bool((config.get("cluster") or {}).get("chief"))
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_index() -> int:
    """This process's index among the training hosts (0 on a single host)."""
    config = tf_config()
    task = config.get("task") or {}
    has_chief = bool((config.get("cluster") or {}).get("chief"))
    index = int(task.get("index", 0) or 0)
    if task.get("type") == "worker" and has_chief:
        return index + 1
    return index


def in_multi_worker_mode(strategy: Optional[tf.distribute.Strategy]) -> bool:
    """Whether ``strategy`` spans several processes (``MultiWorkerMirroredStrategy`` on a cluster)."""
    if strategy is None:
        return False
    return bool(getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)())


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The ``--strategy`` name that builds ``strategy`` (``default``, ``mirrored``, ``multi_worker``, ``tpu``)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    if type(strategy).__name__ == "_DefaultDistributionStrategy":
        return "default"
    return type(strategy).__name__


def describe_distribution(strategy: tf.distribute.Strategy, global_batch_sizes: Mapping[str, int]) -> dict:
    """How a run is distributed, for ``results.json`` and ``run_config.json``.

    Args:
        strategy: the training strategy.
        global_batch_sizes: ``{stream name: global batch size}`` of the training streams.

    Returns:
        ``{"strategy", "workers", "replicas", "replicas_per_worker",
        "global_batch_size": {stream: int}, "per_replica_batch_size": {stream: int}}``;
        the batch size a replica sees is the global one divided by ``replicas``.
    """
    replicas = int(strategy.num_replicas_in_sync)
    workers = max(cluster_size(), 1) if in_multi_worker_mode(strategy) else 1
    return {
        "strategy": strategy_name(strategy),
        "workers": workers,
        "replicas": replicas,
        "replicas_per_worker": replicas // workers,
        "global_batch_size": {k: int(v) for k, v in global_batch_sizes.items()},
        "per_replica_batch_size": {k: int(v) // replicas for k, v in global_batch_sizes.items()},
    }


def distribution_line(distribution: Mapping) -> str:
    """One line for logs and reports, e.g. ``multi_worker strategy: 2 workers, 2 replicas, global batch 32
    (16 per replica)``; per stream when the streams' batch sizes differ."""
    n_workers, n_replicas = distribution["workers"], distribution["replicas"]
    sizes = distribution["global_batch_size"]
    per = distribution["per_replica_batch_size"]
    if len(set(sizes.values())) <= 1:
        batch = f"global batch {next(iter(sizes.values()), 0)} ({next(iter(per.values()), 0)} per replica)"
    else:
        batch = "global batch " + ", ".join(f"{k} {v} ({per[k]} per replica)" for k, v in sizes.items())
    return (f"{distribution['strategy']} strategy: {n_workers} worker{'s' * (n_workers != 1)}, "
            f"{n_replicas} replica{'s' * (n_replicas != 1)}, {batch}")


def _task_name() -> str:
    task = tf_config().get("task") or {}
    return f"/job:{task.get('type', 'worker')}/replica:0/task:{int(task.get('index', 0) or 0)}"


def lost_worker_message(error: Exception, step: int, what: str = "training",
                        resume_step: Optional[int] = None) -> str:
    """The message a worker stops with when a peer of a multi-worker run is gone.

    Names the lost task(s) the runtime reported (every task the error mentions other
    than this one) and says how to continue: stop all workers and start the same
    commands again with ``--resume`` (from ``resume_step``, the last checkpoint).
    """
    text = str(getattr(error, "message", "") or error)
    own = _task_name()
    tasks = []
    for job, index in re.findall(r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)", text):
        name = f"/job:{job}/replica:0/task:{index}"
        if name != own and name not in tasks:
            tasks.append(name)
    lost = ", ".join(tasks) if tasks else "another worker (the runtime did not say which)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # The runtime's own explanation, not its "Graph execution error:" header.
    cause = next((line for line in lines if "task:" in line), lines[0] if lines else "")
    checkpoint = (f"the chief's last checkpoint (step {resume_step})" if resume_step is not None
                  else "the chief's last checkpoint")
    return (f"Lost contact with {lost} during {what} at step {step}; this worker ({own}) stops. Stop every worker "
            f"and start the same commands again with --resume: all of them continue from {checkpoint} with the "
            f"same data order. Received: {type(error).__name__}: {cause}")


def wait_for_all_workers(strategy: tf.distribute.Strategy, name: str, timeout_s: float = FINAL_BARRIER_TIMEOUT_S
                         ) -> None:
    """Blocks until every worker of a multi-worker run reaches barrier ``name`` (no-op otherwise).

    The barrier lives in the coordination service, not in a collective, so it holds
    however long the chief's host-only work takes; it fails early when a worker is
    lost (its heartbeats stop).

    Raises:
        tf.errors.OpError: a lost worker or the timeout (``LOST_PEER_ERRORS``).
    """
    if not in_multi_worker_mode(strategy):
        return
    from tensorflow.python.eager import context

    context.context().wait_at_barrier(name, int(timeout_s * 1000))


def _configure_coordination(config: dict) -> None:
    """Sets the coordination service's heartbeat timeout before the strategy starts it.

    ``MultiWorkerMirroredStrategy`` configures the service itself (with TensorFlow's
    default timeouts) only when nothing configured it before; this is the same
    configuration with ``HEARTBEAT_TIMEOUT_S`` stated here, so the time a worker
    waits for a lost peer is this project's choice, not a default that may change.
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    if context.context().coordination_service is not None:
        return
    cluster = config.get("cluster") or {}
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(cluster[job]))
            for job in ("chief", "worker") if cluster.get(job)]
    leader = "chief" if cluster.get("chief") else "worker"
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=f"/job:{leader}/replica:0/task:0", coordinated_jobs=jobs,
        heartbeat_timeout_in_ms=HEARTBEAT_TIMEOUT_S * 1000)


def _fresh_collective_keys() -> None:
    """Moves the collective key range of the next ``MirroredStrategy`` out of the way.

    Every ``MirroredStrategy`` numbers its collective ops from the same base, and the
    runtime caches a collective's parameters by key for the life of the process, so a
    second strategy in one process (tests, notebooks, an evaluation after training)
    would collide with the first ("Shape mismatch in the collective instance").
    TensorFlow's own test combinations shift the base the same way; shifting before
    and after creating ours also keeps strategies created elsewhere clear of it.
    """
    tf.distribute.MirroredStrategy._collective_key_base += 100000


def get_strategy(name: str = "auto", devices: Optional[Sequence[str]] = None,
                 tpu_address: Optional[str] = None) -> tf.distribute.Strategy:
    """Returns the distribution strategy ``name`` names.

    Args:
        name: ``"auto"`` (multi-worker when ``TF_CONFIG`` describes a cluster of more
            than one host, mirrored when this host sees more than one GPU, else the
            default strategy), ``"default"`` (no distribution), ``"mirrored"``
            (all local GPUs, or ``devices``), ``"multi_worker"`` (hosts from
            ``TF_CONFIG``) or ``"tpu"`` (``tpu_address``, or the TPU the environment
            provides, e.g. on a Cloud TPU VM).
        devices: devices for ``"mirrored"``, e.g. ``["/cpu:0", "/cpu:1"]``.
        tpu_address: TPU name or ``grpc://`` address for ``"tpu"``.

    Returns:
        A ``tf.distribute.Strategy``.

    Raises:
        ConfigError: for an unknown name, ``devices`` with a strategy that takes none,
            or ``"multi_worker"`` without a usable ``TF_CONFIG``.
    """
    if name not in STRATEGY_NAMES:
        raise ConfigError(f"Unknown strategy; choose one of {', '.join(STRATEGY_NAMES)}. Received: name={name!r}")
    if devices is not None and name not in ("auto", "mirrored"):
        raise ConfigError(
            f"devices can only be given with the 'mirrored' strategy. Received: name={name!r}, devices={devices}")
    if name == "auto":
        if cluster_size() > 1:
            name = "multi_worker"
        elif devices is not None or len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        _fresh_collective_keys()
        try:
            return tf.distribute.MirroredStrategy(devices=list(devices) if devices is not None else None)
        finally:
            _fresh_collective_keys()
    if name == "multi_worker":
        config = tf_config()
        if cluster_size(config) < 1 or not config.get("task"):
            raise ConfigError(
                "The 'multi_worker' strategy needs TF_CONFIG with a 'cluster' (chief/worker addresses) and this "
                f"process's 'task'. Received: TF_CONFIG={os.environ.get('TF_CONFIG', '')[:200]!r}"
            )
        _configure_coordination(config)
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
