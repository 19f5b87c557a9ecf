"""TFN's ablations in one run (Lin et al., IEEE TCYB 2019, Sec. V-A, V-B, IV-B.1, IV-C, VI).

Every variant trains on the same rendered SynthFace scenes with the same schedule
and is scored by the same protocol (``task.evaluate``, the deployable graph); each
is one shared-runner run (``training.runner.run_experiment``) in ``<out>/<variant>/``
with its own ``results.json``, reused when present so an interrupted ablation
continues. ``write_reports`` puts one Markdown table per paper table in
``reports/``, the measured numbers next to the paper's, each of the paper's claims
checked against the measurement (as in the paper, opposite, or within noise).

Seeds: ``recipes/ablate_tfn.py --seeds 0,1,2`` repeats the variants per seed (data
and training) in ``<out>/seed<k>/``; ``pool_seeds`` joins them, cells become the
mean and standard deviation over seeds, and a claim is judged on the per-seed
paired differences with a 95% t-interval (``effect``).

Variants (switches of ``TFNConfig`` / ``TFNExperiment``):

* ``fuse_5`` .. ``fuse_12345`` (Sec. V-A, Fig. 4): EVERY task's block fuses the same
  stacks ({5}, {4,5}, {3,4,5}, {2..5}, {1..5}). The paper sweeps one task at a time
  with the others on {5}; the blocks are task-oriented (no weights in common), so
  one run per stack set scores all three tasks' sweeps at once, at a fifth of the
  cost; the other tasks' blocks differ from the paper's {5} (they share the stem).
* ``ormm`` / ``trmm`` / ``srmm`` / ``tfn`` (Sec. V-B, Fig. 5, Table III): the
  single-layer RPN on stack 5 carrying every anchor scale, plain RoI pooling of
  stack 5 in one block for all tasks, and FCs shared by every task with one-step
  refinement (ORMM), shared by landmarks + attributes on a second region subnet
  reading the refined boxes (TRMM) or task-specific (SRMM); TFN is the full model.
* ``tfn_iou_match`` (Sec. IV-B.1): RPN positives by [42]'s IoU >= 0.7-or-best rule
  instead of each face's top-3 anchors, scored on all and on small faces.
* ``tfn_joint`` (Sec. IV-C): stage 1 (joint training) only, for the same total
  number of updates as the four stages.
* ``tfn_heatmap`` / ``tafn_heatmap`` (Sec. VI, Table VI): the heat-map landmark
  subnet, without and with the TAFN block.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

FUSION_SETS = {"fuse_5": (5,), "fuse_45": (4, 5), "fuse_345": (3, 4, 5), "fuse_2345": (2, 3, 4, 5),
               "fuse_12345": (1, 2, 3, 4, 5)}
# One block's stacks swept alone, the other blocks at TFN's sets (detection / attributes {3,4,5},
# landmarks {4,5}): variant -> (config field, stacks). The sets equal to TFN's are "tfn"; the
# landmark block at {3,4,5} is "fuse_345".
SINGLE_BLOCK_FUSION = {
    f"{prefix}_fuse_{''.join(map(str, levels))}": (field, levels)
    for prefix, field, sets in (("lm", "landmark_levels", ((5,), (2, 3, 4, 5), (1, 2, 3, 4, 5))),
                                ("det", "detection_levels", ((5,), (4, 5), (2, 3, 4, 5), (1, 2, 3, 4, 5))),
                                ("attr", "attribute_levels", ((5,), (4, 5), (2, 3, 4, 5), (1, 2, 3, 4, 5))))
    for levels in sets
}
# Sec. V-B's comparison models: (two-step refinement, FCs shared by).
COMPARISON_MODELS = {"ormm": (False, "all"), "trmm": (True, "face"), "srmm": (True, "none")}
VARIANTS = tuple(FUSION_SETS) + tuple(COMPARISON_MODELS) + ("tfn", "tfn_iou_match", "tfn_joint", "tfn_heatmap",
                                                              "tafn_heatmap") + tuple(SINGLE_BLOCK_FUSION)


def variant_experiment(exp, name: str, base_cfg):
    """``exp`` with variant ``name``'s switches (model overrides appended to the experiment's).

    Raises:
        ConfigError: for an unknown variant.
    """
    from keras_facemt.errors import ConfigError

    model: Dict[str, object] = {}
    run: Dict[str, object] = {}
    if name in FUSION_SETS:
        levels = FUSION_SETS[name]
        model = {"detection_levels": levels, "landmark_levels": levels, "attribute_levels": levels}
    elif name in SINGLE_BLOCK_FUSION:
        field, levels = SINGLE_BLOCK_FUSION[name]
        model = {field: levels}
    elif name in COMPARISON_MODELS:
        two_step, sharing = COMPARISON_MODELS[name]
        # Faster R-CNN's RPN: one head on the top stack carrying every anchor scale.
        scales = tuple(sorted(s for level in base_cfg.rpn_scales for s in level))
        model = {"rpn_levels": (5,), "rpn_scales": (scales,), "fused_block": False, "shared_block": True,
                 "two_step": two_step, "fc_sharing": sharing}
    elif name == "tfn_iou_match":
        run = {"rpn_matcher": "iou"}
    elif name == "tfn_joint":
        run = {"stage_steps": (sum(exp.stage_steps), 0, 0, 0)}
    elif name == "tfn_heatmap":
        model = {"heatmap_landmarks": True}
    elif name == "tafn_heatmap":
        model = {"heatmap_landmarks": True, "tafn": True}
    elif name != "tfn":
        raise ConfigError(f"Unknown TFN ablation variant; variants: {list(VARIANTS)}. Received: variant={name!r}")
    return dataclasses.replace(exp, name=f"{exp.name}_{name}",
                               model_overrides=tuple(exp.model_overrides) + tuple(model.items()), **run)


def scores_of(results: Dict) -> Dict[str, object]:
    """The figures the tables read, from one run's ``results.json``."""
    m = results["metrics"]
    out = {k: m.get(k) for k in ("ap", "ap_small", "small_faces", "test_faces", "nme", "nme_per_face_se",
                                 "nme_scored_faces", "age_mae", "age_mae_se", "age_faces", "gender_accuracy",
                                 "gender_faces", "ethnicity_accuracy", "ethnicity_faces")}
    out["ced"] = m.get("ced", {})
    out["params"] = results.get("params")
    out["train_seconds"] = results.get("timings_seconds", {}).get("train")
    out["seconds"] = results.get("timings_seconds", {}).get("total")
    out["machine"] = results.get("machine", {})
    return out


