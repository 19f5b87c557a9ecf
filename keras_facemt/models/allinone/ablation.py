"""All-in-One's ablations in one run (Ranjan et al., FG 2017, Table VI, Sec. III-B, Eq. 6).

Every variant trains through the shared runner on the same rendered data, with the
same schedule and model size, and is scored by the same protocol (``task.py``):

* ``identity_only``: the identity task alone (Sec. III-B's face-identification
  net [41]; Table VI's "identity-only" descriptor);
* ``mtl_scratch``: every task from random weights;
* ``mtl_id_init``: every task, initialised from ``identity_only`` (the paper's
  initialisation);
* ``single_face`` / ``single_smile`` / ``single_gender`` / ``single_age``: one
  task group alone (detection, points, visibility and pose form HyperFace's group,
  the paper's first sub-network);
* ``age_euclidean`` / ``age_gaussian``: Eq. 6 at lambda 0 or 1 throughout instead
  of the switch (``mtl_scratch``).

Table VI's 2x2 (``table6``) scores the unseen verification people with faces
aligned by the ground-truth points or by the points the multi-task network
predicts on a face proposal, described by the multi-task or the identity-only
network. ``write_reports`` puts each table next to the paper's numbers, states
each effect as measured against a binomial standard error, and records the
command and the machine.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

FACE_TASKS = ("detection", "landmarks", "visibility", "pose")
# name -> (label, experiment overrides); ``init_from`` is filled in by ``run_ablation``.
VARIANTS: Dict[str, Tuple[str, Dict[str, object]]] = {
    "identity_only": ("identity only", {"tasks": ("identity",), "scene_eval_scenes": 0}),
    "mtl_scratch": ("All-in-One, from scratch", {}),
    "mtl_id_init": ("All-in-One, from the identity net", {"init_from": "identity_only"}),
    "single_face": ("detection + points + visibility + pose only", {"tasks": FACE_TASKS}),
    "single_smile": ("smile only", {"tasks": ("smile",), "scene_eval_scenes": 0}),
    "single_gender": ("gender only", {"tasks": ("gender",), "scene_eval_scenes": 0}),
    "single_age": ("age only", {"tasks": ("age",), "scene_eval_scenes": 0}),
    "age_euclidean": ("Eq. 6 Euclidean only (lambda 0)", {"age_loss": "euclidean"}),
    "age_gaussian": ("Eq. 6 Gaussian only (lambda 1)", {"age_loss": "gaussian"}),
}
# Table VI (IJB-A, verification TAR at FAR 0.01 / rank-1): alignment x descriptor.
PAPER_TABLE6 = {("predicted", "identity_only"): (0.871, 0.925), ("predicted", "multitask"): (0.889, 0.939),
                ("paper_own", "multitask"): (0.893, 0.941)}


def variant_experiment(base, name: str, out_dir: str):
    """``base`` with variant ``name``'s overrides (``init_from`` resolved to a run's ``model.keras``)."""
    from keras_facemt.errors import ConfigError

    if name not in VARIANTS:
        raise ConfigError(f"Unknown variant {name!r}; variants: {sorted(VARIANTS)}. Received: variant={name!r}")
    overrides = dict(VARIANTS[name][1])
    if "init_from" in overrides:
        overrides["init_from"] = os.path.join(out_dir, str(overrides["init_from"]), "model.keras")
    return dataclasses.replace(base, name=f"{base.name}_{name}", **overrides)


def order(names: Sequence[str]) -> List[str]:
    """``names`` (plus the runs they initialise from), each source run first."""
    names = list(dict.fromkeys(names))
    sources = [VARIANTS[n][1]["init_from"] for n in names if "init_from" in VARIANTS[n][1]]
    return list(dict.fromkeys(sources + names))


def run_ablation(base, out_dir: str, variants: Optional[Sequence[str]] = None, cache_dir: Optional[str] = None,
                 log: Callable = print) -> Dict[str, Dict[str, object]]:
    """Trains and scores each variant through the shared runner; finished runs (``results.json``) are reused.

    Returns:
        ``{variant: results}`` plus ``"table6"``: the 2x2 of ``table6``.
    """
    from keras_facemt.errors import ConfigError
    from keras_facemt.models.registry import get_system
    from keras_facemt.training.runner import RunContext, run_experiment

    system = get_system("allinone")
    cache = cache_dir or os.path.join(out_dir, "data")
    results: Dict[str, Dict[str, object]] = {}
    for name in order(variants or VARIANTS):
        model_dir = os.path.join(out_dir, name)
        done = os.path.join(model_dir, "results.json")
        exp = variant_experiment(base, name, out_dir)
        if os.path.exists(done):
            with open(done) as f:
                results[name] = json.load(f)
            if results[name].get("experiment_config") != json.loads(json.dumps(dataclasses.asdict(exp))):
                raise ConfigError(f"{model_dir} holds a finished run of another configuration; give another "
                                  f"--out-dir (or remove it). Received: out_dir={out_dir}")
            log(f"=== {name}: reusing {done}")
            continue
        log(f"=== {name}: {VARIANTS[name][0]} -> {model_dir}")
        ctx = RunContext(model_dir, cache_dir=cache, log=log,
                         resume=os.path.isdir(os.path.join(model_dir, "checkpoints")))
        results[name] = run_experiment(system, exp, ctx)
    descriptors = {k: os.path.join(out_dir, v, "model.keras") for k, v in
                   (("multitask", "mtl_id_init" if "mtl_id_init" in results else "mtl_scratch"),
                    ("identity_only", "identity_only")) if v in results}
    if "multitask" in descriptors:
        t = time.time()
        results["table6"] = table6(base, descriptors, cache, log)
        results["table6"]["seconds"] = time.time() - t
        if base.scene_eval_scenes:
            t = time.time()
            results["stage2_smile"] = smile_study(base, descriptors["multitask"], cache)
            results["stage2_smile"]["seconds"] = time.time() - t
    return results


def smile_study(exp, model_path: str, cache_dir: str) -> Dict[str, object]:
    """``stage2_study.study`` of the multi-task network on every test scene of ``exp``."""
    import keras

    from keras_facemt.models.allinone import scene_pipeline as S
    from keras_facemt.models.allinone.data import prepare
    from keras_facemt.models.allinone.job import model_config
    from keras_facemt.models.allinone.stage2_study import study

    size = int(model_config(exp).image_size)
    data = prepare(exp, size, cache_dir, log=lambda _: None)
    train = data["train"]["aflw"]
    prior = S.fitted_box_prior(train)
    smile = data["train"]["celeba"]["smile"]
    model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    # Every test scene, not only the scene_eval_scenes of a run's evaluation: smiles are rare there.
    out = study(model, data["test_scenes"], size, prior, exp.test_scenes, float(np.mean(smile)),
                float(np.mean(train["face_smile"])), data["test_faces"])
    out["model"] = model_path
    return out


def table6(exp, descriptors: Dict[str, str], cache_dir: str, log: Callable = print) -> Dict[str, object]:
    """Table VI's 2x2 on the unseen verification people.

    Each face is aligned onto the 5-point template by (a) its ground-truth points,
    (b) the points the multi-task network predicts on a face proposal (IoU > 0.5
    with the face box; stage 1 of Sec. III-D), then described by each network of
    ``descriptors`` (``{"multitask" | "identity_only": model.keras}``).

    Returns:
        ``{"cells": {alignment: {descriptor: verification metrics}},
        "alignment_nme": five-point NME (face box) of the predicted points, ...}``.
    """
    import keras

    from keras_facemt.data.landmarks import convert_points
    from keras_facemt.data.synthetic import SynthFace
    from keras_facemt.models.allinone import proposals as P
    from keras_facemt.models.allinone import task
    from keras_facemt.models.allinone.data import align_crops, face_proposal, identity_schedule
    from keras_facemt.models.allinone.predict import predict

    from keras_facemt.models.allinone.job import model_config

    models = {k: keras.saving.load_model(p, compile=False, safe_mode=True) for k, p in descriptors.items()}
    size = int(model_config(exp).image_size)
    seed = exp.seed * 100 + 8  # the verification population of ``data.prepare``
    ids = identity_schedule(exp.test_identities, exp.test_images_per_identity, seed)
    synth = SynthFace(seed=seed, image_size=exp.render_size, num_identities=exp.test_identities,
                      identity_seed=exp.test_identity_seed)
    rng = np.random.default_rng((seed, 31))
    images, boxes, truth, props = [], [], [], []
    for i, ident in enumerate(ids):
        rgb, lab = synth.render_crop(i, identity=int(ident))
        five, _ = convert_points(lab["landmarks"], lab["landmarks_visible"], "ibug68", "mtfl5")
        box = np.asarray(lab["bbox"], np.float64) * exp.render_size
        images.append(rgb)
        boxes.append(box)
        truth.append(five)
        props.append(face_proposal(box, rng))
    images, boxes, truth, props = np.stack(images), np.stack(boxes), np.stack(truth), np.stack(props)
    crops = np.stack([P.crop_box(im, b, size) for im, b in zip(images, props)])
    pts = predict(models["multitask"], crops)["landmarks"]  # [N, 21, 2] in the proposal frame
    wh = props[:, 2:] - props[:, :2]
    pixels = pts * wh[:, None] + props[:, None, :2]
    five_pred, _ = convert_points(pixels, np.ones(pixels.shape[:2], np.float32), "aflw21", "mtfl5")
    five_pred = five_pred / exp.render_size
    side = np.sqrt(np.prod(boxes[:, 2:] - boxes[:, :2], -1)) / exp.render_size
    nme = float(np.mean(np.linalg.norm(five_pred - truth, axis=-1).mean(-1) / side))
    aligned = {"ground_truth": align_crops(images, truth, size), "predicted": align_crops(images, five_pred, size)}
    cells: Dict[str, Dict[str, object]] = {}
    for how, faces in aligned.items():
        population = {"identity": ids, "image": faces}
        cells[how] = {}
        for name, model in models.items():
            m = task.verification_metrics(predict(model, faces)["embedding"], population, exp.verification_pairs,
                                          exp.seed)
            cells[how][name] = {k: m[k] for k in ("accuracy", "std", "tar_at_far", "rank1", "pixels",
                                                  "tar_at_far_pixels", "rank1_pixels", "rank1_chance", "pairs",
                                                  "people", "probes")}
            log(f"table6 {how} alignment, {name} descriptor: verification {m['accuracy']:.4f}, rank-1 "
                f"{m['rank1']:.4f}")
    return {"cells": cells, "alignment_nme_box": nme, "faces": int(len(ids)), "descriptors": dict(descriptors)}


# ------------------------------------------------------------------------------------------------ reports
def _se(p: float, n: int) -> float:
    """Binomial standard error of a proportion ``p`` measured on ``n`` trials."""
    return math.sqrt(max(p * (1 - p), 1e-9) / max(n, 1))


def effect(a: float, b: float, se: float, higher_is_better: bool = True, scale: float = 100.0,
           unit: str = " points") -> str:
    """How ``a`` compares with ``b`` given a standard error ``se`` of one measurement (difference of two: x sqrt 2)."""
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return "n/a"
    d = a - b
    noise = 2 * math.sqrt(2) * se
    if abs(d) <= noise:
        return f"within noise ({scale * d:+.1f}{unit}, 2 SE of a difference = {scale * noise:.1f})"
    better = d > 0 if higher_is_better else d < 0
    return f"{'better' if better else 'worse'} by {scale * abs(d):.1f}{unit}"


def task_scores(results: Dict[str, object]) -> Dict[str, float]:
    """The per-task figures the multi-task tables compare, from one run's ``results.json``."""
    m = results["metrics"]
    lp, a, v = m["landmarks_pose"], m["attributes"], m["verification"]
    out = {"detection_ap": m["detection"]["ap"], "nme": lp["nme"], "nme_table2": lp["nme_table2_mean"],
           "yaw_mae": lp["yaw_mae"], "yaw_within_15": lp["yaw_within_15"],
           "visibility": lp["visibility"]["accuracy"], "smile": a["smile"]["accuracy"],
           "gender": a["gender"]["accuracy"], "age_mae": a["age"]["mae"],
           "age_epsilon": a["age"].get("epsilon_error_sigma3"), "verification": v["accuracy"],
           "tar_0.01": v["tar_at_far"].get("0.01"), "rank1": v["rank1"],
           "train_seconds": results.get("timings_seconds", {}).get("train")}
    if "scenes" in m:
        out["scene_ap"] = m["scenes"]["ap"]
    return out


