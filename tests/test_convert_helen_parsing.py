import pytest

from tests.fixtures_layouts import check_layout, check_strict, make_helen_parsing
from tfrecords_tools.convert_helen_parsing import HelenParsingConverter

HELEN_BAD = ("missing_image", "malformed_line", "corrupt_image", "size_mismatch")


def test_helen_parsing_round_trip_and_defects(tmp_path):
    _, result, recs = check_layout(make_helen_parsing, HelenParsingConverter, tmp_path, bad=HELEN_BAD)
    assert result.counts == {"train": 2, "val": 1, "test": 1}
    assert all(r.parsing is not None for r in recs.values())


@pytest.mark.parametrize("kind", HELEN_BAD)
def test_helen_parsing_strict(tmp_path, kind):
    check_strict(make_helen_parsing, HelenParsingConverter, tmp_path, kind)
