import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.models import registry
from keras_facemt.models.tfn import job, task
from keras_facemt.models.tfn.experiments import get_experiment
from keras_facemt.ops import boxes as box_ops


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    exp = get_experiment("tfn_smoke", train_scenes=24, test_scenes=8, batch_size=4)
    return exp, job.render_scenes(exp, 96, str(tmp_path_factory.mktemp("tfn_scenes")), log=lambda *_: None)


def test_train_stream_adds_shaken_face_rois(scenes):
    exp, path = scenes
    exp = dataclasses.replace(exp, shake_copies=2)
    batch = next(iter(task.train_stream(exp, path, 96)(None)))
    f = batch["bbox"].shape[1]
    assert tuple(batch["face_rois"].shape) == (4, 2 * f, 4)
    rois, mask = batch["face_rois"].numpy(), batch["face_mask"].numpy()
    for copy in range(2):
        part = rois[:, copy * f:(copy + 1) * f]
        iou = np.diagonal(box_ops.iou(part, batch["bbox"]).numpy(), axis1=1, axis2=2)
        assert np.all(iou[mask > 0] > 0.7) and np.all(iou[mask > 0] < 1.0)
        assert np.all(part[mask == 0] == 0)  # padding stays empty


def test_partial_labels_are_stable_per_face_and_drop_small_faces():
    exp = get_experiment("tfn_smoke", partial_labels=True, label_min_face=0.2, landmark_label_rate=0.5)
    rng = np.random.default_rng(0)
    x0, y0 = rng.uniform(0, 0.5, (2, 500))
    w = rng.uniform(0.05, 0.45, 500)
    boxes = np.stack([x0, y0, x0 + w, y0 + w], -1)[None].astype(np.float32)
    ones = np.ones((1, 500), np.float32)
    batch = {"bbox": tf.constant(boxes), "has_landmarks": tf.constant(ones),
             **{f"has_attr/{a}": tf.constant(ones) for a in task.ATTRIBUTES}}
    a = task.partial_labels(batch, exp)
    flipped = dict(batch, bbox=tf.constant(np.stack([1 - boxes[..., 2], boxes[..., 1], 1 - boxes[..., 0],
                                                     boxes[..., 3]], -1)))
    b = task.partial_labels(flipped, exp)
    lm = a["has_landmarks"].numpy()[0]
    np.testing.assert_array_equal(lm, b["has_landmarks"].numpy()[0])  # a flip keeps a face's labels
    assert np.all(lm[w < 0.2] == 0)
    assert 0.35 < lm[w >= 0.2].mean() < 0.65
    assert 0.45 < a["has_attr/gender"].numpy()[0][w >= 0.2].mean() < 0.85


def test_four_stages_train_their_own_parts():
    exp = get_experiment("tfn_smoke")
    phases = job.phases(exp)
    assert [p.name for p in phases] == ["stage1_joint", "stage2_detection", "stage3_landmarks", "stage4_attributes"]
    system = registry.get_system("tfn")
    cfg = system.config("tiny")
    model = system.build(cfg)
    terms = job.loss_terms(cfg)
    paths = [v.path for v in model.trainable_variables]
    chosen = {p.name: [v for v in paths if p.selects_variable(v)] for p in phases}
    assert len(chosen["stage1_joint"]) == len(paths)
    assert not any(v.startswith(("landmark", "attribute", "age", "gender", "ethnicity"))
                   for v in chosen["stage2_detection"])
    assert any(v.startswith("block1") for v in chosen["stage2_detection"])
    assert chosen["stage3_landmarks"] and all(v.startswith("landmark") for v in chosen["stage3_landmarks"])
    assert chosen["stage4_attributes"] and all(
        v.startswith(("attribute", "age/", "gender/", "ethnicity/")) for v in chosen["stage4_attributes"])
    # Every variable belongs to exactly one part.
    assert sum(len(c) for n, c in chosen.items() if n != "stage1_joint") == len(paths)
    assert [t.name for t in phases[2].active_terms(terms)] == ["landmarks"]
    assert [t.name for t in phases[1].active_terms(terms)] == ["rpn/cls", "rpn/box", "detection/cls", "detection/box"]
    # Step decay: /10 two thirds into each stage.
    assert phases[0].learning_rate.at(0, 400) == pytest.approx(1e-3)
    assert phases[0].learning_rate.at(300, 400) == pytest.approx(1e-4)
    assert phases[0].learning_rate.boundaries == (267,)


def test_experiment_validation():
    with pytest.raises(ConfigError, match="stage_steps"):
        get_experiment("tfn_smoke", stage_steps=(0, 0, 5, 5))
    with pytest.raises(ConfigError, match="tfn_nope"):
        get_experiment("tfn_nope")