def _finished(model_dir: str) -> Optional[Dict[str, object]]:
    """The scores of a finished run (its ``results.json``), or None."""
    from keras_facemt.training.runner import RESULTS_JSON

    path = os.path.join(model_dir, RESULTS_JSON)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return scores_of(json.load(f))


def read_scores(out_dir: str, variants: Sequence[str] = ()) -> Dict[str, Dict[str, object]]:
    """``{variant: scores}`` of every variant with a ``results.json`` in ``out_dir`` (all of
    ``VARIANTS`` by default), so a report written after a partial run keeps the other rows."""
    found = {name: _finished(os.path.join(out_dir, name)) for name in variants or VARIANTS}
    return {name: s for name, s in found.items() if s is not None}


def pool_seeds(per_seed: Dict[int, Dict[str, Dict[str, object]]]) -> Dict[str, Dict[str, object]]:
    """``{seed: {variant: scores}}`` -> ``{variant: scores}``: each entry is its first seed's
    scores (parameters, machine) with ``"runs": {seed: scores}`` holding every seed's."""
    pooled: Dict[str, Dict[str, object]] = {}
    for seed in sorted(per_seed):
        for name, s in per_seed[seed].items():
            pooled.setdefault(name, dict(s, runs={}))["runs"][seed] = s
    return pooled


