"""The non-square (112x96) 5-point template MTFR trains and serves on."""

import cv2
import numpy as np
import pytest

from keras_facemt.errors import ConfigError
from keras_facemt.ops import align

# Wen et al.'s 96x112 template (x, y), the one SphereFace / Center Loss / MTFR align to.
WEN_96x112 = np.array([[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366], [33.5493, 92.3655],
                       [62.7299, 92.2041]], np.float32)


def test_112x96_template_is_the_standard_one_and_square_is_unchanged():
    np.testing.assert_allclose(align.template((112, 96)), WEN_96x112, atol=1e-4)
    np.testing.assert_allclose(align.template(112), align.TEMPLATE_112, atol=1e-5)
    np.testing.assert_allclose(align.template((64, 64)), align.template(64), atol=1e-6)
    # Scaled versions keep the proportions of the 112x96 one.
    half = align.template((56, 48))
    np.testing.assert_allclose((half + 0.5) * 2 - 0.5, WEN_96x112, atol=1e-4)
    for bad in ((4, 96), (112,), "big"):
        with pytest.raises(ConfigError):
            align.template(bad)


def test_non_square_warp_matches_opencv_and_lands_on_template():
    rng = np.random.default_rng(1)
    h, w = 90, 130
    img = cv2.GaussianBlur(rng.uniform(0, 1, (h, w, 3)).astype(np.float32), (5, 5), 2)
    lm = np.array([[0.4, 0.4], [0.6, 0.42], [0.5, 0.55], [0.42, 0.7], [0.58, 0.71]], np.float32)
    crop = align.align_faces(img[None], lm[None, None], (112, 96)).numpy()[0, 0]
    assert crop.shape == (112, 96, 3)
    m = align.alignment_matrices(lm, (h, w), (112, 96)).numpy()
    ref = cv2.warpAffine(img, m, (96, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    np.testing.assert_allclose(crop[4:-4, 4:-4], ref[4:-4, 4:-4], atol=2e-3)
    # The mapped landmarks are the least-squares fit to the template: close to it.
    px = lm * [w, h] - 0.5
    mapped = px @ m[:, :2].T + m[:, 2]
    assert np.abs(mapped - WEN_96x112).max() < 6.0


def test_face_analyzer_aligns_crop_models_on_five_points():
    import keras
    import tensorflow as tf

    from keras_facemt.inference.analyzer import FaceAnalyzer
    from keras_facemt.models.mtfr import model as mtfr
    from keras_facemt.models.mtfr.config import ATTRIBUTES

    cfg = mtfr.PRESETS["tiny"]()
    keras.utils.set_random_seed(0)
    from keras_facemt.models import registry

    serving = registry.get_system("mtfr").serving_model(mtfr.build_model(cfg), cfg)
    rng = np.random.default_rng(0)
    img = (cv2.GaussianBlur(rng.uniform(0, 1, (90, 130, 3)).astype(np.float32), (5, 5), 2) * 255).astype(np.uint8)
    pts = np.array([[50, 36], [78, 38], [64, 50], [53, 63], [75, 64]], np.float32)  # pixels
    face = FaceAnalyzer(serving)([img], landmarks=[pts])[0][0]
    crop = align.align_faces(tf.constant(img[None].astype(np.float32) / 255.0),
                             ((pts + 0.5) / [130, 90])[None, None], cfg.image_size).numpy()[:, 0]
    ref = serving({"image": crop})
    np.testing.assert_allclose(face.embedding, np.asarray(ref["embedding"])[0], atol=1e-5)
    assert face.attributes["celeba/Male"] == pytest.approx(float(ref["attributes"][0, -1]), abs=1e-5)
    stretched = FaceAnalyzer(serving)([img])[0][0]
    assert set(stretched.attributes) == {f"celeba/{a}" for a in ATTRIBUTES}
    assert np.abs(stretched.embedding - face.embedding).max() > 1e-3
