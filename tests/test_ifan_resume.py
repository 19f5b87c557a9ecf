"""``recipes/train_ifan.py --resume`` after SIGKILL finishes like a run never interrupted."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from keras_facemt.training.checkpointing import checkpoint_step, latest_checkpoint
from tests.conftest import ifan_recipe_argv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _weights(model_dir):
    from keras_facemt.serving.keras_format import load_model

    return [np.asarray(w) for w in load_model(os.path.join(model_dir, "model.keras")).weights]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_sigkill_then_resume_gives_the_uninterrupted_run(tmp_path, ifan_short_deterministic_run, synth_cache_dir):
    reference = ifan_short_deterministic_run
    total = json.loads((reference / "history.json").read_text())["global_step"]

    run = tmp_path / "run"
    proc = subprocess.Popen(ifan_recipe_argv(run, synth_cache_dir), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    killed_at = None
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            latest = latest_checkpoint(str(run))
            if latest is not None and checkpoint_step(latest) > 0:
                killed_at = checkpoint_step(latest)
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None and killed_at is None:
            proc.kill()
        err = proc.communicate(timeout=120)[1].decode(errors="replace")
    assert killed_at is not None and proc.returncode == -signal.SIGKILL, err[-3000:]
    assert 0 < killed_at < total, "the run finished before it could be killed"

    resumed = subprocess.run(ifan_recipe_argv(run, synth_cache_dir, "--resume"), cwd=ROOT, capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    history = json.loads((run / "history.json").read_text())
    assert history["global_step"] == total
    # Same final step, same data order: the weights are those of the uninterrupted run.
    for a, b in zip(_weights(run), _weights(reference)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    final = json.loads((run / "results.json").read_text())["final"]
    assert final == json.loads((reference / "results.json").read_text())["final"]
