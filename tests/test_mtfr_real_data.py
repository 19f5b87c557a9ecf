"""The real-data path on fixtures: identity folders -> shards -> attribute pseudo-labels -> vote -> training stream."""

import glob
import os

import cv2
import numpy as np
import pytest

from keras_facemt.data.pipeline import build_dataset
from keras_facemt.data.shards import iter_records
from keras_facemt.data.synthetic import SynthFace
from keras_facemt.errors import DataError
from keras_facemt.models.mtfr import model as mtfr
from keras_facemt.models.mtfr.config import ATTRIBUTES
from keras_facemt.models.mtfr.experiments import get_experiment
from keras_facemt.models.mtfr.pseudo_labels import pseudo_label_attributes
from keras_facemt.models.mtfr.task import train_stream
from tfrecords_tools.common import run_conversion
from tfrecords_tools.convert_identity_folders import IdentityFoldersConverter
from tfrecords_tools.vote_attributes import vote_attributes


def _records(path):
    return [r for f in sorted(glob.glob(os.path.join(path, "*.tfrecord"))) for r in iter_records(f)]


@pytest.mark.slow
def test_identity_folders_to_voted_pseudo_labels_to_training_batches(tmp_path):
    root = tmp_path / "casia"
    synth = SynthFace(seed=0, image_size=64, num_identities=3)
    for i in range(12):
        rgb, _ = synth.render_crop(i, identity=i % 3)
        os.makedirs(root / f"{i % 3:07d}", exist_ok=True)
        cv2.imwrite(str(root / f"{i % 3:07d}" / f"{i:03d}.jpg"), rgb[..., ::-1])
    converted, labelled, voted = (str(tmp_path / n) for n in ("converted", "labelled", "voted"))
    run_conversion(IdentityFoldersConverter(str(root)), converted)

    cfg = mtfr.PRESETS["tiny"]()

    def predict(x):
        # Scores from image brightness: they straddle 0.5 within a person, so the vote has work to do.
        assert x.shape[1:] == (28, 24, 3) and x.max() <= 1.0
        return np.repeat(x.mean((1, 2, 3))[:, None] * 2 - 0.45, len(ATTRIBUTES), 1)

    counts = pseudo_label_attributes(converted, labelled, predict, cfg.attributes, cfg.image_size, log=None)
    assert counts["faces"] == 12
    recs = _records(labelled)
    assert all(int(r.has_attributes[f"celeba/{a}"][0]) == 1 for r in recs for a in ATTRIBUTES)

    vote_attributes(labelled, voted, attributes=[f"celeba/{a}" for a in ATTRIBUTES])
    by_identity = {}
    for r in _records(voted):
        by_identity.setdefault(int(r.identity[0]), set()).add(tuple(int(r.attributes[f"celeba/{a}"][0]) for a in ATTRIBUTES))
    assert len(by_identity) == 3
    # After the vote each person carries one label set (ties keep per-image labels; 4 images each can tie).
    assert sum(len(v) == 1 for v in by_identity.values()) >= 2

    exp = get_experiment("mtfr_smoke", batch_size=4)
    batch = next(iter(build_dataset(train_stream(exp, cfg.image_size, voted))))
    assert batch["image"].shape == (4, 28, 24, 3)
    assert batch["attr/celeba/High_Cheekbones"].shape == (4,) and float(batch["has_identity"].numpy().min()) == 1.0

    with pytest.raises(DataError):
        pseudo_label_attributes(converted, str(tmp_path / "x"), predict, ["Not_An_Attribute"], cfg.image_size)
