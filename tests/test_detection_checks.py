"""Export verification of detectors: AP, matched-face NME and embedding agreement."""

import numpy as np
import pytest

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


# --- per-face attributes (TFN: age in years, gender and ethnicity logits per detection) ---------------------------
def _tfn_spec():
    from keras_facemt.models.tfn.model import PRESETS as TFN_PRESETS
    from keras_facemt.models.tfn.serving import serving_spec as tfn_spec

    return tfn_spec(TFN_PRESETS["tiny"]())


def _tfn_outputs(ages, genders, ethnicities, max_det=4):
    """TFN-declared outputs for BOXES, with per-face ages and gender / ethnicity classes."""
    b = len(BOXES)
    out = {"boxes": np.zeros((b, max_det, 4), "float32"), "scores": np.zeros((b, max_det), "float32"),
           "num_detections": np.zeros((b,), "int32"), "landmarks": np.zeros((b, max_det, 68, 2), "float32"),
           "age": np.zeros((b, max_det), "float32"), "gender_logits": np.zeros((b, max_det, 2), "float32"),
           "ethnicity_logits": np.zeros((b, max_det, 3), "float32")}
    for i, boxes in enumerate(BOXES):
        out["num_detections"][i] = len(boxes)
        for j, box in enumerate(boxes):
            out["boxes"][i, j], out["scores"][i, j] = box, SCORES[i][j]
            out["landmarks"][i, j] = np.asarray(box[:2]) + 0.5 * (np.asarray(box[2:]) - box[:2])
            out["age"][i, j] = ages[i][j]
            out["gender_logits"][i, j, genders[i][j]] = 3.0
            out["ethnicity_logits"][i, j, ethnicities[i][j]] = 3.0
    return out


AGES, GENDERS, ETHNICITIES = [[30.0, 50.0], [20.0]], [[0, 1], [1]], [[0, 1], [2]]


def test_attributes_are_scored_and_a_flipped_attribute_fails():
    spec = _tfn_spec()
    ref = _tfn_outputs(AGES, GENDERS, ETHNICITIES)
    m = detection_task_metrics(ref, ref, {}, spec)
    assert {"age", "gender", "ethnicity"} <= set(m)
    assert m["gender"]["export"] == 1.0 and m["age"]["export"] == 0.0 and m["age"]["reference"] == "keras"
    flipped = _tfn_outputs(AGES, [[1, 0], [0]], ETHNICITIES)  # every gender wrong, all else identical
    check = compare_metrics("model_int8.tflite", "ai_edge_litert", ref, flipped, {}, enforce=True, spec=spec)
    assert not check.passed and "gender" in check.message
    assert check.metrics["gender"]["export"] == 0.0 and check.metrics["detection"]["export"] == 1.0
    older = _tfn_outputs([[40.0, 60.0], [30.0]], GENDERS, ETHNICITIES)  # +10 years against a 12-year spread
    check = compare_metrics("model_int8.tflite", "ai_edge_litert", ref, older, {}, enforce=True, spec=spec)
    assert not check.passed and check.metrics["age"]["relative_loss"] > 0.1


def test_labelled_attributes_allow_ten_percent_relative_loss():
    # TFN's age (years) is scored against the 101-class ``age_class`` labels, whose
    # class index is the age in years (its declaration's ``label``).
    spec = _tfn_spec()
    assert spec.outputs["age"].label_task == "age_class"
    ref = _tfn_outputs(AGES, GENDERS, ETHNICITIES)
    labels = {"bbox": np.zeros((2, 3, 4), "float32"), "face_mask": np.zeros((2, 3), "float32"),
              "has_boxes": np.ones(2, "float32"), "attr/age_class": np.zeros((2, 3), "float32"),
              "has_attr/age_class": np.zeros((2, 3), "float32")}
    labels["bbox"][0, :2], labels["bbox"][1, 0] = BOXES[0], BOXES[1][0]
    labels["face_mask"][0, :2] = labels["face_mask"][1, 0] = 1
    # Keras MAE: (2 + 2 + 1) / 3
    labels["attr/age_class"][0, :2], labels["attr/age_class"][1, 0] = [32.0, 48.0], 21.0
    labels["has_attr/age_class"][0, :2] = labels["has_attr/age_class"][1, 0] = 1
    near = _tfn_outputs([[30.0, 50.0], [20.1]], GENDERS, ETHNICITIES)  # +0.1 year on one face
    m = detection_task_metrics(near, ref, labels, spec)
    assert m["age"]["reference"] == "labels" and m["age"]["examples"] == 3
    assert abs(m["age"]["keras"] - 5 / 3) < 1e-5 and m["age"]["relative_loss"] < 0.1
    far = _tfn_outputs([[30.0, 50.0], [19.0]], GENDERS, ETHNICITIES)  # MAE 5/3 -> 6/3: +20 %
    check = compare_metrics("model_int8.tflite", "ai_edge_litert", ref, far, labels, enforce=True, spec=spec)
    assert not check.passed and abs(check.metrics["age"]["relative_loss"] - 0.2) < 1e-5
    # Gender has no labels here: judged against the Keras decisions.
    assert check.metrics["gender"]["reference"] == "keras"