# (key, column, higher is better, standard-error population: (results section, count key) or None)
COLUMNS = (("scene_ap", "scene AP@0.5", True, None), ("detection_ap", "proposal AP", True, None),
           ("nme", "NME % (box)", False, None), ("nme_table2", "Table II mean NME %", False, None),
           ("yaw_mae", "yaw MAE deg", False, None), ("yaw_within_15", "yaw within 15 (AFW rule)", True, "faces"),
           ("visibility", "visibility acc.", True, None), ("smile", "smile acc.", True, "attr_faces"),
           ("gender", "gender acc.", True, "attr_faces"), ("age_mae", "age MAE", False, None),
           ("age_epsilon", "age eps-error (sigma 3)", False, None), ("verification", "verification", True, "pairs"),
           ("tar_0.01", "TAR@FAR 0.01", True, None), ("rank1", "rank-1", True, "probes"))
SINGLE_OF = {"scene_ap": "single_face", "detection_ap": "single_face", "nme": "single_face",
             "nme_table2": "single_face", "yaw_mae": "single_face", "yaw_within_15": "single_face",
             "visibility": "single_face", "smile": "single_smile", "gender": "single_gender", "age_mae": "single_age",
             "age_epsilon": "single_age", "verification": "identity_only", "tar_0.01": "identity_only",
             "rank1": "identity_only"}


