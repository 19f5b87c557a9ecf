"""SynthFace: determinism, label consistency, identities, domains, learnability, CLI."""

import json
import os

import numpy as np
import pytest

from keras_facemt import cli
from keras_facemt.data import schema
from keras_facemt.data.codec import decode_image, decode_label_map, parse_example
from keras_facemt.data.landmarks import flip_permutation
from keras_facemt.data.shards import iter_records, list_shards
from keras_facemt.data.synth_identity import make_identity
from keras_facemt.data.synthetic import (
    DOMAINS,
    SUPPORTED_TASKS,
    SynthFace,
    assign_splits,
    write_synthetic,
)
from keras_facemt.errors import ConfigError, DataError

CLS = {n: i for i, n in enumerate(schema.PARSING_CLASSES)}


def _aligned(lm):
    """Landmarks [68, 2] with translation and scale removed."""
    c = lm - lm.mean(0)
    return c / np.sqrt((c**2).sum(1).mean())


def test_same_seed_and_index_render_the_same_whatever_the_order():
    a = SynthFace(seed=3, domain="webcam")
    b = SynthFace(seed=3, domain="webcam")
    for i in (4, 1, 0):
        a.render_crop(i)
    rgb_a, lab_a = a.render_crop(2)
    rgb_b, lab_b = b.render_crop(2)
    np.testing.assert_array_equal(rgb_a, rgb_b)
    np.testing.assert_array_equal(lab_a["parsing"], lab_b["parsing"])
    np.testing.assert_array_equal(lab_a["landmarks"], lab_b["landmarks"])
    assert lab_a["emotion"] == lab_b["emotion"] and lab_a["identity"] == lab_b["identity"]
    rgb_c, _ = a.render_crop(3)
    assert np.abs(rgb_a.astype(int) - rgb_c).mean() > 5
    rgb_d, _ = SynthFace(seed=4, domain="webcam").render_crop(2)
    assert np.abs(rgb_a.astype(int) - rgb_d).mean() > 5
    # The content does not depend on the style: same people and poses in every domain.
    _, lab_e = SynthFace(seed=3, domain="outdoor").render_crop(2)
    np.testing.assert_array_equal(lab_a["landmarks"], lab_e["landmarks"])
    _, scene_a = SynthFace(seed=3, domain="studio", image_size=128).render_scene(1, max_faces=6)
    _, scene_b = SynthFace(seed=3, domain="lowlight", image_size=128).render_scene(1, max_faces=6)
    np.testing.assert_array_equal(scene_a["bbox"], scene_b["bbox"])


def test_crop_labels_are_present_and_consistent():
    synth = SynthFace(seed=1, image_size=96)
    for i in range(24):
        rgb, lab = synth.render_crop(i)
        assert rgb.shape == (96, 96, 3) and rgb.dtype == np.uint8
        x0, y0, x1, y1 = lab["bbox"]
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        assert (x1 - x0) > 0.25, "the face fills a good part of a crop"
        lm, vis = lab["landmarks"], lab["landmarks_visible"]
        assert lm.shape == (68, 2) and vis.shape == (68,)
        v = vis > 0
        assert v.sum() >= 40
        assert np.all(lm[v, 0] >= x0 - 0.02) and np.all(lm[v, 0] <= x1 + 0.02)
        assert np.all(lm[v, 1] >= y0 - 0.02) and np.all(lm[v, 1] <= y1 + 0.02)
        p = lab["parsing"]
        assert p.shape == (96, 96) and p.max() < schema.NUM_PARSING_CLASSES
        present = set(np.unique(p))
        assert CLS["face_skin"] in present and CLS["background"] in present
        if abs(lab["pose"][0]) < 30:
            for name in ("left_brow", "right_brow", "left_eye", "right_eye", "nose", "upper_lip", "lower_lip"):
                assert CLS[name] in present, (i, name)
        # The parsing map agrees with the landmarks: the nose tip is on the nose.
        if abs(lab["pose"][0]) < 30 and abs(lab["pose"][1]) < 20:
            tx, ty = (lm[30] * 96 - 0.5).round().astype(int)
            assert p[ty, tx] == CLS["nose"], i
        for name, lo, hi in (("gender", 0, 1), ("ethnicity", 0, 2), ("emotion", 0, 6), ("smile", 0, 1),
                             ("age_class", 0, 100)):  # fmt: skip
            assert lo <= lab[name] <= hi
        assert 0 < lab["age"] <= 100 and abs(lab["age_class"] - lab["age"]) <= 0.5
        assert 0 <= lab["identity"] < 1000
        assert np.all(np.abs(lab["pose"]) <= np.array([90, 45, 45]))


