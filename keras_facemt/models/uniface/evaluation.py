"""Uniface evaluation protocols on host-side numpy (Liao et al., Sec. IV).

* Detection: VOC AP at IoU 0.5 and the FDDB-style ROC (true-positive rate at fixed
  false-positive counts, Fig. 4) via ``keras_facemt.metrics``.
* Landmarks: 5-point NME of the detection matched to each ground-truth face
  (IoU >= 0.5, ``metrics.matched_landmark_error``); unmatched faces are counted, not scored. Two normalisers: the
  inter-ocular distance (MTFL) and the face-box size (AFLW style), since synthetic
  faces turn up to 75 degrees of yaw, where the inter-ocular distance shrinks towards
  zero and a few profile faces dominate the inter-ocular mean.
* Verification (Sec. IV-B): whole, un-cropped single-face images go through the
  network; the highest-scoring face's embedding represents the image; cosine
  similarity; 10-fold accuracy with the threshold chosen on 9 folds (the LFW
  protocol), and the same after a random crop or pad of up to ``margin`` of each
  side (Sec. IV-B.1's robustness test: 60 px of 250).
* Trivial baselines the smoke test must beat: a fixed-prior detector (boxes of the
  training set's median size on a grid, scored by how often training faces fall in
  each cell), the mean-shape landmark predictor, and chance (50%).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

from keras_facemt.metrics.detection_ap import average_precision
from keras_facemt.metrics.detection_roc import detection_roc
from keras_facemt.metrics.landmark_error import nme
from keras_facemt.metrics.verification import verification_accuracy


def collect_scene_predictions(inference_model, dataset) -> Dict[str, list]:
    """Runs an inference model over a scenes-mode dataset (one pass).

    Returns:
        Per image lists: ``det_boxes`` ``[n, 4]``, ``det_scores`` ``[n]``,
        ``det_landmarks`` ``[n, 5, 2]``, ``gt_boxes`` ``[g, 4]``, ``gt_landmarks``
        ``[g, 5, 2]``, ``gt_visible`` ``[g, 5]``.
    """
    out = {k: [] for k in ("det_boxes", "det_scores", "det_landmarks", "gt_boxes", "gt_landmarks", "gt_visible")}
    for batch in dataset:
        pred = inference_model({"image": batch["image"]}, training=False)
        pred = {k: np.asarray(v) for k, v in pred.items()}
        mask = batch["face_mask"].numpy() > 0
        vis = batch.get("landmarks_visible")
        for i in range(mask.shape[0]):
            n = int(pred["num_detections"][i])
            out["det_boxes"].append(pred["boxes"][i, :n])
            out["det_scores"].append(pred["scores"][i, :n])
            out["det_landmarks"].append(pred["landmarks"][i, :n])
            out["gt_boxes"].append(batch["bbox"].numpy()[i][mask[i]])
            out["gt_landmarks"].append(batch["landmarks"].numpy()[i][mask[i]])
            out["gt_visible"].append(np.ones((int(mask[i].sum()), 5)) if vis is None else vis.numpy()[i][mask[i]])
    return out


def detection_metrics(det_boxes, det_scores, gt_boxes, fp_counts: Sequence[int]) -> Dict[str, object]:
    """VOC AP (IoU 0.5) and TPR at fixed false-positive counts."""
    dets = list(zip(det_boxes, det_scores))
    ap = average_precision(dets, gt_boxes, 0.5)
    roc = detection_roc(dets, gt_boxes, fp_counts, 0.5)
    return {"ap": float(ap["ap"]), "tpr_at_fp": {str(k): v for k, v in roc["tpr_at"].items()},
            "num_faces": int(ap["num_positives"])}


def fixed_prior_detections(train_boxes: Sequence[np.ndarray], num_images: int) -> Tuple[list, list]:
    """The trivial detector: the same scored boxes on every image.

    Boxes of the training set's median width and height tile the image; each box's
    score is the fraction of training faces whose centre falls in its cell.
    """
    boxes = np.concatenate([np.asarray(b).reshape(-1, 4) for b in train_boxes], 0)
    w = float(np.median(boxes[:, 2] - boxes[:, 0]))
    h = float(np.median(boxes[:, 3] - boxes[:, 1]))
    nx, ny = max(int(round(1 / max(w, 1e-3))), 1), max(int(round(1 / max(h, 1e-3))), 1)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    counts = np.zeros((ny, nx))
    np.add.at(counts, (np.clip((cy * ny).astype(int), 0, ny - 1), np.clip((cx * nx).astype(int), 0, nx - 1)), 1)
    prior_boxes, scores = [], []
    for j in range(ny):
        for i in range(nx):
            x, y = (i + 0.5) / nx, (j + 0.5) / ny
            prior_boxes.append([x - w / 2, y - h / 2, x + w / 2, y + h / 2])
            scores.append(counts[j, i] / len(boxes))
    pb, ps = np.clip(np.asarray(prior_boxes, np.float32), 0, 1), np.asarray(scores, np.float32)
    return [pb] * num_images, [ps] * num_images


def mean_shape(train_boxes: Sequence[np.ndarray], train_landmarks: Sequence[np.ndarray]) -> np.ndarray:
    """``[5, 2]`` mean landmark positions in box-relative coordinates."""
    boxes = np.concatenate([np.asarray(b).reshape(-1, 4) for b in train_boxes], 0)
    lms = np.concatenate([np.asarray(l).reshape(-1, 5, 2) for l in train_landmarks], 0)
    wh = np.maximum(boxes[:, 2:] - boxes[:, :2], 1e-6)[:, None]
    return ((lms - boxes[:, None, :2]) / wh).mean(0)


def mean_shape_nme(shape: np.ndarray, gt_boxes, gt_landmarks, gt_visible, normalization: str = "inter_ocular") -> float:
    """NME of placing the mean shape in each ground-truth box (the trivial landmark baseline)."""
    boxes = np.concatenate([np.asarray(b).reshape(-1, 4) for b in gt_boxes], 0)
    target = np.concatenate([np.asarray(l).reshape(-1, 5, 2) for l in gt_landmarks], 0)
    vis = np.concatenate([np.asarray(v).reshape(-1, 5) for v in gt_visible], 0)
    pred = boxes[:, None, :2] + shape[None] * (boxes[:, 2:] - boxes[:, :2])[:, None]
    return nme(pred, target, "mtfl5", vis, normalization, boxes)


def make_pairs(identities: np.ndarray, num_pairs: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LFW-style pairs: 10 folds, each half same-identity and half different.

    Returns:
        (``[P, 2]`` image index pairs, ``[P]`` same flags, ``[P]`` fold ids).
    """
    rng = np.random.default_rng(seed)
    identities = np.asarray(identities)
    by_id = {i: np.where(identities == i)[0] for i in np.unique(identities)}
    multi = [i for i, v in by_id.items() if len(v) >= 2]
    per_fold = num_pairs // 10
    pairs, same, folds = [], [], []
    for f in range(10):
        for k in range(per_fold):
            if k % 2 == 0:
                ident = multi[rng.integers(len(multi))]
                a, b = rng.choice(by_id[ident], 2, replace=False)
                same.append(1)
            else:
                while True:
                    a, b = rng.integers(len(identities), size=2)
                    if identities[a] != identities[b]:
                        break
                same.append(0)
            pairs.append((a, b))
            folds.append(f)
    return np.asarray(pairs), np.asarray(same), np.asarray(folds)


