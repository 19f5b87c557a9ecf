"""``facemt train``: the one training command line, shared by every system.

::

    facemt train SYSTEM [--experiment NAME] [FLAGS...]
    facemt train --experiment NAME [FLAGS...]        # the system is found from the name
    python recipes/train_SYSTEM.py [FLAGS...]        # the same, for one system

Flags every system takes: ``--experiment``, ``--model-dir`` (default
``runs/<experiment>``), ``--resume``, ``--deterministic``, ``--strategy``,
``--data TASK=DIR`` (repeatable: converted shards replacing that part of the
synthetic data), ``--cache-dir``, ``--preset``, ``--seed``; each system adds its own
(``facemt train SYSTEM --help`` lists them). The code lives in the package, so an
installed (non-editable) ``keras-facemt`` trains without the source checkout.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional, Sequence

from keras_facemt.errors import ConfigError, FaceMTError


def parse_data_flags(values: Sequence[str]) -> Dict[str, str]:
    """``["task=dir", ...]`` -> ``{task: dir}``.

    Raises:
        ConfigError: for a value without ``=`` or a task given twice.
    """
    out: Dict[str, str] = {}
    for v in values:
        task, sep, path = v.partition("=")
        if not sep or not task or not path:
            raise ConfigError(f"--data expects TASK=DIR. Received: --data {v!r}")
        if task in out:
            raise ConfigError(f"--data names task {task!r} twice. Received: --data {v!r}")
        out[task] = path
    return out


def find_system_of_experiment(name: str):
    """The registered system that defines experiment ``name`` (one experiment registry).

    Raises:
        ConfigError: naming every known experiment when none matches.
    """
    from keras_facemt.models.registry import get_system, list_systems

    known = []
    for system in map(get_system, list_systems()):
        if not system.job:
            continue
        names = list(system.job_module().EXPERIMENTS)
        if name in names:
            return system
        known += names
    raise ConfigError(f"Unknown experiment {name!r}; experiments: {sorted(known)}. Received: --experiment {name}")


def build_parser(system=None, prog: Optional[str] = None) -> argparse.ArgumentParser:
    """The common flags, plus ``system``'s own when given."""
    job = system.job_module() if system is not None else None
    p = argparse.ArgumentParser(
        prog=prog or (f"facemt train {system.name}" if system is not None else "facemt train"),
        description=(system.description if system is not None else "Train a system with the shared runner."),
        epilog=(job.__doc__ or "").split("\n\n", 1)[0] if job is not None else None)
    default = job.DEFAULT_EXPERIMENT if job is not None else None
    p.add_argument("--experiment", default=default,
                   help=f"named experiment ({', '.join(job.EXPERIMENTS) if job else 'see facemt train SYSTEM --help'})"
                        + (f"; default {default}" if default else ""))
    p.add_argument("--model-dir", default=None, help="run directory (default runs/<experiment>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --model-dir from its checkpoint")
    p.add_argument("--deterministic", action="store_true",
                   help="TensorFlow op determinism: a rerun on the same machine and thread count gives the same "
                        "weights and results")
    p.add_argument("--strategy", default="auto", help="auto, default, mirrored, multi_worker or tpu")
    tasks = ", ".join(job.DATA_TASKS) if job is not None else "per system"
    p.add_argument("--data", action="append", default=[], metavar="TASK=DIR",
                   help=f"converted shards for a part of the experiment (repeatable; TASK: {tasks})")
    p.add_argument("--cache-dir", default=None,
                   help="SynthFace cache root (default $FACEMT_CACHE_DIR or ~/.cache/keras_facemt/synth)")
    p.add_argument("--preset", default=None, help="model preset: paper, small or tiny")
    p.add_argument("--seed", type=int, default=None, help="random seed of the experiment")
    if job is not None:
        job.add_arguments(p)
    return p


def _split_system(argv: List[str], system_name: Optional[str]):
    """(system, remaining argv) from ``[SYSTEM] [--experiment NAME] ...``."""
    from keras_facemt.models.registry import get_system, list_systems

    if system_name is None and argv and not argv[0].startswith("-"):
        system_name, argv = argv[0], argv[1:]
    if system_name is not None:
        if system_name not in list_systems():
            raise ConfigError(f"Unknown system {system_name!r}; systems: {list_systems()}. Received: {system_name}")
        return get_system(system_name), argv
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--experiment")
    known, _ = pre.parse_known_args(argv)
    if known.experiment:
        return find_system_of_experiment(known.experiment), argv
    return None, argv


def experiment_from_args(system, args):
    """The experiment the flags describe, validated before anything is rendered or trained.

    Raises:
        ConfigError: an experiment of another system, or a bad system flag.
    """
    job = system.job_module()
    return job.configure(job.get_experiment(args.experiment), args)


def main(argv: Optional[Sequence[str]] = None, system: Optional[str] = None, prog: Optional[str] = None) -> int:
    """Entry point of ``facemt train`` and of ``recipes/train_<system>.py``; returns the exit status."""
    from keras_facemt.training.runner import RunContext, run_experiment

    argv = list(sys.argv[1:] if argv is None else argv)
    name = prog or "facemt train"
    try:
        sys_obj, rest = _split_system(argv, system)
    except FaceMTError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2
    if sys_obj is None:
        if any(a in ("-h", "--help") for a in rest):
            build_parser(prog=prog).print_help()
            return 0
        build_parser(prog=prog).print_help(sys.stderr)
        print(f"{name}: error: name a system (facemt train SYSTEM) or an experiment (--experiment NAME)",
              file=sys.stderr)
        return 2
    if rest[:1] == ["--"]:  # "facemt train ifan -- --flags" (the separator older command lines used)
        rest = rest[1:]
    try:
        args = build_parser(sys_obj, prog).parse_args(rest)
    except SystemExit as e:  # --help (0) or a usage error (2, already printed)
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    try:
        data = args.data = parse_data_flags(args.data)
        exp = experiment_from_args(sys_obj, args)
        from keras_facemt.training.strategy import get_strategy

        context = RunContext(model_dir=args.model_dir or os.path.join("runs", exp.name), cache_dir=args.cache_dir,
                             resume=args.resume, deterministic=args.deterministic, data=data)
        print(f"{exp.name}: {getattr(exp, 'description', '') or sys_obj.description}", flush=True)
        context.strategy = get_strategy(args.strategy)
        results = run_experiment(sys_obj, exp, context)
    except FaceMTError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "failed"
        print(f"{name}: error: {first}", file=sys.stderr)
        return 2
    paths = results["paths"]
    print(f"\nDone in {results['timings_seconds']['total']:.0f} s. Outputs in {paths['model_dir']}:")
    for key, path in paths.items():
        if key != "model_dir":
            print(f"  {key:<16} {path}")
    return 0


def register(subparsers) -> None:
    """``facemt train`` in the ``facemt`` parser; the arguments go to ``main`` unparsed."""
    from keras_facemt.models.registry import list_systems

    p = subparsers.add_parser("train", add_help=False,
                              help="train a system with the shared runner (facemt train SYSTEM --help)")
    p.add_argument("train_args", nargs=argparse.REMAINDER,
                   help=f"SYSTEM ({', '.join(list_systems())}) and its flags")
    p.set_defaults(func=lambda args: main(args.train_args))
