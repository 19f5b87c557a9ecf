"""Reproduces iFAN's comparisons (Li et al., MM'17, Tables 1-4, Sec. 4.3) on SynthFace.

Trains, with the same data, schedule and model size:

* each task alone (``Single Task``, no interaction),
* iFAN 2T (parsing + landmarks) and 3T (+ emotion) with ITER interaction
  iterations, each evaluated at Iter0 .. IterITER,
* 3T without re-encoders (predictions resized into the feedback, Sec. 4.3.2),
* 3T with one BatchNorm shared by all datasets (Sec. 4.3.3),
* 3T with Algorithm 1's stage 2 to the letter (ITER + 1 separate updates per
  sampled batch) instead of one update on the summed iterations' losses,

and writes one table (``ablation.md``, ``ablation.json``) of the parsing overall
F-score, landmark NME and emotion accuracy, with the trivial baselines. Effects are
reported as measured, whichever way they go; every run's own reports stay in
``<out-dir>/<variant>/``.

``--investigate-iterations`` runs instead the study of why the interaction
iterations do or do not help (``reports/ifan_iterations.md``): the 3T model at
Iter0 .. IterITER as it is (two seeds, for the run-to-run noise), without
re-encoders, with the literal Algorithm 1 stage 2, with the feedback reaching every
dense block, with per-iteration BN statistics, with the last two together, and
with a longer stage 2; the table (``iterations.md``, ``iterations.json``) gives
every iteration's metrics and each variant's IterITER - Iter0 change next to the
seed-to-seed difference.

Example::

    python recipes/ablate_ifan.py --experiment ifan_3t_smoke --out-dir runs/ablate_smoke
    python recipes/ablate_ifan.py --investigate-iterations --experiment ifan_3t_smoke --iter 2 \
        --out-dir runs/ifan_iterations
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_facemt.errors import ConfigError, FaceMTError  # noqa: E402

COLUMNS = (("parsing", "overall", "Parsing overall F (%)"), ("landmarks", "nme", "Landmark NME (%)"),
           ("emotion", "accuracy", "Emotion accuracy (%)"))


def variants(base, iterations: int):
    """``[(name, label, experiment)]`` of the comparison, all derived from ``base``."""
    out = []
    for task in base.tasks:
        out.append((f"single_{task}", "Single Task", dataclasses.replace(base.with_tasks((task,)), iterations=0)))
    if "parsing" in base.tasks and "landmarks" in base.tasks and len(base.tasks) > 2:
        out.append(("ifan_2t", "iFAN 2T", dataclasses.replace(base.with_tasks(("parsing", "landmarks")),
                                                               iterations=iterations)))
    full = dataclasses.replace(base, iterations=iterations)
    label = f"iFAN {len(base.tasks)}T"
    out.append(("ifan_full", label, full))
    if iterations > 0:
        overrides = dict(full.model_overrides)
        out.append(("no_reencoders", f"{label} without re-encoders",
                    dataclasses.replace(full, model_overrides=tuple({**overrides, "reencoders": False}.items()))))
        out.append(("shared_bn", f"{label} with shared BN",
                    dataclasses.replace(full, model_overrides=tuple({**overrides, "shared_bn": True}.items()))))
        out.append(("ifan_literal", f"{label} literal Algorithm 1 stage 2",
                    dataclasses.replace(full, literal_stage2=True)))
    return out


# Stage-2 length of the ``longer`` investigation variant, in multiples of the base's.
LONGER_FINETUNE = 2.0


def _with_model(exp, **fields):
    return dataclasses.replace(exp, model_overrides=tuple({**dict(exp.model_overrides), **fields}.items()))


def investigation_variants(base, iterations: int):
    """``[(name, label, experiment)]`` of the iteration study, most telling first.

    Every variant is the 3T model at ``iterations`` ITER with one factor changed; the
    second seed of the unchanged model measures the run-to-run noise.
    """
    if iterations < 1:
        raise ConfigError(f"The iteration study needs ITER >= 1. Received: --iter {iterations}")
    full = dataclasses.replace(base, iterations=iterations)
    return [
        ("baseline", "As is", full),
        ("baseline_seed1", f"As is, seed {full.seed + 1}", dataclasses.replace(full, seed=full.seed + 1)),
        ("every_block", "Feedback to every block", _with_model(full, feedback_to="every_block")),
        ("iteration_bn", "Per-iteration BN", _with_model(full, iteration_bn=True)),
        ("literal", "Literal Algorithm 1 stage 2", dataclasses.replace(full, literal_stage2=True)),
        ("no_reencoders", "Without re-encoders", _with_model(full, reencoders=False)),
        ("longer", f"Stage 2 x{LONGER_FINETUNE:g}",
         dataclasses.replace(full, finetune_epochs=full.finetune_epochs * LONGER_FINETUNE)),
        ("every_block_iteration_bn", "Every block + per-iteration BN",
         _with_model(full, feedback_to="every_block", iteration_bn=True)),
    ]


def _iteration_keys(results):
    final = results["final"]
    return sorted({it for per in final.values() for it in per}, key=lambda k: int(k.split("_")[-1]))


def iteration_change(results, task: str, key: str):
    """Last minus first iteration's ``key`` of ``task`` (metric units), or None."""
    per = results["final"].get(task, {})
    iters = [it for it in _iteration_keys(results) if it in per]
    if len(iters) < 2:
        return None
    return per[iters[-1]][key] - per[iters[0]][key]