def run_ablation(exp, out_dir: str, cache_dir: Optional[str] = None, variants: Optional[Sequence[str]] = None,
                 log: Callable = print) -> Dict[str, Dict[str, object]]:
    """Trains and scores each variant through the shared runner; returns ``{variant: scores}``.

    A variant whose ``<out_dir>/<variant>/results.json`` exists is read, not rerun; one
    with checkpoints but no results resumes.
    """
    from keras_facemt.models.registry import get_system
    from keras_facemt.models.tfn.job import model_config
    from keras_facemt.training.runner import RESULTS_JSON, RunContext, checkpoint_dirs, run_experiment

    system = get_system("tfn")
    base_cfg = model_config(exp)
    runs = [(n, variant_experiment(exp, n, base_cfg)) for n in (variants or VARIANTS)]
    for _, run in runs:
        model_config(run)  # every variant's config is valid before anything trains
    scores: Dict[str, Dict[str, object]] = {}
    for name, run in runs:
        model_dir = os.path.join(out_dir, name)
        done = _finished(model_dir)
        if done is not None:
            scores[name] = done
            log(f"[{name}] read {os.path.join(model_dir, RESULTS_JSON)}")
            continue
        log(f"=== {name} -> {model_dir}")
        t = time.time()
        context = RunContext(model_dir, cache_dir=cache_dir, resume=bool(checkpoint_dirs(model_dir)), log=log)
        scores[name] = scores_of(run_experiment(system, run, context))
        log(f"[{name}] AP {scores[name]['ap']:.4f} NME {scores[name]['nme']:.4f} in {time.time() - t:.0f}s")
    return scores


# --- reports -------------------------------------------------------------------------------------------------

# Metric -> (column title, value getter, standard-error getter or None, higher is better, as percent).
def _ced(cutoff, key):
    return lambda s: (s.get("ced") or {}).get(str(cutoff), {}).get(key)


def _binomial_se(acc_key, n_key):
    def se(s):
        p, n = s.get(acc_key), s.get(n_key)
        return None if p is None or not n else math.sqrt(max(p * (1 - p), 1e-9) / n)

    return se


# AP's error bar is the binomial one of a proportion over its faces: a rough stand-in (AP is
# not a proportion), enough to keep a difference of a face or two from reading as an effect.
METRICS = {
    "ap": ("AP@0.5", lambda s: s.get("ap"), _binomial_se("ap", "test_faces"), True, True),
    "ap_small": ("AP@0.5 small faces", lambda s: s.get("ap_small"), _binomial_se("ap_small", "small_faces"), True,
                 True),
    "nme": ("NME (%)", lambda s: s.get("nme"), lambda s: s.get("nme_per_face_se"), False, True),
    "age_mae": ("age MAE (years)", lambda s: s.get("age_mae"), lambda s: s.get("age_mae_se"), False, False),
    "gender": ("gender acc. (%)", lambda s: s.get("gender_accuracy"), _binomial_se("gender_accuracy", "gender_faces"),
               True, True),
    "ethnicity": ("ethnicity acc. (%)", lambda s: s.get("ethnicity_accuracy"),
                  _binomial_se("ethnicity_accuracy", "ethnicity_faces"), True, True),
}
for _c in (0.1, 0.2, 0.3):
    METRICS[f"auc{_c}"] = (f"AUC@{_c}", _ced(_c, "auc"), None, True, False)
    METRICS[f"fr{_c}"] = (f"FR@{_c} (%)", _ced(_c, "failure_rate"), None, False, True)


# Two-sided 95% Student-t quantiles by degrees of freedom (n seeds - 1).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def _per_seed(s, metric) -> Dict[object, float]:
    """``{seed: value}`` of ``metric`` over a pooled entry's runs (one entry without runs: ``{None: v}``)."""
    get = METRICS[metric][1]
    runs = s.get("runs") or {None: s}
    values = {k: get(r) for k, r in runs.items()}
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}


def _fmt(metric, v) -> str:
    pct = METRICS[metric][4]
    return f"{100 * v:.2f}" if pct else f"{v:.4f}" if metric.startswith("auc") else f"{v:.2f}"


def _cell(s, metric) -> str:
    values = list(_per_seed(s, metric).values()) if s else []
    if not values:
        return "-"
    if len(values) == 1:
        return _fmt(metric, values[0])
    return f"{_fmt(metric, statistics.mean(values))} ± {_fmt(metric, statistics.stdev(values))}"


