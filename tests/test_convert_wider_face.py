import pytest

from tests.fixtures_layouts import ALL_BAD, check_layout, check_strict, make_wider_face
from tfrecords_tools.convert_wider_face import WiderFaceConverter


def test_wider_face_round_trip_and_defects(tmp_path):
    lay, result, recs = check_layout(make_wider_face, WiderFaceConverter, tmp_path)
    empty = recs["train/1--Handshaking/1_Hand_3.jpg"]
    assert empty.num_faces == 0 and empty.has_boxes == 1  # zero faces is a label
    assert recs["train/0--Parade/0_Parade_1.jpg"].landmark_scheme == "mtfl5"
    assert list(recs["train/0--Parade/0_Parade_1.jpg"].has_landmarks) == [1, 0]
    assert result.counts == {"train": 3, "val": 2}


def test_wider_face_without_retinaface_has_no_landmarks(tmp_path):
    lay, _, recs = check_layout(make_wider_face, WiderFaceConverter, tmp_path, bad=(), retinaface=False)
    assert all(r.landmarks is None and r.landmark_scheme == "none" for r in recs.values())


@pytest.mark.parametrize("kind", ALL_BAD)
def test_wider_face_strict(tmp_path, kind):
    check_strict(make_wider_face, WiderFaceConverter, tmp_path, kind)
