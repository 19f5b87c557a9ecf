"""Test-session set-up: quiet TF, two logical CPU devices for MirroredStrategy tests, and
the split of the suite over ``pytest -n 2`` workers (see ``pytest_collection_modifyitems``)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:  # already initialised
    pass


import pytest  # noqa: E402

from tests.helpers import load_script  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# CPU seconds each test file takes (its process plus the child processes it waits
# for; ``FACEMT_TEST_CPU_LOG`` below measures them). With two workers on two cores CPU
# time is what the split shares out, so these, not wall times, order the work handed
# to the ``-n 2`` workers, longest first, so that no long file starts last. A stale
# figure costs minutes, never a result. Files not listed weigh DEFAULT_SECONDS.
FILE_SECONDS = {
    "test_mtfr_recipe.py": 212, "test_tfn_recipe.py": 179, "test_export_ifan.py": 148, "test_uniface_recipe.py": 133,
    "test_multihost_recipe.py": 99, "test_allinone_recipe.py": 88, "test_ifan_resume.py": 69,
    "test_installed_package.py": 65, "test_distributed.py": 61, "test_pipeline_runtimes.py": 59,
    "test_export_formats.py": 55, "test_trainer_resume.py": 46, "test_allinone_scene_graph.py": 42,
    "test_pipeline.py": 41, "test_trainer.py": 37, "test_uniface_export.py": 37, "test_tfn_export.py": 35,
    "test_tfn_morph_protocol.py": 35, "test_ifan_iterations_study.py": 29, "test_bench_tflite_size.py": 28,
    "test_allinone_real_data.py": 26, "test_ifan_model.py": 16, "test_allinone_ablation.py": 15,
    "test_tfn_ablation.py": 15, "test_system_contract.py": 14, "test_cli_bad_input.py": 13,
    "test_fuzz_pipeline.py": 13, "test_ifan_iteration_switches.py": 13, "test_uniface_losses.py": 13,
    "test_bench_floors.py": 11, "test_tfn_model.py": 11, "test_uniface_model.py": 10,
}
DEFAULT_SECONDS = 3
# Session fixtures that train a model (CPU seconds): every file that uses one runs on
# one worker, so the model is trained once per suite. A test that starts one waits for
# it, so its time limit covers the training on a loaded machine too.
SHARED_RUNS = {"ifan_smoke_run": 240, "ifan_short_deterministic_run": 70}
SHARED_RUN_TIMEOUT = 2400


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    """Groups the tests for ``pytest -n 2 --dist loadgroup`` and orders the groups.

    A group is one test file (module-scoped fixtures are built once), merged with every
    other file that shares a trained session fixture (``SHARED_RUNS``). Groups are
    ordered by ``FILE_SECONDS``, longest first, and handed out in that order
    (``--no-loadscope-reorder``), the classic longest-processing-time split over two
    workers. Without ``-n`` the groups change nothing but the order.
    """
    files = {}
    for item in items:
        files.setdefault(item.path.name, []).append(item)
    parent = {name: name for name in files}

    def root(name):
        while parent[name] != name:
            name = parent[name]
        return name

    for fixture in SHARED_RUNS:
        users = sorted(name for name, its in files.items() if any(fixture in i.fixturenames for i in its))
        for name in users[1:]:
            parent[root(name)] = root(users[0])
    groups = {}
    for name in files:
        groups.setdefault(root(name), []).append(name)
    weight = {}
    for group, names in groups.items():
        fixtures = {f for n in names for i in files[n] for f in SHARED_RUNS if f in i.fixturenames}
        weight[group] = sum(FILE_SECONDS.get(n, DEFAULT_SECONDS) for n in names) + sum(SHARED_RUNS[f] for f in fixtures)
    order = sorted(groups, key=lambda g: (-weight[g], g))
    items[:] = [i for g in order for n in sorted(groups[g]) for i in files[n]]
    for item in items:
        item.add_marker(pytest.mark.xdist_group(root(item.path.name)))
        if item.get_closest_marker("timeout") is None and any(f in item.fixturenames for f in SHARED_RUNS):
            item.add_marker(pytest.mark.timeout(SHARED_RUN_TIMEOUT))


@pytest.fixture(scope="session")
def synth_cache_dir(tmp_path_factory):
    """One SynthFace cache for the whole session (``FACEMT_CACHE_DIR`` when set, so that
    later sessions reuse it too). Rendered data is keyed by its generation settings, so
    tests that ask for the same data share one rendering; under ``pytest -n`` the
    workers share the one cache (its renders are locked per dataset)."""
    if os.environ.get("FACEMT_CACHE_DIR"):
        return os.environ["FACEMT_CACHE_DIR"]
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the workers' basetemps are siblings under one session directory
    path = base / "synth_cache"
    path.mkdir(exist_ok=True)
    return str(path)


@pytest.fixture(scope="session")
def ifan_smoke_run(tmp_path_factory, synth_cache_dir):
    """The ``ifan_3t_smoke`` experiment trained once per session; tests read (never
    write) its run directory."""
    run_dir = tmp_path_factory.mktemp("ifan_smoke") / "run"
    code = load_script("recipes", "train_ifan").main(["--experiment", "ifan_3t_smoke", "--model-dir", str(run_dir),
                                           "--cache-dir", synth_cache_dir])
    assert code == 0, "the ifan_3t_smoke run failed (its log is in the captured output above)"
    return run_dir


# A short deterministic iFAN run: the reference of the determinism and the
# SIGKILL-resume tests, which each start one more process of the same command.
SHORT_DETERMINISTIC_IFAN = ["--experiment", "ifan_3t_smoke", "--tasks", "landmarks,emotion", "--epochs", "0.5,0.5",
                            "--deterministic"]


def ifan_recipe_argv(model_dir, cache_dir, *extra):
    """The command line of one short deterministic ``recipes/train_ifan.py`` process."""
    import sys

    return [sys.executable, os.path.join(ROOT, "recipes", "train_ifan.py"), *SHORT_DETERMINISTIC_IFAN,
            "--model-dir", str(model_dir), "--cache-dir", str(cache_dir), *extra]


@pytest.fixture(scope="session")
def ifan_short_deterministic_run(tmp_path_factory, synth_cache_dir):
    """One uninterrupted short deterministic iFAN run, in its own process."""
    import subprocess

    run_dir = tmp_path_factory.mktemp("ifan_short") / "run"
    proc = subprocess.run(ifan_recipe_argv(run_dir, synth_cache_dir), cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """With ``FACEMT_TEST_CPU_LOG=PATH``, appends each test's CPU seconds (this process and
    the child processes it waited for) and wall seconds to PATH: what ``FILE_SECONDS``
    is measured with, independent of what else the machine runs."""
    path = os.environ.get("FACEMT_TEST_CPU_LOG")
    if not path:
        yield
        return
    import resource
    import time

    def cpu():
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    c0, t0 = cpu(), time.time()
    yield
    with open(path, "a") as f:
        f.write(f"{item.nodeid}\t{cpu() - c0:.2f}\t{time.time() - t0:.2f}\n")