def _seed_effect(a: Dict, b: Dict, higher: bool, scale: float) -> Optional[str]:
    """The paired per-seed judgement, or ``None`` when fewer than two seeds have both."""
    seeds = sorted(set(a) & set(b), key=str)
    if len(seeds) < 2:
        return None
    diffs = [a[k] - b[k] for k in seeds]
    n, mean = len(diffs), statistics.mean(diffs)
    half = T95.get(n - 1, 2.0) * statistics.stdev(diffs) / math.sqrt(n)
    agree = sum(1 for d in diffs if (d > 0 if higher else d < 0))
    detail = f"{scale * mean:+.2f} ± {scale * half:.2f}, {n} seeds, as in the paper in {agree} of {n}"
    if abs(mean) <= half:
        return f"within noise ({detail})"
    return f"{'as in the paper' if (mean > 0) == higher else 'opposite to the paper'} ({detail})"


def effect(scores, better: str, worse: str, metric: str) -> str:
    """Whether ``better`` beats ``worse`` on ``metric`` here: as in the paper, opposite, or within noise.

    With two or more seeds in common the judgement is on the per-seed paired differences:
    their mean with a 95% t-interval (within noise when the interval holds zero), and in
    how many seeds the sign agrees with the paper. With one run each it is within two
    standard errors of the run (where the metric has one)."""
    title, get, se_of, higher, pct = METRICS[metric]
    if better not in scores or worse not in scores:
        return "not run"
    scale = 100 if pct else 1
    seeded = _seed_effect(_per_seed(scores[better], metric), _per_seed(scores[worse], metric), higher, scale)
    if seeded is not None:
        return seeded
    ra, rb = scores[better], scores[worse]
    common = sorted(set(ra.get("runs") or {}) & set(rb.get("runs") or {}), key=str)
    if common:  # a single seed in common: compare those two runs
        ra, rb = ra["runs"][common[0]], rb["runs"][common[0]]
    a, b = get(ra), get(rb)
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return "not measurable"
    diff = f"{scale * (a - b):+.2f}"
    if se_of is not None:
        sa, sb = se_of(ra), se_of(rb)
        if sa is not None and sb is not None and abs(a - b) < 2 * math.hypot(sa, sb):
            return f"within noise ({diff}, 2 s.e. = {2 * scale * math.hypot(sa, sb):.2f})"
    if diff in ("+0.00", "-0.00"):
        return f"no difference at this precision ({diff})"
    good = a > b if higher else a < b
    note = "" if se_of is not None else ", no error bar"
    return f"{'as in the paper' if good else 'opposite to the paper'} ({diff}{note})"


