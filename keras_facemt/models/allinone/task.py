"""All-in-One's task: streams, evaluation with the
paper's metrics scaled to SynthFace (Sec. IV), trivial baselines and report tables.
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np

from keras_facemt.metrics.binned_error import YAW_BINS, error_by_bins
from keras_facemt.metrics.identification import first_image_gallery, identification
from keras_facemt.metrics.landmark_error import nme_per_face
from keras_facemt.metrics.pose_error import angle_error
from keras_facemt.metrics.regression_error import epsilon_error
from keras_facemt.metrics.tar_far import all_pair_scores, measurable_fars, tar_at_far
from keras_facemt.metrics.verification import verification_accuracy
from keras_facemt.metrics.visibility import visibility_accuracy
from keras_facemt.models.allinone import losses as L
from keras_facemt.models.allinone.data import SCHEME, STREAM_TASKS, STREAMS, dataset_fn, stream_batches
from keras_facemt.models.allinone.predict import predict, softmax
from keras_facemt.models.allinone.proposals import FACE_IOU

# Table II (AFLW NME %, |yaw| bins [0,30], [30,60], [60,90], mean, std) for the report.
PAPER_TABLE2 = {"All-in-One": (2.84, 2.94, 3.09, 2.96, 0.13), "HyperFace": (3.93, 4.14, 4.71, 4.26, 0.41)}
# Table V (IJB-A, "ours", cosine): TAR at FAR 1e-2 and 1e-3, rank-1; Sec. IV-C: AFW yaw within +-15 degrees.
TABLE5_FARS = (1e-2, 1e-3)
PAPER_TABLE5 = {"0.01": 0.893, "0.001": 0.787, "rank1": 0.941}
PAPER_AFW_YAW_WITHIN_15 = 0.99
# FDDB-style ROC points on the test scenes (the paper plots FDDB's curve only).
SCENE_FP_COUNTS = (0, 1, 2, 5, 10, 20, 50)


def trained_tasks(exp) -> tuple:
    """The Eq. 8 tasks ``exp`` trains (all of ``losses.TASK_WEIGHTS`` unless ``exp.tasks`` narrows them)."""
    return tuple(exp.tasks) or L.TASK_WEIGHTS


def active_streams(exp) -> tuple:
    """The Table I streams that carry at least one trained task, in ``STREAMS`` order."""
    tasks = set(trained_tasks(exp))
    return tuple(s for s in STREAMS if tasks & set(STREAM_TASKS[s]))


def active_terms(exp, gaussian_age: bool) -> tuple:
    """The loss-term names of a phase: Eq. 6 at lambda 0 or 1, restricted to the trained tasks."""
    tasks = set(trained_tasks(exp))
    return tuple(t for t in L.phase_terms(gaussian_age) if t.split("/")[0] in tasks)


def streams(exp, train: Dict[str, Dict[str, np.ndarray]], domains: Dict[str, int] = None) -> Dict[str, object]:
    """The trainer streams (Table I) of the training arrays, those ``exp`` trains on.

    ``domains``: with per-dataset BN, ``{stream: BN domain id}`` (absent streams: 0)
    fed as the ``domain`` input of every example.
    """
    sizes = dict(exp.batch_sizes)
    out = {}
    for i, name in enumerate(STREAMS):
        if name not in active_streams(exp):
            continue
        batches = stream_batches(name, train[name])
        if domains is not None:
            batches["domain"] = np.full(len(batches["image"]), int(domains.get(name, 0)), np.int32)
        out[name] = dataset_fn(batches, sizes[name], exp.seed + i)
    return out


def binary_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision of ranking ``scores`` for binary ``labels`` (mean precision at each positive)."""
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    hits = np.asarray(labels, bool)[order]
    if not hits.any():
        return float("nan")
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def detection_metrics(pred: Dict, scenes: Dict) -> Dict[str, float]:
    """Face / non-face on labelled test proposals: AP, accuracy, and their trivial baselines."""
    keep = scenes[L.HAS_DETECTION] > 0
    labels = scenes[L.DETECTION][keep]
    score = softmax(pred["detection_logits"][keep])[:, 1]
    positive_rate = float(labels.mean())
    return {"ap": binary_average_precision(score, labels), "accuracy": float(((score > 0.5) == labels).mean()),
            "proposals": int(keep.sum()), "positive_rate": positive_rate,
            "majority_accuracy": float(max(positive_rate, 1 - positive_rate))}


