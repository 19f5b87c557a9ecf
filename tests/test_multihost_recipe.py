"""The README's "Several hosts (TF_CONFIG)" recipe, run as a user runs it.

Two ``python recipes/train_ifan.py`` processes on 127.0.0.1, each with its own
``TF_CONFIG``, against one process of the same command without it. The experiment
(``ifan_multihost_check``) reads two equal shards per task unshuffled, so the two
workers' input pipelines together give exactly the global batches the single
process reads.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.multihost_cluster import Cluster, error_lines, finish_single, run_single

RECIPE = os.path.join("recipes", "train_ifan.py")
OUTPUTS = {"checkpoints", "logs", "history.json", "run_config.json", "model.keras", "results.json", "results.md",
           "curves.png", "predictions.png"}


def _model_variables(model_dir):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")))
    names = sorted(n for n in reader.get_variable_to_shape_map() if n.startswith("model_variables/"))
    return {n: reader.get_tensor(n) for n in names}


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.timeout(1200)
def test_two_recipe_workers_finish_cleanly_and_match_one_process(tmp_path):
    env = {"FACEMT_CACHE_DIR": os.environ.get("FACEMT_CACHE_DIR") or str(tmp_path / "cache")}
    args = [RECIPE, "--experiment", "ifan_multihost_check"]
    run_dir, single_dir = tmp_path / "run", tmp_path / "single"
    single = run_single(args + ["--model-dir", str(single_dir)], tmp_path / "single.log", env=env)
    with Cluster(args + ["--model-dir", str(run_dir)], tmp_path, env=env) as cluster:
        codes = cluster.wait(timeout=800)
        logs = [cluster.log(i) for i in range(2)]
    assert finish_single(single, timeout=300) == 0, (tmp_path / "single.log").read_text()[-3000:]
    assert codes == [0, 0], [log[-3000:] for log in logs]

    # A clean run: no error in either log (no worker reported as crashed at the end).
    assert [error_lines(log) for log in logs] == [[], []], logs
    # Every output once, written by the chief; nothing left by the other worker.
    assert set(os.listdir(run_dir)) == OUTPUTS, sorted(os.listdir(run_dir))
    assert len(os.listdir(run_dir / "logs")) == 1
    assert "Worker 1 done; the chief writes the outputs." in logs[1]
    # Worker 1 left only after the chief's last output (the final barrier), so the
    # chief never ran alone long enough to report it as crashed.
    last_output = max(os.path.getmtime(run_dir / name) for name in OUTPUTS)
    assert os.path.getmtime(cluster.log_path(1)) >= last_output

    # How the run was distributed, in both records.
    results = json.loads((run_dir / "results.json").read_text())
    run_config = json.loads((run_dir / "run_config.json").read_text())
    expected = {"strategy": "multi_worker", "workers": 2, "replicas": 2, "replicas_per_worker": 1,
                "global_batch_size": {"landmarks": 16, "emotion": 16},
                "per_replica_batch_size": {"landmarks": 8, "emotion": 8}}
    assert results["distribution"] == expected
    assert run_config["distribution"] == expected
    reference = json.loads((single_dir / "results.json").read_text())
    assert reference["distribution"]["strategy"] == "default"
    assert reference["distribution"]["per_replica_batch_size"] == {"landmarks": 16, "emotion": 16}

    # The same final weights as one process over the same global batches.
    two, one = _model_variables(run_dir), _model_variables(single_dir)
    assert sorted(two) == sorted(one) and len(one) > 50
    assert results["history"][-1]["step"] == reference["history"][-1]["step"] == 8
    # RMSprop moves a weight whose gradient is near zero by about lr / sqrt(1 - rho)
    # (3e-3 here) whatever that gradient's size, so summation-order noise can shift
    # such weights by a fraction of a step; different global batches move nearly all
    # weights by whole steps.
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-3, atol=3e-4, err_msg=name)
