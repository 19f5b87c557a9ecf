"""Identity folders, LFW and emotion folders (image trees without per-line geometry)."""

import json

import pytest

from tests.fixtures_layouts import check_layout, check_strict, make_emotion_folders, make_identity_folders, make_lfw
from tfrecords_tools.convert_emotion_folders import EmotionFoldersConverter
from tfrecords_tools.convert_identity_folders import IdentityFoldersConverter
from tfrecords_tools.convert_lfw import LfwConverter

LIST_BAD = ("missing_image", "malformed_line", "corrupt_image")


def test_identity_tree(tmp_path):
    check_layout(make_identity_folders, IdentityFoldersConverter, tmp_path, bad=("corrupt_image",))
    names = json.loads((tmp_path / "out" / "identities.json").read_text())["names"]
    assert names == ["0000045", "0000099", "m.0107_f"]


def test_identity_list(tmp_path):
    check_layout(make_identity_folders, IdentityFoldersConverter, tmp_path, bad=LIST_BAD, as_list=True)


@pytest.mark.parametrize("kind", LIST_BAD)
def test_identity_list_strict(tmp_path, kind):
    check_strict(make_identity_folders, IdentityFoldersConverter, tmp_path, kind, as_list=True)


def test_lfw_records_and_pairs(tmp_path):
    lay, _, _ = check_layout(make_lfw, LfwConverter, tmp_path, bad=LIST_BAD)
    pairs = json.loads((tmp_path / "out" / "pairs.json").read_text())
    assert pairs["num_folds"] == 2 and pairs["pairs_per_fold"] == 1
    assert [(p["fold"], p["a"], p["b"], p["same"]) for p in pairs["pairs"]] == lay.pairs


@pytest.mark.parametrize("kind", LIST_BAD)
def test_lfw_strict(tmp_path, kind):
    check_strict(make_lfw, LfwConverter, tmp_path, kind)


@pytest.mark.parametrize("split_dirs", [True, False])
def test_emotion_folders(tmp_path, split_dirs):
    lay = make_emotion_folders(str(tmp_path / "probe"), split_dirs=split_dirs)
    if not split_dirs:  # seeded split: the fixture cannot know it, take it from the converter
        conv = EmotionFoldersConverter(**lay.kwargs)
        from tfrecords_tools.common import Problems

        splits = {s.source_id: s.split for s in conv.samples(Problems())}
        frames = {}
        for sid, split in splits.items():
            frames.setdefault(sid.rsplit("/", 1)[0], set()).add(split)
        assert all(len(v) == 1 for v in frames.values())  # frames of a video share a split
        return
    check_layout(make_emotion_folders, EmotionFoldersConverter, tmp_path, bad=("malformed_line", "corrupt_image"))


@pytest.mark.parametrize("kind", ["malformed_line", "corrupt_image"])
def test_emotion_folders_strict(tmp_path, kind):
    check_strict(make_emotion_folders, EmotionFoldersConverter, tmp_path, kind)
