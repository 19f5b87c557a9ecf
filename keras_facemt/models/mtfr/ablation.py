"""MTFR's ablations in one run (Wang et al., ICMR 2017, Tables 2-3 and 5-7).

Every variant trains on the same rendered data with the same schedule and is scored
with the same protocol (``task.py``); ``reports/mtfr_table*.md`` put each table's
synthetic numbers next to the paper's (MegaFace rank-1 % / LFW %), with the
direction of each effect stated. The paper's "w/o attribute" rows and Table 7's
"none" are the same model (identity softmax only), trained once.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Dict, List, Tuple

# Variant -> model overrides (on the experiment's preset).
VARIANTS: Dict[str, Dict[str, object]] = {
    "fast_none": {"block": "fast", "attribute_group": "none"},
    "fast_all": {"block": "fast"},
    "full_none": {"block": "full", "attribute_group": "none"},
    "full_all": {"block": "full"},
    "variant_all": {"block": "variant"},
    "fast_config2": {"block": "fast", "head_config": 2},
    "fast_config3": {"block": "fast", "head_config": 3},
    "fast_eye": {"block": "fast", "attribute_group": "eye"},
    "fast_nose": {"block": "fast", "attribute_group": "nose"},
    "fast_global": {"block": "fast", "attribute_group": "global"},
}

# (title, rows: (label, variant, paper rank-1 %, paper LFW % or TAR %), paper column names, claim)
TABLES: List[Tuple[str, str, List[Tuple[str, str, float, float]], Tuple[str, str], Tuple[str, str]]] = [
    ("mtfr_table2_3_attributes", "Tables 2-3: with vs without attribute supervision",
     [("Fast w/o attribute", "fast_none", 70.28, 58.20), ("Fast", "fast_all", 73.07, 68.56),
      ("Full w/o attribute", "full_none", 74.25, 76.22), ("Full", "full_all", 77.74, 79.24)],
     ("paper MegaFace rank-1 %", "paper TAR@1e-6 %"), ("fast_all", "fast_none")),
    ("mtfr_table5_blocks", "Table 5: building blocks",
     [("Fast", "fast_all", 73.07, 97.62), ("Full", "full_all", 77.74, 98.15), ("Variants", "variant_all", 69.63, 97.50)],
     ("paper MegaFace rank-1 %", "paper LFW %"), ("full_all", "fast_all")),
    ("mtfr_table6_configs", "Table 6: last-layer configurations (Fast model)",
     [("Config-1", "fast_all", 73.07, 97.62), ("Config-2", "fast_config2", 72.05, 97.50),
      ("Config-3", "fast_config3", 69.40, 97.60)],
     ("paper MegaFace rank-1 %", "paper LFW %"), ("fast_all", "fast_config2")),
    ("mtfr_table7_groups", "Table 7: attribute groups (Fast model)",
     [("none", "fast_none", 70.28, 97.20), ("eye", "fast_eye", 72.23, 97.49), ("nose", "fast_nose", 71.72, 97.63),
      ("global", "fast_global", 71.92, 97.45), ("all", "fast_all", 73.07, 97.62)],
     ("paper MegaFace rank-1 %", "paper LFW %"), ("fast_all", "fast_none")),
]


def run_ablation(exp, out_dir: str, cache_dir: str = None, variants=None, reports_dir: str = "reports",
                 log: Callable = print) -> Dict[str, Dict[str, object]]:
    """Trains and scores each variant (resuming finished ones from ``<out_dir>/<variant>/scores.json``)."""
    import json

    from keras_facemt.io import write_json_atomic
    from keras_facemt.models.mtfr import job
    from keras_facemt.models.mtfr.data import prepare

    names = list(variants or VARIANTS)
    os.makedirs(out_dir, exist_ok=True)
    base_cfg = job.model_config(exp)
    data = prepare(exp, base_cfg.image_size, cache_dir or os.path.join(out_dir, "data"), log=log)
    labels = job._train_labels(data["train_dir"])
    scores: Dict[str, Dict[str, object]] = {}
    for name in names:
        path = os.path.join(out_dir, name, "scores.json")
        if os.path.exists(path):
            with open(path) as f:
                scores[name] = json.load(f)
            continue
        run = dataclasses.replace(exp, model_overrides=tuple(exp.model_overrides) + tuple(VARIANTS[name].items()))
        cfg = job.model_config(run)
        t = time.time()
        model, _, seconds = job.train(run, cfg, data["train_dir"], os.path.join(out_dir, name), log=log)
        res = job.evaluate(model, cfg, run, data, labels)
        m = res["metrics"]
        scores[name] = {"rank1": m["identification"]["rank1"], "verification": m["verification"]["accuracy"],
                        "tar_1e-3": m["tar_at_far"].get("0.001"), "tar_1e-4": m["tar_at_far"].get("0.0001"),
                        "attributes": m.get("attributes", {}).get("mean"), "params": int(model.count_params()),
                        "train_seconds": seconds, "seconds": time.time() - t}
        write_json_atomic(path, scores[name])
        log(f"[{name}] rank-1 {scores[name]['rank1']:.4f} verification {scores[name]['verification']:.4f}")
    write_reports(exp, scores, reports_dir)
    return scores


def _standard_errors(exp, scores) -> dict:
    """Binomial standard errors (fractions) of one run's rank-1 and verification accuracy."""
    import math

    probes = exp.test_identities * (exp.test_images_per_identity - 1)
    r1 = max(s["rank1"] for s in scores.values())
    ver = max(s["verification"] for s in scores.values())
    return {"rank1": math.sqrt(max(r1 * (1 - r1), 1e-9) / probes),
            "verification": math.sqrt(max(ver * (1 - ver), 1e-9) / exp.verification_pairs), "probes": probes}


