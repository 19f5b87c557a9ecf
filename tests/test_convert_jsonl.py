import pytest

from tests.fixtures_layouts import ALL_BAD, check_layout, check_strict, make_jsonl
from tfrecords_tools.convert_jsonl import JsonLinesConverter


def test_jsonl_round_trip_and_defects(tmp_path):
    _, _, recs = check_layout(make_jsonl, JsonLinesConverter, tmp_path)
    assert recs["images/a.jpg"].has_boxes == 1 and recs["images/b.png"].image_format == "png"


@pytest.mark.parametrize("kind", ALL_BAD)
def test_jsonl_strict(tmp_path, kind):
    check_strict(make_jsonl, JsonLinesConverter, tmp_path, kind)
