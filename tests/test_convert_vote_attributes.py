import json

import pytest

from keras_facemt.data.codec import FaceRecord
from keras_facemt.data.shards import ShardWriter
from keras_facemt.errors import ConfigError
from tests.fixtures_layouts import read_dataset
from tfrecords_tools.vote_attributes import vote_attributes


def _rec(i, identity, male, smiling, split="train"):
    attrs = {"celeba/Male": [male], "celeba/Smiling": [smiling]}
    return FaceRecord(image=b"\xff\xd8x", height=8, width=8, source_id=f"{i:06d}.jpg", dataset="celeba", split=split,
                      bboxes=[[0, 0, 1, 1]], identity=[identity], attributes=attrs)


def test_majority_vote_per_identity(tmp_path):
    src, out = str(tmp_path / "src"), str(tmp_path / "voted")
    with ShardWriter(src, num_shards=2) as w:
        # identity 0: Male 1,1,0 -> 1; identity 1: tie 1/0 -> unchanged; identity 2: one image -> unchanged
        for i, (ident, male, smile) in enumerate([(0, 1, 1), (0, 1, 0), (0, 0, 0), (1, 1, 0), (1, 0, 1), (2, 0, 1)]):
            w.write(_rec(i, ident, male, smile, "val" if i == 5 else "train"))
    changed = vote_attributes(src, out, attributes=["celeba/Male", "celeba/Smiling"])
    recs = read_dataset(out)
    assert [int(recs[f"{i:06d}.jpg"].attributes["celeba/Male"][0]) for i in range(6)] == [1, 1, 1, 1, 0, 0]
    # Smiling for identity 0 is 1,0,0 -> 0 once voted; identity 1 ties
    assert [int(recs[f"{i:06d}.jpg"].attributes["celeba/Smiling"][0]) for i in range(6)] == [0, 0, 0, 0, 1, 1]
    assert changed == {"celeba/Male": 1, "celeba/Smiling": 1}
    m = json.loads((tmp_path / "voted" / "dataset.json").read_text())
    assert m["counts"] == {"train": 5, "val": 1} and m["voted"]["changed"] == changed


def test_default_list_leaves_expression_attributes_alone(tmp_path):
    src = str(tmp_path / "src")
    with ShardWriter(src) as w:
        for i, (male, smile) in enumerate([(1, 1), (1, 0), (0, 0)]):
            w.write(_rec(i, 7, male, smile))
    changed = vote_attributes(src, str(tmp_path / "out"))
    assert changed == {"celeba/Male": 1}


def test_vote_rejects_regression_attributes_and_same_dir(tmp_path):
    with pytest.raises(ConfigError, match="age"):
        vote_attributes(str(tmp_path), str(tmp_path / "o"), attributes=["age"])
    with pytest.raises(ConfigError, match="differ"):
        vote_attributes(str(tmp_path), str(tmp_path), attributes=["gender"])