def face_averages(pred: Dict, scenes: Dict):
    """Per test face, the mean over its proposals with IoU > 0.5 of the points (pixels), pose and visibility.

    Returns:
        ``(faces [F'] indices, points [F', 21, 2], pose [F', 3], visibility [F', 21])``
        for the faces with at least one such proposal (Sec. IV-B: "mean over
        proposals with IoU > 0.5").
    """
    props = scenes["proposal"].astype(np.float64)
    wh = props[:, 2:] - props[:, :2]
    pixels = pred["landmarks"] * wh[:, None, :] + props[:, None, :2]
    good = (scenes["iou"] > FACE_IOU) & (scenes["face"] >= 0)
    faces = np.unique(scenes["face"][good])
    if not len(faces):
        return faces, np.zeros((0, 21, 2)), np.zeros((0, 3)), np.zeros((0, 21))
    members = [good & (scenes["face"] == f) for f in faces]
    pts = np.stack([pixels[m].mean(0) for m in members])
    pose = np.stack([pred["pose"][m].mean(0) for m in members])
    vis = np.stack([pred["visibility"][m].mean(0) for m in members])
    return faces, pts, pose, vis


def per_face_errors(pred: Dict, scenes: Dict, mean_shape: np.ndarray) -> Dict[str, np.ndarray]:
    """Per averaged face: visible-point NME (face box) of the model and of the mean shape, pose, visibility.

    Args:
        mean_shape: ``[21, 2]`` mean training shape in the face-box frame; the
            baseline places it in each ground-truth box.
    """
    faces, pts, pose, vis = face_averages(pred, scenes)
    box = scenes["face_box"][faces].astype(np.float64)
    truth, visible = scenes["face_points"][faces], scenes["face_visible"][faces]
    mean_pts = mean_shape[None] * (box[:, None, 2:] - box[:, None, :2]) + box[:, None, :2]
    return {"faces": faces, "nme": nme_per_face(pts, truth, SCHEME, visible, "box", box),
            "mean_shape_nme": nme_per_face(mean_pts, truth, SCHEME, visible, "box", box),
            "pose": pose, "pose_true": scenes["face_pose"][faces].astype(np.float64),
            "visibility": vis, "visible": visible}


def landmark_pose_metrics(pred: Dict, scenes: Dict, mean_shape: np.ndarray, train_visible: np.ndarray = None,
                          yaw_pred: Dict = None, yaw_faces: Dict = None) -> Dict[str, object]:
    """Landmarks (NME, Table II bins), pose (AFW's +-15 degree rule) and visibility, with baselines.

    The overall NME, yaw error and visibility are measured on the test scenes'
    faces. Table II's |yaw| bins pool those faces with ``yaw_faces`` (single faces
    posed into the bins the scenes leave short, predicted as ``yaw_pred``), so each
    bin holds enough faces; its mean and std are over the three bin means.

    Args:
        mean_shape: ``[21, 2]`` mean training shape in the face-box frame.
        train_visible: ``[M, 21]`` training visibilities (per-point majority baseline).
    """
    from keras_facemt.models.allinone.scene_pipeline import defined_points

    e = per_face_errors(pred, scenes, mean_shape)
    pooled = [e] + ([per_face_errors(yaw_pred, yaw_faces, mean_shape)] if yaw_faces else [])
    yaw_all = np.concatenate([p["pose_true"][:, 0] for p in pooled])
    table = error_by_bins(np.concatenate([p["nme"] for p in pooled]), yaw_all, YAW_BINS)
    table_base = error_by_bins(np.concatenate([p["mean_shape_nme"] for p in pooled]), yaw_all, YAW_BINS)
    bins = {k: {"faces": v["count"], "nme": v["mean"], "mean_shape_nme": table_base["bins"][k]["mean"]}
            for k, v in table["bins"].items()}
    ok = ~np.isnan(e["nme"])
    yaw_true = e["pose_true"][:, 0]
    yaw = angle_error(e["pose"][:, 0], yaw_true)
    yaw_zero = angle_error(np.zeros_like(yaw_true), yaw_true)
    defined = np.zeros(e["visible"].shape[1], bool)
    defined[defined_points(SCHEME)] = True
    return {"faces": int(len(e["faces"])), "faces_total": int(len(scenes["face_box"])),
            "nme": float(np.mean(e["nme"][ok])), "mean_shape_nme": float(np.mean(e["mean_shape_nme"][ok])),
            "nme_yaw_bins": bins, "nme_table2_mean": table["mean"], "nme_bin_std": table["std"],
            "mean_shape_table2_mean": table_base["mean"], "mean_shape_bin_std": table_base["std"],
            "table2_topped_up_faces": int(sum(len(p["faces"]) for p in pooled[1:])),
            "yaw_mae": yaw["mae"], "yaw_mae_zero": yaw_zero["mae"], "yaw_rounded_mae": yaw["rounded_mae"],
            "yaw_within_15": yaw["within"], "yaw_within_15_zero": yaw_zero["within"],
            "pitch_mae": float(np.abs(e["pose"][:, 1] - e["pose_true"][:, 1]).mean()),
            "roll_mae": float(np.abs(e["pose"][:, 2] - e["pose_true"][:, 2]).mean()),
            "visibility": visibility_accuracy(e["visibility"], e["visible"], train_visible=train_visible,
                                              defined=defined)}


