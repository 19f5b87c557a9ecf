"""Identity folders, LFW and emotion folders (image trees without per-line geometry)."""

import json

import pytest

from tests.fixtures_layouts import (
    assert_matches_source,
    assert_problems_reported,
    check_layout,
    check_strict,
    make_emotion_folders,
    make_identity_folders,
    make_lfw,
    read_dataset,
)
from tfrecords_tools.common import run_conversion
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
    if split_dirs:
        check_layout(make_emotion_folders, EmotionFoldersConverter, tmp_path, bad=("malformed_line", "corrupt_image"))
        return
    # No split folders: a seeded split by video, which the fixture cannot know; every
    # frame is still converted with its emotion, and the frames of a video share a split.
    lay = make_emotion_folders(str(tmp_path / "src"), bad=("corrupt_image",), split_dirs=False)
    result = run_conversion(EmotionFoldersConverter(**lay.kwargs), str(tmp_path / "out"), workers=1,
                            verify_records=2)
    assert_problems_reported(result, lay)
    recs = read_dataset(str(tmp_path / "out"))
    assert sorted(recs) == sorted(lay.expected)
    for sid, exp in lay.expected.items():
        exp["split"] = recs[sid].split
    assert_matches_source(recs, lay)
    frames = {}
    for sid, rec in recs.items():
        frames.setdefault(sid.rsplit("/", 1)[0], set()).add(rec.split)
    assert len(frames) == 3 and all(len(v) == 1 for v in frames.values())
    assert set().union(*frames.values()) <= {"train", "val", "test"}


@pytest.mark.parametrize("kind", ["malformed_line", "corrupt_image"])
def test_emotion_folders_strict(tmp_path, kind):
    check_strict(make_emotion_folders, EmotionFoldersConverter, tmp_path, kind)
