import pytest

from tests.fixtures_layouts import ALL_BAD, check_layout, check_strict, make_mtfl
from tfrecords_tools.convert_mtfl import MtflConverter


def test_mtfl_round_trip_and_defects(tmp_path):
    _, result, recs = check_layout(make_mtfl, MtflConverter, tmp_path)
    assert result.counts == {"train": 2, "test": 1}
    assert all(r.landmark_scheme == "mtfl5" for r in recs.values())


@pytest.mark.parametrize("kind", ALL_BAD)
def test_mtfl_strict(tmp_path, kind):
    check_strict(make_mtfl, MtflConverter, tmp_path, kind)