def test_smile_label_matches_the_mouth():
    synth = SynthFace(seed=2)
    lifts = {0: [], 1: []}
    for i in range(20):
        emotion = "happy" if i % 2 else "concentrated"
        _, lab = synth.render_crop(i, emotion=emotion, pose=(0, 0, 0))
        lm = lab["landmarks"]
        corners = lm[[48, 54], 1].mean()
        centre = lm[[62, 66], 1].mean()
        lifts[lab["smile"]].append(centre - corners)
    assert lifts[1] and lifts[0]
    assert min(lifts[1]) > max(lifts[0]), "smiling mouths have their corners lifted above the lip centre"


def test_visibility_drops_at_large_yaw_on_the_far_side():
    synth = SynthFace(seed=0)
    _, front = synth.render_crop(0, identity=11, emotion="happy", pose=(0, 0, 0))
    _, right = synth.render_crop(0, identity=11, emotion="happy", pose=(70, 0, 0))
    _, left = synth.render_crop(0, identity=11, emotion="happy", pose=(-70, 0, 0))
    assert front["landmarks_visible"].sum() >= 66
    assert right["landmarks_visible"].sum() <= 56 and left["landmarks_visible"].sum() <= 56
    # Yaw > 0 turns the face to the image right: its right jaw turns away.
    assert right["landmarks_visible"][12:17].sum() == 0 and right["landmarks_visible"][0:5].sum() == 5
    assert left["landmarks_visible"][0:5].sum() == 0 and left["landmarks_visible"][12:17].sum() == 5
    # The nose tip moves right with positive yaw.
    assert right["landmarks"][30, 0] > front["landmarks"][30, 0] > left["landmarks"][30, 0]


def test_left_right_classes_are_image_left_right_and_flip_consistently():
    synth = SynthFace(seed=5, image_size=128)
    for i in range(6):
        _, lab = synth.render_crop(i, pose=(np.random.default_rng(i).uniform(-25, 25), 0, 0))
        p, lm = lab["parsing"], lab["landmarks"] * 128 - 0.5

        def cx(m, c):
            return np.nonzero(m == CLS[c])[1].mean()

        assert cx(p, "left_eye") < cx(p, "right_eye") and cx(p, "left_brow") < cx(p, "right_brow")
        assert abs(cx(p, "left_eye") - lm[36:42, 0].mean()) < 3
        # Mirror the map and the points; permute classes and point order as a
        # flip augmentation would: left stays left.
        pf = np.asarray(schema.PARSING_FLIP_PERMUTATION)[p[:, ::-1]]
        lmf = lm.copy()
        lmf[:, 0] = 127 - lmf[:, 0]
        lmf = lmf[flip_permutation("ibug68")]
        assert cx(pf, "left_eye") < cx(pf, "right_eye")
        assert abs(cx(pf, "left_eye") - lmf[36:42, 0].mean()) < 3


def test_identity_geometry_and_colouring_are_stable():
    synth = SynthFace(seed=0, num_identities=1000)
    shapes = {}
    for ident in (5, 6):
        for index in (0, 9):
            _, lab = synth.render_crop(index, identity=ident, neutral=True, pose=(0, 0, 0))
            assert lab["identity"] == ident and lab["emotion"] == -1
            shapes[(ident, index)] = _aligned(lab["landmarks"].astype(np.float64))
    same = np.abs(shapes[(5, 0)] - shapes[(5, 9)]).max()
    other = np.abs(shapes[(5, 0)] - shapes[(6, 0)]).max()
    assert same < 0.01 and other > 5 * same + 0.02
    a, b = make_identity(5), make_identity(5)
    np.testing.assert_array_equal(a.skin, b.skin)
    assert a.geometry == b.geometry and a.gender == b.gender and a.ethnicity == b.ethnicity
    assert make_identity(5, identity_seed=1).geometry != a.geometry
    ids = {synth.render_crop(i)[1]["identity"] for i in range(60)}
    assert len(ids) > 50 and max(ids) < 1000