def train_majority(train: Dict, attribute: str) -> int:
    """The majority class of ``attribute`` (smile, gender) over the ``celeba`` training faces that carry it."""
    values = np.asarray(train["celeba"][attribute])
    has = np.asarray(train["celeba"].get(f"has_{attribute}", np.ones(len(values))))
    return int(np.bincount(values[has > 0].astype(np.int64), minlength=2).argmax())


def training_ages(train: Dict) -> np.ndarray:
    """Ages (years) of the ``imdb_wiki`` and ``morph`` training faces that carry one."""
    out = []
    for name in ("imdb_wiki", "morph"):
        a = np.asarray(train[name]["age"], np.float64)
        out.append(a[np.asarray(train[name].get("has_age", np.ones(len(a)))) > 0])
    return np.concatenate(out)


def attribute_metrics(pred: Dict, faces: Dict, train: Dict) -> Dict[str, object]:
    """Smile, gender (mean softmax over each face's proposals) and age (mean), with baselines."""
    k = int(np.bincount(faces["face"]).max())
    n = len(faces["face"]) // k
    out = {}
    for task, source in (("smile", "celeba"), ("gender", "celeba")):
        prob = softmax(pred[f"{task}_logits"]).reshape(n, k, 2).mean(1)
        labels = faces[task].reshape(n, k)[:, 0]
        majority = train_majority(train, task)
        out[task] = {"accuracy": float((prob.argmax(-1) == labels).mean()),
                     "majority_accuracy": float((labels == majority).mean()), "majority_class": majority}
    age = pred["age"].reshape(n, k).mean(1)
    truth = faces["age"].reshape(n, k)[:, 0]
    train_ages = training_ages(train)
    out["age"] = {"mae": float(np.abs(age - truth).mean()), "mae_training_mean": float(np.abs(
        train_ages.mean() - truth).mean()), "mae_training_median": float(np.abs(np.median(train_ages) - truth).mean()),
        # LAP's epsilon-error with the paper's sigma when none is given (SynthFace ages carry none).
        "epsilon_error_sigma3": epsilon_error(age, truth, L.DEFAULT_SIGMA),
        "epsilon_error_sigma3_training_mean": epsilon_error(np.full_like(truth, train_ages.mean()), truth,
                                                            L.DEFAULT_SIGMA)}
    out["faces"] = n
    return out


