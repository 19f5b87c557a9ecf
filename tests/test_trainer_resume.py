"""A training run killed with SIGKILL and restarted continues from its last checkpoint.

The worker is seeded and deterministic, so a restart from step 0 would end with the
same weights: each restart must also say which step it restored (the trainer's
"Resumed from ... at step N" log line) and run only the remaining updates (counted
in the process, outside the checkpoint).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_facemt.training.checkpointing import checkpoint_step, latest_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(REPO, "tests", "trainer_worker.py")
STEPS = 24


def _args(model_dir, out, *extra):
    return [sys.executable, WORKER, "--model-dir", str(model_dir), "--out", str(out), "--steps", str(STEPS),
            "--count-updates", *extra]


def _run(model_dir, out, *extra, timeout=300):
    return subprocess.run(_args(model_dir, out, *extra), cwd=REPO, capture_output=True, text=True, timeout=timeout)


def _resume_and_check(model_dir, out, restored_step, reference):
    """Restarts the run in ``model_dir`` and checks it went on from ``restored_step``."""
    resumed = _run(model_dir, out)
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-3000:]
    match = re.search(r"Resumed from \S*ckpt-(\d+) at step (\d+)", log)
    assert match, log[-3000:]
    assert int(match.group(1)) == int(match.group(2)) == restored_step > 0
    assert f"updates_this_process={STEPS - restored_step}" in resumed.stdout
    assert f"finished global_step={STEPS}" in resumed.stdout
    assert checkpoint_step(latest_checkpoint(str(model_dir))) == STEPS
    history = json.loads((model_dir / "history.json").read_text())
    assert history["global_step"] == STEPS
    assert [p["name"] for p in history["phases"]] == ["pre_landmarks", "alternate"]
    steps_seen = [e["step"] for e in history["evals"]]
    assert steps_seen == sorted(set(steps_seen)) and steps_seen[-1] == STEPS
    # Same weights and optimizer state as a run that was never interrupted: the
    # resumed streams skipped exactly the batches already consumed.
    a = np.load(f"{out}.npz")
    assert int(a["optimizer_iterations"]) == int(reference["optimizer_iterations"]) == STEPS
    np.testing.assert_allclose(a["weights"], reference["weights"], rtol=0, atol=1e-6)
    return a


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    run = _run(tmp / "run", tmp / "out")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Resumed from" not in run.stdout + run.stderr
    assert f"updates_this_process={STEPS}" in run.stdout
    return dict(np.load(str(tmp / "out.npz")))


@pytest.mark.slow
def test_sigkill_between_checkpoints_then_restart_resumes(tmp_path, reference):
    model_dir = tmp_path / "run"
    # The evaluation every loop sleeps, so the run is still going when we kill it.
    proc = subprocess.Popen(_args(model_dir, tmp_path / "killed", "--eval-sleep", "1.0"),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    step_before = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            latest = latest_checkpoint(str(model_dir))
            if latest is not None and checkpoint_step(latest) >= 4:
                step_before = checkpoint_step(latest)
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
    assert step_before is not None, output[-3000:]
    assert proc.returncode == -signal.SIGKILL, output[-3000:]
    assert step_before < STEPS, "the run finished before it could be killed"
    # The checkpoint "latest" points at is complete and restorable after the kill.
    restored = checkpoint_step(latest_checkpoint(str(model_dir)))
    assert STEPS > restored >= step_before
    a = _resume_and_check(model_dir, tmp_path / "resumed", restored, reference)

    # A finished run restarted does nothing more.
    again = _run(model_dir, tmp_path / "again")
    assert again.returncode == 0 and f"finished global_step={STEPS}" in again.stdout
    assert "updates_this_process=0" in again.stdout
    np.testing.assert_array_equal(np.load(str(tmp_path / "again.npz"))["weights"], a["weights"])


@pytest.mark.slow
@pytest.mark.parametrize("point,kill_step,restored", [
    # Files of ckpt-10 written, index still naming ckpt-8: resume from 8 over the orphan files.
    ("before_index", 10, 8),
    # Index names ckpt-16, the oldest checkpoints not yet deleted: resume from 16.
    ("before_sweep", 16, 16),
])
def test_sigkill_inside_a_checkpoint_write_then_restart_resumes(tmp_path, reference, point, kill_step, restored):
    model_dir = tmp_path / "run"
    killed = _run(model_dir, tmp_path / "killed", "--kill-at", f"{point}:{kill_step}")
    assert killed.returncode == -signal.SIGKILL, (killed.stdout + killed.stderr)[-3000:]
    assert checkpoint_step(latest_checkpoint(str(model_dir))) == restored
    if point == "before_index":
        assert any(f.startswith(f"ckpt-{kill_step}.") for f in os.listdir(model_dir / "checkpoints"))
    _resume_and_check(model_dir, tmp_path / "resumed", restored, reference)
