import re

import numpy as np
import pytest

from keras_facemt.data import landmarks as lm
from keras_facemt.data import schema
from keras_facemt.errors import ConfigError


@pytest.mark.parametrize("name,k", [("ibug68", 68), ("aflw21", 21), ("mtfl5", 5)])
def test_flip_permutation_is_an_involution(name, k):
    perm = lm.flip_permutation(name)
    assert sorted(perm) == list(range(k))
    np.testing.assert_array_equal(perm[perm], np.arange(k))


def test_flip_swaps_left_and_right_names():
    for s in lm.SCHEMES.values():
        for i, j in enumerate(s.flip_permutation):
            a, b = s.point_names[i], s.point_names[j]
            part_a, part_b = re.sub(r"_\d+$", "", a), re.sub(r"_\d+$", "", b)
            if "left" in part_a:
                assert part_b == part_a.replace("left", "right"), (s.name, a, b)


def test_flip_of_mirrored_ibug_shape_restores_order():
    rng = np.random.default_rng(1)
    pts = rng.random((68, 2))
    flipped = pts.copy()
    flipped[:, 0] = 1 - flipped[:, 0]
    restored = flipped[lm.flip_permutation("ibug68")]
    # Flipping twice is the identity.
    again = restored.copy()
    again[:, 0] = 1 - again[:, 0]
    np.testing.assert_allclose(again[lm.flip_permutation("ibug68")], pts)


def test_ibug68_to_mtfl5_hand_computed():
    pts = np.zeros((68, 2), np.float32)
    pts[36:42] = [[0.1 * i, 0.2] for i in range(6)]  # mean x = 0.25
    pts[42:48] = [[0.6, 0.3]] * 6
    pts[30] = [0.5, 0.5]
    pts[48] = [0.3, 0.8]
    pts[54] = [0.7, 0.8]
    vis = np.ones(68)
    vis[40] = 0
    out, v = lm.convert_points(pts, vis, "ibug68", "mtfl5")
    np.testing.assert_allclose(out, [[0.25, 0.2], [0.6, 0.3], [0.5, 0.5], [0.3, 0.8], [0.7, 0.8]], atol=1e-6)
    np.testing.assert_array_equal(v, [0, 1, 1, 1, 1])


def test_ibug68_to_aflw21_leaves_ears_undefined():
    m, defined = lm.subset_matrix("ibug68", "aflw21")
    assert m.shape == (21, 68)
    assert defined[12] == 0 and defined[16] == 0 and defined.sum() == 19
    np.testing.assert_allclose(m.sum(1)[defined > 0], 1.0)


def test_unknown_scheme_and_map_errors():
    with pytest.raises(ConfigError, match="Unknown landmark scheme 'dlib5'"):
        lm.get_scheme("dlib5")
    with pytest.raises(ConfigError, match="No landmark subset map from 'mtfl5' to 'ibug68'"):
        lm.subset_matrix("mtfl5", "ibug68")


def test_schema_registry_and_tasks():
    assert schema.NUM_PARSING_CLASSES == 11
    assert len(schema.EMOTIONS) == 7
    assert len(schema.CELEBA_ATTRIBUTES) == 40
    assert schema.attribute_spec("age_class").num_classes == 101
    assert schema.presence_key("landmarks") == "face/has_landmarks"
    assert schema.presence_key("emotion") == "face/has_attr/emotion"
    with pytest.raises(ConfigError, match="Unknown task 'hair_colour'"):
        schema.validate_tasks(["landmarks", "hair_colour"])
    perm = np.asarray(schema.PARSING_FLIP_PERMUTATION)
    np.testing.assert_array_equal(perm[perm], np.arange(11))