def balanced_pairs(ids: np.ndarray, num_pairs: int, seed: int, num_folds: int = 10):
    """LFW-style pairs of image indices: half same-person per fold, people disjoint across folds.

    Returns:
        ``(pairs [P, 2], same [P] bool, folds [P])``.
    """
    rng = np.random.default_rng((seed, 11))
    people = rng.permutation(np.unique(ids))
    per_fold = num_pairs // num_folds
    pairs, same, folds = [], [], []
    for f, group in enumerate(np.array_split(people, num_folds)):
        members = {p: np.flatnonzero(ids == p) for p in group}
        for k in range(per_fold):
            if k < per_fold // 2:
                a, b = rng.choice(members[group[rng.integers(len(group))]], 2, replace=False)
                pairs.append((a, b))
                same.append(True)
            else:
                p, q = rng.choice(group, 2, replace=False)
                pairs.append((rng.choice(members[p]), rng.choice(members[q])))
                same.append(False)
            folds.append(f)
    return np.asarray(pairs, np.int64), np.asarray(same, bool), np.asarray(folds, np.int64)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def pixel_embedding(images: np.ndarray) -> np.ndarray:
    """The raw-pixel baseline descriptor: centred grey thumbnails."""
    grey = images.astype(np.float32).mean(-1)
    x = grey[:, ::2, ::2].reshape(len(images), -1)
    return x - x.mean(0, keepdims=True)


def verification_metrics(embedding: np.ndarray, faces: Dict, num_pairs: int, seed: int) -> Dict[str, object]:
    """Unseen people: 10-fold verification, TAR at FAR 1e-2 / 1e-3, rank-1 identification.

    Verification is LFW's protocol on balanced pairs (descriptor cosine). TAR at
    FAR (Table V's operating points) uses every pair of the population; a FAR the
    impostor count cannot measure is left out. Rank-1 is closed-set: each person's
    first image is the gallery, every other image a probe. Each next to raw
    pixels and chance.
    """
    pairs, same, folds = balanced_pairs(faces["identity"], num_pairs, seed)
    ids = faces["identity"]
    pixels = pixel_embedding(faces["image"])

    def acc(e):
        e = _unit(e)
        return verification_accuracy(np.sum(e[pairs[:, 0]] * e[pairs[:, 1]], -1), same, folds=folds)

    def tar(e):
        scores, genuine = all_pair_scores(e, ids)
        fars = measurable_fars(TABLE5_FARS, int((~genuine).sum()))
        return {k: v for k, v in tar_at_far(scores, genuine, fars).items() if k not in ("impostors", "genuine")} \
            if fars else {}

    gallery, probes = first_image_gallery(ids)

    def rank1(e):
        return identification(e[probes], ids[probes], e[gallery], ids[gallery])

    model, model_id = acc(embedding), rank1(embedding)
    return {"accuracy": model["accuracy"], "std": model["std"],
            "pixels": acc(pixels)["accuracy"], "chance": 0.5, "pairs": int(len(pairs)),
            "people": int(len(np.unique(ids))), "tar_at_far": tar(embedding), "tar_at_far_pixels": tar(pixels),
            "rank1": model_id["rank1"], "cmc": model_id["cmc"], "rank1_pixels": rank1(pixels)["rank1"],
            "rank1_chance": model_id["chance_rank1"], "probes": model_id["probes"], "gallery": model_id["gallery"]}


def mean_shape(train_aflw: Dict) -> np.ndarray:
    """``[21, 2]`` mean shape in the face-box frame over the training faces (visible points)."""
    box = train_aflw["face_box"].astype(np.float64)
    rel = (train_aflw["face_points"] - box[:, None, :2]) / (box[:, None, 2:] - box[:, None, :2])
    vis = train_aflw["face_visible"][..., None]
    return (np.sum(rel * vis, 0) / np.maximum(vis.sum(0), 1)).astype(np.float32)


