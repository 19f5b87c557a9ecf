"""iFAN's Algorithm 1 as phases and loss terms (models/ifan/hybrid.py, models/ifan/losses.py)."""

import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.models.ifan.experiments import get_experiment
from keras_facemt.errors import ConfigError
from keras_facemt.models.ifan import losses
from keras_facemt.models.ifan import hybrid
from keras_facemt.training.schedule import total_steps, validate_schedule

TASKS = ("parsing", "landmarks", "emotion")


def test_loss_terms_one_per_task_and_iteration():
    terms = hybrid.task_loss_terms(TASKS, iterations=2)
    assert [t.name for t in terms] == [f"{t}/iter_{i}" for t in TASKS for i in range(3)]
    by_name = {t.name: t for t in terms}
    assert by_name["parsing/iter_1"].output == "parsing_logits/iter_1"
    assert by_name["landmarks/iter_2"].output == "landmarks/iter_2"
    assert by_name["emotion/iter_0"].output == "emotion_logits/iter_0"
    assert by_name["emotion/iter_0"].presence == "has_attr/emotion"
    assert by_name["landmarks/iter_0"].presence == "has_landmarks"
    assert by_name["parsing/iter_0"].presence == "has_parsing"


def test_landmark_loss_is_mean_visible_distance():
    target = np.zeros((2, 3, 2), np.float32)
    pred = np.zeros((2, 3, 2), np.float32)
    pred[0, 0] = [0.3, 0.4]  # distance 0.5
    pred[0, 2] = [3.0, 4.0]  # distance 5, invisible
    visible = np.array([[1, 1, 0], [0, 0, 0]], np.float32)
    out = losses.landmark_euclidean_loss({"landmarks": target, "landmarks_visible": visible}, tf.constant(pred))
    np.testing.assert_allclose(out.numpy(), [0.25, 0.0], atol=1e-5)


def test_parsing_and_emotion_cross_entropy():
    labels = np.array([[[0, 1], [1, 1]]], np.int32)
    logits = np.zeros((1, 2, 2, 11), np.float32)
    out = losses.parsing_cross_entropy_loss({"parsing": labels}, tf.constant(logits))
    np.testing.assert_allclose(out.numpy(), [np.log(11.0)], rtol=1e-5)
    # Labels at twice the map's resolution are resized (nearest) to the map.
    big = np.zeros((1, 4, 4), np.int32)
    confident = np.full((1, 2, 2, 11), -20.0, np.float32)
    confident[..., 0] = 20.0
    assert losses.parsing_cross_entropy_loss({"parsing": big}, tf.constant(confident)).numpy()[0] < 1e-6
    fn = losses.task_loss("emotion")
    emo = fn({"attr/emotion": np.array([2, 0], np.int32)}, tf.constant(np.log(np.eye(7)[[2, 1]] * 0.5 + 0.5 / 7)))
    assert emo.numpy()[0] < emo.numpy()[1]


def test_algorithm1_phases_follow_the_paper():
    phases = hybrid.algorithm1_phases(TASKS, {"parsing": 12, "landmarks": 6, "emotion": 3}, 30, iterations=2)
    names = [p.name for p in phases]
    assert names == ["pretrain_parsing", "pretrain_landmarks", "pretrain_emotion", "finetune"]
    pre = phases[1]
    # Stage 1: the task alone, interaction off, shared + its decoder.
    assert pre.streams == ("landmarks",) and pre.model == "iter0" and pre.steps == 6
    assert pre.loss_terms == ("landmarks/iter_0",)
    assert pre.selects_variable("backbone_block1/kernel") and pre.selects_variable("decoder_landmarks_fc/kernel")
    assert not pre.selects_variable("decoder_parsing_conv/kernel")
    assert not pre.selects_variable("reencoder_parsing_conv/kernel")
    assert not pre.selects_variable("integrator_level0/kernel")
    assert pre.learning_rate.at(0, 6) == pre.learning_rate.at(5, 6) == 1e-3
    # Stage 2: tasks alternate, every iteration's loss, interaction on.
    ft = phases[-1]
    assert ft.mode == "alternate" and ft.streams == TASKS and ft.model == "main" and ft.steps == 30
    terms = hybrid.task_loss_terms(TASKS, 2)
    assert len(ft.active_terms(terms)) == 9
    for path in ("backbone_x/kernel", "integrator_y/kernel", "decoder_emotion_z/bias", "reencoder_landmarks_w/kernel"):
        assert ft.selects_variable(path)
    assert ft.learning_rate.at(0, 30) == pytest.approx(1e-3)
    assert ft.learning_rate.at(29, 30) == pytest.approx(1e-6)
    validate_schedule(phases, terms, TASKS, models=("main", "iter0"))


