import math

import numpy as np
import pytest

from tests.fixtures_layouts import check_layout, check_strict, make_fddb
from tfrecords_tools.convert_fddb import FddbConverter, ellipse_to_box

FDDB_BAD = ("missing_image", "malformed_line", "outside_image", "corrupt_image")


def test_ellipse_box_bounds_the_ellipse():
    a, b, t, cx, cy = 30.0, 12.0, 0.6, 50.0, 40.0
    s = np.linspace(0, 2 * math.pi, 2000)
    x = cx + a * np.cos(s) * math.cos(t) - b * np.sin(s) * math.sin(t)
    y = cy + a * np.cos(s) * math.sin(t) + b * np.sin(s) * math.cos(t)
    np.testing.assert_allclose(ellipse_to_box(a, b, t, cx, cy), [x.min(), y.min(), x.max(), y.max()], atol=1e-3)


def test_fddb_round_trip_and_defects(tmp_path):
    _, result, recs = check_layout(make_fddb, FddbConverter, tmp_path, bad=FDDB_BAD)
    assert result.counts == {"fold01": 2, "fold02": 1}
    assert all(r.has_boxes == 1 for r in recs.values())


@pytest.mark.parametrize("kind", FDDB_BAD)
def test_fddb_strict(tmp_path, kind):
    check_strict(make_fddb, FddbConverter, tmp_path, kind)