def _counts(results: Dict[str, object]) -> Dict[str, int]:
    m = results["metrics"]
    return {"faces": m["landmarks_pose"]["faces"], "attr_faces": m["attributes"]["faces"],
            "pairs": m["verification"]["pairs"], "probes": m["verification"]["probes"]}


def _fmt(key: str, v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if key in ("yaw_mae", "age_mae"):
        return f"{v:.2f}"
    if key == "age_epsilon":
        return f"{v:.3f}"
    return f"{100 * v:.2f}"


def _compare(scores, counts, better: str, worse: str, keys=None) -> List[str]:
    """One line per metric: ``better`` (the paper's claim) against ``worse``, as measured."""
    lines = []
    for key, col, higher, pop in COLUMNS:
        if keys and key not in keys:
            continue
        a, b = scores[better].get(key), scores[worse].get(key)
        if a is None or b is None:
            continue
        if pop:
            se = _se(max(a, b) if higher else 1 - max(a, b), counts[better][pop])
            lines.append(f"- {col}, `{better}` against `{worse}`: {effect(a, b, se, higher)}.")
        else:
            rel = 100 * (a - b) / max(abs(b), 1e-12)
            word = "the same" if _fmt(key, a) == _fmt(key, b) else ("better" if (a > b) == higher else "worse")
            lines.append(f"- {col}, `{better}` against `{worse}`: {word} ({_fmt(key, a)} vs {_fmt(key, b)}, "
                         f"{rel:+.1f}% relative; one seed, no standard error).")
    return lines


def _header(base, command: str, machine: Dict[str, object], seconds: float) -> List[str]:
    mach = ", ".join(f"{k} {machine.get(k)}" for k in ("cpu", "usable_cores", "load_average_1min", "tensorflow"))
    mach += " (load as the first run ended)"
    return [f"SynthFace, base experiment `{base.name}` (preset `{base.preset}`, {base.steps_euclidean}+"
            f"{base.steps_gaussian} updates, Eq. 6 switch at {base.steps_euclidean}); every variant shares data, "
            f"schedule and model size, one seed each.", "",
            f"Command: `{command}`", "", f"Machine: {mach}. Ablation time: {seconds:.0f} s.", ""]


def write_reports(base, results: Dict[str, Dict[str, object]], reports_dir: str, command: str) -> List[str]:
    """``allinone_table6.md``, ``allinone_multitask.md`` and ``allinone_age_loss.md`` (those the runs allow)."""
    from keras_facemt.io import write_json_atomic, write_text_atomic

    runs = {k: v for k, v in results.items() if k in VARIANTS}
    if not runs:
        return []
    machine = next(iter(runs.values())).get("machine", {})
    # The runs' own times (a reused run counts what it took when it ran), plus Table VI.
    seconds = sum(float(r.get("timings_seconds", {}).get("total", 0.0)) for r in runs.values()) + sum(
        float((results.get(k) or {}).get("seconds", 0.0)) for k in ("table6", "stage2_smile"))
    scores = {k: task_scores(v) for k, v in runs.items()}
    counts = {k: _counts(v) for k, v in runs.items()}
    head = _header(base, command, machine, seconds)
    os.makedirs(reports_dir, exist_ok=True)
    written = []

    t6 = results.get("table6")
    if t6:
        cells = t6["cells"]
        descs = [d for d in ("identity_only", "multitask") if d in cells["ground_truth"]]
        lines = ["# All-in-One Table VI: alignment x descriptor", ""] + head + [
            f"{t6['faces']} images of {next(iter(cells['ground_truth'].values()))['people']} unseen people. Predicted "
            f"alignment: the multi-task network's points on a face proposal (5-point NME "
            f"{100 * t6['alignment_nme_box']:.2f}% of the face box). Multi-task descriptor: "
            f"`{os.path.basename(os.path.dirname(t6['descriptors']['multitask']))}`.", "",
            "| alignment | descriptor | 10-fold verification | TAR@FAR 0.01 | TAR@FAR 0.001 | rank-1 | paper (IJB-A) "
            "TAR@0.01 / rank-1 |", "|---|---|---|---|---|---|---|"]
        paper = {("predicted", "identity_only"): "HyperFace + [41]: 0.871 / 0.925",
                 ("predicted", "multitask"): "ours (own alignment + descriptor): 0.893 / 0.941; HyperFace + ours: "
                                             "0.889 / 0.939", ("ground_truth", "multitask"): "-",
                 ("ground_truth", "identity_only"): "-"}
        for how in ("predicted", "ground_truth"):
            for d in descs:
                c = cells[how][d]
                tar = c["tar_at_far"]
                tars = " | ".join("-" if tar.get(f) is None else f"{tar[f]:.4f}" for f in ("0.01", "0.001"))
                lines.append(f"| {how.replace('_', ' ')} | {d.replace('_', ' ')} | {c['accuracy']:.4f} | {tars} | "
                             f"{c['rank1']:.4f} | {paper[(how, d)]} |")
        pix = cells["ground_truth"][descs[0]]
        lines += ["", f"Raw pixels (ground-truth alignment): verification {pix['pixels']:.4f}, rank-1 "
                  f"{pix['rank1_pixels']:.4f}; chance 0.5 / {pix['rank1_chance']:.4f}.", ""]
        n = pix["pairs"]
        if len(descs) == 2:
            for how in ("predicted", "ground_truth"):
                a, b = cells[how]["multitask"]["accuracy"], cells[how]["identity_only"]["accuracy"]
                lines.append(f"- Descriptor, multi-task against identity-only ({how.replace('_', ' ')} alignment), "
                             f"verification: {effect(a, b, _se(max(a, b), n))}.")
        for d in descs:
            a, b = cells["predicted"][d]["accuracy"], cells["ground_truth"][d]["accuracy"]
            lines.append(f"- Alignment, predicted against ground-truth points ({d.replace('_', ' ')} descriptor), "
                         f"verification: {effect(a, b, _se(max(a, b), n))}.")
        lines += ["", "The paper attributes about 80% of its gain over HyperFace + [41] to the descriptor and 20% to "
                  "the alignment; here the alignment axis compares predicted with perfect points instead."]
        path = os.path.join(reports_dir, "allinone_table6.md")
        write_text_atomic(path, "\n".join(lines) + "\n")
        written.append(path)

    order_ = [k for k in ("mtl_scratch", "mtl_id_init", "identity_only", "single_face", "single_smile",
                          "single_gender", "single_age") if k in scores]
    if order_:
        cols = [c for c in COLUMNS if any(scores[k].get(c[0]) is not None for k in order_)]
        lines = ["# All-in-One: multi-task vs single-task, identity initialisation vs scratch", ""] + head + [
            "Each single-task network has the same architecture, trained on its task's streams only; its untrained "
            "heads are not reported (\"-\"). All figures are percentages except MAE (degrees, years) and "
            "eps-error.", "",
            "| variant | " + " | ".join(c[1] for c in cols) + " | train s |", "|---" * (len(cols) + 2) + "|"]
        for k in order_:
            multitask = not k.startswith(("single_", "identity_only"))
            cells_ = []
            for key, _, _, _ in cols:
                shown = multitask or SINGLE_OF.get(key) == k
                cells_.append(_fmt(key, scores[k].get(key)) if shown else "-")
            secs = scores[k].get("train_seconds")
            lines.append(f"| {VARIANTS[k][0]} | " + " | ".join(cells_) + f" | {secs:.0f} |")
        lines += [""]
        if "mtl_scratch" in scores:
            for key, col, higher, pop in cols:
                single = SINGLE_OF.get(key)
                if single in scores:
                    lines += _compare(scores, counts, "mtl_scratch", single, keys=(key,))
        if "mtl_scratch" in scores and "mtl_id_init" in scores:
            lines += ["", "Identity-net initialisation (the paper's) against scratch:"]
            lines += _compare(scores, counts, "mtl_id_init", "mtl_scratch")
        lines += ["", "Paper: the multi-task network beats HyperFace and single-task networks on every task "
                  "(Tables II-V); it starts from a face-identification net [41] and gives no scratch comparison."]
        path = os.path.join(reports_dir, "allinone_multitask.md")
        write_text_atomic(path, "\n".join(lines) + "\n")
        written.append(path)

    ages = [k for k in ("mtl_scratch", "age_euclidean", "age_gaussian") if k in scores]
    if len(ages) > 1:
        lines = ["# All-in-One Eq. 6: age-loss switch vs Euclidean only vs Gaussian only", ""] + head + [
            "| age loss | age MAE (years) | eps-error (sigma 3) | training-mean MAE |", "|---|---|---|---|"]
        label = {"mtl_scratch": f"switch (Euclidean, Gaussian after {base.steps_euclidean} updates)",
                 "age_euclidean": "Euclidean only (lambda 0)", "age_gaussian": "Gaussian only (lambda 1)"}
        for k in ages:
            a = runs[k]["metrics"]["attributes"]["age"]
            lines.append(f"| {label[k]} | {a['mae']:.2f} | {_fmt('age_epsilon', a.get('epsilon_error_sigma3'))} | "
                         f"{a['mae_training_mean']:.2f} |")
        lines += [""]
        if "mtl_scratch" in scores:
            for other in ages[1:]:
                lines += _compare(scores, counts, "mtl_scratch", other, keys=("age_mae", "age_epsilon"))
        lines += ["", "Paper (Fig. 4, Sec. III-C): Gaussian-only training starts poorly because its gradient vanishes "
                  "for large errors, so lambda is 0 for the first 20k iterations and 1 after; the paper gives no "
                  "numbers for the alternatives."]
        path = os.path.join(reports_dir, "allinone_age_loss.md")
        write_text_atomic(path, "\n".join(lines) + "\n")
        written.append(path)
    study = results.get("stage2_smile")
    if study and study.get("faces"):
        rows = [("predicted_mirror", "predicted points (the paper's stage 2)", "yes"),
                ("predicted_single", "predicted points", "no"),
                ("ground_truth_mirror", "ground-truth points", "yes"), ("box_mirror", "detected box", "yes")]
        rate = study["smile_rate"]
        lines = ["# All-in-One stage 2: smile on detected scene faces", ""] + head + [
            f"Multi-task network `{os.path.basename(os.path.dirname(study['model']))}`, {study['faces']} faces "
            f"stage 1 found in {base.test_scenes} held-out scenes ({100 * rate:.1f}% smiling; always \"no "
            f"smile\" scores {100 * max(rate, 1 - rate):.1f}%), mean face side {study['face_side_px']:.0f} px. The "
            f"smile head trained on the `celeba` stream ({100 * study['train_smile_rate']:.0f}% smiling); the "
            f"training scenes smile {100 * study['scene_smile_rate_train']:.1f}% of the time.", "",
            "| crop | mirror averaged | accuracy | balanced accuracy | AP | accuracy, prior-corrected |",
            "|---|---|---|---|---|---|"]
        for key, label, mirror in rows:
            r = study.get(key)
            if r:
                lines.append(f"| {label} | {mirror} | {100 * r['accuracy']:.1f} | {100 * r['balanced_accuracy']:.1f}"
                             f" | {100 * r['ap']:.1f} | {100 * r['accuracy_prior_corrected']:.1f} |")
        c = study.get("crops")
        if c:
            lines.append(f"| held-out face crops ({c['faces']}, {100 * c['smile_rate']:.0f}% smiling) | yes "
                         f"(crops) | {100 * c['accuracy']:.1f} | {100 * c['balanced_accuracy']:.1f} | "
                         f"{100 * c['ap']:.1f} | (same prior) |")
        n = study["faces"]
        p0, pc = study["predicted_mirror"]["accuracy"], study["predicted_mirror"]["accuracy_prior_corrected"]
        gt = study["ground_truth_mirror"]["accuracy"]
        single = study["predicted_single"]["accuracy"]
        lines += ["", f"- Label prior, corrected against not: {effect(pc, p0, _se(max(pc, p0), n))}.",
                  f"- Alignment, ground-truth points against predicted: {effect(gt, p0, _se(max(gt, p0), n))}.",
                  f"- Mirror averaging against a single pass: {effect(p0, single, _se(max(p0, single), n))}.",
                  "", "Prior correction: the odds times (pi_scene / (1 - pi_scene)) / (pi_train / (1 - pi_train)), "
                  "with pi_scene the smile rate of the training scenes (Saerens et al., 2002); no test label is "
                  "used."]
        path = os.path.join(reports_dir, "allinone_stage2_smile.md")
        write_text_atomic(path, "\n".join(lines) + "\n")
        written.append(path)
    from keras_facemt.io import finite_json

    write_json_atomic(os.path.join(reports_dir, "allinone_ablation.json"),
                      finite_json({"command": command, "machine": machine, "seconds": seconds, "scores": scores,
                                   "table6": t6, "stage2_smile": study}))
    written.append(os.path.join(reports_dir, "allinone_ablation.json"))
    return written
