"""Why stage 2 reads smiles on detected scene faces worse than on its test crops.

Stage 2 (Sec. III-D) aligns each face found by stage 1 by its *predicted* points
and averages the network over the face and its mirror. On SynthFace, its smile
accuracy on detected scene faces sat below always answering "no smile". Three
causes are told apart here, on the same matched detections:

* alignment: predicted points vs the ground-truth points vs the detected box;
* the mirror: averaged with the flipped face or not;
* the label prior: the ``celeba`` stream renders every other face smiling (50%),
  scenes smile about 14% of the time. A classifier trained on a 50% prior puts
  its 0.5 threshold in the wrong place for a 14% population; ranking quality
  (average precision, balanced accuracy) is unaffected, accuracy is not. The
  standard label-shift correction (Saerens et al., Neural Computation 2002)
  multiplies the odds by ``(pi_test / (1 - pi_test)) / (pi_train / (1 - pi_train))``
  with ``pi_test`` the smile rate of the *training* scenes (no test label used).
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from keras_facemt.models.allinone import proposals as P
from keras_facemt.models.allinone.predict import predict, softmax

VARIANTS = (("predicted", True), ("predicted", False), ("ground_truth", True), ("box", True))


def prior_corrected(prob: np.ndarray, train_rate: float, test_rate: float) -> np.ndarray:
    """``P(smile)`` ``[N]`` moved from a training prior ``train_rate`` to ``test_rate`` (Bayes' rule on the odds)."""
    p = np.clip(np.asarray(prob, np.float64), 1e-7, 1 - 1e-7)
    odds = p / (1 - p) * (test_rate / (1 - test_rate)) / (train_rate / (1 - train_rate))
    return odds / (1 + odds)


def _scores(prob: np.ndarray, truth: np.ndarray, train_rate: float, test_rate: float) -> Dict[str, float]:
    from keras_facemt.models.allinone.task import binary_average_precision

    pred = prob > 0.5
    recalls = [pred[truth == 1].mean() if (truth == 1).any() else np.nan,
               (~pred[truth == 0]).mean() if (truth == 0).any() else np.nan]
    return {"accuracy": float((pred == truth).mean()), "balanced_accuracy": float(np.nanmean(recalls)),
            "ap": binary_average_precision(prob, truth),
            "accuracy_prior_corrected": float(((prior_corrected(prob, train_rate, test_rate) > 0.5) == truth).mean())}


def study(model, scenes: Dict, input_size: int, prior: np.ndarray, count: int, train_smile_rate: float,
          scene_smile_rate: float, test_faces: Dict = None) -> Dict[str, object]:
    """Stage-2 smile on the detections of the first ``count`` test scenes, per crop variant.

    Args:
        prior: stage 1's box prior (``scene_pipeline.box_prior``).
        train_smile_rate: smile rate of the stream the smile head trained on.
        scene_smile_rate: smile rate of the *training* scenes' faces.
        test_faces: optional held-out face crops (``data.prepare``'s ``test_faces``):
            the same scores on the crops the usual evaluation reads.

    Returns:
        ``{variant: scores}`` (``"<alignment>_mirror"`` / ``"<alignment>_single"``),
        ``faces``, ``smile_rate``, ``face_side_px`` (mean side of the matched faces)
        and ``crops`` (the held-out crops' scores).
    """
    from keras_facemt.data.landmarks import convert_points
    from keras_facemt.models.allinone.data import align_crops
    from keras_facemt.models.allinone.scene_pipeline import detect

    crops = {v: [] for v in VARIANTS}
    truth, sides = [], []
    for i in range(min(count, len(scenes["scenes"]))):
        image = scenes["scenes"][i]
        h, w = image.shape[:2]
        res = detect(model, image, input_size, prior)
        sel = np.flatnonzero(scenes["face_scene"] == i)
        if not len(res["boxes"]) or not len(sel):
            continue
        overlap = P.box_iou(res["boxes"], scenes["face_box"][sel])
        taken = set()
        for d in np.argsort(-res["scores"]):
            g = int(overlap[d].argmax())
            if overlap[d, g] <= 0.5 or g in taken:
                continue
            taken.add(g)
            face = int(sel[g])
            points = {"predicted": res["landmarks"][d], "ground_truth": scenes["face_points"][face]}
            for (how, mirror) in VARIANTS:
                if how == "box":
                    crop = P.crop_box(image, P.rounded(res["boxes"][d]), input_size)
                else:
                    five, _ = convert_points(points[how][None], np.ones((1, 21), np.float32), "aflw21", "mtfl5")
                    crop = align_crops(image[None], five / np.array([w, h], np.float32), input_size)[0]
                crops[(how, mirror)].append(crop)
            truth.append(int(scenes["face_smile"][face]))
            box = scenes["face_box"][face]
            sides.append(float(np.sqrt(np.prod(box[2:] - box[:2]))))
    truth = np.asarray(truth)
    out: Dict[str, object] = {"faces": int(len(truth)), "smile_rate": float(truth.mean()) if len(truth) else 0.0,
                              "face_side_px": float(np.mean(sides)) if sides else 0.0,
                              "train_smile_rate": train_smile_rate, "scene_smile_rate_train": scene_smile_rate}
    if not len(truth):
        return out
    for (how, mirror), faces in crops.items():
        faces = np.stack(faces)
        probs = [softmax(predict(model, faces)["smile_logits"])[:, 1]]
        if mirror:
            probs.append(softmax(predict(model, faces[:, :, ::-1])["smile_logits"])[:, 1])
        out[f"{how}_{'mirror' if mirror else 'single'}"] = _scores(np.mean(probs, 0), truth, train_smile_rate,
                                                                   scene_smile_rate)
    if test_faces is not None:
        k = int(np.bincount(test_faces["face"]).max())
        prob = softmax(predict(model, test_faces["image"])["smile_logits"])[:, 1].reshape(-1, k).mean(1)
        labels = test_faces["smile"].reshape(-1, k)[:, 0]
        out["crops"] = {**_scores(prob, labels, train_smile_rate, train_smile_rate), "faces": int(len(labels)),
                        "smile_rate": float(labels.mean())}
    return out