def evaluate(model, exp, data: Dict) -> Dict[str, object]:
    """Every metric of ``model`` on the held-out sets, with its trivial baselines."""
    scenes, faces, ver = data["test_scenes"], data["test_faces"], data["verification"]
    p_scenes = predict(model, scenes["image"])
    p_faces = predict(model, faces["image"])
    p_ver = predict(model, ver["image"])
    yaw_faces = data.get("test_yaw_faces") or {}
    p_yaw = predict(model, yaw_faces["image"]) if yaw_faces else None
    out = {
        "detection": detection_metrics(p_scenes, scenes),
        "landmarks_pose": landmark_pose_metrics(p_scenes, scenes, mean_shape(data["train"]["aflw"]),
                                                data["train"]["aflw"]["face_visible"], p_yaw, yaw_faces),
        "attributes": attribute_metrics(p_faces, faces, data["train"]),
        "verification": verification_metrics(p_ver["embedding"], ver, exp.verification_pairs, exp.seed),
    }
    if exp.scene_eval_scenes:
        from keras_facemt.models.allinone import scene_pipeline as S

        prior = S.fitted_box_prior(data["train"]["aflw"])
        size = int(scenes["image"].shape[1])
        tr = data["train"]
        majority = {k: train_majority(tr, k) for k in ("smile", "gender")}
        mean_age = float(training_ages(tr).mean())
        served, detector = deployable_graph(model)
        kwargs = dict(train_majority=majority, train_mean_age=mean_age, fp_counts=SCENE_FP_COUNTS,
                      cfg=detector if detector is not None else S.SceneDetectorConfig(), aligned=exp.aligned_crops)
        out["scenes"] = S.scene_metrics(model, scenes, size, prior, exp.scene_eval_scenes, **kwargs)
        if served is not None:  # the same two stages as one exported-to-be graph
            out["scenes_graph"] = S.scene_metrics(None, scenes, size, None, exp.scene_eval_scenes, served=served,
                                                  **kwargs)
    return out


def deployable_graph(model):
    """``(the deployable two-stage graph, its SceneDetectorConfig)`` of a model that
    carries its ``ModelInfo``, else ``(None, None)``."""
    from keras_facemt.configs.serialization import config_from_dict
    from keras_facemt.models.model_info import info_of
    from keras_facemt.models.registry import get_system

    info = info_of(model)
    if info is None:
        return None, None
    system = get_system("allinone")
    return system.deployable(model, info), config_from_dict(system.config_class, dict(info.config)).detector


def headline(metrics: Dict) -> List[Dict[str, object]]:
    """One entry per headline metric, each next to its strongest trivial baseline."""
    from keras_facemt.metrics.headline import headline_entry

    d, lp, a, v = metrics["detection"], metrics["landmarks_pose"], metrics["attributes"], metrics["verification"]
    props = "held-out scene proposals (IoU > 0.5 face, < 0.35 background)"
    faces = "held-out scene faces (mean over proposals IoU > 0.5)"
    unseen = "unseen people (mean over each face's crops)"
    counts = "/".join(str(b["faces"]) for b in lp["nme_yaw_bins"].values())
    table2 = f"held-out faces in |yaw| bins 0-30/30-60/60-90 ({counts} faces; mean of the bin means)"
    out = [
        headline_entry("detection_ap", props, d["ap"], [("constant score (positive rate)", d["positive_rate"])]),
        headline_entry("detection_accuracy", props, d["accuracy"], [("majority class", d["majority_accuracy"])]),
        headline_entry("landmark_nme_visible_box", faces, lp["nme"], [("mean shape in the face box",
                                                                        lp["mean_shape_nme"])], False),
        headline_entry("landmark_nme_table2_yaw_bin_mean", table2, lp["nme_table2_mean"],
                       [("mean shape in the face box", lp["mean_shape_table2_mean"])], False),
        headline_entry("yaw_mae_degrees", faces, lp["yaw_mae"], [("predict 0", lp["yaw_mae_zero"])], False),
        headline_entry("yaw_within_15_degrees_afw_rule", faces, lp["yaw_within_15"],
                       [("predict 0", lp["yaw_within_15_zero"])]),
        headline_entry("age_mae_years", unseen, a["age"]["mae"], [("training mean", a["age"]["mae_training_mean"]),
                                                                  ("training median", a["age"]["mae_training_median"])],
                       False),
        headline_entry("gender_accuracy", unseen, a["gender"]["accuracy"],
                       [("training majority class", a["gender"]["majority_accuracy"])]),
        headline_entry("smile_accuracy", unseen, a["smile"]["accuracy"],
                       [("training majority class", a["smile"]["majority_accuracy"])]),
        headline_entry("verification_accuracy_10fold", "unseen people, balanced pairs", v["accuracy"],
                       [("chance", v["chance"]), ("raw pixels (cosine)", v["pixels"])]),
    ]
    for far, tar in v["tar_at_far"].items():
        out.append(headline_entry(f"verification_tar_at_far_{far}", "unseen people, every pair", tar,
                                  [("chance", float(far)), ("raw pixels (cosine)", v["tar_at_far_pixels"][far])]))
    out.append(headline_entry("identification_rank1", f"unseen people, first image of each of {v['gallery']} "
                              f"people as gallery, {v['probes']} probes", v["rank1"],
                              [("chance", v["rank1_chance"]), ("raw pixels (cosine)", v["rank1_pixels"])]))
    if "scenes" in metrics:
        s = metrics["scenes"]
        out.insert(0, headline_entry("scene_detection_ap_at_0.5", f"{s['scenes']} held-out scenes, stage 1 (dense "
                                     "windows, IRP, landmark NMS)", s["ap"],
                                     [("every window, random score", s["random_window_ap"])]))
    if "scenes_graph" in metrics:
        s = metrics["scenes_graph"]
        out.insert(1, headline_entry("scene_detection_ap_at_0.5_deployable_graph", f"{s['scenes']} held-out scenes, "
                                     "the exported two-stage graph", s["ap"],
                                     [("every window, random score", s["random_window_ap"])]))
    return out


