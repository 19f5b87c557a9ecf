"""All-in-One's test-time stage 1 on whole images (Sec. III-D, Fig. 5), without Selective Search.

The paper runs the network on Selective Search proposals, refines them with
HyperFace's Iterative Region Proposals (IRP) and merges them with landmark-based
NMS (L-NMS) [36]. Selective Search is not available here (README, departures), so
the candidates are a dense multi-scale grid of square windows. Then, as [36]:

1. every window is cropped, resized to the input and scored (face probability);
   windows scoring above ``score_threshold`` are kept (at most ``candidates``, the
   highest scoring, as the deployable graph has fixed shapes);
2. IRP: each kept window is replaced by the face box its predicted fiducials imply
   (``box_from_points``) and the network runs again on that box, ``iterations``
   times;
3. L-NMS: the final candidates are suppressed by NMS over their landmark-implied
   boxes (``ops.nms.batched_nms``), and each kept face's landmarks and pose are
   the mean over the candidates overlapping it by IoU > ``average_iou`` (the
   per-face averaging of Sec. IV-B).

Stage 2 (``stage2``): each detected face is aligned to the canonical view by a
similarity transform from its predicted points (aflw21 -> the 5 ``mtfl5`` points ->
``ops.align``'s template), and the aligned face and its mirror pass through the
network again for smile, gender, age and the identity descriptor; the two passes
are averaged (softmax probabilities, ages, descriptors: the paper does not say how
they are combined). A model trained on face proposals instead of aligned faces
(``aligned_crops`` off) gets the crop of the detected box and its mirror.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from keras_facemt.errors import ConfigError
from keras_facemt.models.allinone import proposals as P
from keras_facemt.models.allinone.config import SceneDetectorConfig  # noqa: F401  (stage 1's settings)
from keras_facemt.models.allinone.scene_geometry import (  # noqa: F401  (part of this module's API)
    box_from_points,
    box_prior,
    candidate_windows,
    defined_points,
)
from keras_facemt.models.allinone.predict import predict, softmax


def fitted_box_prior(faces: Dict[str, np.ndarray]) -> np.ndarray:
    """``box_prior`` of a training stream's faces (``face_box``, ``face_points``,
    ``face_visible``), over the faces that carry points (converted faces may not)."""
    with_points = np.asarray(faces["face_visible"]).sum(-1) > 0
    return box_prior(faces["face_box"][with_points], faces["face_points"][with_points], defined_points())


def _run(model, image: np.ndarray, boxes: np.ndarray, input_size: int, batch_size: int = 512):
    boxes = np.stack([P.rounded(b) for b in boxes]) if len(boxes) else np.zeros((0, 4))
    if not len(boxes):
        return boxes, np.zeros(0), np.zeros((0, 21, 2)), np.zeros((0, 3))
    crops = np.stack([P.crop_box(image, b, input_size) for b in boxes])
    out = predict(model, crops, batch_size)
    wh = boxes[:, 2:] - boxes[:, :2]
    points = out["landmarks"] * wh[:, None, :] + boxes[:, None, :2]
    return boxes, softmax(out["detection_logits"])[:, 1], points, out["pose"]


def detect(model, image: np.ndarray, input_size: int, prior: np.ndarray,
           cfg: SceneDetectorConfig = SceneDetectorConfig()) -> Dict[str, np.ndarray]:
    """Stage 1 on one uint8 image ``[H, W, 3]``.

    Returns:
        ``boxes`` ``[D, 4]`` pixels (landmark-implied), ``scores`` ``[D]``,
        ``landmarks`` ``[D, 21, 2]`` pixels, ``pose`` ``[D, 3]`` degrees,
        ``windows`` (candidates scored), ``kept`` (above the threshold).
    """
    h, w = image.shape[:2]
    idx = defined_points()
    windows = candidate_windows(h, w, cfg)
    boxes, scores, points, pose = _run(model, image, windows, input_size)
    keep = np.flatnonzero(scores > cfg.score_threshold)
    keep = keep[np.argsort(-scores[keep], kind="stable")[:cfg.candidates]]  # the graph's fixed candidate count
    boxes, scores, points, pose = boxes[keep], scores[keep], points[keep], pose[keep]
    kept = len(keep)
    for _ in range(cfg.iterations):  # IRP [36]: re-run on the box the fiducials imply
        if not len(boxes):
            break
        boxes, scores, points, pose = _run(model, image, box_from_points(points, prior, idx), input_size)
        keep = scores > cfg.score_threshold
        boxes, scores, points, pose = boxes[keep], scores[keep], points[keep], pose[keep]
    out = landmark_nms(points, scores, pose, prior, idx, cfg, h, w)
    return {**out, "windows": len(windows), "kept": kept}


def landmark_nms(points: np.ndarray, scores: np.ndarray, pose: np.ndarray, prior: np.ndarray,
                 indices: Sequence[int], cfg: SceneDetectorConfig, height: int, width: int) -> Dict[str, np.ndarray]:
    """L-NMS [36] over candidates and the per-face averaging (step 3 of the module docstring).

    Args:
        points: ``[K, 21, 2]`` candidates' points (pixels); scores ``[K]``; pose ``[K, 3]``.
        prior, indices: ``box_prior`` and the points it reads.
        height, width: the image's size (NMS runs on normalised boxes).

    Returns:
        ``boxes`` ``[D, 4]`` (implied by the averaged points), ``scores`` ``[D]``,
        ``landmarks`` ``[D, 21, 2]``, ``pose`` ``[D, 3]``, best first.
    """
    from keras_facemt.ops.nms import batched_nms

    if not len(points):
        return {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "landmarks": np.zeros((0, 21, 2)),
                "pose": np.zeros((0, 3))}
    lm_boxes = box_from_points(points, prior, indices)
    scale = np.array([width, height, width, height], np.float64)
    det = batched_nms((lm_boxes / scale)[None].astype(np.float32), np.asarray(scores, np.float32)[None],
                      max_detections=cfg.max_detections, iou_threshold=cfg.nms_iou, score_threshold=0.0)
    n = int(det.num_detections[0])
    chosen = np.asarray(det.indices)[0][:n]
    overlap = P.box_iou(lm_boxes[chosen], lm_boxes)
    members: List[np.ndarray] = [overlap[i] > cfg.average_iou for i in range(n)]
    lms = np.stack([points[m].mean(0) for m in members])
    return {"boxes": box_from_points(lms, prior, indices), "scores": scores[chosen], "landmarks": lms,
            "pose": np.stack([pose[m].mean(0) for m in members])}


def stage2(model, image: np.ndarray, landmarks: np.ndarray, boxes: np.ndarray, input_size: int,
           aligned: bool = True) -> Dict[str, np.ndarray]:
    """Second pass on each detected face and its mirror (Sec. III-D).

    Args:
        image: uint8 ``[H, W, 3]``.
        landmarks: ``[D, 21, 2]`` predicted aflw21 points (pixels).
        boxes: ``[D, 4]`` detected boxes (pixels), cropped when ``aligned`` is False.
        aligned: align by the points (the paper) or crop the box.

    Returns:
        ``smile`` / ``gender`` ``[D, 2]`` probabilities, ``age`` ``[D]`` years,
        ``embedding`` ``[D, E]`` (mean of the two passes).
    """
    from keras_facemt.data.landmarks import convert_points
    from keras_facemt.models.allinone.data import align_crops

    h, w = image.shape[:2]
    if aligned:
        five, _ = convert_points(landmarks, np.ones(landmarks.shape[:2], np.float32), "aflw21", "mtfl5")
        crops = align_crops(np.repeat(image[None], len(five), 0), five / np.array([w, h], np.float32), input_size)
    else:
        crops = np.stack([P.crop_box(image, P.rounded(b), input_size) for b in boxes])
    outs = [predict(model, crops), predict(model, crops[:, :, ::-1])]
    return {"smile": np.mean([softmax(o["smile_logits"]) for o in outs], 0),
            "gender": np.mean([softmax(o["gender_logits"]) for o in outs], 0),
            "age": np.mean([o["age"].reshape(-1) for o in outs], 0),
            "embedding": np.mean([o["embedding"] for o in outs], 0)}


def graph_faces(served, image: np.ndarray, domain: int = 0) -> Dict[str, np.ndarray]:
    """The deployable graph (``scene_graph``) on one uint8 square image ``[S, S, 3]``
    of its input size: ``detect``'s and ``stage2``'s fields for its detections."""
    size = int(served.input["image"].shape[1])
    if image.shape[:2] != (size, size):
        raise ConfigError(f"The scene graph reads {size}x{size} images. Received: image.shape={image.shape}")
    inputs = {"image": image[None].astype(np.float32) / 255.0}
    if "domain" in served.input:
        inputs["domain"] = np.full(1, domain, np.int32)
    out = {k: np.asarray(v)[0] for k, v in served(inputs, training=False).items()}
    n = int(out["num_detections"])
    return {"boxes": out["boxes"][:n] * size, "scores": out["scores"][:n], "landmarks": out["landmarks"][:n] * size,
            "pose": out["pose"][:n], "smile": softmax(out["smile_logits"][:n]),
            "gender": softmax(out["gender_logits"][:n]), "age": out["age"][:n], "embedding": out["embedding"][:n]}


def scene_metrics(model, scenes: Dict, input_size: int, prior: np.ndarray, count: int,
                  cfg: SceneDetectorConfig = SceneDetectorConfig(), aligned: bool = False,
                  train_majority: Dict[str, int] = None, train_mean_age: float = None,
                  fp_counts: Sequence[int] = (0, 1, 2, 5, 10, 20, 50), served=None) -> Dict[str, object]:
    """AP at IoU 0.5 of stage 1 on the first ``count`` test scenes, and stage 2 on its detections.

    Beside AP, the FDDB-style discrete ROC (``metrics.detection_roc``): the share
    of faces found (IoU >= 0.5) at each of ``fp_counts`` false positives over all
    ``count`` scenes, for the model and for the random-score windows.

    Faces smaller than the smallest window are marked "ignore" (they get no
    candidate, as faces Selective Search misses in the paper's FDDB discussion).
    Baseline: every window with a random score. Stage 2 is scored on the detections
    matching a face (IoU > 0.5, best score first): smile / gender accuracy and age
    MAE, next to the majority class of these faces, the training majority class and
    the training mean age where given.

    With ``served`` (the deployable graph, ``scene_graph``), both stages are the
    graph's instead of this module's Python pipeline (``model``, ``prior`` and
    ``aligned`` are then unused; ``cfg`` still sets the baseline's windows).
    """
    from keras_facemt.metrics.detection_ap import average_precision
    from keras_facemt.metrics.detection_roc import detection_roc

    rng = np.random.default_rng(0)
    dets, base, gts = [], [], []
    second = {"smile": [], "gender": [], "age": []}
    truth = {"smile": [], "gender": [], "age": []}
    count = min(count, len(scenes["scenes"]))
    for i in range(count):
        image = scenes["scenes"][i]
        res = detect(model, image, input_size, prior, cfg) if served is None else graph_faces(served, image)
        dets.append((res["boxes"], res["scores"]))
        windows = candidate_windows(*image.shape[:2], cfg)
        base.append((windows, rng.random(len(windows))))
        sel = np.flatnonzero(scenes["face_scene"] == i)
        boxes = scenes["face_box"][sel]
        side = np.sqrt(np.prod(boxes[:, 2:] - boxes[:, :2], -1))
        gts.append((boxes, side < cfg.min_side * min(image.shape[:2])))
        if not len(res["boxes"]) or not len(boxes):
            continue
        overlap = P.box_iou(res["boxes"], boxes)
        taken, pairs = set(), []
        for d in np.argsort(-res["scores"]):
            g = int(overlap[d].argmax())
            if overlap[d, g] > 0.5 and g not in taken:
                taken.add(g)
                pairs.append((int(d), int(sel[g])))
        if not pairs:
            continue
        d_idx = np.array([p[0] for p in pairs])
        out = (stage2(model, image, res["landmarks"][d_idx], res["boxes"][d_idx], input_size, aligned)
               if served is None else {k: res[k][d_idx] for k in ("smile", "gender", "age")})
        for p, (_, face) in enumerate(pairs):
            second["smile"].append(int(out["smile"][p].argmax()))
            second["gender"].append(int(out["gender"][p].argmax()))
            second["age"].append(float(out["age"][p]))
            for k in truth:
                truth[k].append(scenes[f"face_{k}"][face])
    ap = average_precision(dets, gts, 0.5)
    result = {"ap": float(ap["ap"]), "random_window_ap": float(average_precision(base, gts, 0.5)["ap"]),
              "scenes": count, "faces": int(ap["num_positives"]),
              "recall": float(ap["recall"][-1]) if len(ap["recall"]) else 0.0,
              "stage2": {"aligned": bool(aligned), "faces": len(truth["age"])}}
    if ap["num_positives"]:
        result["roc_tpr_at_fp"] = {str(k): v for k, v in detection_roc(dets, gts, fp_counts)["tpr_at"].items()}
        result["random_window_roc_tpr_at_fp"] = {str(k): v for k, v in
                                                 detection_roc(base, gts, fp_counts)["tpr_at"].items()}
    if truth["age"]:
        t = {k: np.asarray(v) for k, v in truth.items()}
        s2 = result["stage2"]
        for k in ("smile", "gender"):
            s2[f"{k}_accuracy"] = float(np.mean(np.asarray(second[k]) == t[k]))
            rate = float(np.mean(t[k] == 1))
            s2[f"{k}_split_majority_accuracy"] = max(rate, 1.0 - rate)
            if train_majority is not None:
                s2[f"{k}_majority_accuracy"] = float(np.mean(t[k] == train_majority[k]))
        s2["age_mae"] = float(np.mean(np.abs(np.asarray(second["age"]) - t["age"])))
        if train_mean_age is not None:
            s2["age_mae_training_mean"] = float(np.mean(np.abs(train_mean_age - t["age"])))
    return result
