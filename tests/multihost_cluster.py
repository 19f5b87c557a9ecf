"""Starting a cluster of training processes on 127.0.0.1 the way the README tells users to.

Each process gets its own ``TF_CONFIG`` (the same ``cluster`` of free local ports,
its own ``task`` index) and its own log file. Every wait is bounded and
``close()`` kills whatever is still running, so a hanging worker fails the test
instead of the suite.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from typing import List, Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A line the TensorFlow runtime logs at ERROR level (``E0000 00:00:...``), a Python
# traceback, or an error a recipe prints.
ERROR_LINE = re.compile(r"^E\d{4} |Traceback \(most recent call last\)|StartAbort|: error: ", re.MULTILINE)


def free_ports(n: int) -> List[int]:
    """``n`` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def error_lines(text: str) -> List[str]:
    """The lines of a log that report an error."""
    return [line for line in text.splitlines() if ERROR_LINE.search(line)]


class Cluster:
    """``workers`` processes of one command line, task ``i`` with ``TF_CONFIG`` index ``i``.

    Args:
        argv: the command after the Python interpreter (script and flags), the same
            for every worker.
        log_dir: where ``<name>_<i>.log`` files go.
        workers: number of processes.
        name: log file prefix.
        env: extra environment variables.
    """

    def __init__(self, argv: Sequence[str], log_dir, workers: int = 2, name: str = "worker", env: Optional[dict] = None):
        self.argv = list(argv)
        self.log_dir = str(log_dir)
        self.workers = workers
        self.name = name
        self.env = dict(env or {})
        self.procs: List[subprocess.Popen] = []
        self._logs = []
        self.started = None

    def log_path(self, index: int) -> str:
        return os.path.join(self.log_dir, f"{self.name}_{index}.log")

    def start(self) -> "Cluster":
        addresses = [f"127.0.0.1:{p}" for p in free_ports(self.workers)]
        for index in range(self.workers):
            env = {**os.environ, **self.env, "TF_CPP_MIN_LOG_LEVEL": "2"}
            env["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})
            log = open(self.log_path(index), "w")
            self._logs.append(log)
            self.procs.append(subprocess.Popen([sys.executable] + self.argv, cwd=REPO, env=env, stdout=log,
                                               stderr=subprocess.STDOUT))
        self.started = time.monotonic()
        return self

    def wait(self, timeout: float, indices: Optional[Sequence[int]] = None) -> List[int]:
        """Return codes of the processes, waiting at most ``timeout`` seconds in all.

        Raises:
            subprocess.TimeoutExpired: a process still runs after ``timeout``.
        """
        deadline = time.monotonic() + timeout
        codes = []
        for i in (range(self.workers) if indices is None else indices):
            codes.append(self.procs[i].wait(timeout=max(deadline - time.monotonic(), 0.1)))
        return codes

    def kill(self, index: int) -> None:
        self.procs[index].send_signal(signal.SIGKILL)
        self.procs[index].wait(timeout=30)

    def log(self, index: int) -> str:
        self._logs[index].flush()
        with open(self.log_path(index)) as f:
            return f.read()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        for log in self._logs:
            log.close()

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def run_single(argv: Sequence[str], log_path, env: Optional[dict] = None) -> subprocess.Popen:
    """One process of ``argv`` without ``TF_CONFIG`` (the single-process reference), logging to ``log_path``."""
    full_env = {**os.environ, **(env or {}), "TF_CPP_MIN_LOG_LEVEL": "2"}
    full_env.pop("TF_CONFIG", None)
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable] + list(argv), cwd=REPO, env=full_env, stdout=log,
                            stderr=subprocess.STDOUT)
    proc.log_file = log
    return proc


def finish_single(proc: subprocess.Popen, timeout: float) -> int:
    """Waits (bounded) for a ``run_single`` process; kills it on timeout."""
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.log_file.close()
