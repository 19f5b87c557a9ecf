"""Choosing a ``tf.distribute.Strategy`` from a flag or from ``TF_CONFIG``.

The same recipe runs on one CPU, on several GPUs of one host (``MirroredStrategy``),
on several hosts (``MultiWorkerMirroredStrategy``, configured by the ``TF_CONFIG``
environment variable every worker sets) and on a TPU (``TPUStrategy``), because the
trainer only talks to the strategy API. See the README section "Distributed training".
"""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence

import tensorflow as tf

from keras_facemt.errors import ConfigError

STRATEGY_NAMES = ("auto", "default", "mirrored", "multi_worker", "tpu")


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
    if strategy is not None and not getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
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
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
