"""Age and demographic layouts: MORPH II CSV, IMDB-WIKI .mat, Adience folds."""

import json

import pytest

from tests.fixtures_layouts import check_layout, check_strict, make_adience, make_imdb_wiki, make_morph
from tfrecords_tools.convert_adience import AGE_GROUPS, AdienceConverter, age_group
from tfrecords_tools.convert_imdb_wiki import ImdbWikiConverter
from tfrecords_tools.convert_morph import MorphConverter

ROW_BAD = ("missing_image", "malformed_line", "corrupt_image")


def test_morph(tmp_path):
    _, _, recs = check_layout(make_morph, MorphConverter, tmp_path, bad=ROW_BAD)
    hispanic = recs["Album2/200001_03M33.JPG"]
    assert hispanic.has_attributes.get("ethnicity", [0])[0] == 0  # H: unlabelled, never "white"


@pytest.mark.parametrize("kind", ROW_BAD)
def test_morph_strict(tmp_path, kind):
    check_strict(make_morph, MorphConverter, tmp_path, kind)


def test_imdb_wiki_filters_and_converts(tmp_path):
    check_layout(make_imdb_wiki, ImdbWikiConverter, tmp_path, bad=ROW_BAD + ("outside_image",))
    notes = json.loads((tmp_path / "out" / "dataset.json").read_text())["notes"]
    assert notes["filtered"] == {"face_score": 1, "second_face": 1, "unknown_gender": 1}


@pytest.mark.parametrize("kind", ROW_BAD + ("outside_image",))
def test_imdb_wiki_strict(tmp_path, kind):
    check_strict(make_imdb_wiki, ImdbWikiConverter, tmp_path, kind)


def test_adience(tmp_path):
    check_layout(make_adience, AdienceConverter, tmp_path, bad=ROW_BAD)


def test_adience_age_groups():
    assert [age_group(f"({lo}, {hi})") for lo, hi in AGE_GROUPS] == list(range(8))
    assert age_group("35") == 4 and age_group("(38, 42)") == 5 and age_group("None") is None
    with pytest.raises(ValueError, match="forty"):
        age_group("forty")


@pytest.mark.parametrize("kind", ROW_BAD)
def test_adience_strict(tmp_path, kind):
    check_strict(make_adience, AdienceConverter, tmp_path, kind)