def _signed(v):
    return "-" if v is None else f"{100 * v:+.2f}"


def investigation_markdown(experiment: str, iterations: int, runs, all_results, machine, seconds) -> str:
    """``iterations.md``: every variant at every iteration, and the IterITER - Iter0 changes vs. noise."""
    header = ["Variant", "Iteration"] + [c for _, _, c in COLUMNS]
    lines = [f"# Why iFAN's iterations do (not) help: SynthFace ({experiment}, ITER={iterations})", "",
             "Held-out metrics; every variant changes one factor of the first row (same data, "
             "schedule, size and seed unless named). Parsing F and emotion accuracy: higher is better; "
             "NME: lower is better.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, label, _ in runs:
        if name not in all_results:
            continue
        for row in table_rows(name, label, all_results[name], all_iterations=True):
            lines.append("| " + " | ".join([label, row[0][len(label):].strip()] + row[1:]) + " |")
    change_header = ["Variant"] + [f"{c} Iter{iterations} - Iter0" for _, _, c in COLUMNS]
    lines += ["", f"Change from Iter0 to Iter{iterations} (points; NME: negative is better):", "",
              "| " + " | ".join(change_header) + " |", "|" + "---|" * len(change_header)]
    for name, label, _ in runs:
        if name in all_results:
            cells = [_signed(iteration_change(all_results[name], t, k)) for t, k, _ in COLUMNS]
            lines.append("| " + " | ".join([label] + cells) + " |")
    if "baseline" in all_results and "baseline_seed1" in all_results:
        noise = []
        for task, key, _ in COLUMNS:
            a, b = (all_results[n]["final"].get(task, {}) for n in ("baseline", "baseline_seed1"))
            last = f"iter_{iterations}"
            noise.append("-" if last not in a or last not in b else f"{100 * abs(a[last][key] - b[last][key]):.2f}")
        change_noise = []
        for task, key, _ in COLUMNS:
            a, b = (iteration_change(all_results[n], task, key) for n in ("baseline", "baseline_seed1"))
            change_noise.append("-" if a is None or b is None else f"{100 * abs(a - b):.2f}")
        lines += ["", "Run-to-run noise (|seed 0 - seed 1| of the unchanged model at "
                  f"Iter{iterations}, points): " + ", ".join(
                      f"{c} {n}" for (_, _, c), n in zip(COLUMNS, noise)),
                  f"... of its Iter{iterations} - Iter0 change: " + ", ".join(
                      f"{c} {n}" for (_, _, c), n in zip(COLUMNS, change_noise))]
    lines += ["", f"Machine: {machine}", f"Total time: {seconds:.0f} s", ""]
    return "\n".join(lines)


def finished_results(model_dir: str, exp):
    """The ``results.json`` of a finished run of exactly ``exp`` in ``model_dir``, else None.

    An interrupted ablation or study then skips its finished runs instead of
    restoring and re-evaluating them; a run of another experiment is not reused.
    """
    import json

    from keras_facemt.io import finite_json
    from keras_facemt.training.runner import RESULTS_JSON

    path = os.path.join(model_dir, RESULTS_JSON)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        results = json.load(f)
    same = results.get("experiment_config") == json.loads(json.dumps(finite_json(dataclasses.asdict(exp))))
    return results if same else None


def _pct(v):
    return "-" if v is None else f"{100 * v:.2f}"


def table_rows(name, label, results, all_iterations: bool):
    """Rows ``[label, parsing, landmarks, emotion]`` of one run (one per iteration when asked)."""
    final = results["final"]
    iters = sorted({it for per in final.values() for it in per}, key=lambda k: int(k.split("_")[-1]))
    if not all_iterations:
        iters = iters[-1:]
    rows = []
    for it in iters:
        cells = []
        for task, key, _ in COLUMNS:
            m = final.get(task, {}).get(it)
            cells.append(_pct(m[key]) if m else "-")
        suffix = f" Iter{it.split('_')[-1]}" if all_iterations else ""
        rows.append([label + suffix] + cells)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", default="ifan_3t", help="base experiment (3 tasks); default ifan_3t")
    p.add_argument("--iter", type=int, default=None, help="ITER of the interaction variants (default: the experiment's)")
    p.add_argument("--out-dir", default="runs/ablate_ifan")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--only", default=None, help="comma-separated variant names to run (default: all)")
    p.add_argument("--investigate-iterations", action="store_true",
                   help="run the study of the interaction iterations (iterations.md) instead of the ablation")
    args = p.parse_args(argv)
    try:
        from keras_facemt.models.ifan.experiments import get_experiment
        from keras_facemt.models.ifan.reports import _finite
        from keras_facemt.io import write_json_atomic, write_text_atomic
        from keras_facemt.models.registry import get_system
        from keras_facemt.training.runner import RESULTS_JSON, RunContext, run_experiment

        base = get_experiment(args.experiment)
        iterations = base.iterations if args.iter is None else args.iter
        if iterations < 0:
            raise ConfigError(f"--iter must be >= 0. Received: --iter {iterations}")
        runs = (investigation_variants if args.investigate_iterations else variants)(base, iterations)
        if args.only:
            keep = set(args.only.split(","))
            unknown = keep - {n for n, _, _ in runs}
            if unknown:
                raise ConfigError(f"Unknown variant(s) {sorted(unknown)}; variants: {[n for n, _, _ in runs]}. "
                                  f"Received: --only {args.only}")
            runs = [r for r in runs if r[0] in keep]
        all_results = {}
        started = time.time()
        for name, label, exp in runs:
            model_dir = os.path.join(args.out_dir, name)
            print(f"=== {name}: {label} (tasks {list(exp.tasks)}, ITER={exp.iterations}) -> {model_dir}", flush=True)
            finished = finished_results(model_dir, exp)
            if finished is not None:
                print(f"    finished before with this experiment: reading {RESULTS_JSON}", flush=True)
                all_results[name] = finished
                continue
            # An interrupted ablation continues where each run stopped.
            context = RunContext(model_dir, cache_dir=args.cache_dir,
                                 resume=os.path.isdir(os.path.join(model_dir, "checkpoints")))
            all_results[name] = run_experiment(get_system("ifan"), exp, context)
            if args.investigate_iterations:
                # Rewritten after every run: an interrupted study still has its table so far.
                _write_investigation(args, iterations, runs, all_results, time.time() - started)
    except FaceMTError as e:
        print(f"ablate_ifan: error: {e}", file=sys.stderr)
        return 2

    if args.investigate_iterations:
        md = _write_investigation(args, iterations, runs, all_results, time.time() - started)
        print(open(md).read())
        print(f"Wrote {md}")
        return 0
    header = ["Model"] + [c for _, _, c in COLUMNS]
    rows = []
    any_results = next(iter(all_results.values()))
    base_row = ["Trivial baseline"]
    for task, _, _ in COLUMNS:
        b = None
        for r in all_results.values():
            if task in r["baselines"]:
                bt = r["baselines"][task]
                b = {"parsing": lambda: bt["majority_class"]["overall"], "landmarks": lambda: bt["mean_shape"]["nme"],
                     "emotion": lambda: bt["majority"]}[task]()
                break
        base_row.append(_pct(b))
    rows.append(base_row)
    for name, label, _ in runs:
        rows += table_rows(name, label, all_results[name], all_iterations=name.startswith("ifan_"))
    lines = [f"# iFAN ablation on SynthFace ({args.experiment}, ITER={iterations})", "",
             "Held-out metrics, one model per row group; all runs share data, schedule and model size. "
             "Trivial baselines: all-majority-class parsing, mean-shape landmarks, majority-class emotion.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", f"Machine: {any_results['machine']}", f"Total time: {time.time() - started:.0f} s", ""]
    os.makedirs(args.out_dir, exist_ok=True)
    md = os.path.join(args.out_dir, "ablation.md")
    write_text_atomic(md, "\n".join(lines))
    write_json_atomic(os.path.join(args.out_dir, "ablation.json"),
                      _finite({"rows": [dict(zip(header, r)) for r in rows],
                               "runs": {n: {"final": r["final"], "baselines": r["baselines"], "timings_seconds": r["timings_seconds"]}
                                        for n, r in all_results.items()}}))
    print("\n".join(lines))
    print(f"Wrote {md}")
    return 0


def _write_investigation(args, iterations, runs, all_results, seconds) -> str:
    from keras_facemt.io import write_json_atomic, write_text_atomic
    from keras_facemt.models.ifan.reports import _finite

    os.makedirs(args.out_dir, exist_ok=True)
    machine = next(iter(all_results.values()))["machine"]
    md = os.path.join(args.out_dir, "iterations.md")
    write_text_atomic(md, investigation_markdown(args.experiment, iterations, runs, all_results, machine, seconds))
    write_json_atomic(os.path.join(args.out_dir, "iterations.json"),
                      _finite({"experiment": args.experiment, "iterations": iterations,
                               "runs": {n: {"final": r["final"], "timings_seconds": r["timings_seconds"],
                                            "changes": {t: iteration_change(r, t, k) for t, k, _ in COLUMNS}}
                                        for n, r in all_results.items()}}))
    return md


if __name__ == "__main__":
    sys.exit(main())
