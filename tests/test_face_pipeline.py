"""FacePipeline: detector + per-face models, geometry mapped back into each photo.

The stages here are plain functions with a declaration (``ModelStage``), so what is
checked is the pipeline itself: which pixels each per-face model reads, where its
outputs land in the photo, batching and ordering, and the max_faces report.
"""

import numpy as np
import pytest

from keras_facemt.configs.outputs import OutputSpec, Preprocessing, ServingSpec
from keras_facemt.errors import ConfigError
from keras_facemt.inference.pipeline import FacePipeline, crop_template
from keras_facemt.inference.stage import ModelStage
from keras_facemt.ops.align import template

DET_SIZE = (64, 64)


def _rotation(deg):
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32)


def _face_points(centre, scale, deg):
    """mtfl5 pixel points: the 112 template scaled, rotated and moved to ``centre``."""
    t = template(112) - template(112).mean(0)
    return (t * scale) @ _rotation(deg).T + np.asarray(centre, np.float32) + 0.5


def _detector(points_per_photo, photo_sizes, max_detections=8):
    """A 'detector' that returns the given faces (boxes around their points) for each
    photo, in stretch-normalised input coordinates, whatever the pixels."""
    spec = ServingSpec({
        "boxes": OutputSpec("boxes", per_face=True), "scores": OutputSpec("scores", per_face=True),
        "count": OutputSpec("count"), "landmarks": OutputSpec("landmarks", per_face=True, scheme="mtfl5"),
        "visibility": OutputSpec("visibility", per_face=True),
    }, Preprocessing(resize="stretch"))
    calls = iter(range(10 ** 6))

    def run(feed):
        n = len(feed["image"])
        out = {"boxes": np.zeros((n, max_detections, 4), np.float32), "scores": np.zeros((n, max_detections)),
               "count": np.zeros((n,), np.int32), "landmarks": np.zeros((n, max_detections, 5, 2), np.float32),
               "visibility": np.tile(np.float32([1, 1, 0, 1, 1]), (n, max_detections, 1))}
        for b in range(n):
            i = next(calls)
            h, w = photo_sizes[i]
            for j, pts in enumerate(points_per_photo[i][:max_detections]):
                norm = pts / np.array([w, h], np.float32)
                out["landmarks"][b, j] = norm
                out["boxes"][b, j] = [*(norm.min(0) - 0.05), *(norm.max(0) + 0.05)]
                out["scores"][b, j] = 0.9 - 0.01 * j
            out["count"][b] = min(len(points_per_photo[i]), max_detections)
        return out

    return ModelStage(run, "fake_detector", spec, DET_SIZE, None, "python", "fake_detector")


