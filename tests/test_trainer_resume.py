"""A training run killed with SIGKILL and restarted continues from its last checkpoint."""

import json
import os
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


def _run(model_dir, out, timeout=300, **extra):
    args = [sys.executable, WORKER, "--model-dir", str(model_dir), "--out", str(out), "--steps", str(STEPS)]
    for k, v in extra.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_sigkill_mid_training_then_restart_finishes_like_an_uninterrupted_run(tmp_path):
    model_dir = tmp_path / "run"
    # The evaluation every loop sleeps, so the run is still going when we kill it.
    proc = subprocess.Popen([sys.executable, WORKER, "--model-dir", str(model_dir), "--out", str(tmp_path / "killed"),
                             "--steps", str(STEPS), "--eval-sleep", "1.0"],
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
    assert checkpoint_step(latest_checkpoint(str(model_dir))) >= step_before

    resumed = _run(model_dir, tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"finished global_step={STEPS}" in resumed.stdout
    assert checkpoint_step(latest_checkpoint(str(model_dir))) == STEPS >= step_before
    history = json.loads((model_dir / "history.json").read_text())
    assert history["global_step"] == STEPS
    assert [p["name"] for p in history["phases"]] == ["pre_landmarks", "alternate"]
    steps_seen = [e["step"] for e in history["evals"]]
    assert steps_seen == sorted(set(steps_seen)) and steps_seen[-1] == STEPS

    # Same weights and optimizer state as a run that was never interrupted: the
    # resumed streams skipped exactly the batches already consumed.
    reference = _run(tmp_path / "reference", tmp_path / "reference_out")
    assert reference.returncode == 0, reference.stderr[-3000:]
    a, b = np.load(str(tmp_path / "resumed.npz")), np.load(str(tmp_path / "reference_out.npz"))
    assert int(a["optimizer_iterations"]) == int(b["optimizer_iterations"]) == STEPS
    np.testing.assert_allclose(a["weights"], b["weights"], rtol=0, atol=1e-6)

    # A finished run restarted does nothing more.
    again = _run(model_dir, tmp_path / "again")
    assert again.returncode == 0 and f"finished global_step={STEPS}" in again.stdout
    np.testing.assert_array_equal(np.load(str(tmp_path / "again.npz"))["weights"], a["weights"])
