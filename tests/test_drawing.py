"""Label drawing and contact sheets."""

import os

import cv2
import numpy as np
import pytest

from keras_facemt.data.codec import FaceRecord, encode_image, encode_label_map
from keras_facemt.data.drawing import PARSING_PALETTE, contact_sheet, draw_labels, record_labels
from keras_facemt.errors import DataError


def _gray(size=64, value=100):
    return np.full((size, size, 3), value, np.uint8)


def test_draws_box_and_landmarks_coloured_by_visibility():
    img = _gray()
    labels = {
        "bbox": np.array([0.25, 0.25, 0.75, 0.75], np.float32),
        "landmarks": np.array([[0.4, 0.5], [0.6, 0.5]], np.float32),
        "landmarks_visible": np.array([1.0, 0.0], np.float32),
    }
    out = draw_labels(img, labels, min_size=256)
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    # Box edge (yellow) at x = 0.25 * 256.
    edge = out[100:150, 63:66].reshape(-1, 3)
    assert np.any((edge[:, 0] > 200) & (edge[:, 1] > 180) & (edge[:, 2] < 80))
    vis = out[126:131, 100:105].reshape(-1, 3)
    hid = out[126:131, 151:156].reshape(-1, 3)
    assert np.any((vis[:, 1] > 200) & (vis[:, 0] < 80)), "visible point is green"
    assert np.any((hid[:, 0] > 200) & (hid[:, 1] < 80)), "hidden point is red"
    assert np.array_equal(img, _gray()), "the input is not modified"
    same_size = _gray(256)
    draw_labels(same_size, labels, min_size=256)
    assert np.array_equal(same_size, _gray(256)), "the input is not modified without resizing either"


def test_parsing_overlay_only_where_labelled_and_any_size():
    img = _gray(64)
    parsing = np.zeros((16, 16), np.uint8)
    parsing[4:8, 4:8] = 4  # left_eye
    out = draw_labels(img, {"parsing": parsing}, min_size=64)
    assert out.shape == (64, 64, 3)
    assert np.array_equal(out[40:, 40:], img[40:, 40:])
    blob = out[20:28, 20:28].astype(int)
    assert blob[..., 2].mean() > 100 + 20, "left_eye is tinted with its palette colour"
    assert PARSING_PALETTE.shape == (11, 3)
    # Logits [h, w, C] are accepted too.
    logits = np.zeros((16, 16, 11), np.float32)
    logits[..., 0] = 1.0
    logits[4:8, 4:8, 10] = 5.0
    assert not np.array_equal(draw_labels(img, {"parsing": logits}, min_size=64), img)
    # An absent parsing label draws nothing.
    assert np.array_equal(draw_labels(img, {"parsing": parsing, "has_parsing": 0}, min_size=64), img)


def test_multi_face_labels_names_and_float_images():
    img = np.full((200, 200, 3), 0.5, np.float32)
    labels = {
        "bbox": np.array([[0.05, 0.05, 0.45, 0.45], [0.55, 0.55, 0.95, 0.95]], np.float32),
        "landmarks": np.full((2, 5, 2), 0.2, np.float32),
        "emotion": np.array([0, 3]),
        "gender": np.array([1, 0]),
        "age": np.array([30.0, 60.0]),
        "pose": np.zeros((2, 3), np.float32),
        "has_emotion": np.array([1, 0]),
    }
    out = draw_labels(img, labels, min_size=200)
    assert out.shape == (200, 200, 3) and out.dtype == np.uint8
    assert draw_labels(np.zeros((32, 32), np.uint8), {"emotion": "happy", "identity": 4}).shape == (256, 256, 3)


def test_record_labels_round_trip_and_contact_sheet(tmp_path):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[8:24, 8:24] = 200
    pm = np.zeros((32, 32), np.uint8)
    pm[8:24, 8:24] = 1
    rec = FaceRecord(image=encode_image(rgb, "png"), height=32, width=32, source_id="a", dataset="d",
                     image_format="png", bboxes=np.array([[0.25, 0.25, 0.75, 0.75]]), has_boxes=1,
                     parsing=encode_label_map(pm), landmark_scheme="mtfl5",
                     landmarks=np.full((1, 5, 2), 0.5), attributes={"emotion": np.array([2])})  # fmt: skip
    image, labels = record_labels(rec)
    np.testing.assert_array_equal(image, rgb)
    np.testing.assert_array_equal(labels["parsing"], pm)
    assert labels["landmarks"].shape == (1, 5, 2) and int(labels["emotion"][0]) == 2
    tiles = [draw_labels(image, labels, min_size=64) for _ in range(5)]
    path = str(tmp_path / "sheets" / "sheet.png")
    sheet = contact_sheet(tiles, path, cols=3, pad=2)
    assert sheet.shape == (2 * 66 + 2, 3 * 66 + 2, 3)
    back = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, sheet)
    assert os.listdir(tmp_path / "sheets") == ["sheet.png"], "no temporary file is left behind"


def test_contact_sheet_bad_input():
    with pytest.raises(DataError, match="at least one image"):
        contact_sheet([])
    with pytest.raises(DataError, match="cols=0"):
        contact_sheet([_gray()], cols=0)
    with pytest.raises(DataError, match="shape"):
        draw_labels(np.zeros((4, 4, 5), np.uint8), {})
