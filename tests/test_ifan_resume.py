"""``recipes/train_ifan.py --resume`` (the shared runner) after SIGKILL finishes like a run never interrupted."""

import json
import os
import subprocess

import numpy as np
import pytest

from tests.conftest import ifan_recipe_argv
from tests.helpers import keras_weights, kill_after_a_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_sigkill_then_resume_gives_the_uninterrupted_run(tmp_path, ifan_short_deterministic_run, synth_cache_dir):
    reference = ifan_short_deterministic_run
    total = json.loads((reference / "history.json").read_text())["global_step"]

    run = tmp_path / "run"
    killed_at = kill_after_a_checkpoint(ifan_recipe_argv(run, synth_cache_dir), run, ROOT)
    assert 0 < killed_at < total, "the run finished before it could be killed"

    resumed = subprocess.run(ifan_recipe_argv(run, synth_cache_dir, "--resume"), cwd=ROOT, capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    history = json.loads((run / "history.json").read_text())
    assert history["global_step"] == total
    # Same final step, same data order: the weights are those of the uninterrupted run.
    for a, b in zip(keras_weights(run / "model.keras"), keras_weights(reference / "model.keras")):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    results = json.loads((run / "results.json").read_text())
    assert results["run"]["resumed"] is True
    assert results["final"] == json.loads((reference / "results.json").read_text())["final"]
