"""Additions to ``ShardWriter`` used by the converters: per-split shard counts,
byte-balanced sharding, side files and a pre-commit check."""

import json
import os

import pytest

from keras_facemt.data.codec import FaceRecord
from keras_facemt.data.shards import ShardWriter, list_shards, read_manifest
from keras_facemt.errors import DataError


def _rec(i, size, split="train"):
    return FaceRecord(image=b"x" * size, height=8, width=8, source_id=f"r{i}", dataset="d", split=split)


def test_bytes_balance_and_per_split_shard_counts(tmp_path):
    out = str(tmp_path / "ds")
    sizes = [5000, 10, 4000, 10, 10, 10, 10, 10]
    with ShardWriter(out, num_shards={"train": 2, "val": 1}, balance="bytes") as w:
        for i, s in enumerate(sizes):
            w.write(_rec(i, s))
        w.write(_rec(99, 10, "val"))
    assert len(list_shards(out, "train")) == 2 and len(list_shards(out, "val")) == 1
    shard_bytes = read_manifest(out)["shard_bytes"]["train"]
    assert max(shard_bytes) - min(shard_bytes) <= 5000 + 200  # round-robin would put both big ones together
    assert sorted(os.path.getsize(p) for p in list_shards(out, "train"))[0] > 4000


def test_side_files_and_before_commit(tmp_path):
    seen = []
    out = tmp_path / "ds"
    with ShardWriter(str(out), before_commit=lambda d: seen.append(sorted(os.listdir(d)))) as w:
        w.write(_rec(0, 10))
        w.add_file("pairs.json", b'{"pairs": []}')
    assert seen == [["train-00000-of-00001.tfrecord"]]  # checked before the manifest exists
    assert json.loads((out / "pairs.json").read_text()) == {"pairs": []}
    with pytest.raises(DataError, match="plain names"):
        ShardWriter(str(tmp_path / "x")).add_file("../escape.json", b"")


def test_failing_before_commit_leaves_nothing(tmp_path):
    def reject(tmp_dir):
        raise DataError("sample does not decode")

    with pytest.raises(DataError, match="does not decode"):
        with ShardWriter(str(tmp_path / "ds"), before_commit=reject) as w:
            w.write(_rec(0, 10))
    assert os.listdir(tmp_path) == []


def test_bad_writer_options(tmp_path):
    with pytest.raises(DataError, match="balance"):
        ShardWriter(str(tmp_path / "ds"), balance="size")
    with pytest.raises(DataError, match="num_shards"):
        ShardWriter(str(tmp_path / "ds"), num_shards={"train": 0})
