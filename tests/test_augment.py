"""Augmentation and resizing keep every label on the pixels it labels."""

import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.configs.data import AugmentConfig
from keras_facemt.data import augment
from keras_facemt.data import landmarks as lm
from keras_facemt.data import schema

LEFT_EYE = schema.PARSING_CLASSES.index("left_eye")
RIGHT_EYE = schema.PARSING_CLASSES.index("right_eye")
LEFT_BROW = schema.PARSING_CLASSES.index("left_brow")
RIGHT_BROW = schema.PARSING_CLASSES.index("right_brow")


def _example(h=32, w=32, faces=2, real=1):
    """Face-major example: ``real`` of ``faces`` faces are labelled, the rest padding."""
    rng = np.random.default_rng(0)
    mask = np.array([1.0] * real + [0.0] * (faces - real), np.float32)
    pts = rng.uniform(0.2, 0.8, (faces, 5, 2)).astype(np.float32) * mask[:, None, None]
    labels = np.zeros((h, w), np.int32)
    labels[4:10, 2:8] = LEFT_EYE
    labels[12:16, 2:8] = LEFT_BROW
    return {
        "image": tf.constant(rng.random((h, w, 3)), tf.float32),
        "domain": tf.constant(0, tf.int32),
        "parsing": tf.constant(labels),
        "has_parsing": tf.constant(1.0),
        "face_mask": tf.constant(mask),
        "bbox": tf.constant(np.array([[0.1, 0.2, 0.5, 0.7]] * faces, np.float32) * mask[:, None]),
        "landmarks": tf.constant(pts),
        "landmarks_visible": tf.constant(np.tile([1, 1, 0, 1, 1], (faces, 1)).astype(np.float32) * mask[:, None]),
        "has_landmarks": tf.constant(mask),
        "pose": tf.constant(np.array([[30.0, -10.0, 5.0]] * faces, np.float32)),
        "has_pose": tf.constant(mask),
        "attr/emotion": tf.constant(np.array([3] * faces, np.int32)),
        "has_attr/emotion": tf.constant(mask),
    }


def _np(ex):
    return {k: np.asarray(v) for k, v in ex.items()}


def test_flip_mirrors_geometry_and_swaps_left_right_semantics():
    ex = _example()
    out = _np(augment.flip_horizontal(ex, "mtfl5"))
    src = _np(ex)
    np.testing.assert_allclose(out["image"], src["image"][:, ::-1])
    # Parsing: mirrored and left/right class ids swapped.
    assert np.all(out["parsing"][4:10, 24:30] == RIGHT_EYE)
    assert np.all(out["parsing"][12:16, 24:30] == RIGHT_BROW)
    assert not np.any(out["parsing"] == LEFT_EYE)
    # Landmarks: index i holds the mirror of the point flip_permutation[i].
    perm = lm.flip_permutation("mtfl5")
    expected = src["landmarks"][0][perm]
    expected[:, 0] = 1.0 - expected[:, 0]
    np.testing.assert_allclose(out["landmarks"][0], expected, atol=1e-6)
    np.testing.assert_array_equal(out["landmarks_visible"][0], src["landmarks_visible"][0][perm])
    np.testing.assert_allclose(out["bbox"][0], [0.5, 0.2, 0.9, 0.7], atol=1e-6)
    np.testing.assert_allclose(out["pose"][0], [-30.0, -10.0, -5.0])
    # The padded face stays all zero.
    assert np.all(out["bbox"][1] == 0) and np.all(out["landmarks"][1] == 0)
    # A second flip restores the example.
    back = _np(augment.flip_horizontal(augment.flip_horizontal(ex, "mtfl5"), "mtfl5"))
    for key in src:
        np.testing.assert_allclose(back[key], src[key], atol=1e-6, err_msg=key)


def test_flip_permutation_keeps_ibug68_eye_corners_semantic():
    pts = np.zeros((1, 68, 2), np.float32)
    pts[0, 36] = [0.3, 0.4]  # left eye outer corner
    pts[0, 45] = [0.8, 0.4]  # right eye outer corner
    ex = _example(faces=1)
    ex.update(landmarks=tf.constant(pts), landmarks_visible=tf.ones([1, 68]))
    out = augment.flip_horizontal(ex, "ibug68")["landmarks"].numpy()[0]
    np.testing.assert_allclose(out[36], [0.2, 0.4], atol=1e-6)
    np.testing.assert_allclose(out[45], [0.7, 0.4], atol=1e-6)


