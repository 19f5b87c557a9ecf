"""Export verification of detectors: AP, matched-face NME and embedding agreement."""

import numpy as np

from keras_facemt.models.uniface.serving import serving_spec
from keras_facemt.models.uniface.model import PRESETS
from keras_facemt.serving.detection_checks import detection_task_metrics
from keras_facemt.serving.verify import compare_metrics

SPEC = serving_spec(PRESETS["tiny"]())


def _outputs(boxes, scores, embeddings, max_det=4):
    """Padded detector outputs for a batch of images, each a list of faces."""
    b = len(boxes)
    out = {"boxes": np.zeros((b, max_det, 4), "float32"), "scores": np.zeros((b, max_det), "float32"),
           "landmarks": np.zeros((b, max_det, 5, 2), "float32"), "embeddings": np.zeros((b, max_det, 3), "float32"),
           "num_detections": np.zeros((b,), "int32")}
    template = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.5], [0.35, 0.7], [0.65, 0.7]], "float32")
    for i, (bx, sc, em) in enumerate(zip(boxes, scores, embeddings)):
        n = len(bx)
        out["num_detections"][i] = n
        for j in range(n):
            box = np.asarray(bx[j], "float32")
            out["boxes"][i, j], out["scores"][i, j], out["embeddings"][i, j] = box, sc[j], em[j]
            out["landmarks"][i, j] = box[:2] + template * (box[2:] - box[:2])
    return out


BOXES = [[[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9]], [[0.2, 0.3, 0.6, 0.7]]]
SCORES = [[0.9, 0.8], [0.95]]
EMB = [[[1, 0, 0], [0, 1, 0]], [[0, 0, 1]]]


def test_identical_outputs_agree_fully():
    ref = _outputs(BOXES, SCORES, EMB)
    m = detection_task_metrics(ref, ref, {}, SPEC)
    assert m["detection"]["export"] == 1.0 and m["detection"]["reference"] == "keras"
    assert m["landmarks"]["export"] < 1e-6
    assert abs(m["embedding"]["export"] - 1.0) < 1e-6


def test_drifted_embeddings_fail_and_missed_faces_cost_ap():
    ref = _outputs(BOXES, SCORES, EMB)
    drifted = _outputs(BOXES, SCORES, [[[1, 1, 0], [0, 1, 1]], [[1, 0, 1]]])
    check = compare_metrics("model_int8.tflite", "ai_edge_litert", ref, drifted, {}, enforce=True, spec=SPEC)
    assert not check.passed and "embedding" in check.message
    assert abs(check.metrics["embedding"]["export"] - 1 / np.sqrt(2)) < 1e-6
    missed = _outputs([BOXES[0][:1], BOXES[1]], [SCORES[0][:1], SCORES[1]], [EMB[0][:1], EMB[1]])
    m = detection_task_metrics(missed, ref, {}, SPEC)
    assert abs(m["detection"]["export"] - 2 / 3) < 1e-6  # 2 of 3 Keras faces found, all precise


def test_labelled_scenes_compare_ap_and_nme_with_the_labels():
    ref = _outputs(BOXES, SCORES, EMB)
    labels = {"bbox": np.zeros((2, 3, 4), "float32"), "face_mask": np.zeros((2, 3), "float32"),
              "has_boxes": np.ones(2, "float32"), "landmarks": np.zeros((2, 3, 5, 2), "float32"),
              "landmarks_visible": np.ones((2, 3, 5), "float32")}
    labels["bbox"][0, :2] = BOXES[0]
    labels["bbox"][1, 0] = BOXES[1][0]
    labels["face_mask"][0, :2] = 1
    labels["face_mask"][1, 0] = 1
    labels["landmarks"][0, :2] = ref["landmarks"][0, :2]
    labels["landmarks"][1, 0] = ref["landmarks"][1, 0]
    shifted = {k: v.copy() for k, v in ref.items()}
    shifted["landmarks"][0, 0] += 0.02
    m = detection_task_metrics(shifted, ref, labels, SPEC)
    assert m["detection"]["reference"] == "labels" and m["detection"]["keras"] == 1.0
    assert m["landmarks"]["keras"] < 1e-6 < m["landmarks"]["export"]
    assert m["landmarks"]["relative_loss"] > 0.1  # worse than a perfect reference by any margin


def test_outputs_are_read_by_their_declared_kind_not_their_key():
    """A detector whose outputs carry other key names is scored the same way."""
    from keras_facemt.configs.outputs import ServingSpec

    ref = _outputs(BOXES, SCORES, EMB)
    rename = {"boxes": "det_boxes", "scores": "det_conf", "num_detections": "n", "landmarks": "pts5",
              "embeddings": "desc"}
    spec = ServingSpec({rename[k]: v for k, v in SPEC.outputs.items()}, SPEC.preprocessing)
    renamed = {rename[k]: v for k, v in ref.items()}
    drifted = {rename[k]: v for k, v in _outputs(BOXES, SCORES, [[[1, 1, 0], [0, 1, 1]], [[1, 0, 1]]]).items()}
    m = detection_task_metrics(drifted, renamed, {}, spec)
    assert m["detection"]["export"] == 1.0 and abs(m["embedding"]["export"] - 1 / np.sqrt(2)) < 1e-6