def test_domains_differ_in_image_statistics():
    assert len(DOMAINS) >= 4
    stats = {}
    for name in ("studio", "outdoor", "lowlight", "webcam", "vintage"):
        synth = SynthFace(seed=0, domain=name, image_size=96)
        imgs = np.stack([synth.render_crop(i)[0] for i in range(10)]).astype(np.float32)
        mean = imgs.mean((0, 1, 2))
        gray = imgs.mean(-1)
        chroma = imgs / (imgs.sum(-1, keepdims=True) + 1.0)
        sat = chroma[..., 0].std() + chroma[..., 2].std()  # colour variety, not tint
        # Edge strength relative to contrast: blur lowers it, noise barely does.
        sharp = np.percentile(np.abs(np.diff(gray, axis=2)), 99.5) / gray.std()
        stats[name] = dict(mean=mean.mean(), rb=mean[0] / mean[2], sat=sat, sharp=sharp, std=imgs.std())
    s = stats
    assert s["lowlight"]["mean"] < 0.6 * s["studio"]["mean"]
    assert s["lowlight"]["rb"] < s["studio"]["rb"] < s["outdoor"]["rb"]
    assert s["vintage"]["sat"] < 0.6 * s["studio"]["sat"] and s["vintage"]["rb"] > s["studio"]["rb"]
    assert s["webcam"]["sharp"] < 0.75 * s["studio"]["sharp"]
    assert DOMAINS["webcam"].jpeg_quality < DOMAINS["studio"].jpeg_quality


def _logistic_regression_accuracy(x_train, y_train, x_test, y_test, classes, steps=400):
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    a = np.concatenate([(x_train - mu) / sd, np.ones((len(x_train), 1))], 1)
    b = np.concatenate([(x_test - mu) / sd, np.ones((len(x_test), 1))], 1)
    w = np.zeros((a.shape[1], classes))
    onehot = np.eye(classes)[y_train]
    for _ in range(steps):
        z = a @ w
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        w -= 0.5 * (a.T @ (p - onehot) / len(a) + 1e-3 * w)
    return float(((b @ w).argmax(1) == y_test).mean())


def test_tasks_are_learnable_but_not_trivial():
    synth = SynthFace(seed=7, image_size=64)
    feats, emotions, lms, iods, fg = [], [], [], [], []
    for i in range(560):
        _, lab = synth.render_crop(i)
        lm = lab["landmarks"].astype(np.float64)
        feats.append(_aligned(lm).ravel())
        emotions.append(lab["emotion"])
        lms.append(lm)
        iods.append(np.linalg.norm(lm[36] - lm[45]))
        fg.append((lab["parsing"] > 0).mean())
    x, y = np.asarray(feats), np.asarray(emotions)
    majority = np.bincount(y[:400], minlength=7).max() / 400
    acc = _logistic_regression_accuracy(x[:400], y[:400], x[400:], y[400:], 7)
    assert acc > majority + 0.25, (acc, majority)
    assert acc < 0.97, acc
    # Mean-shape landmark baseline: clearly imperfect.
    lms = np.asarray(lms)
    mean_shape = lms[:400].mean(0)
    nme = (np.linalg.norm(lms[400:] - mean_shape, axis=-1).mean(-1) / np.asarray(iods[400:])).mean()
    assert nme > 0.1, nme
    # The all-background parsing baseline misses most of the face.
    assert np.mean(fg) > 0.3