def _echo(input_size=(48, 40), template_scale=0.7):
    """A per-face 'model' that answers the template points (what a perfect landmark
    model says of a perfectly aligned face), parsing class 2 everywhere, and the mean
    colour of its crop as the embedding."""
    spec = ServingSpec({
        "landmarks": OutputSpec("landmarks", scheme="mtfl5"),
        "parsing_logits": OutputSpec("parsing_logits", names=tuple(f"c{i}" for i in range(11)), activation="softmax"),
        "embedding": OutputSpec("embedding"),
        "pose": OutputSpec("pose"),
    }, Preprocessing(resize="stretch", template_scale=template_scale))
    h, w = input_size
    seen = []

    def run(feed):
        crops = feed["image"]
        seen.append(len(crops))
        n = len(crops)
        pts = (crop_template(input_size, template_scale) + 0.5) / np.array([w, h], np.float32)
        logits = np.zeros((n, h // 2, w // 2, 11), np.float32)
        logits[..., 2] = 5.0
        return {"landmarks": np.repeat(pts[None], n, 0), "parsing_logits": logits,
                "embedding": crops.mean(axis=(1, 2)) + 1e-3, "pose": np.tile([[30.0, -10.0, 5.0]], (n, 1))}

    stage = ModelStage(run, "echo", spec, input_size, None, "python", "echo")
    stage.calls = seen
    return stage


def test_points_and_parsing_land_back_on_each_face_of_the_photo():
    sizes = [(120, 160)]
    faces = [_face_points((50, 60), 0.4, 20.0), _face_points((120, 50), 0.25, -10.0)]
    pipe = FacePipeline(_detector([faces], sizes), [_echo()])
    result = pipe([np.zeros((120, 160, 3), np.uint8)])
    assert len(result) == 1 and len(result[0]) == 2
    for face, pts in zip(result[0], faces):
        # The per-face model said "the template": mapped back, that is the face's own points.
        np.testing.assert_allclose(face.landmarks, pts, atol=0.05)
        assert face.sources["landmarks"] == "echo" and face.sources["box"] == "fake_detector"
        # The detector's per-point visibility is kept, and credited to it.
        np.testing.assert_array_equal(face.visibility, [1, 1, 0, 1, 1])
        assert face.sources["visibility"] == "fake_detector"
        # Parsing covers the face's crop footprint in the photo and nothing far from it.
        assert face.parsing.shape == (120, 160)
        xs, ys = np.round(pts[:, 0]).astype(int), np.round(pts[:, 1]).astype(int)
        assert (face.parsing[ys, xs] == 2).all()
        far = np.ones((120, 160), bool)
        x0, y0 = (pts.min(0) - 40).astype(int).clip(0)
        x1, y1 = (pts.max(0) + 40).astype(int)
        far[y0:y1, x0:x1] = False
        assert (face.parsing[far] == 0).all()
    # The smaller face's footprint is smaller.
    assert (result[0][1].parsing > 0).sum() < (result[0][0].parsing > 0).sum()


def test_crops_come_from_their_own_photo_and_results_keep_input_order():
    colours = [np.array([c, 0.5, 1.0 - c], np.float32) for c in (0.1, 0.4, 0.7, 0.9)]
    photos = [np.ones((100, 90 + 10 * i, 3), np.float32) * c for i, c in enumerate(colours)]
    sizes = [p.shape[:2] for p in photos]
    points = [[_face_points((45, 50), 0.3, 0)] * (i + 1) for i in range(4)]
    echo = _echo()
    pipe = FacePipeline(_detector(points, sizes), [echo], batch_size=3)
    result = pipe(photos)
    assert [len(r) for r in result] == [1, 2, 3, 4]
    for faces, c in zip(result, colours):
        for f in faces:
            # The embedding is the crop's (unit-normalised) colour: its own photo's.
            np.testing.assert_allclose(f.embedding, c / np.linalg.norm(c), atol=1e-3)
    # Every face of every photo went through the per-face model in one call.
    assert echo.calls == [10]


def test_faces_beyond_max_faces_are_reported_not_silently_dropped():
    sizes = [(100, 100), (100, 100)]
    points = [[_face_points((50, 50), 0.2, 0)] * 5, [_face_points((50, 50), 0.2, 0)]]
    pipe = FacePipeline(_detector(points, sizes), [_echo()], max_faces=3)
    with pytest.warns(UserWarning, match="image 0: 2"):
        result = pipe([np.zeros((100, 100, 3))] * 2)
    assert [len(r) for r in result] == [3, 1] and pipe.dropped == [2, 0]
    # Highest scores are the ones kept.
    assert [round(f.score, 2) for f in result[0]] == [0.9, 0.89, 0.88]


def test_a_full_detector_is_reported():
    points = [[_face_points((50, 50), 0.2, 0)] * 4]
    pipe = FacePipeline(_detector(points, [(100, 100)], max_detections=4), [_echo()])
    with pytest.warns(UserWarning, match="maximum number of detections"):
        pipe([np.zeros((100, 100, 3))])


def test_models_in_the_wrong_slot_are_refused():
    det = _detector([[]], [(10, 10)])
    with pytest.raises(ConfigError, match="detector slot needs a face detector"):
        FacePipeline(_echo(), [])
    with pytest.raises(ConfigError, match="analyzer slot needs a per-face"):
        FacePipeline(det, [det])
    with pytest.raises(ConfigError, match="batch-first"):
        FacePipeline(det, [_echo()])(np.zeros((10, 10, 3)))


def test_the_drawing_shows_points_parsing_and_pose_axes():
    from keras_facemt.inference.predict_command import draw_faces

    sizes = [(240, 320)]
    faces = [_face_points((100, 120), 0.8, 10.0)]
    photo = np.full((240, 320, 3), 90, np.uint8)
    face = FacePipeline(_detector([faces], sizes), [_echo()])([photo])[0][0]
    assert face.sources["pose"] == "echo"
    np.testing.assert_allclose(face.pose, [30, -10, 5])
    with_pose = draw_faces(photo, [face])
    face.pose = None
    without = draw_faces(photo, [face])
    assert with_pose.shape == (240, 320, 3)
    # The parsing overlay and the points change the face region; the pose axes add
    # red/green/blue strokes from the face centre.
    assert np.abs(without.astype(int) - photo).sum(-1)[100:140, 80:120].mean() > 5
    axes = np.abs(with_pose.astype(int) - without.astype(int)).sum(-1) > 0
    cy, cx = np.round(faces[0].mean(0)[::-1]).astype(int)
    assert axes[cy - 60:cy + 60, cx - 60:cx + 60].sum() > 40
