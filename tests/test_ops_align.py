import cv2
import numpy as np
import pytest

from keras_facemt.errors import ConfigError
from keras_facemt.ops import align


def _similarity(scale, angle, tx, ty):
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty]], np.float32)


def test_recovers_known_similarity_batched():
    dst = align.TEMPLATE_112
    ms = [_similarity(1.3, 0.2, 5, -3), _similarity(0.5, -1.0, 40, 60)]
    src = []
    for m in ms:
        inv = cv2.invertAffineTransform(m)
        src.append(dst @ inv[:, :2].T + inv[:, 2])
    got = align.similarity_transform(np.stack(src), dst).numpy()
    np.testing.assert_allclose(got, np.stack(ms), atol=1e-3)
    np.testing.assert_allclose(align.invert_similarity(got).numpy()[0], cv2.invertAffineTransform(ms[0]), atol=1e-3)


def test_matches_opencv_least_squares_and_warp():
    rng = np.random.default_rng(0)
    h, w = 80, 120
    img = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
    img = cv2.GaussianBlur(img, (5, 5), 2)
    lm = np.array([[0.4, 0.4], [0.6, 0.42], [0.5, 0.55], [0.42, 0.7], [0.58, 0.71]], np.float32)
    lm += rng.normal(0, 0.01, lm.shape).astype(np.float32)
    px = lm * [w, h] - 0.5
    m_ref, _ = cv2.estimateAffinePartial2D(px, align.TEMPLATE_112, method=cv2.LMEDS)
    m = align.alignment_matrices(lm, (h, w)).numpy()
    # Compare the residuals: ours is the least-squares optimum, so never worse.
    def resid(mm):
        return np.sum((px @ mm[:, :2].T + mm[:, 2] - align.TEMPLATE_112) ** 2)
    assert resid(m) <= resid(m_ref) + 1e-3
    crop = align.align_faces(img[None], lm[None, None], 112).numpy()[0, 0]
    ref = cv2.warpAffine(img, m, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    inner = (slice(4, -4), slice(4, -4))
    np.testing.assert_allclose(crop[inner], ref[inner], atol=2e-3)


def test_aligned_landmarks_land_on_template_and_other_sizes():
    # A bright dot at each landmark lands at the template point after alignment.
    h = w = 96
    lm = np.array([[0.35, 0.4], [0.65, 0.38], [0.5, 0.55], [0.38, 0.72], [0.62, 0.7]], np.float32)
    img = np.zeros((h, w, 1), np.float32)
    for x, y in lm * [w, h] - 0.5:
        img[int(round(y)), int(round(x))] = 1.0
    img = cv2.GaussianBlur(img, (7, 7), 1.5)[..., None]
    crop = align.align_faces(img[None], lm[None, None], 64).numpy()[0, 0, ..., 0]
    tpl = align.template(64)
    for x, y in tpl:
        patch = crop[int(y) - 3:int(y) + 4, int(x) - 3:int(x) + 4]
        assert patch.max() > 0.5 * crop.max()
    assert align.align_faces(np.zeros((2, 20, 30, 3)), np.zeros((2, 4, 5, 2)), 16).shape == (2, 4, 16, 16, 3)
    with pytest.raises(ConfigError, match="5 landmarks"):
        align.alignment_matrices(np.zeros((3, 68, 2)), (10, 10))
    with pytest.raises(ConfigError, match="output_size"):
        align.template(4)
