"""The one experiment runner: every system trains, evaluates and reports the same way.

``run_experiment(system, experiment, context)`` owns a run: the run directory (an
existing checkpoint is refused unless the run resumes), strategy and determinism,
timing, and the outputs every system writes the same way (``results.json`` with
one shape and a ``headline`` list, ``results.md``). What is specific to a paper
lives in the system's job module, named by its registry entry (``System.job``),
which provides:

* ``DEFAULT_EXPERIMENT``: the experiment ``facemt train SYSTEM`` runs;
* ``EXPERIMENTS``: the names of its experiments, and ``get_experiment(name)``;
* ``DATA_TASKS``: what ``--data TASK=DIR`` may name (real converted shards that
  replace the synthetic data of that part of the experiment);
* ``add_arguments(parser)`` and ``configure(experiment, args)``: its own flags
  (``--preset`` and ``--seed`` are common and arrive in ``args`` too);
* ``run(experiment, context) -> dict``: data, training with the shared ``Trainer``,
  evaluation with the paper's metrics and trivial baselines, its own artefacts
  (``model.keras``, plots); returns its part of ``results.json``, which must hold a
  ``headline`` list (``metrics.headline.headline_entry``);
* ``results_markdown(results) -> str``.

``results.json`` always holds ``system``, ``experiment`` (the name),
``experiment_config``, ``headline``, ``machine``, ``distribution``,
``timings_seconds`` (with ``total``), ``data_issues``, ``run`` (model directory,
resumed, deterministic, strategy, ``--data``) and ``paths``, next to the system's
own sections.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from keras_facemt.errors import ConfigError
from keras_facemt.metrics.headline import check_headline

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"


@dataclasses.dataclass
class RunContext:
    """What the runner hands a system's ``run``.

    Attributes:
        model_dir: absolute run directory (created).
        cache_dir: SynthFace cache root, or None for the default.
        strategy: the ``tf.distribute.Strategy`` to train under.
        resume: whether an existing checkpoint is continued.
        deterministic: TensorFlow op determinism for the trainer.
        data: ``{task: directory}`` of converted shards given with ``--data``.
        log: receives progress lines.
    """

    model_dir: str
    cache_dir: Optional[str] = None
    strategy: object = None
    resume: bool = False
    deterministic: bool = False
    data: Mapping[str, str] = dataclasses.field(default_factory=dict)
    log: Callable[[str], None] = print
    finishers: list = dataclasses.field(default_factory=list)

    def path(self, *parts: str) -> str:
        return os.path.join(self.model_dir, *parts)

    def at_end(self, fn: Callable[[], None]) -> None:
        """Runs ``fn`` after the runner wrote the run's outputs (e.g. ``Trainer.finish``:
        every worker of a cluster waits there until the chief has written everything)."""
        self.finishers.append(fn)


def checkpoint_dirs(model_dir: str):
    """Directories under ``model_dir`` (itself and one level down) that hold a checkpoint."""
    from keras_facemt.training.checkpointing import latest_checkpoint

    if not os.path.isdir(model_dir):
        return []
    candidates = [model_dir] + sorted(os.path.join(model_dir, d) for d in os.listdir(model_dir)
                                      if os.path.isdir(os.path.join(model_dir, d)))
    return [d for d in candidates if latest_checkpoint(d) is not None]


def check_run_dir(model_dir: str, resume: bool) -> None:
    """Refuses to train into a directory holding a checkpoint unless resuming.

    Raises:
        ConfigError: naming the directory and the checkpoint found.
    """
    found = checkpoint_dirs(model_dir)
    if found and not resume:
        raise ConfigError(f"{model_dir} already holds a checkpoint ({found[0]}). Pass --resume to continue that "
                          f"run, or choose another --model-dir. Received: model_dir={model_dir!r}")
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise ConfigError(f"--model-dir {model_dir} is a file, not a directory. Received: model_dir={model_dir!r}")


def check_data_dirs(data: Mapping[str, str], tasks) -> None:
    """``--data`` names only tasks the system reads, and existing directories.

    Raises:
        ConfigError: an unknown task or a path that is not a directory.
    """
    for task, path in data.items():
        if task not in tasks:
            raise ConfigError(f"--data names {task!r}, which this system does not read (it reads {list(tasks)}). "
                              f"Received: --data {task}={path}")
        if not os.path.isdir(path):
            raise ConfigError(f"--data {task}: {path} is not a directory of converted shards. "
                              f"Received: --data {task}={path}")


def common_overrides(args, preset_field: str = "preset") -> Dict[str, object]:
    """The experiment fields set by the flags every system shares (``--preset``, ``--seed``), when given."""
    out: Dict[str, object] = {}
    if getattr(args, "preset", None) is not None:
        out[preset_field] = args.preset
    if getattr(args, "seed", None) is not None:
        out["seed"] = args.seed
    return out


def step_counts(text: str, names: str, minimum: Tuple[int, ...] = ()) -> Tuple[int, ...]:
    """``"1400,600"`` -> ``(1400, 600)`` for a ``--steps`` flag whose parts are ``names`` (``"STAGE1,STAGE2"``).

    Raises:
        ConfigError: a count that is not an integer, the wrong number of counts, or a
            count below its ``minimum`` (default 0).
    """
    parts = names.split(",")
    try:
        counts = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        counts = ()
    floors = tuple(minimum) + (0,) * (len(parts) - len(minimum))
    if len(counts) != len(parts) or any(c < f for c, f in zip(counts, floors)):
        need = ", ".join(f"{n} >= {f}" for n, f in zip(parts, floors))
        raise ConfigError(f"--steps must be {names} ({need}). Received: --steps={text!r}")
    return counts


def selected_variants(text: Optional[str], known) -> Optional[List[str]]:
    """``"a,b"`` -> ``["a", "b"]`` for an ablation's ``--variants`` flag; None (every
    variant) when ``text`` is empty.

    Raises:
        ConfigError: a name that is not one of ``known``.
    """
    if not text:
        return None
    names = [v.strip() for v in text.split(",")]
    for v in names:
        if v not in known:
            raise ConfigError(f"Unknown variant {v!r}; variants: {sorted(known)}. Received: --variants={text}")
    return names


def _strategy_name(strategy) -> str:
    from keras_facemt.training.strategy import strategy_name

    return strategy_name(strategy) if strategy is not None else "default"


def run_experiment(system, experiment, context: RunContext) -> Dict[str, object]:
    """Runs ``experiment`` of ``system`` (a registry ``System``) into ``context.model_dir``.

    Returns:
        The results dict, also written to ``results.json`` (and ``results.md``) by the
        chief.

    Raises:
        ConfigError: a checkpoint in the run directory without ``resume``, ``--data``
            naming a task the system does not read, or a system whose results lack a
            well-formed ``headline``.
    """
    import tensorflow as tf

    from keras_facemt.io import finite_json, write_json_atomic, write_text_atomic
    from keras_facemt.machine import machine_info
    from keras_facemt.training.strategy import is_chief

    job = system.job_module()
    context.model_dir = os.path.abspath(context.model_dir)
    check_run_dir(context.model_dir, context.resume)
    check_data_dirs(context.data, job.DATA_TASKS)
    if context.strategy is None:
        context.strategy = tf.distribute.get_strategy()
    os.makedirs(context.model_dir, exist_ok=True)
    resumed = bool(checkpoint_dirs(context.model_dir))
    t0 = time.time()
    results = dict(job.run(experiment, context))
    total = time.time() - t0
    timings = dict(results.pop("timings_seconds", {}) or {})
    timings["total"] = total
    paths = {"model_dir": context.model_dir, "results_json": context.path(RESULTS_JSON),
             "results_md": context.path(RESULTS_MD), **dict(results.pop("paths", {}) or {})}
    out = {
        "system": system.name,
        "experiment": experiment.name,
        "experiment_config": dataclasses.asdict(experiment),
        "headline": results.pop("headline", None),
        "machine": machine_info(),
        "distribution": results.pop("distribution", None),
        "timings_seconds": timings,
        "data_issues": results.pop("data_issues", {}),
        "run": {"model_dir": context.model_dir, "resumed": resumed, "deterministic": context.deterministic,
                "strategy": _strategy_name(context.strategy), "data": dict(context.data)},
        "paths": paths,
        **results,
    }
    if is_chief(context.strategy):
        check_headline(out["headline"], system.name)
        out = finite_json(out)
        write_json_atomic(paths["results_json"], out)
        write_text_atomic(paths["results_md"], job.results_markdown(out))
        for h in out["headline"]:
            context.log(f"{h['metric']} ({h['split']}): {h['model']:.4f}   strongest trivial baseline "
                        f"{h['baseline_name']}: {h['baseline']:.4f}")
    for fn in context.finishers:
        fn()
    return out