def _direction(scores, better: str, worse: str, key: str, se: float) -> str:
    a, b = scores[better][key], scores[worse][key]
    if a is None or b is None:
        return "n/a"
    if abs(a - b) < 2 * se:
        return f"within noise ({100 * (a - b):+.1f} points)"
    return f"as in the paper ({100 * (a - b):+.1f})" if a > b else f"opposite to the paper ({100 * (a - b):+.1f})"


def _noise_note(exp, scores) -> str:
    se = _standard_errors(exp, scores)
    return (f"One seed per variant, {se['probes']} probes: one standard error is about {100 * se['rank1']:.1f} points "
            f"of rank-1 and {100 * se['verification']:.1f} of verification, so differences below about twice that "
            "are noise, not effects.")


def write_reports(exp, scores: Dict[str, Dict[str, object]], reports_dir: str) -> List[str]:
    """One Markdown table per paper table; variants that did not run are left out."""
    os.makedirs(reports_dir, exist_ok=True)
    written = []
    for file, title, rows, paper_cols, (better, worse) in TABLES:
        have = [r for r in rows if r[1] in scores]
        if not have:
            continue
        lines = [f"# MTFR {title}", "",
                 f"SynthFace, experiment `{exp.name}` (preset `{exp.preset}`, {exp.train_identities} training people, "
                 f"{exp.stage1_steps}+{exp.stage2_steps} steps, batch {exp.batch_size}); rank-1 against "
                 f"{exp.distractors:,} distractors, 10-fold verification on {exp.verification_pairs} pairs of unseen "
                 f"people. {_noise_note(exp, scores)}", "",
                 f"| Model | rank-1 | verification | TAR@1e-3 | mean attribute acc. | params | {paper_cols[0]} | "
                 f"{paper_cols[1]} |", "|---|---|---|---|---|---|---|---|"]
        for label, v, p1, p2 in have:
            s = scores[v]
            attr = "-" if s.get("attributes") is None else f"{100 * s['attributes']:.2f}"
            tar = "-" if s.get("tar_1e-3") is None else f"{100 * s['tar_1e-3']:.2f}"
            lines.append(f"| {label} | {100 * s['rank1']:.2f} | {100 * s['verification']:.2f} | {tar} | {attr} | "
                         f"{s['params']:,} | {p1:.2f} | {p2:.2f} |")
        if better in scores and worse in scores:
            se = _standard_errors(exp, scores)
            lines += ["", f"Paper: `{better}` beats `{worse}`. Here: rank-1 "
                      f"{_direction(scores, better, worse, 'rank1', se['rank1'])}, verification "
                      f"{_direction(scores, better, worse, 'verification', se['verification'])}."]
        path = os.path.join(reports_dir, f"{file}.md")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
        written.append(path)
    return written
