import pytest

from tests.fixtures_layouts import ALL_BAD, check_layout, check_strict, make_300w
from tfrecords_tools.convert_300w import Pts68Converter


def test_300w_round_trip_and_defects(tmp_path):
    _, result, recs = check_layout(make_300w, Pts68Converter, tmp_path)
    assert set(result.counts) == {"train", "test_common", "test_challenging", "test_private"}
    assert all(r.landmark_scheme == "ibug68" and r.landmarks.shape == (1, 68, 2) for r in recs.values())


@pytest.mark.parametrize("kind", ALL_BAD)
def test_300w_strict(tmp_path, kind):
    check_strict(make_300w, Pts68Converter, tmp_path, kind)