# Each table: (file, title, paper text, [(row label, variant, paper cells)], paper columns, metrics,
#              [(claim, better, worse, metric)]).
TABLES = [
    ("tfn_fusion_sweep", "Sec. V-A (Fig. 4): stacks fused by the task-oriented blocks",
     "Fig. 4 has curves only; the text names the best sets: detection {3,4,5}, landmarks {4,5} (adding stacks "
     "1-2 \"dramatically degrades\"), attributes {3,4,5}. Each row here fuses the same stacks in all three "
     "blocks (one run per set, see `models/tfn/ablation.py`); the last row is TFN's own choice.",
     [("{5}", "fuse_5", ()), ("{4,5}", "fuse_45", ()), ("{3,4,5}", "fuse_345", ()), ("{2,3,4,5}", "fuse_2345", ()),
      ("{1,2,3,4,5}", "fuse_12345", ()), ("TFN: det {3,4,5}, lm {4,5}, attr {3,4,5}", "tfn", ())],
     (), ("ap", "nme", "age_mae", "gender", "ethnicity"),
     [("detection best with {3,4,5} (vs {5})", "fuse_345", "fuse_5", "ap"),
      ("detection best with {3,4,5} (vs {1..5})", "fuse_345", "fuse_12345", "ap"),
      ("landmarks best with {4,5} (vs {5})", "fuse_45", "fuse_5", "nme"),
      ("landmarks: adding stacks 1-2 degrades ({4,5} vs {1..5})", "fuse_45", "fuse_12345", "nme"),
      ("attributes best with {3,4,5}: age (vs {5})", "fuse_345", "fuse_5", "age_mae"),
      ("attributes best with {3,4,5}: gender (vs {5})", "fuse_345", "fuse_5", "gender"),
      ("attributes best with {3,4,5}: ethnicity (vs {5})", "fuse_345", "fuse_5", "ethnicity")]),
    ("tfn_fusion_landmarks", "Sec. V-A (Fig. 4), landmarks: the landmark block's stacks alone",
     "The sweep above changes all three blocks at once, so a landmark difference may come from the detection "
     "block's boxes. Here only the landmark block's stacks change; detection and attributes keep TFN's {3,4,5}. "
     "The paper: {4,5} best for landmarks, adding stacks 1-2 \"dramatically degrades\" them.",
     [("lm {5}", "lm_fuse_5", ()), ("lm {4,5} (TFN)", "tfn", ()), ("lm {3,4,5}", "fuse_345", ()),
      ("lm {2,3,4,5}", "lm_fuse_2345", ()), ("lm {1,2,3,4,5}", "lm_fuse_12345", ())],
     (), ("ap", "nme", "auc0.1"),
     [("landmarks best with {4,5} (vs {5})", "tfn", "lm_fuse_5", "nme"),
      ("landmarks best with {4,5} (vs {3,4,5})", "tfn", "fuse_345", "nme"),
      ("landmarks: adding stacks 1-2 degrades ({4,5} vs {1..5})", "tfn", "lm_fuse_12345", "nme")]),
    ("tfn_fusion_detection", "Sec. V-A (Fig. 4), detection: the detection block's stacks alone",
     "Only the detection block's stacks change; landmarks keep TFN's {4,5}, attributes {3,4,5}. The paper: "
     "{3,4,5} best for detection.",
     [("det {5}", "det_fuse_5", ()), ("det {4,5}", "det_fuse_45", ()), ("det {3,4,5} (TFN)", "tfn", ()),
      ("det {2,3,4,5}", "det_fuse_2345", ()), ("det {1,2,3,4,5}", "det_fuse_12345", ())],
     (), ("ap", "ap_small", "nme"),
     [("detection best with {3,4,5} (vs {5})", "tfn", "det_fuse_5", "ap"),
      ("detection best with {3,4,5} (vs {4,5})", "tfn", "det_fuse_45", "ap"),
      ("detection best with {3,4,5} (vs {1..5})", "tfn", "det_fuse_12345", "ap")]),
    ("tfn_fusion_attributes", "Sec. V-A (Fig. 4), attributes: the attribute block's stacks alone",
     "Only the attribute block's stacks change; detection keeps TFN's {3,4,5}, landmarks {4,5}. The paper: "
     "{3,4,5} best for the attributes.",
     [("attr {5}", "attr_fuse_5", ()), ("attr {4,5}", "attr_fuse_45", ()), ("attr {3,4,5} (TFN)", "tfn", ()),
      ("attr {2,3,4,5}", "attr_fuse_2345", ()), ("attr {1,2,3,4,5}", "attr_fuse_12345", ())],
     (), ("ap", "age_mae", "gender", "ethnicity"),
     [("age best with {3,4,5} (vs {5})", "tfn", "attr_fuse_5", "age_mae"),
      ("age best with {3,4,5} (vs {1..5})", "tfn", "attr_fuse_12345", "age_mae"),
      ("gender best with {3,4,5} (vs {5})", "tfn", "attr_fuse_5", "gender"),
      ("ethnicity best with {3,4,5} (vs {5})", "tfn", "attr_fuse_5", "ethnicity")]),
    ("tfn_table3_models", "Table III (Sec. V-B): ORMM, TRMM, SRMM and TFN",
     "Table III's numbers and Fig. 6 did not survive the paper's text extraction: only the prose claims are "
     "citable, checked below. ORMM: single-layer RPN, one shared subnet, one-step refinement; TRMM: + a second "
     "region subnet on the refined boxes (two-step); SRMM: + task-specific FCs; TFN: + multilayer assistant RPN "
     "and task-oriented feature-fused blocks.",
     [("ORMM", "ormm", ()), ("TRMM", "trmm", ()), ("SRMM", "srmm", ()), ("TFN", "tfn", ())],
     (), ("ap", "nme", "auc0.1", "age_mae", "gender", "ethnicity"),
     [("two-step refinement helps landmarks (TRMM vs ORMM)", "trmm", "ormm", "nme"),
      ("task-specific FCs: landmarks slightly better (SRMM vs TRMM)", "srmm", "trmm", "nme"),
      ("task-specific FCs: attributes slightly better, age (SRMM vs TRMM)", "srmm", "trmm", "age_mae"),
      ("task-specific FCs: attributes slightly better, gender (SRMM vs TRMM)", "srmm", "trmm", "gender"),
      ("TFN improves detection most (TFN vs SRMM)", "tfn", "srmm", "ap"),
      ("TFN improves landmarks further (TFN vs SRMM)", "tfn", "srmm", "nme"),
      ("TFN improves attributes further, age (TFN vs SRMM)", "tfn", "srmm", "age_mae")]),
    ("tfn_matching", "Sec. IV-B.1: RPN positives by top-3 anchors vs IoU > 0.7 (or best)",
     "The paper motivates the top-3 rule by small faces (\"the assignment would hinder the matching of "
     "reference boxes especially for the face samples with small sizes\") and gives no number for it. Small "
     "faces: narrower than 15% of the image (larger ones ignored in that AP).",
     [("top-3 anchors (TFN)", "tfn", ()), ("IoU >= 0.7 or best anchor ([42])", "tfn_iou_match", ())],
     (), ("ap", "ap_small", "nme"),
     [("top-3 detects small faces better", "tfn", "tfn_iou_match", "ap_small"),
      ("top-3 overall", "tfn", "tfn_iou_match", "ap")]),
    ("tfn_training_scheme", "Sec. IV-C: four-stage alternating training vs joint training only",
     "The paper gives no number for this comparison; its argument is that tasks converge at different rates. "
     "Both rows make the same total number of updates.",
     [("four stages (TFN)", "tfn", ()), ("stage 1 (joint) only", "tfn_joint", ())],
     (), ("ap", "nme", "age_mae", "gender", "ethnicity"),
     [("four stages: detection", "tfn", "tfn_joint", "ap"), ("four stages: landmarks", "tfn", "tfn_joint", "nme"),
      ("four stages: age", "tfn", "tfn_joint", "age_mae"), ("four stages: gender", "tfn", "tfn_joint", "gender"),
      ("four stages: ethnicity", "tfn", "tfn_joint", "ethnicity")]),
    ("tfn_table6_heatmap", "Table VI (Sec. VI): heat-map landmark subnet and TAFN",
     "Paper rows: 300-W full set, pre-trained on JFA (TFN+JFA regression row from Table IV). Cells: AUC / FR "
     "at each maximum error.",
     [("TFN (regression)", "tfn", ("0.4076 / 6.83", "0.6946 / 0.50", "0.7955 / 0.17")),
      ("TFN (heat map)", "tfn_heatmap", ("0.4483 / 3.83", "0.7188 / 0.33", "0.8114 / 0.33")),
      ("TAFN (heat map)", "tafn_heatmap", ("0.4796 / 3.17", "0.7356 / 0.33", "0.8226 / 0.33"))],
     ("paper AUC / FR% @0.1", "@0.2", "@0.3"), ("auc0.1", "fr0.1", "auc0.2", "fr0.2", "auc0.3", "fr0.3", "nme"),
     [("heat map beats regression (AUC@0.1)", "tfn_heatmap", "tfn", "auc0.1"),
      ("heat map beats regression (NME)", "tfn_heatmap", "tfn", "nme"),
      ("TAFN beats TFN with heat maps (AUC@0.1)", "tafn_heatmap", "tfn_heatmap", "auc0.1"),
      ("TAFN beats TFN with heat maps (NME)", "tafn_heatmap", "tfn_heatmap", "nme")]),
]