def random_crop_or_pad(image: np.ndarray, margin: float, rng: np.random.Generator) -> np.ndarray:
    """Crops (positive) or zero-pads (negative) each side by up to ``margin`` of its length."""
    h, w = image.shape[:2]
    d = rng.integers(-int(margin * h), int(margin * h) + 1, size=4)  # top, bottom, left, right
    pad = [max(-d[0], 0), max(-d[1], 0), max(-d[2], 0), max(-d[3], 0)]
    out = np.pad(image, ((pad[0], pad[1]), (pad[2], pad[3]), (0, 0)))
    top, bottom = pad[0] + max(d[0], 0), pad[0] + h - max(d[1], 0)
    left, right = pad[2] + max(d[2], 0), pad[2] + w - max(d[3], 0)
    return out[top:bottom, left:right]


def top_face_embeddings(results: List[Dict[str, np.ndarray]], dim: int) -> Tuple[np.ndarray, int]:
    """The highest-scoring face's embedding per image (zeros where nothing was detected)."""
    emb = np.zeros((len(results), dim), np.float32)
    missing = 0
    for i, r in enumerate(results):
        if len(r["scores"]):
            emb[i] = r["embeddings"][int(np.argmax(r["scores"]))]
        else:
            missing += 1
    return emb, missing


def cosine_scores(emb: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return np.sum(e[pairs[:, 0]] * e[pairs[:, 1]], axis=1)


def verification(emb: np.ndarray, pairs, same, folds) -> Dict[str, float]:
    res = verification_accuracy(cosine_scores(emb, pairs), same, folds=folds)
    return {k: float(v) for k, v in res.items() if np.isscalar(v)}
