"""Identification with distractors, TAR at FAR, multi-label accuracy, step decay, Eq. 2 terms."""

import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.errors import ConfigError
from keras_facemt.metrics.identification import cmc, identification, match_ranks
from keras_facemt.metrics.multilabel import attribute_accuracy, majority_baseline
from keras_facemt.metrics.tar_far import tar_at_far
from keras_facemt.models.mtfr.experiments import get_experiment
from keras_facemt.models.mtfr.losses import loss_terms
from keras_facemt.models.mtfr.task import balanced_pairs, phases
from keras_facemt.training.schedule import LearningRate


def test_match_ranks_by_hand():
    gallery = np.array([[1, 0], [0, 1], [0.8, 0.6], [0.6, 0.8]], np.float32)  # ids 0, 1, distractor, distractor
    gids = np.array([0, 1, -1, -1])
    probes = np.array([[1, 0.05], [0.7, 0.7]], np.float32)
    # Probe 0 (id 0): its match is the best. Probe 1 (id 1): both distractors score above it.
    ranks = match_ranks(probes, [0, 1], gallery, gids)
    assert ranks.tolist() == [1, 3]
    assert cmc(ranks, 3).tolist() == [0.5, 0.5, 1.0]
    r = identification(probes, [0, 1], gallery, gids, max_rank=3)
    assert r["rank1"] == 0.5 and r["chance_rank1"] == 0.25
    with pytest.raises(ConfigError):
        match_ranks(probes, [0, 7], gallery, gids)


def test_tar_at_far_by_hand():
    impostor = np.linspace(0.0, 0.5, 1000)  # sorted high to low: 0.5, 0.4995, ...
    genuine = np.array([0.2, 0.49, 0.6, 0.9])
    scores = np.concatenate([impostor, genuine])
    same = np.concatenate([np.zeros(1000), np.ones(4)])
    # FAR 1e-3 allows 1 of 1000 impostors above: threshold = the 2nd highest impostor (~0.4995).
    out = tar_at_far(scores, same, (1e-3,))
    assert out["0.001"] == 0.5 and out["impostors"] == 1000
    with pytest.raises(ConfigError, match="impostor"):
        tar_at_far(scores, same, (1e-4,))


def test_attribute_accuracy_and_majority():
    labels = np.array([[1, 0], [1, 1], [0, 0], [1, 0]])
    scores = np.array([[0.9, 0.2], [0.6, 0.4], [0.1, 0.1], [0.4, 0.0]])
    np.testing.assert_allclose(attribute_accuracy(scores, labels), [0.75, 0.75])
    np.testing.assert_allclose(majority_baseline(labels, labels), [0.75, 0.75])


def test_step_decay():
    lr = LearningRate(0.01, decay="step", boundaries=(40, 58))
    assert [lr.at(s, 70) for s in (0, 39, 40, 57, 58, 69)] == pytest.approx([0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4])
    for bad in (dict(boundaries=(5, 3)), dict(boundaries=(0,)), dict(factor=0.0)):
        with pytest.raises(ConfigError):
            LearningRate(0.01, decay="step", **bad)


def test_two_stages_and_eq2_terms():
    exp = get_experiment("mtfr_paper")
    s1, s2 = phases(exp)
    # Sec. 4.4: 70k at 0.01 (/10 at 40k, 58k) then 30k at 0.001 (/10 at 10k, 20k).
    assert (s1.steps, s1.learning_rate.initial, s1.learning_rate.boundaries) == (70000, 0.01, (40000, 58000))
    assert (s2.steps, s2.learning_rate.initial, s2.learning_rate.boundaries) == (30000, 0.001, (10000, 20000))
    terms = loss_terms(("Big_Nose", "Male"), exp.attribute_weight)
    assert [t.name for t in s1.active_terms(terms)] == ["identity"]  # lambda1 = 0
    assert [t.name for t in s2.active_terms(terms)] == ["identity", "attr/Big_Nose", "attr/Male"]
    assert terms[1].weight == 0.1 and terms[0].weight == 1.0
    batch = {"attr/celeba/Male": tf.constant([1, 0]), "identity": tf.constant([0, 1])}
    pred = tf.constant([[0.0, 0.5], [0.0, 0.25]])
    np.testing.assert_allclose(terms[2].fn(batch, pred).numpy(), [0.125, 0.03125])  # (p - y)^2 / 2


def test_balanced_pairs_keep_people_within_a_fold():
    ids = np.repeat(np.arange(40), 5)
    pairs, same, folds = balanced_pairs(ids, 200, seed=0)
    assert len(pairs) == 200 and same.sum() == 100
    for f in range(10):
        people = set(ids[pairs[folds == f]].ravel())
        others = set(ids[pairs[folds != f]].ravel())
        assert not people & others
    assert np.all(ids[pairs[same, 0]] == ids[pairs[same, 1]]) and np.all(ids[pairs[~same, 0]] != ids[pairs[~same, 1]])


def test_export_rules_for_embedding_and_multilabel_outputs():
    from keras_facemt.serving.verify import task_metrics

    from keras_facemt.configs.outputs import OutputSpec, ServingSpec

    names = ("celeba/Narrow_Eyes", "celeba/Big_Nose", "celeba/Male")
    spec = ServingSpec({"embedding": OutputSpec("embedding", task="identity"),
                        "attributes": OutputSpec("multilabel", names=names)})
    rng = np.random.default_rng(0)
    ref = {"embedding": rng.normal(size=(8, 4)), "attributes": rng.uniform(size=(8, 3))}
    labels = {}
    for j, name in enumerate(names):
        labels[f"attr/{name}"] = (ref["attributes"][:, j] >= 0.5).astype(int)
        labels[f"has_attr/{name}"] = np.ones(8, int)
    same = task_metrics(ref, ref, labels, spec)
    assert same["identity"]["export"] == pytest.approx(1.0) and same["attributes"]["relative_loss"] == 0.0
    flipped = {"embedding": -ref["embedding"], "attributes": 1.0 - ref["attributes"]}
    bad = task_metrics(flipped, ref, labels, spec)
    assert bad["identity"]["relative_loss"] > bad["identity"]["limit"]
    assert bad["attributes"]["relative_loss"] > bad["attributes"]["limit"]