def _pct(value) -> str:
    """A fraction as a percentage with 2 decimals; "-" for a value ``results.json`` holds as null (NaN)."""
    return "-" if value is None or not np.isfinite(value) else f"{100 * value:.2f}"


def _num(value, spec: str = ".3f") -> str:
    return "-" if value is None or not np.isfinite(value) else format(value, spec)


def scene_lines(sc: Dict, what: str) -> List[str]:
    """``results.md`` lines of one ``scene_metrics`` result (stage 1's AP and ROC, stage 2)."""
    lines = ["", f"Stage 1 ({what}) on {sc['scenes']} whole scenes: AP@0.5 {sc['ap']:.4f} over {sc['faces']} faces "
             f"(faces smaller than the smallest window ignored), final recall {sc['recall']:.3f}."]
    if "roc_tpr_at_fp" in sc:
        fps = sorted(sc["roc_tpr_at_fp"], key=int)  # results.json sorts keys as text
        lines += ["", "FDDB-style ROC (true-positive rate at N false positives over all these scenes, IoU >= 0.5):",
                  "", "| false positives | " + " | ".join(fps) + " |", "|---" * (len(fps) + 1) + "|",
                  "| model | " + " | ".join(f"{sc['roc_tpr_at_fp'][k]:.3f}" for k in fps) + " |",
                  "| random-score windows | " + " | ".join(f"{sc['random_window_roc_tpr_at_fp'][k]:.3f}"
                                                       for k in fps) + " |"]
    s2 = sc.get("stage2", {})
    if s2.get("faces"):
        how = "aligned by the predicted points" if s2["aligned"] else "the detected box"

        def majority(k):
            return max(s2[f"{k}_split_majority_accuracy"], s2.get(f"{k}_majority_accuracy", 0.0))

        lines += ["", f"Stage 2 on the {s2['faces']} detected faces ({how}, plus the mirror): smile "
                  f"{s2['smile_accuracy']:.3f} (strongest majority class {majority('smile'):.3f}), gender "
                  f"{s2['gender_accuracy']:.3f} (strongest majority class {majority('gender'):.3f}), age MAE "
                  f"{s2['age_mae']:.2f} years (training mean {s2.get('age_mae_training_mean', float('nan')):.2f})."]
    return lines


