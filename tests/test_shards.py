import os

import pytest

from keras_facemt.data.codec import FaceRecord
from keras_facemt.data.shards import ShardWriter, check_tfrecord, iter_records, list_shards, read_manifest
from keras_facemt.errors import DataError


def _rec(i, split="train"):
    return FaceRecord(image=b"x" * 10, height=8, width=8, source_id=f"r{i}", dataset="d", split=split,
                      attributes={"emotion": [i % 7]}, bboxes=[[0, 0, 1, 1]])


def test_writer_is_balanced_and_round_trips(tmp_path):
    out = tmp_path / "ds"
    with ShardWriter(str(out), num_shards=3) as w:
        w.write_all(_rec(i) for i in range(10))
        w.write(_rec(99, "val"))
    m = read_manifest(str(out))
    assert m["counts"] == {"train": 10, "val": 1}
    assert m["presence"]["train"]["emotion"] == 10
    shards = list_shards(str(out), "train")
    sizes = [len(list(iter_records(p))) for p in shards]
    assert sorted(sizes) == [3, 3, 4]
    ids = sorted(r.source_id for p in shards for r in iter_records(p))
    assert ids == sorted(f"r{i}" for i in range(10))


def test_interrupted_write_leaves_nothing_complete(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(RuntimeError):
        with ShardWriter(str(out)) as w:
            w.write(_rec(0))
            raise RuntimeError("killed")
    assert not out.exists()
    assert os.listdir(tmp_path) == []
    with pytest.raises(DataError, match="does not exist"):
        read_manifest(str(out))


def test_existing_dataset_not_overwritten_without_flag(tmp_path):
    out = tmp_path / "ds"
    with ShardWriter(str(out)) as w:
        w.write(_rec(0))
    with pytest.raises(DataError, match="already exists"):
        with ShardWriter(str(out)) as w:
            w.write(_rec(1))
    with ShardWriter(str(out), overwrite=True) as w:
        w.write(_rec(1))
        w.write(_rec(2))
    assert read_manifest(str(out))["counts"]["train"] == 2


def test_not_a_tfrecord_and_empty_dir(tmp_path):
    bad = tmp_path / "train-00000-of-00001.tfrecord"
    bad.write_bytes(b"this is not a tfrecord file at all")
    with pytest.raises(DataError, match="not a TFRecord"):
        check_tfrecord(str(bad))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no 'train-\\*.tfrecord' shards"):
        list_shards(str(empty), "train")
    with pytest.raises(DataError, match="no dataset.json"):
        read_manifest(str(empty))