def test_shift_moves_a_pixel_exactly_with_its_point():
    img = np.zeros((32, 32, 3), np.float32)
    img[20, 10] = 1.0
    ex = _example(faces=1)
    point = np.array([[[10.5 / 32, 20.5 / 32]] * 5], np.float32)
    ex.update(image=tf.constant(img), landmarks=tf.constant(point))
    out = _np(augment.scale_shift(ex, 1.0, tf.constant([4 / 32, -2 / 32])))
    assert out["image"][18, 14].min() == pytest.approx(1.0, abs=1e-5)
    assert out["image"].sum() == pytest.approx(3.0, abs=1e-4)
    np.testing.assert_allclose(out["landmarks"][0, 0], [14.5 / 32, 18.5 / 32], atol=1e-6)


@pytest.mark.parametrize("scale,shift", [(1.25, (0.05, -0.03)), (0.8, (-0.06, 0.04)), (1.1, (0.0, 0.0))])
def test_zoom_keeps_dots_parsing_and_boxes_consistent(scale, shift):
    h = w = 64
    img = np.zeros((h, w, 3), np.float32)
    labels = np.zeros((h, w), np.int32)
    pts = np.array([[0.3, 0.3], [0.7, 0.3], [0.5, 0.5], [0.35, 0.7], [0.65, 0.7]], np.float32)
    for x, y in pts:
        cx, cy = int(x * w), int(y * h)
        img[cy - 3: cy + 4, cx - 3: cx + 4] = 1.0
        labels[cy - 3: cy + 4, cx - 3: cx + 4] = LEFT_EYE
    centres = (np.floor(pts * [w, h]) + 0.5) / [w, h]
    ex = _example(h, w, faces=1)
    ex.update(image=tf.constant(img), parsing=tf.constant(labels), landmarks=tf.constant(centres[None], tf.float32),
              bbox=tf.constant([[0.25, 0.25, 0.75, 0.75]]))
    out = _np(augment.scale_shift(ex, scale, tf.constant(shift, tf.float32)))
    for x, y in out["landmarks"][0]:
        px, py = int(np.floor(x * w)), int(np.floor(y * h))
        assert out["image"][py, px].min() > 0.9
        assert out["parsing"][py, px] == LEFT_EYE
    assert set(np.unique(out["parsing"])) <= {0, LEFT_EYE}  # nearest neighbour: no blended ids
    expected_box = (np.array([0.25, 0.25, 0.75, 0.75]) - 0.5) * scale + 0.5 + np.tile(shift, 2)
    np.testing.assert_allclose(out["bbox"][0], expected_box, atol=1e-6)


def test_face_pushed_out_of_the_image_is_masked():
    ex = _example(faces=2, real=2)
    ex["bbox"] = tf.constant([[0.05, 0.1, 0.2, 0.3], [0.6, 0.6, 0.9, 0.9]])
    out = _np(augment.scale_shift(ex, 1.0, tf.constant([-0.25, 0.0])))
    np.testing.assert_array_equal(out["face_mask"], [0.0, 1.0])
    for key in ("has_landmarks", "has_pose", "has_attr/emotion"):
        np.testing.assert_array_equal(out[key], [0.0, 1.0], err_msg=key)
    assert np.all(out["bbox"][0] == 0) and np.all(out["landmarks"][0] == 0)
    # Points leaving the frame of the kept face become invisible.
    inside = np.all((out["landmarks"][1] >= 0) & (out["landmarks"][1] <= 1), axis=-1)
    np.testing.assert_array_equal(out["landmarks_visible"][1] > 0, inside & (_np(ex)["landmarks_visible"][1] > 0))