def _every_run(scores) -> List[Dict[str, object]]:
    """Each run's scores: every seed of a pooled entry, or the entry itself."""
    return [r for s in scores.values() for r in (s.get("runs") or {0: s}).values()]


def _machine_line(scores) -> str:
    machines = [r["machine"] for r in _every_run(scores) if r.get("machine")]
    if not machines:
        return "Machine: not recorded."
    m = machines[0]
    loads = [x["load_average_1min"] for x in machines if x.get("load_average_1min") is not None]
    load = f", 1-min load average {min(loads):.1f}-{max(loads):.1f} at the end of the runs" if loads else ""
    return (f"Machine: {m.get('cpu', '?')}, {m.get('usable_cores', '?')} usable cores{load}, Python "
            f"{m.get('python', '?')}, TensorFlow {m.get('tensorflow', '?')}.")


def write_reports(exp, scores: Dict[str, Dict[str, object]], reports_dir: str, command: str) -> List[str]:
    """One Markdown table per paper table in ``reports_dir``; rows of variants not run are left out."""
    from keras_facemt.io import write_text_atomic

    os.makedirs(reports_dir, exist_ok=True)
    written = []
    seed_sets = {tuple(sorted(s.get("runs") or {exp.seed: s})) for s in scores.values()}
    multi = any(len(seeds) > 1 for seeds in seed_sets)
    all_seeds = sorted({k for seeds in seed_sets for k in seeds})
    seeds_text = f"seeds {', '.join(str(k) for k in all_seeds)}" if multi else f"seed {exp.seed}"
    header = (f"SynthFace scenes, experiment `{exp.name}` (preset `{exp.preset}`, "
              f"{dict(exp.model_overrides).get('image_size', 'preset')} px, {exp.train_scenes} training / "
              f"{exp.test_scenes} test scenes of {exp.min_faces}-{exp.max_faces} faces, stages "
              f"{'+'.join(str(s) for s in exp.stage_steps)} updates, batch {exp.batch_size}, {seeds_text}). "
              + ("Cells with several seeds are the mean ± standard deviation over seeds (data and training); a "
                 "claim with two or more seeds in both rows is judged on the per-seed paired differences: their "
                 "mean ± the 95% t-interval's half-width (within noise when it holds zero), and in how many seeds "
                 "the sign agrees with the paper. Rows run on one seed, and claims on them: "
                 if multi else "One seed per variant; ")
              + "accuracies, NME and MAE carry their standard error (AP the binomial one over its faces, a rough "
              "stand-in), and differences within two of them are called noise; CED AUC and failure rates have no "
              "error bar.")
    for file, title, text, rows, paper_cols, metrics, claims in TABLES:
        have = [r for r in rows if r[1] in scores]
        if not have:
            continue
        cols = [METRICS[m][0] for m in metrics]
        lines = [f"# TFN {title}", "", header, "", text, "",
                 "| Model | " + " | ".join(cols + ["params"] + list(paper_cols)) + " |",
                 "|" + "---|" * (2 + len(cols) + len(paper_cols))]
        for label, v, paper in have:
            s = scores[v]
            params = f"{s['params']:,}" if s.get("params") else "-"
            if multi:
                n = len(s.get("runs") or [0])
                label = f"{label} ({n} seed{'s' if n > 1 else ''})"
            lines.append(f"| {label} | " + " | ".join([_cell(s, m) for m in metrics] + [params] + list(paper)) + " |")
        lines += ["", "| Paper's claim | Measured here |", "|---|---|"]
        lines += [f"| {claim} | {effect(scores, better, worse, metric)} |" for claim, better, worse, metric in claims]
        lines += ["", _machine_line(scores)]
        runs = [scores[v].get("seconds") for _, v, _ in have]
        if all(r is not None for r in runs):
            every = _every_run(scores)
            total = sum(r.get("seconds") or 0.0 for r in every)
            lines.append(f"Wall time of these rows' runs{' (first seed)' if multi else ''}: "
                         f"{', '.join(f'{r:.0f}' for r in runs)} s; of the {len(every)} runs read for these "
                         f"reports: {total / 60:.1f} min.")
        lines += [f"Command: `{command}`", ""]
        path = os.path.join(reports_dir, f"{file}.md")
        write_text_atomic(path, "\n".join(lines))
        written.append(path)
    return written
