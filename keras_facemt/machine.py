"""What machine a figure was measured on (benchmarks and results files record it)."""

from __future__ import annotations

import math
import os
import platform
from typing import Dict, Sequence


def cpu_model() -> str:
    """The CPU model name (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def usable_cores() -> int:
    """Cores this process may run on (affinity-aware)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def load_average() -> float:
    """The 1-minute load average (NaN where the platform has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine_info() -> Dict[str, object]:
    """Platform, CPU, cores, load, Python and TensorFlow versions and devices."""
    import tensorflow as tf

    load = load_average()
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "usable_cores": usable_cores(),
        "load_average_1min": None if math.isnan(load) else round(load, 2),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "devices": [d.device_type for d in tf.config.list_logical_devices()],
    }


def package_versions(modules: Sequence[str]) -> Dict[str, str]:
    """``__version__`` of each module in ``modules``, ``"n/a"`` where it does not import."""
    versions = {}
    for name in modules:
        try:
            versions[name] = str(__import__(name).__version__)
        except Exception:
            versions[name] = "n/a"
    return versions