def test_attributes_are_found_by_declaration_not_key_name():
    from keras_facemt.configs.outputs import ServingSpec

    spec = _tfn_spec()
    rename = {k: f"out_{i}" for i, k in enumerate(sorted(spec.outputs))}
    renamed_spec = ServingSpec({rename[k]: v for k, v in spec.outputs.items()}, spec.preprocessing)
    ref = {rename[k]: v for k, v in _tfn_outputs(AGES, GENDERS, ETHNICITIES).items()}
    flipped = {rename[k]: v for k, v in _tfn_outputs(AGES, GENDERS, [[2, 2], [0]]).items()}
    m = detection_task_metrics(flipped, ref, {}, renamed_spec)
    assert m["ethnicity"]["export"] == 0.0 and m["gender"]["export"] == 1.0


def test_a_declared_label_task_round_trips_and_plain_declarations_read_as_before():
    from keras_facemt.configs.outputs import OutputSpec

    age = OutputSpec("regression", task="age", per_face=True, unit="years", label="age_class")
    assert OutputSpec.from_json(age.to_json()) == age and age.label_task == "age_class"
    plain = OutputSpec("regression", task="age", unit="years")
    assert "label" not in plain.to_json() and plain.label_task == "age"


def test_a_declared_max_batch_round_trips_splits_runs_and_plain_declarations_read_as_before():
    from keras_facemt.configs.outputs import OutputSpec, Preprocessing, ServingSpec
    from keras_facemt.errors import ConfigError
    from keras_facemt.serving.verify import in_batches

    out = {"age": OutputSpec("regression", task="age", unit="years")}
    limited = ServingSpec(out, Preprocessing(resize="letterbox", max_batch=4))
    assert ServingSpec.from_json(limited.to_json()) == limited
    plain = ServingSpec(out)
    assert "max_batch" not in plain.to_json()["preprocessing"] and ServingSpec.from_json(plain.to_json()) == plain
    with pytest.raises(ConfigError, match="max_batch"):
        Preprocessing(max_batch=0)
    assert limited.preprocessing.batch_size(10) == 4 and plain.preprocessing.batch_size(10) == 10
    # The value range is normalised to a float tuple whatever it was given as.
    wide = Preprocessing(value_range=[0, 255]).value_range
    assert wide == (0.0, 255.0) and isinstance(wide, tuple) and all(isinstance(v, float) for v in wide)
    calls = []

    def runner(feed):
        calls.append(len(feed["image"]))
        return {"twice": feed["image"] * 2}

    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    np.testing.assert_array_equal(in_batches(runner, {"image": x}, 4)["twice"], x * 2)
    assert calls == [4, 4, 2]
    calls.clear()
    in_batches(runner, {"image": x}, None)
    assert calls == [10]


def test_a_detector_whose_detection_set_moved_is_judged_by_its_task_metrics():
    """float16 weights may drop a borderline face: every padded row after it moves, so
    array parity fails; the task metrics then judge, with the quantized limits."""
    from keras_facemt.serving.verify import parity_or_metrics

    many = [[[0.1, 0.1, 0.3, 0.3], [0.4, 0.1, 0.6, 0.3], [0.7, 0.1, 0.9, 0.3], [0.1, 0.5, 0.3, 0.7]]] * 4
    scores = [[0.9, 0.8, 0.7, 0.51]] * 4
    emb = [[[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]]] * 4
    ref = _outputs(many, scores, emb)
    assert parity_or_metrics("m.tflite", "rt", ref, ref, 1e-2, {}, SPEC).kind == "parity"
    # The last image loses its borderline face (score 0.51): 15 of 16 faces found.
    moved = _outputs(many[:3] + [many[3][:3]], scores[:3] + [scores[3][:3]], emb[:3] + [emb[3][:3]])
    check = parity_or_metrics("m.tflite", "rt", ref, moved, 1e-2, {}, SPEC)
    assert check.passed and check.kind == "metrics" and "judged by task metrics" in check.message
    # Losing the best face of every image is beyond the limit.
    worse = _outputs([m[1:] for m in many], [s[1:] for s in scores], [e[1:] for e in emb])
    assert not parity_or_metrics("m.tflite", "rt", ref, worse, 1e-2, {}, SPEC).passed