def results_markdown(results: Dict) -> str:
    """``results.md``: headline table, Table II layout, timings."""
    exp = results["experiment_config"]
    lines = [f"# All-in-One results: {exp['name']}", "",
             f"Preset `{exp['preset']}`, {exp['steps_euclidean']} + {exp['steps_gaussian']} updates (Eq. 6 Euclidean, "
             f"then Gaussian), five mixed SynthFace streams (Table I). Proposals are sampled around the ground truth "
             f"(no Selective Search).", "",
             "| Metric | Split | Model | Baseline | Baseline name |", "|---|---|---|---|---|"]
    for h in results["headline"]:
        lines.append(f"| {h['metric']} | {h['split']} | {h['model']:.4f} | {h['baseline']:.4f} "
                     f"| {h['baseline_name']} |")
    lp = results["metrics"]["landmarks_pose"]
    bins = lp["nme_yaw_bins"].values()
    lines += ["", "## Landmarks in |yaw| bins (Table II layout, NME % of the face box)", "",
              f"Held-out scene faces, each bin topped up with single posed faces where the scenes hold too few "
              f"({lp.get('table2_topped_up_faces', 0)} added); mean and std over the three bin means.", "",
              "| | " + " | ".join(lp["nme_yaw_bins"]) + " | mean | std |",
              "|---" * (len(lp["nme_yaw_bins"]) + 3) + "|",
              "| SynthFace, this run | " + " | ".join(_pct(b["nme"]) for b in bins)
              + f" | {_pct(lp['nme_table2_mean'])} | {_pct(lp['nme_bin_std'])} |",
              "| SynthFace, mean shape | " + " | ".join(_pct(b["mean_shape_nme"]) for b in bins)
              + f" | {_pct(lp['mean_shape_table2_mean'])} | {_pct(lp['mean_shape_bin_std'])} |",
              "| faces | " + " | ".join(str(b["faces"]) for b in bins) + " | | |"]
    for name, (a, b, c, m, sd) in PAPER_TABLE2.items():
        lines.append(f"| paper {name} (AFLW, other normalisation) | {a} | {b} | {c} | {m} | {sd} |")
    vis = lp["visibility"]
    lines += ["", f"Visibility (not evaluated in the paper; score > 0.5 = visible, {lp['faces']} scene faces, "
              f"defined points): accuracy {_num(vis['accuracy'])}, balanced accuracy {_num(vis['balanced_accuracy'])}; "
              f"every point visible {_num(vis['all_visible_accuracy'])}, training per-point majority "
              f"{_num(vis.get('train_majority_accuracy'))}."]
    v = results["metrics"]["verification"]
    lines += ["", "## Identity on unseen people (Table V's operating points)", "",
              "| | 10-fold verification | " + " | ".join(f"TAR@FAR {k}" for k in v["tar_at_far"]) + " | rank-1 |",
              "|---|---|" + "---|" * len(v["tar_at_far"]) + "---|",
              f"| SynthFace, this run | {v['accuracy']:.3f} | " + " | ".join(f"{x:.3f}" for x in v["tar_at_far"].values())
              + f" | {v['rank1']:.3f} |",
              f"| raw pixels | {v['pixels']:.3f} | " + " | ".join(f"{v['tar_at_far_pixels'][k]:.3f}"
                                                             for k in v["tar_at_far"]) + f" | {v['rank1_pixels']:.3f} |",
              "| paper, IJB-A (Table V, cosine) | | " + " | ".join(str(PAPER_TABLE5.get(k, "")) for k in v["tar_at_far"])
              + f" | {PAPER_TABLE5['rank1']} |", "",
              f"{v['people']} people; TAR over every pair of their images, rank-1 with {v['gallery']} gallery images "
              f"and {v['probes']} probes (chance {v['rank1_chance']:.3f})."]
    for key, what in (("scenes", "the Python pipeline (scene_pipeline)"),
                      ("scenes_graph", "the deployable graph (scene_graph, what exports serve)")):
        if key in results["metrics"]:
            lines += scene_lines(results["metrics"][key], what)
    lines += ["", f"Yaw within +-15 degrees after rounding the prediction to 15 degrees (AFW rule; paper > "
              f"{100 * PAPER_AFW_YAW_WITHIN_15:.0f}% on AFW): {100 * lp['yaw_within_15']:.1f}% of {lp['faces']} faces "
              f"(of {lp['faces_total']}; predict 0: {100 * lp['yaw_within_15_zero']:.1f}%); yaw MAE "
              f"{lp['yaw_mae']:.1f} (rounded {lp['yaw_rounded_mae']:.1f}), pitch MAE {lp['pitch_mae']:.1f}, roll MAE "
              f"{lp['roll_mae']:.1f} degrees.", "",
              "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in results["timings_seconds"].items())]
    return "\n".join(lines) + "\n"
