"""All-in-One's task: streams, evaluation with the
paper's metrics scaled to SynthFace (Sec. IV), trivial baselines and report tables.
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np

from keras_facemt.metrics.landmark_error import nme_per_face
from keras_facemt.metrics.verification import verification_accuracy
from keras_facemt.models.allinone import losses as L
from keras_facemt.models.allinone.data import SCHEME, STREAMS, dataset_fn, stream_batches
from keras_facemt.models.allinone.predict import predict, softmax
from keras_facemt.models.allinone.proposals import FACE_IOU

YAW_BINS = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0))
# Table II (AFLW NME %, |yaw| bins [0,30], [30,60], [60,90], mean) for the report.
PAPER_TABLE2 = {"All-in-One": (2.84, 2.94, 3.09, 2.96), "HyperFace": (3.93, 4.14, 4.71, 4.26)}


def streams(exp, train: Dict[str, Dict[str, np.ndarray]]) -> Dict[str, object]:
    """The five trainer streams (Table I) of the rendered training arrays."""
    sizes = dict(exp.batch_sizes)
    return {name: dataset_fn(stream_batches(name, train[name]), sizes[name], exp.seed + i)
            for i, name in enumerate(STREAMS)}


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
    """Per test face, the mean over its proposals with IoU > 0.5 of the points (pixels) and pose.

    Returns:
        ``(faces [F'] indices, points [F', 21, 2], pose [F', 3])`` for the faces with
        at least one such proposal (Sec. IV-B: "mean over proposals with IoU > 0.5").
    """
    props = scenes["proposal"].astype(np.float64)
    wh = props[:, 2:] - props[:, :2]
    pixels = pred["landmarks"] * wh[:, None, :] + props[:, None, :2]
    good = (scenes["iou"] > FACE_IOU) & (scenes["face"] >= 0)
    faces = np.unique(scenes["face"][good])
    if not len(faces):
        return faces, np.zeros((0, 21, 2)), np.zeros((0, 3))
    pts = np.stack([pixels[good & (scenes["face"] == f)].mean(0) for f in faces])
    pose = np.stack([pred["pose"][good & (scenes["face"] == f)].mean(0) for f in faces])
    return faces, pts, pose


def landmark_pose_metrics(pred: Dict, scenes: Dict, mean_shape: np.ndarray) -> Dict[str, object]:
    """Visible-point NME (face-box normalised; Table II yaw bins) and yaw error, with baselines.

    Args:
        mean_shape: ``[21, 2]`` mean training shape in the face-box frame; the
            baseline places it in each ground-truth box.
    """
    faces, pts, pose = face_averages(pred, scenes)
    box = scenes["face_box"][faces].astype(np.float64)
    truth, vis = scenes["face_points"][faces], scenes["face_visible"][faces]
    mean_pts = mean_shape[None] * (box[:, None, 2:] - box[:, None, :2]) + box[:, None, :2]
    model_nme = nme_per_face(pts, truth, SCHEME, vis, "box", box)
    base_nme = nme_per_face(mean_pts, truth, SCHEME, vis, "box", box)
    yaw_true = scenes["face_pose"][faces][:, 0]
    yaw_err = np.abs(pose[:, 0] - yaw_true)
    bins = {}
    for lo, hi in YAW_BINS:
        sel = (np.abs(yaw_true) >= lo) & (np.abs(yaw_true) <= hi) & ~np.isnan(model_nme)
        bins[f"{lo:g}-{hi:g}"] = {"faces": int(sel.sum()),
                                  "nme": float(np.mean(model_nme[sel])) if sel.any() else float("nan"),
                                  "mean_shape_nme": float(np.mean(base_nme[sel])) if sel.any() else float("nan")}
    ok = ~np.isnan(model_nme)
    per_bin = [b["nme"] for b in bins.values() if b["faces"]]
    return {"faces": int(len(faces)), "faces_total": int(len(scenes["face_box"])),
            "nme": float(np.mean(model_nme[ok])), "mean_shape_nme": float(np.mean(base_nme[ok])),
            "nme_yaw_bins": bins, "nme_bin_std": float(np.std(per_bin)) if per_bin else float("nan"),
            "yaw_mae": float(yaw_err.mean()), "yaw_mae_zero": float(np.abs(yaw_true).mean()),
            "yaw_within_15": float((yaw_err <= 15.0).mean()),
            "pitch_mae": float(np.abs(pose[:, 1] - scenes["face_pose"][faces][:, 1]).mean()),
            "roll_mae": float(np.abs(pose[:, 2] - scenes["face_pose"][faces][:, 2]).mean())}


def attribute_metrics(pred: Dict, faces: Dict, train: Dict) -> Dict[str, object]:
    """Smile, gender (mean softmax over each face's proposals) and age (mean), with baselines."""
    k = int(np.bincount(faces["face"]).max())
    n = len(faces["face"]) // k
    out = {}
    for task, source in (("smile", "celeba"), ("gender", "celeba")):
        prob = softmax(pred[f"{task}_logits"]).reshape(n, k, 2).mean(1)
        labels = faces[task].reshape(n, k)[:, 0]
        majority = int(np.bincount(train[source][task], minlength=2).argmax())
        out[task] = {"accuracy": float((prob.argmax(-1) == labels).mean()),
                     "majority_accuracy": float((labels == majority).mean()), "majority_class": majority}
    age = pred["age"].reshape(n, k).mean(1)
    truth = faces["age"].reshape(n, k)[:, 0]
    train_ages = np.concatenate([train["imdb_wiki"]["age"], train["morph"]["age"]])
    out["age"] = {"mae": float(np.abs(age - truth).mean()), "mae_training_mean": float(np.abs(
        train_ages.mean() - truth).mean()), "mae_training_median": float(np.abs(np.median(train_ages) - truth).mean())}
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
    """10-fold verification of unseen people by descriptor cosine, next to raw pixels and chance."""
    pairs, same, folds = balanced_pairs(faces["identity"], num_pairs, seed)

    def acc(e):
        e = _unit(e)
        return verification_accuracy(np.sum(e[pairs[:, 0]] * e[pairs[:, 1]], -1), same, folds=folds)

    model = acc(embedding)
    return {"accuracy": model["accuracy"], "std": model["std"],
            "pixels": acc(pixel_embedding(faces["image"]))["accuracy"], "chance": 0.5, "pairs": int(len(pairs)),
            "people": int(len(np.unique(faces["identity"])))}


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
    out = {
        "detection": detection_metrics(p_scenes, scenes),
        "landmarks_pose": landmark_pose_metrics(p_scenes, scenes, mean_shape(data["train"]["aflw"])),
        "attributes": attribute_metrics(p_faces, faces, data["train"]),
        "verification": verification_metrics(p_ver["embedding"], ver, exp.verification_pairs, exp.seed),
    }
    if exp.scene_eval_scenes:
        from keras_facemt.models.allinone import scene_pipeline as S

        train = data["train"]["aflw"]
        prior = S.box_prior(train["face_box"], train["face_points"], S.defined_points())
        size = int(scenes["image"].shape[1])
        tr = data["train"]
        majority = {k: int(np.bincount(tr["celeba"][k], minlength=2).argmax()) for k in ("smile", "gender")}
        mean_age = float(np.concatenate([tr["imdb_wiki"]["age"], tr["morph"]["age"]]).mean())
        out["scenes"] = S.scene_metrics(model, scenes, size, prior, exp.scene_eval_scenes,
                                        aligned=exp.aligned_crops, train_majority=majority, train_mean_age=mean_age)
    return out


def headline(metrics: Dict) -> List[Dict[str, object]]:
    """One entry per headline metric, each next to its strongest trivial baseline."""
    from keras_facemt.metrics.headline import headline_entry

    d, lp, a, v = metrics["detection"], metrics["landmarks_pose"], metrics["attributes"], metrics["verification"]
    props = "held-out scene proposals (IoU > 0.5 face, < 0.35 background)"
    faces = "held-out scene faces (mean over proposals IoU > 0.5)"
    unseen = "unseen people (mean over each face's crops)"
    out = [
        headline_entry("detection_ap", props, d["ap"], [("constant score (positive rate)", d["positive_rate"])]),
        headline_entry("detection_accuracy", props, d["accuracy"], [("majority class", d["majority_accuracy"])]),
        headline_entry("landmark_nme_visible_box", faces, lp["nme"], [("mean shape in the face box",
                                                                        lp["mean_shape_nme"])], False),
        headline_entry("yaw_mae_degrees", faces, lp["yaw_mae"], [("predict 0", lp["yaw_mae_zero"])], False),
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
    if "scenes" in metrics:
        s = metrics["scenes"]
        out.insert(0, headline_entry("scene_detection_ap_at_0.5", f"{s['scenes']} held-out scenes, stage 1 (dense "
                                     "windows, IRP, landmark NMS)", s["ap"],
                                     [("every window, random score", s["random_window_ap"])]))
    return out


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
    lines += ["", "## Landmarks in |yaw| bins (Table II layout, NME % of the face box)", "",
              "| | " + " | ".join(lp["nme_yaw_bins"]) + " | mean | std |",
              "|---" * (len(lp["nme_yaw_bins"]) + 3) + "|",
              "| SynthFace, this run | " + " | ".join(f"{100 * b['nme']:.2f}" for b in lp["nme_yaw_bins"].values())
              + f" | {100 * lp['nme']:.2f} | {100 * lp['nme_bin_std']:.2f} |",
              "| SynthFace, mean shape | " + " | ".join(f"{100 * b['mean_shape_nme']:.2f}"
                                                       for b in lp["nme_yaw_bins"].values())
              + f" | {100 * lp['mean_shape_nme']:.2f} | |",
              "| faces | " + " | ".join(str(b["faces"]) for b in lp["nme_yaw_bins"].values()) + " | | |"]
    for name, (a, b, c, m) in PAPER_TABLE2.items():
        lines.append(f"| paper {name} (AFLW, other normalisation) | {a} | {b} | {c} | {m} | |")
    if "scenes" in results["metrics"]:
        sc = results["metrics"]["scenes"]
        lines += ["", f"Stage 1 on {sc['scenes']} whole scenes: AP@0.5 {sc['ap']:.4f} over {sc['faces']} faces "
                  f"(faces smaller than the smallest window ignored), final recall {sc['recall']:.3f}."]
        s2 = sc.get("stage2", {})
        if s2.get("faces"):
            how = "aligned by the predicted points" if s2["aligned"] else "the detected box"
            def majority(k):
                return max(s2[f"{k}_split_majority_accuracy"], s2.get(f"{k}_majority_accuracy", 0.0))

            lines += ["", f"Stage 2 on the {s2['faces']} detected faces ({how}, plus the mirror): smile "
                      f"{s2['smile_accuracy']:.3f} (strongest majority class {majority('smile'):.3f}), gender "
                      f"{s2['gender_accuracy']:.3f} (strongest majority class {majority('gender'):.3f}), age MAE "
                      f"{s2['age_mae']:.2f} years (training mean {s2.get('age_mae_training_mean', float('nan')):.2f})."]
    lines += ["", f"Yaw within 15 degrees: {100 * lp['yaw_within_15']:.1f}% of {lp['faces']} faces "
              f"(of {lp['faces_total']}); pitch MAE {lp['pitch_mae']:.1f}, roll MAE {lp['roll_mae']:.1f} degrees.", "",
              "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in results["timings_seconds"].items())]
    return "\n".join(lines) + "\n"