def test_scene_records_annotate_every_face():
    synth = SynthFace(seed=0, image_size=192, num_identities=50)
    counts = []
    for i in range(4):
        rgb, lab = synth.render_scene(i, max_faces=8)
        n = lab["bbox"].shape[0]
        counts.append(n)
        assert 1 <= n <= 8 and rgb.shape == (192, 192, 3)
        assert lab["landmarks"].shape == (n, 68, 2) and lab["landmarks_visible"].shape == (n, 68)
        for key in ("identity", "gender", "ethnicity", "age", "emotion", "smile", "age_class"):
            assert lab[key].shape == (n,), key
        assert np.all(lab["identity"] < 50)
        b = lab["bbox"]
        assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
        widths = b[:, 2] - b[:, 0]
        for j in range(n):
            v = lab["landmarks_visible"][j] > 0
            pts = lab["landmarks"][j][v]
            assert np.all(pts[:, 0] >= b[j, 0] - 0.02) and np.all(pts[:, 0] <= b[j, 2] + 0.02)
        if n > 2:
            assert widths.max() > 1.5 * widths.min(), "faces come at varied scales"
        rec = synth.scene_record(i, max_faces=8, tasks=("detection", "landmarks", "identity"))
        assert rec.num_faces == n and rec.has_boxes == 1 and rec.parsing is None
        np.testing.assert_array_equal(rec.identity, lab["identity"])
    assert max(counts) > 1


def test_tasks_select_which_labels_a_record_carries():
    synth = SynthFace(seed=0)
    rec = synth.crop_record(3, tasks=("parsing",), split="val", dataset_name="helen_like")
    assert rec.parsing is not None and rec.landmarks is None and rec.pose is None
    assert rec.identity is None and rec.attributes == {}
    assert rec.has_boxes == 1 and rec.num_faces == 1 and rec.split == "val" and rec.dataset == "helen_like"
    _, lab = synth.render_crop(3)
    np.testing.assert_array_equal(decode_label_map(rec.parsing), lab["parsing"])
    rec = synth.crop_record(3, tasks=("landmarks", "emotion", "age"), landmark_scheme="mtfl5")
    assert rec.landmark_scheme == "mtfl5" and rec.landmarks.shape == (1, 5, 2)
    np.testing.assert_allclose(rec.landmarks[0, 2], lab["landmarks"][30], atol=1e-6)
    assert set(rec.attributes) == {"emotion", "age"} and rec.parsing is None
    assert rec.attributes["emotion"][0] == lab["emotion"]
    out = parse_example(rec.serialize(), attributes=("emotion", "age"))
    assert out["error"].numpy() == b""
    assert decode_image(rec.image).shape == (128, 128, 3)


def test_splits_are_exact_and_seeded():
    s = assign_splits(10, (("train", 0.8), ("val", 0.1), ("test", 0.1)), seed=0)
    assert sorted(s.tolist()).count("train") == 8 and list(s).count("val") == 1 and list(s).count("test") == 1
    np.testing.assert_array_equal(s, assign_splits(10, (("train", 0.8), ("val", 0.1), ("test", 0.1)), seed=0))
    assert list(assign_splits(3, (("train", 0.9), ("test", 0.1)), seed=1)).count("test") == 1


