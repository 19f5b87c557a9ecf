"""TFN's task: SynthFace scene streams, evaluation with the paper's metrics (Sec. III-C,
V), trivial baselines, the ``headline`` list and the results tables.

Evaluation runs the deployable graph (``model.build_serving_model``) on held-out
scenes and scores:

* detection: VOC AP at IoU 0.5 over the test scenes and its PR curve, and the AP
  of the small faces alone (narrower than ``SMALL_FACE_WIDTH``; larger faces are
  ignored, as WIDER FACE's subsets are scored);
* landmarks (300-W protocol): on each ground-truth face matched by a detection
  (IoU >= 0.5), NME normalised by the inter-ocular (outer eye corner) distance; CED
  AUC and failure rate at 0.1 / 0.2 / 0.3;
* attributes on the same matched faces: age MAE (the expectation of the age
  softmax), gender and ethnicity accuracy.

Baselines: a fixed-prior detector (boxes of the training faces' median size on a
grid, scored by closeness to the image centre), the training mean shape placed in
the model's own matched detections, the training-mean age and the training-majority
gender and ethnicity.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List

import numpy as np
import tensorflow as tf

from keras_facemt.configs.data import AugmentConfig, DataConfig
from keras_facemt.data import batch as batch_keys
from keras_facemt.metrics.classification import majority_accuracy
from keras_facemt.metrics.detection_ap import average_precision
from keras_facemt.metrics.landmark_error import ced_auc, failure_rate, nme_per_face
from keras_facemt.metrics.matched_landmark_error import match_to_ground_truth, matched_landmark_nme
from keras_facemt.ops.box_jitter import random_shake

TASKS = ("detection", "landmarks", "age_class", "gender", "ethnicity")
ATTRIBUTES = ("age_class", "gender", "ethnicity")
CUTOFFS = (0.1, 0.2, 0.3)
# "Small" faces of the matching comparison (Sec. IV-B.1): narrower than this share of the image.
SMALL_FACE_WIDTH = 0.15
# Batch key of the per-image presence of the landmark and attribute terms (``face_roi_stream``).
FACE_ROI_PRESENCE = "has_face_rois"
# Table IV / V (TFN, no JFA) for the report.
PAPER_TABLE4 = {0.1: (0.3932, 0.0783), 0.2: (0.6813, 0.0117), 0.3: (0.7843, 0.0083)}
PAPER_TABLE5 = {"age_mae": (3.23, 3.18), "gender": (0.9871, 0.9866), "ethnicity": (0.9805, 0.9813)}


def train_augment(exp) -> AugmentConfig:
    """Training augmentation: flips and mild colour jitter (no scale or shift: the boxes stay put)."""
    return AugmentConfig(flip=exp.flip, scale_range=(1.0, 1.0), shift=0.0, brightness=0.05, contrast=0.05,
                         saturation=0.05, hue=0.0)


def scene_stream(exp, data_dir: str, split: str, image_size: int, training: bool) -> DataConfig:
    """Scenes with every TFN label; flips and mild colour jitter when training."""
    return DataConfig(
        name="scenes", data_dir=data_dir, split=split, mode="scenes", image_size=(image_size, image_size),
        global_batch_size=exp.batch_size, tasks=TASKS, landmark_scheme="ibug68", max_faces=exp.max_faces,
        augment=train_augment(exp) if training else None, shuffle_buffer=512 if training else 0, repeat=training,
        seed=exp.seed,
    )


def _face_hash(boxes):
    """A number in [0, 1) per face from its box's vertical extent, which a horizontal flip
    leaves bit-exact, so a face keeps or lacks its labels in every epoch (a partially
    labelled set, not labels re-drawn per batch)."""
    key = boxes[..., 1] * 12.9898 + boxes[..., 3] * 78.233
    v = tf.sin(key) * 43758.5453
    return v - tf.floor(v)


def partial_labels(batch, exp):
    """JFA-like label indicators: small faces and a seeded share of the others keep only their box."""
    boxes = tf.cast(batch[batch_keys.BBOX], tf.float32)
    big = tf.cast(boxes[..., 2] - boxes[..., 0] >= exp.label_min_face, tf.float32)
    u = _face_hash(boxes)
    out = dict(batch)
    out[batch_keys.HAS_LANDMARKS] = batch[batch_keys.HAS_LANDMARKS] * big * tf.cast(u < exp.landmark_label_rate,
                                                                                    tf.float32)
    keep_attr = big * tf.cast(tf.math.floormod(u * 7.0, 1.0) < exp.attribute_label_rate, tf.float32)
    for name in ATTRIBUTES:
        out[batch_keys.has_attr(name)] = batch[batch_keys.has_attr(name)] * keep_attr
    return out


def train_stream(exp, data_dir: str, image_size: int):
    """The training stream of SynthFace (or converted) scenes: ``face_roi_stream`` of ``scene_stream``."""
    return face_roi_stream(exp, scene_stream(exp, data_dir, "train", image_size, training=True))


def face_roi_stream(exp, cfg: DataConfig, prepare=None):
    """Batches of ``cfg`` plus ``face_rois``, the shaken ground-truth boxes, and ``has_face_rois``.

    ``has_face_rois`` ``[batch]`` is 1 for an image with at least one face box: the
    landmark and attribute terms sample faces from their boxes, so they count on such
    an image whether or not its boxes are exhaustive (``has_boxes``, which the RPN and
    detection terms need for their negatives). ``prepare(batch) -> batch``, when
    given, runs first (e.g. MORPH's age in years -> ``age_class``).

    Returns:
        ``callable(input_context) -> tf.data.Dataset`` (a trainer stream).
    """
    from keras_facemt.data.pipeline import build_dataset

    def add_face_rois(index, batch):
        batch = prepare(batch) if prepare is not None else batch
        mask = tf.cast(batch[batch_keys.FACE_MASK], tf.float32)
        boxes = tf.cast(batch[batch_keys.BBOX], tf.float32) * tf.expand_dims(mask, -1)
        seed = tf.stack([tf.constant(exp.seed, tf.int64), index])
        batch = dict(batch, face_rois=random_shake(boxes, seed, exp.shake_shift, exp.shake_scale, exp.shake_copies))
        batch[FACE_ROI_PRESENCE] = tf.cast(tf.reduce_any(mask > 0, axis=1), tf.float32)
        return partial_labels(batch, exp) if exp.partial_labels else batch

    def make(ctx):
        return build_dataset(cfg, ctx).enumerate().map(add_face_rois, num_parallel_calls=tf.data.AUTOTUNE,
                                                       deterministic=True)

    return make


def collect_labels(exp, data_dir: str, split: str, image_size: int) -> Dict[str, list]:
    """Per image: ground-truth boxes, landmarks, visibility and attribute labels with their flags."""
    from keras_facemt.data.pipeline import build_dataset

    cfg = dataclasses.replace(scene_stream(exp, data_dir, split, image_size, training=False), name=f"{split}_labels")
    out: Dict[str, list] = {k: [] for k in ("images", "boxes", "landmarks", "visible", "has_landmarks")}
    for name in ATTRIBUTES:
        out[name], out["has_" + name] = [], []
    for batch in build_dataset(cfg):
        mask = batch[batch_keys.FACE_MASK].numpy() > 0
        for i, m in enumerate(mask):
            if split != "train":
                out["images"].append(batch["image"][i].numpy())
            out["boxes"].append(batch[batch_keys.BBOX][i].numpy()[m])
            out["landmarks"].append(batch[batch_keys.LANDMARKS][i].numpy()[m])
            out["visible"].append(batch[batch_keys.LANDMARKS_VISIBLE][i].numpy()[m])
            out["has_landmarks"].append(batch[batch_keys.HAS_LANDMARKS][i].numpy()[m])
            for name in ATTRIBUTES:
                out[name].append(batch[batch_keys.attr(name)][i].numpy()[m])
                out["has_" + name].append(batch[batch_keys.has_attr(name)][i].numpy()[m])
    return out


def predict(served, images: np.ndarray, batch_size: int = 16) -> List[Dict[str, np.ndarray]]:
    """Per image: the deployable graph's valid rows (``boxes``, ``scores``, ``landmarks``, ``age``, ...)."""
    results = []
    for s in range(0, len(images), batch_size):
        out = {k: np.asarray(v) for k, v in served({"image": images[s:s + batch_size]}, training=False).items()}
        for i in range(len(out["boxes"])):
            n = int(out["num_detections"][i])
            results.append({k: v[i, :n] for k, v in out.items() if k != "num_detections"})
    return results


def mean_shape(boxes, landmarks, has) -> np.ndarray:
    """``[68, 2]`` mean landmark positions relative to the face box (labelled training faces)."""
    b = np.concatenate([np.reshape(x, (-1, 4)) for x in boxes])
    l = np.concatenate([np.reshape(x, (-1, 68, 2)) for x in landmarks])
    h = np.concatenate([np.reshape(x, (-1,)) for x in has]) > 0
    wh = np.maximum(b[h, 2:] - b[h, :2], 1e-6)[:, None]
    return ((l[h] - b[h, None, :2]) / wh).mean(0)


def fixed_prior_detections(train_boxes, num_images: int, max_detections: int = 20):
    """The trivial detector: a grid of boxes of the median training face, scored by closeness to the centre."""
    b = np.concatenate([np.reshape(x, (-1, 4)) for x in train_boxes])
    w, h = np.median(b[:, 2] - b[:, 0]), np.median(b[:, 3] - b[:, 1])
    n = max(1, int(np.sqrt(max_detections)))
    cs = (np.arange(n) + 0.5) / n
    cx, cy = [v.reshape(-1) for v in np.meshgrid(cs, cs)]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
    scores = 1.0 - np.hypot(cx - 0.5, cy - 0.5)
    return [(boxes, scores)] * num_images


def _matched_attributes(preds, labels):
    """(predictions, labels) of the attributes over ground-truth faces matched by a detection.

    Returns:
        ``pred`` ``{"age": years, "gender": class, "ethnicity": class}`` and ``truth``
        ``{name: label, "has_" + name: flag}`` (age from ``age_class``), ``[N]`` each.
    """
    pred = {name: [] for name in ("age", "gender", "ethnicity")}
    truth = {key: [] for name in pred for key in (name, "has_" + name)}
    for i, (pr, gb) in enumerate(zip(preds, labels["boxes"])):
        for g, j in enumerate(match_to_ground_truth(pr["boxes"], gb)):
            if j < 0:
                continue
            pred["age"].append(pr["age"][j])
            pred["gender"].append(pr["gender_logits"][j].argmax())
            pred["ethnicity"].append(pr["ethnicity_logits"][j].argmax())
            for name, key in (("age", "age_class"), ("gender", "gender"), ("ethnicity", "ethnicity")):
                truth[name].append(labels[key][i][g])
                truth["has_" + name].append(labels["has_" + key][i][g])
    return pred, truth


def attribute_scores(pred, truth, train):
    """Age MAE (years) and gender / ethnicity accuracy on the labelled faces, with baselines.

    Args:
        pred: ``{"age": [N] years, "gender": [N] class, "ethnicity": [N] class}``.
        truth: ``{name: [N] label, "has_" + name: [N] flag}`` for the three attributes.
        train: the same label dict of the training faces (``[M]`` each): the
            training-mean age and the training-majority classes are the baselines.

    Returns:
        ``(metrics, baselines)``: ``age_mae``, ``age_faces``, ``age_mae_se``,
        ``<name>_accuracy``, ``<name>_faces``; ``training_mean_age_mae``,
        ``<name>_majority`` (NaN where no face is labelled).
    """
    nan = float("nan")
    metrics: Dict[str, object] = {}
    baselines: Dict[str, float] = {}
    has = np.asarray(truth["has_age"]) > 0
    target = np.asarray(truth["age"], np.float64)[has]
    err = np.abs(np.asarray(pred["age"], np.float64)[has] - target)
    train_ages = np.asarray(train["age"], np.float64)[np.asarray(train["has_age"]) > 0]
    n = int(has.sum())
    metrics["age_mae"] = float(err.mean()) if n else nan
    metrics["age_faces"] = n
    metrics["age_mae_se"] = float(err.std() / np.sqrt(n)) if n > 1 else nan
    baselines["training_mean_age_mae"] = float(np.abs(train_ages.mean() - target).mean()) if n and train_ages.size \
        else nan
    for name in ("gender", "ethnicity"):
        has = np.asarray(truth["has_" + name]) > 0
        target = np.asarray(truth[name], np.int64)[has]
        predicted = np.asarray(pred[name], np.int64)[has]
        train_labels = np.asarray(train[name], np.int64)[np.asarray(train["has_" + name]) > 0]
        n = int(has.sum())
        metrics[f"{name}_accuracy"] = float((predicted == target).mean()) if n else nan
        metrics[f"{name}_faces"] = n
        baselines[f"{name}_majority"] = majority_accuracy(train_labels, target) if n and train_labels.size else nan
    return metrics, baselines


def evaluate(served, test: Dict[str, list], train: Dict[str, list], max_detections: int) -> Dict[str, object]:
    """Every metric of the deployable graph ``served`` on ``test`` (from ``collect_labels``), with baselines."""
    images = np.stack(test["images"]).astype(np.float32)
    preds = predict(served, images)
    dets = [(p["boxes"], p["scores"]) for p in preds]
    det = average_precision(dets, test["boxes"])
    # Small faces alone: larger ground truths are ignored (detections on them count neither way).
    small = average_precision(dets, [(b, (b[:, 2] - b[:, 0]) >= SMALL_FACE_WIDTH) for b in test["boxes"]])
    prior = average_precision(fixed_prior_detections(train["boxes"], len(images), max_detections), test["boxes"])
    shape = mean_shape(train["boxes"], train["landmarks"], train["has_landmarks"])
    vis = [v * h[:, None] for v, h in zip(test["visible"], test["has_landmarks"])]
    lm = matched_landmark_nme([p["boxes"] for p in preds], [p["scores"] for p in preds],
                              [p["landmarks"] for p in preds], test["boxes"], test["landmarks"], vis, shape,
                              normalizations=("inter_ocular",))
    per_face = _per_face_nme(preds, test)
    metrics = {
        "ap": det["ap"], "pr_curve": {"recall": _thin(det["recall"]), "precision": _thin(det["precision"])},
        "test_faces": int(det["num_positives"]),
        "ap_small": small["ap"], "small_faces": int(small["num_positives"]),
        "nme": lm["nme"], "nme_scored_faces": lm["scored_faces"], "nme_unmatched_faces": lm["unmatched_faces"],
        "nme_per_face_se": float(per_face.std() / np.sqrt(len(per_face))) if len(per_face) > 1 else float("nan"),
        "ced": {str(c): {"auc": ced_auc(per_face, c), "failure_rate": failure_rate(per_face, c)} for c in CUTOFFS},
    }
    baselines = {"fixed_prior_ap": prior["ap"], "mean_shape_in_detections_nme": lm["nme_mean_shape"]}
    train_faces = {name: np.concatenate([np.reshape(x, (-1,)) for x in train[key]])
                   for name, key in (("age", "age_class"), ("gender", "gender"), ("ethnicity", "ethnicity"),
                                     ("has_age", "has_age_class"), ("has_gender", "has_gender"),
                                     ("has_ethnicity", "has_ethnicity"))}
    scores, trivial = attribute_scores(*_matched_attributes(preds, test), train_faces)
    metrics.update(scores)
    baselines.update(trivial)
    return {"metrics": metrics, "baselines": baselines}


def _per_face_nme(preds, test) -> np.ndarray:
    p, t, v = [], [], []
    for pr, gb, gl, gv, gh in zip(preds, test["boxes"], test["landmarks"], test["visible"], test["has_landmarks"]):
        for g, j in enumerate(match_to_ground_truth(pr["boxes"], gb)):
            if j >= 0 and gh[g] > 0:
                p.append(pr["landmarks"][j])
                t.append(gl[g])
                v.append(gv[g])
    if not p:
        return np.zeros(0)
    errors = nme_per_face(np.asarray(p), np.asarray(t), "ibug68", np.asarray(v))
    return errors[np.isfinite(errors)]


def _thin(values, n: int = 101) -> List[float]:
    values = np.asarray(values, np.float64)
    if len(values) <= n:
        return values.tolist()
    return values[np.linspace(0, len(values) - 1, n).round().astype(int)].tolist()


def headline_specs(results: Dict) -> List[tuple]:
    """``(metric, split, model value, [(baseline name, value)], higher is better)`` per headline metric."""
    m, b = results["metrics"], results["baselines"]
    split = f"{m['test_faces']} faces of held-out SynthFace scenes"
    matched = "ground-truth faces matched by a detection (IoU >= 0.5)"
    return [
        ("detection_ap@0.5", split, m["ap"], [("fixed-prior grid of median-size boxes", b["fixed_prior_ap"])], True),
        ("landmark_nme_inter_ocular", matched, m["nme"],
         [("training mean shape in the same detected boxes", b["mean_shape_in_detections_nme"])], False),
        ("age_mae_years", matched, m["age_mae"], [("training-mean age", b["training_mean_age_mae"])], False),
        ("gender_accuracy", matched, m["gender_accuracy"], [("training-majority gender", b["gender_majority"])],
         True),
        ("ethnicity_accuracy", matched, m["ethnicity_accuracy"],
         [("training-majority ethnicity", b["ethnicity_majority"])], True),
    ]


def headline(results: Dict, exp=None) -> List[Dict[str, object]]:
    """One entry per headline metric of the paper, next to its trivial baseline."""
    from keras_facemt.metrics.headline import headline_entry

    return [headline_entry(metric, split, value, baselines, higher_is_better=higher)
            for metric, split, value, baselines, higher in headline_specs(results)]


def results_markdown(results: Dict) -> str:
    """``results.md``: headline table, Table IV / V layouts, timings."""
    exp, m = results["experiment_config"], results["metrics"]
    lines = [f"# TFN results: {exp['name']}", "",
             f"Preset `{exp['preset']}`, {exp['train_scenes']} training / {exp['test_scenes']} test SynthFace scenes "
             f"(1-{exp['max_faces']} faces), four stages of {', '.join(str(s) for s in exp['stage_steps'])} updates "
             f"(batch {exp['batch_size']}). Partial labels: {exp['partial_labels']}.", "",
             "| Metric | Split | Model | Baseline | Baseline name |", "|---|---|---|---|---|"]
    for h in results["headline"]:
        lines.append(f"| {h['metric']} | {h['split']} | {h['model']:.4f} | {h['baseline']:.4f} "
                     f"| {h['baseline_name']} |")
    lines += ["", "## Landmarks (Table IV layout: AUC / failure rate)", "",
              "| Max error | TFN (SynthFace) | Paper TFN (300-W) |", "|---|---|---|"]
    for c in CUTOFFS:
        r = m["ced"][str(c)]
        pa, pf = PAPER_TABLE4[c]
        lines.append(f"| {c} | {r['auc']:.4f} / {100 * r['failure_rate']:.2f}% | {pa:.4f} / {100 * pf:.2f}% |")
    lines += ["", "## Attributes (Table V layout)", "",
              "| | TFN (SynthFace) | Paper TFN (MORPH II, two folds) |", "|---|---|---|",
              f"| Age MAE (years) | {m['age_mae']:.2f} | {PAPER_TABLE5['age_mae'][0]} / {PAPER_TABLE5['age_mae'][1]} |",
              f"| Gender accuracy | {100 * m['gender_accuracy']:.2f}% | {100 * PAPER_TABLE5['gender'][0]:.2f}% / "
              f"{100 * PAPER_TABLE5['gender'][1]:.2f}% |",
              f"| Ethnicity accuracy | {100 * m['ethnicity_accuracy']:.2f}% | "
              f"{100 * PAPER_TABLE5['ethnicity'][0]:.2f}% / "
              f"{100 * PAPER_TABLE5['ethnicity'][1]:.2f}% |", "",
              "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in results["timings_seconds"].items())]
    return "\n".join(lines) + "\n"

