"""SynthFace labels of MTFR's 7 attributes: visible, identity-level, noisy on request, repaired by the vote."""

import dataclasses
import glob
import os

import numpy as np
import pytest

from keras_facemt.data.shards import iter_records
from keras_facemt.data.synth_identity import identity_attributes, make_identity
from keras_facemt.data.synthetic import CELEBA_TASKS, SynthFace, write_synthetic
from keras_facemt.errors import ConfigError
from keras_facemt.models.mtfr.config import ATTRIBUTES
from tfrecords_tools.vote_attributes import IDENTITY_ATTRIBUTES, vote_attributes


def _records(path):
    return [r for f in sorted(glob.glob(os.path.join(path, "*.tfrecord"))) for r in iter_records(f)]


def test_every_mtfr_attribute_is_labelled_with_a_useful_base_rate():
    assert sorted(CELEBA_TASKS) == sorted(f"celeba/{a}" for a in ATTRIBUTES)
    labels = np.array([[identity_attributes(make_identity(i))[a] for a in ATTRIBUTES] for i in range(2000)])
    rates = labels.mean(0)
    assert np.all((rates > 0.15) & (rates < 0.85)), dict(zip(ATTRIBUTES, rates.round(3)))
    # Not copies of each other.
    assert np.abs(np.corrcoef(labels.T) - np.eye(len(ATTRIBUTES))).max() < 0.6


@pytest.mark.parametrize("param,low,high", [("nose_point", -0.6, 0.8), ("cheekbones", -0.6, 0.8),
                                            ("chin", -0.02, 0.05)])
def test_the_attribute_parameters_are_visible(param, low, high):
    """Same person, pose and framing; only the parameter behind an attribute changes the pixels."""
    base = make_identity(3)
    images = []
    for v in (low, high):
        synth = SynthFace(seed=0, image_size=96, num_identities=10)
        synth._identities[3] = dataclasses.replace(base, geometry={**base.geometry, param: v})
        images.append(synth.render_crop(0, identity=3, pose=(0, 0, 0), neutral=True)[0].astype(np.float32))
    changed = np.abs(images[0] - images[1]).max(-1) > 12
    assert changed.sum() >= 15, changed.sum()


def test_records_carry_identity_level_labels_and_noise_flips_them(tmp_path):
    clean = write_synthetic(str(tmp_path / "clean"), tasks=("identity",) + CELEBA_TASKS, count=80, shards=1,
                            image_size=48, num_identities=8, splits=(("train", 1.0),))
    assert clean["synthface"]["attribute_noise"] == 0.0
    truth = {i: identity_attributes(make_identity(i)) for i in range(8)}
    for r in _records(str(tmp_path / "clean")):
        ident = int(r.identity[0])
        for a in ATTRIBUTES:
            assert int(r.attributes[f"celeba/{a}"][0]) == truth[ident][a]
    with pytest.raises(ConfigError):
        SynthFace(attribute_noise=0.6)


def test_the_vote_repairs_noisy_labels(tmp_path):
    noisy_dir, voted_dir = str(tmp_path / "noisy"), str(tmp_path / "voted")
    write_synthetic(noisy_dir, tasks=("identity",) + CELEBA_TASKS, count=240, shards=2, image_size=40,
                    num_identities=12, splits=(("train", 1.0),), attribute_noise=0.2)
    assert "celeba/High_Cheekbones" in IDENTITY_ATTRIBUTES

    def error_rate(path):
        wrong = total = 0
        for r in _records(path):
            t = identity_attributes(make_identity(int(r.identity[0])))
            for a in ATTRIBUTES:
                wrong += int(r.attributes[f"celeba/{a}"][0]) != t[a]
                total += 1
        return wrong / total

    before = error_rate(noisy_dir)
    assert 0.15 < before < 0.25
    vote_attributes(noisy_dir, voted_dir)  # the default list covers all 7
    assert error_rate(voted_dir) < 0.03  # ties (10 vs 10) keep the image's own label
