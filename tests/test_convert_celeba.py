import pytest

from tests.fixtures_layouts import ALL_BAD, check_layout, check_strict, make_celeba
from tfrecords_tools.convert_celeba import CelebAConverter


def test_celeba_aligned_round_trip_and_defects(tmp_path):
    _, result, recs = check_layout(make_celeba, CelebAConverter, tmp_path)
    assert result.counts == {"train": 2, "val": 1, "test": 1}
    assert len([a for a in recs["000001.jpg"].attributes if a.startswith("celeba/")]) == 40


def test_celeba_in_the_wild_uses_box_file(tmp_path):
    check_layout(make_celeba, CelebAConverter, tmp_path, bad=(), in_the_wild=True)


@pytest.mark.parametrize("kind", ALL_BAD)
def test_celeba_strict(tmp_path, kind):
    check_strict(make_celeba, CelebAConverter, tmp_path, kind)