def test_letterbox_keeps_aspect_and_maps_geometry():
    img = np.zeros((24, 48, 3), np.float32)
    img[6:9, 30:33] = 1.0  # dot centred at pixel (31, 7)
    ex = _example(24, 48, faces=1)
    centre = np.array([[[31.5 / 48, 7.5 / 24]] * 5], np.float32)
    ex.update(image=tf.constant(img), landmarks=tf.constant(centre), parsing=tf.ones([24, 48], tf.int32))
    out = _np(augment.resize_example(ex, (32, 32), letterbox=True))
    assert out["image"].shape == (32, 32, 3) and out["parsing"].shape == (32, 32)
    # 48x24 fits as 32x16 at the top; the bottom band is padding (background).
    assert np.all(out["image"][16:] == 0) and np.all(out["parsing"][16:] == 0) and np.all(out["parsing"][:16] == 1)
    x, y = out["landmarks"][0, 0]
    np.testing.assert_allclose([x, y], [31.5 / 48, 7.5 / 24 * 0.5], atol=1e-6)
    assert out["image"][int(y * 32), int(x * 32)].min() > 0.5
    np.testing.assert_allclose(out["bbox"][0], [0.1, 0.1, 0.5, 0.35], atol=1e-6)


def test_plain_resize_keeps_normalised_geometry():
    ex = _example(24, 48, faces=1)
    out = _np(augment.resize_example(ex, (32, 32), letterbox=False))
    assert out["image"].shape == (32, 32, 3)
    np.testing.assert_array_equal(out["landmarks"], _np(ex)["landmarks"])
    np.testing.assert_array_equal(out["bbox"], _np(ex)["bbox"])


def test_colour_matrix_neutral_grey_and_hue_properties():
    mean = tf.constant([0.4, 0.5, 0.6])
    m, off = augment.colour_matrix(0.0, 1.0, 1.0, 0.0, mean)
    np.testing.assert_allclose(m, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(off, 0.0, atol=1e-6)
    rgb = np.random.default_rng(1).random((10, 3)).astype(np.float32)
    grey, _ = augment.colour_matrix(0.0, 1.0, 0.0, 0.0, mean)
    out = rgb @ grey.numpy()
    np.testing.assert_allclose(out[:, 0], rgb @ [0.299, 0.587, 0.114], atol=1e-5)
    np.testing.assert_allclose(out[:, 0], out[:, 2], atol=1e-6)
    # A hue rotation keeps luma; a full turn is the identity.
    rot, _ = augment.colour_matrix(0.0, 1.0, 1.0, 0.2, mean)
    np.testing.assert_allclose((rgb @ rot.numpy()) @ [0.299, 0.587, 0.114], rgb @ [0.299, 0.587, 0.114], atol=1e-3)
    assert np.abs(rgb @ rot.numpy() - rgb).max() > 0.05
    full, _ = augment.colour_matrix(0.0, 1.0, 1.0, 1.0, mean)
    np.testing.assert_allclose(full, np.eye(3), atol=1e-5)
    # Contrast scales about the channel mean; brightness adds.
    c, off = augment.colour_matrix(0.1, 2.0, 1.0, 0.0, mean)
    brighter_mean = mean.numpy() + 0.1
    np.testing.assert_allclose(rgb @ c.numpy() + off.numpy(), (rgb + 0.1 - brighter_mean) * 2 + brighter_mean,
                               atol=1e-5)


def test_augment_is_deterministic_per_seed_and_keeps_structure():
    ex = _example()
    cfg = AugmentConfig(flip=0.5, scale_range=(0.8, 1.2), shift=0.1, brightness=0.2, contrast=0.2,
                        saturation=0.2, hue=0.05)
    a = _np(augment.augment_example(ex, tf.constant([7, 11], tf.int64), cfg, "mtfl5"))
    b = _np(augment.augment_example(ex, tf.constant([7, 11], tf.int64), cfg, "mtfl5"))
    others = [_np(augment.augment_example(ex, tf.constant([7, i], tf.int64), cfg, "mtfl5")) for i in range(4)]
    for key, value in a.items():
        np.testing.assert_array_equal(value, b[key], err_msg=key)
        assert value.shape == np.asarray(ex[key]).shape and value.dtype == np.asarray(ex[key]).dtype, key
    assert all(not np.array_equal(a["image"], o["image"]) for o in others)
    assert 0.0 <= a["image"].min() and a["image"].max() <= 1.0
    assert np.all(a["bbox"][1] == 0) and np.all(a["landmarks"][1] == 0)
