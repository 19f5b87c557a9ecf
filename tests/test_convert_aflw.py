import pytest

from tests.fixtures_layouts import ALL_BAD, check_layout, check_strict, make_aflw
from tfrecords_tools.convert_aflw import AflwConverter


def test_aflw_round_trip_and_defects(tmp_path):
    _, _, recs = check_layout(make_aflw, AflwConverter, tmp_path)
    two = recs["0/image00000.jpg"]
    assert two.num_faces == 2 and two.landmark_scheme == "aflw21"
    assert two.landmarks_visible.sum() < 42  # absent FeatureCoords rows are invisible points


@pytest.mark.parametrize("kind", ALL_BAD)
def test_aflw_strict(tmp_path, kind):
    check_strict(make_aflw, AflwConverter, tmp_path, kind)