def test_finetune_gives_every_task_the_same_number_of_updates():
    phases = hybrid.algorithm1_phases(TASKS, 4, 32, iterations=1, eval_points=3)
    ft = [p for p in phases if p.name.startswith("finetune")]
    # 32 updates -> 10 whole rounds of 3 tasks; each piece is whole rounds.
    assert sum(p.steps for p in ft) == 30
    assert all(p.steps % 3 == 0 for p in ft)
    assert [p.name for p in phases[:3]] == ["pretrain_parsing_1", "pretrain_parsing_2", "pretrain_parsing_3"]
    assert total_steps(phases) == 3 * 4 + 30
    # The decay continues from piece to piece: geometric over the whole stage.
    lrs = []
    for p in ft:
        lrs += [p.learning_rate.at(s, p.steps) for s in range(p.steps)]
    ratios = np.array(lrs[1:]) / np.array(lrs[:-1])
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-6)
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-6)


def test_bad_schedule_input():
    with pytest.raises(ConfigError, match="Unknown iFAN task 'pose'"):
        hybrid.algorithm1_phases(("parsing", "pose"), 1, 1)
    with pytest.raises(ConfigError, match="iterations=-1"):
        hybrid.task_loss_terms(TASKS, -1)
    with pytest.raises(ConfigError, match="no entry for tasks"):
        hybrid.algorithm1_phases(TASKS, {"parsing": 1}, 3)
    with pytest.raises(ConfigError, match="appear once"):
        hybrid.check_tasks(("parsing", "parsing"))


def test_steps_for_epochs():
    assert hybrid.steps_for_epochs(2, 100, 32) == 7
    assert hybrid.steps_for_epochs(0.01, 100, 32) == 1
    assert hybrid.steps_for_epochs(0, 100, 32) == 0


def test_experiments_are_named_and_validated():
    exp = get_experiment("ifan_3t")
    assert exp.tasks == TASKS
    assert [exp.domain_id(t) for t in TASKS] == [0, 1, 2]
    assert len({d.domain for d in exp.data}) == 3
    paper = get_experiment("ifan_3t_paper")
    assert [d.batch_size for d in paper.data] == [24, 64, 96]
    assert (paper.pretrain_epochs, paper.finetune_epochs, paper.finetune_final_lr) == (30.0, 200.0, 1e-6)
    assert get_experiment("ifan_2t").tasks == ("parsing", "landmarks")
    with pytest.raises(ConfigError, match=r"known experiments: \['ifan_2t', 'ifan_3t', 'ifan_3t_paper'"):
        get_experiment("ifan_4t")
    with pytest.raises(ConfigError, match="no data for task 'gender'"):
        exp.with_tasks(("parsing", "gender"))
    with pytest.raises(ConfigError, match="iterations=-1"):
        get_experiment("ifan_3t", iterations=-1)


def test_literal_stage2_gives_every_batch_one_update_per_iteration():
    """Algorithm 1, lines 12-14: for a sampled batch, ITER + 1 separate updates, update i on iteration i's loss."""
    tasks, iters = ("landmarks", "emotion"), 2
    phases = hybrid.algorithm1_phases(tasks, 0, 4, iterations=iters, literal_stage2=True)
    stage2 = [p for p in phases if p.name.startswith("finetune")]
    assert len(stage2) == 1
    p = stage2[0]
    # Two sampled batches per task (4 updates of the summed rule) -> 2 x 2 x 3 updates.
    assert p.steps == 4 * (iters + 1)
    assert p.streams == ("landmarks@iterations",) * 3 + ("emotion@iterations",) * 3
    terms = hybrid.task_loss_terms(tasks, iters) + hybrid.per_iteration_terms(tasks, iters)
    validate_schedule(phases, terms, list(tasks) + [hybrid.literal_stream(t) for t in tasks], ("main", "iter0"))
    active = [t.name for t in p.active_terms(terms)]
    assert sorted(active) == sorted(f"{t}/update_iter_{i}" for t in tasks for i in range(iters + 1))

    # The stream side: each batch becomes ITER + 1 consecutive copies; copy i is labelled
    # for iteration i's term only.
    has = np.array([1.0, 0.0, 1.0], np.float32)
    ds = tf.data.Dataset.from_tensor_slices({"image": np.arange(6, dtype=np.float32).reshape(2, 3),
                                             "has_landmarks": np.stack([has, 1 - has])}).map(lambda b: b)
    copies = list(hybrid.per_iteration_copies(ds, "landmarks", iters).as_numpy_iterator())
    assert len(copies) == 2 * (iters + 1)
    for k, c in enumerate(copies):
        batch, i = divmod(k, iters + 1)
        np.testing.assert_array_equal(c["image"], np.arange(6, dtype=np.float32).reshape(2, 3)[batch])
        for j in range(iters + 1):
            expected = c["has_landmarks"] if j == i else np.zeros_like(c["has_landmarks"])
            np.testing.assert_array_equal(c[f"has_landmarks@iter_{j}"], expected)
    # Summed (default) rule: one update per sampled batch on every iteration's term.
    summed = [q for q in hybrid.algorithm1_phases(tasks, 0, 4, iterations=iters) if q.name.startswith("finetune")]
    assert summed[0].steps == 4 and summed[0].streams == tasks
