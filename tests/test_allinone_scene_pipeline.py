"""All-in-One stage 1 on whole images: dense windows, landmark-implied boxes, IRP + L-NMS."""

import numpy as np
import pytest

from keras_facemt.errors import ConfigError
from keras_facemt.models.allinone import scene_pipeline as S


def test_candidate_windows_cover_the_image_at_every_scale():
    cfg = S.SceneDetectorConfig(min_side=0.25, max_side=0.5, scale_step=2.0, stride=0.5)
    w = S.candidate_windows(80, 100, cfg)
    sides = np.unique(np.round(w[:, 2] - w[:, 0], 6))
    np.testing.assert_allclose(sides, [20.0, 40.0])
    assert w[:, 0].min() == 0 and w[:, 1].min() == 0
    assert w[:, 2].max() <= 100 and w[:, 3].max() <= 80
    small = w[(w[:, 2] - w[:, 0]) == 20]
    assert len(small) == len(np.arange(0, 81, 10)) * len(np.arange(0, 61, 10))
    with pytest.raises(ConfigError, match="scale_step"):
        S.SceneDetectorConfig(scale_step=1.0)


def test_box_prior_inverts_box_from_points():
    rng = np.random.default_rng(0)
    idx = S.defined_points()
    assert len(idx) == 19  # aflw21 without the two ears SynthFace cannot label
    base = rng.random((21, 2))
    pts, boxes = [], []
    for k in range(20):
        scale, shift = rng.uniform(10, 50), rng.uniform(0, 100, 2)
        p = base * scale + shift
        lo, hi = p[idx].min(0), p[idx].max(0)
        pts.append(p)
        boxes.append(np.concatenate([lo - 0.1 * (hi - lo), hi + 0.2 * (hi - lo)]))
    prior = S.box_prior(np.array(boxes), np.array(pts), idx)
    np.testing.assert_allclose(prior, [-0.1, -0.1, 1.2, 1.2], atol=1e-9)
    np.testing.assert_allclose(S.box_from_points(np.array(pts), prior, idx), np.array(boxes), atol=1e-6)


def test_stage2_averages_the_face_and_its_mirror():
    """The mirrored second pass makes stage 2 blind to a horizontal flip of the image."""
    from keras_facemt.models.allinone.config import PRESETS
    from keras_facemt.models.allinone.model import build_model

    model = build_model(PRESETS["tiny"]())
    rng = np.random.default_rng(0)
    image = (rng.random((64, 80, 3)) * 255).astype(np.uint8)
    boxes = np.array([[10.0, 8.0, 42.0, 40.0], [40.0, 20.0, 70.0, 50.0]])
    points = rng.uniform(20, 40, (2, 21, 2))
    a = S.stage2(model, image, points, boxes, 32, aligned=False)
    flipped = boxes.copy()
    flipped[:, [0, 2]] = 80 - boxes[:, [2, 0]]
    b = S.stage2(model, image[:, ::-1].copy(), points, flipped, 32, aligned=False)
    for k in ("smile", "gender", "age", "embedding"):
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-4)
    assert a["gender"].shape == (2, 2) and a["age"].shape == (2,) and a["embedding"].shape == (2, 64)
    np.testing.assert_allclose(a["gender"].sum(-1), 1.0, rtol=1e-6)
    aligned = S.stage2(model, image, points, boxes, 32, aligned=True)
    assert aligned["embedding"].shape == (2, 64) and np.all(np.isfinite(aligned["age"]))