def test_cli_writes_readable_shards_manifest_and_contact_sheet(tmp_path, capsys):
    out = str(tmp_path / "emo")
    rc = cli.main(["synth", "--kind", "crops", "--tasks", "landmarks,emotion", "--domain", "vintage",
                   "--count", "12", "--out", out, "--shards", "2", "--image-size", "64",
                   "--contact-sheet", "6"])  # fmt: skip
    assert rc == 0
    assert "contact_sheet.png" in capsys.readouterr().out
    with open(os.path.join(out, "dataset.json")) as f:
        manifest = json.load(f)
    assert sum(manifest["counts"].values()) == 12 and manifest["num_shards"] == 2
    assert manifest["synthface"]["domain"] == "vintage"
    assert manifest["presence"]["train"]["emotion"] == manifest["counts"]["train"]
    assert "parsing" not in manifest["presence"]["train"] or manifest["presence"]["train"]["parsing"] == 0
    records = [r for path in list_shards(out, "train") for r in iter_records(path)]
    assert len(records) == manifest["counts"]["train"]
    for r in records:
        assert r.landmarks.shape == (1, 68, 2) and r.parsing is None and r.dataset == "synth_vintage"
        assert set(r.attributes) == {"emotion"}
    import cv2

    sheet = cv2.imread(os.path.join(out, "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 64
    # Same arguments, same bytes.
    again = write_synthetic(str(tmp_path / "again"), tasks=("landmarks", "emotion"), domain="vintage",
                            count=12, shards=2, image_size=64)  # fmt: skip
    assert again["counts"] == manifest["counts"]
    first = [r.image for r in iter_records(list_shards(out, "train")[0])]
    second = [r.image for r in iter_records(list_shards(str(tmp_path / "again"), "train")[0])]
    assert first == second


def test_write_synthetic_scenes(tmp_path):
    manifest = write_synthetic(str(tmp_path / "sc"), kind="scenes", tasks=("detection", "landmarks", "identity"),
                               domain="outdoor", count=3, shards=1, image_size=128, max_faces=5,
                               splits=(("train", 1.0),))  # fmt: skip
    assert manifest["counts"] == {"train": 3} and manifest["faces"]["train"] >= 3
    recs = list(iter_records(list_shards(str(tmp_path / "sc"), "train")[0]))
    assert all(r.has_boxes == 1 and r.identity is not None for r in recs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(tasks=("landmarks", "foo")), "foo"),
        (dict(tasks=("teacher_embedding",)), "teacher_embedding"),
        (dict(count=0), "count=0"),
        (dict(domain="mars"), "mars"),
        (dict(kind="video"), "video"),
        (dict(shards=0), "shards=0"),
        (dict(landmark_scheme="ibug98"), "ibug98"),
        (dict(splits=(("train", -1.0),)), "splits"),
    ],
)
def test_bad_arguments_raise_config_errors_naming_the_value(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        write_synthetic(str(tmp_path / "x"), count=kwargs.pop("count", 2), **kwargs)
    assert not os.path.exists(tmp_path / "x")


def test_cli_reports_bad_input_and_refuses_to_overwrite(tmp_path, capsys):
    out = str(tmp_path / "d")
    assert cli.main(["synth", "--tasks", "landmarks,bogus", "--count", "2", "--out", out]) == 2
    assert "bogus" in capsys.readouterr().err
    assert cli.main(["synth", "--count", "0", "--out", out]) == 2
    assert "count" in capsys.readouterr().err
    assert cli.main(["synth", "--domain", "moon", "--count", "2", "--out", out]) == 2
    assert "moon" in capsys.readouterr().err
    assert cli.main(["synth", "--count", "2", "--out", out, "--contact-sheet", "0", "--image-size", "48"]) == 0
    assert cli.main(["synth", "--count", "2", "--out", out, "--image-size", "48"]) == 2
    assert "overwrite" in capsys.readouterr().err
    with pytest.raises(DataError):
        write_synthetic(out, count=2, image_size=48)


def test_supported_tasks_are_schema_tasks():
    assert set(SUPPORTED_TASKS) <= set(schema.all_tasks())
    with pytest.raises(ConfigError, match="emotion=9"):
        SynthFace().render_crop(0, emotion=9)
    with pytest.raises(ConfigError, match="identity=1000"):
        SynthFace(num_identities=1000).render_crop(0, identity=1000)


def test_pose_sign_conventions():
    synth = SynthFace(seed=0)

    def lm(pose):
        return synth.render_crop(1, identity=2, neutral=True, pose=pose)[1]["landmarks"]

    front, up, clockwise = lm((0, 0, 0)), lm((0, 25, 0)), lm((0, 0, 20))
    # Pitch > 0 tilts the face up: the nose tip gets closer to the eyes.
    eyes_to_tip = lambda p: p[30, 1] - p[36:48, 1].mean()  # noqa: E731
    assert eyes_to_tip(up) < eyes_to_tip(front) - 0.01
    # Roll > 0 turns the face clockwise as displayed: the image-right eye drops.
    slope = lambda p: p[42:48, 1].mean() - p[36:42, 1].mean()  # noqa: E731
    assert slope(clockwise) > slope(front) + 0.03
