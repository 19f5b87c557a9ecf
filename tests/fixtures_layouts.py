"""Generators of tiny datasets in the exact layouts the converters read.

Each ``make_<layout>(root, bad=())`` writes a handful of small SynthFace images and the
annotation files as the dataset distributes them, and returns a :class:`Layout`
with the converter's arguments, the expected labels of every good entry (pixel
geometry, straight from the numbers written) and, for each injected defect in
``bad``, the ``file:line`` where the converter must report it.

Defect kinds (``tfrecords_tools.common``): ``missing_image``, ``malformed_line``,
``outside_image``, ``corrupt_image``, ``point_count``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Dict, List

import cv2
import numpy as np

ALL_BAD = ("missing_image", "malformed_line", "outside_image", "corrupt_image", "point_count")


@dataclasses.dataclass
class Layout:
    """A generated dataset.

    Attributes:
        root: dataset root.
        kwargs: converter constructor arguments.
        expected: source_id -> expected labels (``split``, ``size`` (w, h), and any of
            ``bboxes`` [N, 4] px, ``landmarks`` [N, K, 2] px, ``visible``, ``pose``,
            ``identity``, ``attributes`` {name: [N]}).
        bad: defect kind -> ``file:line`` (or file) where it must be reported.
    """

    root: str
    kwargs: Dict[str, object]
    expected: Dict[str, dict] = dataclasses.field(default_factory=dict)
    bad: Dict[str, str] = dataclasses.field(default_factory=dict)


@functools.lru_cache(maxsize=None)
def _synth(size: int):
    from keras_facemt.data.synthetic import SynthFace

    return SynthFace(seed=0, domain="studio", image_size=size)


def face_image(seed: int, w: int = 64, h: int = 64) -> np.ndarray:
    """A SynthFace face crop (RGB uint8 ``[h, w, 3]``); index ``seed`` picks the face."""
    side = max(w, h)
    img, _ = _synth(side).render_crop(int(seed))
    return img if (w, h) == (side, side) else cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def write_image(path: str, seed: int, w: int = 64, h: int = 64) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ext = ".png" if path.lower().endswith(".png") else ".jpg"
    ok, buf = cv2.imencode(ext, cv2.cvtColor(face_image(seed, w, h), cv2.COLOR_RGB2BGR))
    assert ok
    with open(path, "wb") as f:
        f.write(buf.tobytes())


def corrupt_image(path: str) -> None:
    """Truncates an image mid-stream, as an interrupted download does."""
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 3])


def write_text(path: str, lines: List[str]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _lineno(lines: List[str], index: int) -> int:
    return index + 1


# --------------------------------------------------------------------------- WIDER FACE
def make_wider_face(root: str, bad=(), retinaface: bool = True) -> Layout:
    """WIDER FACE: ``wider_face_split/wider_face_{train,val}_bbx_gt.txt`` + images,
    a zero-face entry, and RetinaFace ``train/label.txt``."""
    lay = Layout(root, {"root": root, "retinaface_dir": os.path.join(root, "retinaface") if retinaface else None})
    gt_train, gt_val, label = [], [], []
    entries = [  # split, name, faces (x y w h), landmark flags
        ("train", "0--Parade/0_Parade_1.jpg", [(10, 12, 20, 24), (40, 8, 12, 14)]),
        ("train", "0--Parade/0_Parade_2.jpg", [(5, 6, 30, 32)]),
        ("train", "1--Handshaking/1_Hand_3.jpg", []),
        ("val", "0--Parade/0_Parade_9.jpg", [(16, 16, 24, 28)]),
    ]
    for k, (split, name, faces) in enumerate(entries):
        write_image(os.path.join(root, f"WIDER_{split}", "images", name), k)
        gt = gt_train if split == "train" else gt_val
        gt += [name, str(len(faces))]
        gt += [f"{x} {y} {w} {h} 0 0 0 0 0 0 " for x, y, w, h in faces] or ["0 0 0 0 0 0 0 0 0 0 "]
        sid = f"{split}/{name}"
        lay.expected[sid] = {"split": split, "size": (64, 64),
                             "bboxes": [[x, y, x + w, y + h] for x, y, w, h in faces]}
        if split == "train" and retinaface:
            label.append(f"# {name}")
            lms = []
            for j, (x, y, w, h) in enumerate(faces):
                if j == 1:  # second face: points absent (-1), as RetinaFace writes them
                    label.append(f"{x} {y} {w} {h} " + " ".join(["-1.0"] * 15) + " -1.0")
                    lms.append(None)
                    continue
                pts = [(x + 0.3 * w, y + 0.4 * h), (x + 0.7 * w, y + 0.4 * h), (x + 0.5 * w, y + 0.6 * h),
                       (x + 0.35 * w, y + 0.8 * h), (x + 0.65 * w, y + 0.8 * h)]
                label.append(f"{x} {y} {w} {h} " + " ".join(f"{px:.3f} {py:.3f} 0.0" for px, py in pts) + " 0.9")
                lms.append(pts)
            lay.expected[sid]["landmarks"] = lms
    # A zero-size box is dropped without skipping the image.
    gt_val += ["0--Parade/0_Parade_10.jpg", "2", "8 8 20 20 0 0 0 0 0 0", "30 30 0 0 0 0 0 1 0 0"]
    write_image(os.path.join(root, "WIDER_val/images/0--Parade/0_Parade_10.jpg"), 10)
    lay.expected["val/0--Parade/0_Parade_10.jpg"] = {"split": "val", "size": (64, 64), "bboxes": [[8, 8, 28, 28]]}
    gt_path = os.path.join(root, "wider_face_split", "wider_face_val_bbx_gt.txt")
    if "missing_image" in bad:
        gt_val += ["0--Parade/absent.jpg", "1", "1 1 5 5 0 0 0 0 0 0"]
        lay.bad["missing_image"] = f"{gt_path}:{len(gt_val) - 2}"
    if "malformed_line" in bad:
        write_image(os.path.join(root, "WIDER_val/images/0--Parade/m.jpg"), 20)
        gt_val += ["0--Parade/m.jpg", "1", "1 1 5 x 0 0 0 0 0 0"]
        lay.bad["malformed_line"] = f"{gt_path}:{len(gt_val)}"
    if "outside_image" in bad:
        write_image(os.path.join(root, "WIDER_val/images/0--Parade/o.jpg"), 21)
        gt_val += ["0--Parade/o.jpg", "1", "50 50 40 40 0 0 0 0 0 0"]
        lay.bad["outside_image"] = f"{gt_path}:{len(gt_val) - 2}"
    if "corrupt_image" in bad:
        p = os.path.join(root, "WIDER_val/images/0--Parade/c.jpg")
        write_image(p, 22)
        corrupt_image(p)
        gt_val += ["0--Parade/c.jpg", "1", "1 1 5 5 0 0 0 0 0 0"]
        lay.bad["corrupt_image"] = f"{gt_path}:{len(gt_val) - 2}"
    if "point_count" in bad and retinaface:
        label += ["# 0--Parade/0_Parade_2.jpg", "1 1 5 5 1.0 1.0 0.0 2.0 2.0 0.0"]
        lay.bad["point_count"] = f"{os.path.join(root, 'retinaface', 'train', 'label.txt')}:{len(label)}"
    write_text(os.path.join(root, "wider_face_split", "wider_face_train_bbx_gt.txt"), gt_train)
    write_text(gt_path, gt_val)
    if retinaface:
        write_text(os.path.join(root, "retinaface", "train", "label.txt"), label)
    return lay


# --------------------------------------------------------------------------- checking
def read_dataset(out_dir: str) -> Dict[str, object]:
    """source_id -> FaceRecord of every record in a converted dataset."""
    import glob

    from keras_facemt.data.shards import iter_records

    recs = {}
    for path in sorted(glob.glob(os.path.join(out_dir, "*.tfrecord"))):
        for r in iter_records(path):
            assert r.source_id not in recs, f"duplicate source_id {r.source_id}"
            recs[r.source_id] = r
    return recs


def assert_matches_source(recs: Dict[str, object], lay: Layout, atol: float = 2e-3) -> None:
    """Every good entry was written, with geometry equal to the source numbers."""
    assert sorted(recs) == sorted(lay.expected), (sorted(recs), sorted(lay.expected))
    for sid, exp in lay.expected.items():
        r = recs[sid]
        w, h = exp["size"]
        assert (r.width, r.height) == (w, h), sid
        assert r.split == exp["split"], sid
        if "bboxes" in exp:
            got = r.bboxes * np.array([w, h, w, h], np.float32)
            np.testing.assert_allclose(got, np.asarray(exp["bboxes"], np.float32).reshape(-1, 4),
                                       atol=atol * max(w, h), err_msg=sid)
        if "landmarks" in exp:
            for i, pts in enumerate(exp["landmarks"]):
                if pts is None:
                    assert r.has_landmarks is None or r.has_landmarks[i] == 0, sid
                    continue
                assert r.has_landmarks[i] == 1, sid
                vis = np.asarray(exp.get("visible", [None] * (i + 1))[i] if exp.get("visible") else np.ones(len(pts)))
                got = r.landmarks[i] * np.array([w, h], np.float32)
                np.testing.assert_allclose(got[vis > 0], np.asarray(pts, np.float32)[vis > 0],
                                           atol=atol * max(w, h), err_msg=sid)
                np.testing.assert_array_equal(r.landmarks_visible[i], vis)
        if "pose" in exp:
            np.testing.assert_allclose(r.pose, np.asarray(exp["pose"], np.float32), atol=1e-3, err_msg=sid)
        if "identity" in exp:
            np.testing.assert_array_equal(r.identity, exp["identity"], err_msg=sid)
        for name, values in exp.get("attributes", {}).items():
            present = np.array([v is not None for v in values])
            np.testing.assert_array_equal(r.has_attributes.get(name, np.zeros(len(values))), present.astype(int),
                                          err_msg=f"{sid} {name}")
            if present.any():
                want = np.array([v for v in values if v is not None], np.float32)
                np.testing.assert_allclose(r.attributes[name][present], want, atol=1e-4, err_msg=f"{sid} {name}")
        if "parsing" in exp:
            from keras_facemt.data.codec import decode_label_map

            np.testing.assert_array_equal(decode_label_map(r.parsing), exp["parsing"], err_msg=sid)


def assert_problems_reported(result, lay: Layout) -> None:
    """Each injected defect was skipped and reported at its ``file:line``."""
    assert dict(result.problems.counts) == {k: 1 for k in lay.bad}, (dict(result.problems.counts), lay.bad)
    for kind, loc in lay.bad.items():
        assert any(m.startswith(loc + ":") for m in result.problems.messages), (kind, loc, result.problems.messages)


def check_layout(make, converter_cls, tmp_path, bad=ALL_BAD, workers: int = 1, **make_kwargs):
    """Converts a generated layout with every defect injected and checks the result.

    Returns:
        ``(layout, result, records)`` for further layout-specific assertions.
    """
    from tfrecords_tools.common import run_conversion

    lay = make(str(tmp_path / "src"), bad=bad, **make_kwargs)
    result = run_conversion(converter_cls(**lay.kwargs), str(tmp_path / "out"), workers=workers, verify_records=4)
    assert_problems_reported(result, lay)
    recs = read_dataset(str(tmp_path / "out"))
    assert_matches_source(recs, lay)
    assert result.verified >= 1
    return lay, result, recs


def check_strict(make, converter_cls, tmp_path, kind: str, **make_kwargs) -> None:
    """With ``strict`` the defect ``kind`` is fatal, names its ``file:line``, and
    leaves no output that looks complete."""
    import re

    import pytest

    from keras_facemt.errors import DataError
    from tfrecords_tools.common import run_conversion

    lay = make(str(tmp_path / f"strict_{kind}"), bad=(kind,), **make_kwargs)
    out = tmp_path / f"out_{kind}"
    with pytest.raises(DataError, match=re.escape(lay.bad[kind] + ":")):
        run_conversion(converter_cls(**lay.kwargs), str(out), strict=True, verify_records=2)
    assert not (out / "dataset.json").exists()


# --------------------------------------------------------------------------- FDDB
def make_fddb(root: str, bad=()) -> Layout:
    """FDDB: ``FDDB-folds/FDDB-fold-XX-ellipseList.txt`` + ``originalPics``."""
    import math

    lay = Layout(root, {"root": root})
    folds = {1: [], 2: []}
    entries = [(1, "2002/08/11/big/img_591", [(14.0, 10.0, 1.2, 30.0, 28.0), (8.0, 6.0, -1.5, 50.0, 40.0)]),
               (1, "2002/08/11/big/img_592", [(12.0, 9.0, 0.0, 32.0, 32.0)]),
               (2, "2003/01/01/big/img_1", [(10.0, 10.0, 0.7, 20.0, 30.0)])]
    for k, (fold, name, ells) in enumerate(entries):
        write_image(os.path.join(root, "originalPics", name + ".jpg"), k)
        folds[fold] += [name, str(len(ells))] + [f"{a} {b} {t} {x} {y}  1" for a, b, t, x, y in ells]
        boxes = []
        for a, b, t, x, y in ells:
            hw = math.sqrt((a * math.cos(t)) ** 2 + (b * math.sin(t)) ** 2)
            hh = math.sqrt((a * math.sin(t)) ** 2 + (b * math.cos(t)) ** 2)
            boxes.append([x - hw, y - hh, x + hw, y + hh])
        lay.expected[name] = {"split": f"fold{fold:02d}", "size": (64, 64), "bboxes": boxes}
    f2 = os.path.join(root, "FDDB-folds", "FDDB-fold-02-ellipseList.txt")
    lines = folds[2]
    if "missing_image" in bad:
        lines += ["2003/01/01/big/absent", "1", "5 4 0 20 20 1"]
        lay.bad["missing_image"] = f"{f2}:{len(lines) - 2}"
    if "malformed_line" in bad:
        write_image(os.path.join(root, "originalPics/2003/01/01/big/m.jpg"), 30)
        lines += ["2003/01/01/big/m", "1", "5 4 0 20 1"]
        lay.bad["malformed_line"] = f"{f2}:{len(lines)}"
    if "outside_image" in bad:
        write_image(os.path.join(root, "originalPics/2003/01/01/big/o.jpg"), 31)
        lines += ["2003/01/01/big/o", "1", "30 20 0 90 20 1"]
        lay.bad["outside_image"] = f"{f2}:{len(lines) - 2}"
    if "corrupt_image" in bad:
        p = os.path.join(root, "originalPics/2003/01/01/big/c.jpg")
        write_image(p, 32)
        corrupt_image(p)
        lines += ["2003/01/01/big/c", "1", "5 4 0 20 20 1"]
        lay.bad["corrupt_image"] = f"{f2}:{len(lines) - 2}"
    write_text(os.path.join(root, "FDDB-folds", "FDDB-fold-01-ellipseList.txt"), folds[1])
    write_text(f2, lines)
    return lay


# --------------------------------------------------------------------------- AFLW
def make_aflw(root: str, bad=()) -> Layout:
    """AFLW: ``aflw.sqlite`` (AFLW table layout) + ``flickr/<n>/imageXXXXX.jpg``."""
    import math
    import sqlite3

    from tfrecords_tools.common import ratio_split

    lay = Layout(root, {"root": root, "seed": 0, "val_fraction": 0.3, "test_fraction": 0.3})
    os.makedirs(root, exist_ok=True)
    db = os.path.join(root, "aflw.sqlite")
    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE FaceImages(image_id INTEGER, db_id TEXT, file_id TEXT, filepath TEXT, bw INTEGER,
                                width INTEGER, height INTEGER);
        CREATE TABLE Faces(face_id INTEGER, file_id TEXT, db_id TEXT);
        CREATE TABLE FaceRect(face_id INTEGER, x INTEGER, y INTEGER, w INTEGER, h INTEGER, annot_type_id INTEGER);
        CREATE TABLE FeatureCoords(face_id INTEGER, feature_id INTEGER, x REAL, y REAL, annot_type_id INTEGER);
        CREATE TABLE FacePose(face_id INTEGER, roll REAL, pitch REAL, yaw REAL, annot_type_id INTEGER);
        CREATE TABLE FaceMetaData(face_id INTEGER, sex TEXT, occluded INTEGER, glasses INTEGER, bw INTEGER,
                                  annot_type_id INTEGER);
    """)
    rng = np.random.default_rng(0)
    face_id = 100

    def add_image(k, file_id, faces, write=True):
        nonlocal face_id
        filepath = f"{k % 3}/{file_id}"
        if write:
            write_image(os.path.join(root, "flickr", filepath), k)
        con.execute("INSERT INTO FaceImages VALUES (?, 'flickr', ?, ?, 0, 64, 64)", (k, file_id, filepath))
        ids = []
        for rect, pts_visible, pose, sex in faces:
            face_id += 1
            ids.append(face_id)
            con.execute("INSERT INTO Faces VALUES (?, ?, 'flickr')", (face_id, file_id))
            con.execute("INSERT INTO FaceRect VALUES (?, ?, ?, ?, ?, 1)", (face_id, *rect))
            for feat, (x, y) in pts_visible.items():
                con.execute("INSERT INTO FeatureCoords VALUES (?, ?, ?, ?, 1)", (face_id, feat, x, y))
            con.execute("INSERT INTO FacePose VALUES (?, ?, ?, ?, 1)", (face_id, *pose))
            con.execute("INSERT INTO FaceMetaData VALUES (?, ?, 0, 0, 0, 1)", (face_id, sex))
        return filepath, ids

    def face(k):
        x, y = int(rng.integers(2, 20)), int(rng.integers(2, 20))
        pts = {f: (float(x + rng.uniform(0, 30)), float(y + rng.uniform(0, 30)))
               for f in range(1, 22) if (f + k) % 4}  # every fourth point invisible
        return (x, y, 30, 34), pts, (0.1 * k, -0.2, 0.3), "m" if k % 2 else "f"

    for k in range(4):
        faces = [face(k)] + ([face(k + 1)] if k == 0 else [])
        file_id = f"image{k:05d}.jpg"
        filepath, _ = add_image(k, file_id, faces)
        exp = {"split": ratio_split(file_id, 0, 0.3, 0.3), "size": (64, 64), "bboxes": [], "landmarks": [],
               "visible": [], "pose": [], "attributes": {"gender": []}}
        for rect, pts, pose, sex in faces:
            x, y, w, h = rect
            exp["bboxes"].append([x, y, x + w, y + h])
            full = np.zeros((21, 2))
            vis = np.zeros(21)
            for f, p in pts.items():
                full[f - 1], vis[f - 1] = p, 1
            exp["landmarks"].append(full)
            exp["visible"].append(vis)
            exp["pose"].append([math.degrees(pose[2]), math.degrees(pose[1]), math.degrees(pose[0])])
            exp["attributes"]["gender"].append(1 if sex == "m" else 0)
        lay.expected[filepath] = exp
    if "missing_image" in bad:
        _, ids = add_image(10, "image00010.jpg", [face(1)], write=False)
        lay.bad["missing_image"] = f"{db}:face_id={ids[0]}"
    if "malformed_line" in bad:
        _, ids = add_image(11, "image00011.jpg", [face(1)])
        con.execute("UPDATE FaceRect SET w = 0 WHERE face_id = ?", (ids[0],))
        lay.bad["malformed_line"] = f"{db}:face_id={ids[0]}"
    if "outside_image" in bad:
        r, pts, pose, sex = face(1)
        _, ids = add_image(12, "image00012.jpg", [((40, 40, 60, 60), pts, pose, sex)])
        lay.bad["outside_image"] = f"{db}:face_id={ids[0]}"
    if "corrupt_image" in bad:
        p, ids = add_image(13, "image00013.jpg", [face(1)])
        corrupt_image(os.path.join(root, "flickr", p))
        lay.bad["corrupt_image"] = f"{db}:face_id={ids[0]}"
    if "point_count" in bad:
        _, ids = add_image(14, "image00014.jpg", [face(1)])
        con.execute("INSERT INTO FeatureCoords VALUES (?, 22, 5.0, 5.0, 1)", (ids[0],))
        lay.bad["point_count"] = f"{db}:face_id={ids[0]}"
    con.commit()
    con.close()
    return lay


# --------------------------------------------------------------------------- 300-W .pts
def pts_text(points) -> List[str]:
    return ["version: 1", f"n_points:  {len(points)}", "{"] + [f"{x:.3f} {y:.3f}" for x, y in points] + ["}"]


def random_points(seed: int, k: int, lo: float = 8, hi: float = 56) -> np.ndarray:
    return np.random.default_rng(seed).uniform(lo, hi, (k, 2))


def make_300w(root: str, bad=()) -> Layout:
    """300-W: ``lfpw/trainset``, ``helen/testset``, ``ibug``, ``afw`` with ``.pts``."""
    lay = Layout(root, {"root": root})
    entries = [("lfpw/trainset/image_0001.png", "train"), ("helen/testset/30427236_1.jpg", "test_common"),
               ("ibug/image_003_1.jpg", "test_challenging"), ("afw/1051618982_1.jpg", "train"),
               ("300W/01_Indoor/indoor_001.png", "test_private")]
    for k, (rel, split) in enumerate(entries):
        write_image(os.path.join(root, rel), k, 64, 48)
        pts = random_points(k, 68, 4, 44)
        write_text(os.path.splitext(os.path.join(root, rel))[0] + ".pts", pts_text(pts))
        lay.expected[rel] = {"split": split, "size": (64, 48), "landmarks": [pts],
                             "bboxes": [[*pts.min(0), *pts.max(0)]]}
    d = os.path.join(root, "lfpw", "trainset")
    if "missing_image" in bad:
        write_text(os.path.join(d, "absent.pts"), pts_text(random_points(9, 68)))
        lay.bad["missing_image"] = f"{os.path.join(d, 'absent.pts')}:1"
    if "malformed_line" in bad:
        write_image(os.path.join(d, "m.jpg"), 20)
        lines = pts_text(random_points(10, 68, 4, 44))
        lines[10] = "12.5 abc"
        write_text(os.path.join(d, "m.pts"), lines)
        lay.bad["malformed_line"] = f"{os.path.join(d, 'm.pts')}:11"
    if "outside_image" in bad:
        write_image(os.path.join(d, "o.jpg"), 21, 64, 48)
        pts = random_points(11, 68, 4, 44)
        pts[5] = (150.0, 20.0)
        write_text(os.path.join(d, "o.pts"), pts_text(pts))
        lay.bad["outside_image"] = f"{os.path.join(d, 'o.pts')}:1"
    if "corrupt_image" in bad:
        write_image(os.path.join(d, "c.jpg"), 22)
        corrupt_image(os.path.join(d, "c.jpg"))
        write_text(os.path.join(d, "c.pts"), pts_text(random_points(12, 68, 4, 44)))
        lay.bad["corrupt_image"] = f"{os.path.join(d, 'c.pts')}:1"
    if "point_count" in bad:
        write_image(os.path.join(d, "p.jpg"), 23)
        write_text(os.path.join(d, "p.pts"), pts_text(random_points(13, 51, 4, 44)))
        lay.bad["point_count"] = f"{os.path.join(d, 'p.pts')}:1"
    return lay


# --------------------------------------------------------------------------- Helen parsing
def make_helen_parsing(root: str, bad=()) -> Layout:
    """Helen (Smith et al.): images/, labels/<name>/<name>_lblXX.png, split lists;
    one entry uses a single class-id map ``labels/<name>.png``."""
    lay = Layout(root, {"root": root})
    lists = {"exemplars.txt": [], "tuning.txt": [], "testing.txt": []}
    names = [("exemplars.txt", "train", "100032540_1"), ("exemplars.txt", "train", "100040721_2"),
             ("tuning.txt", "val", "1030333538_1"), ("testing.txt", "test", "2031915548_1")]

    def write_labels(name, seed, single=False, size=(48, 40)):
        w, h = size
        rng = np.random.default_rng(seed)
        label = rng.integers(0, 11, (h, w)).astype(np.uint8)
        if single:
            cv2.imwrite(os.path.join(root, "labels", name + ".png"), label)
        else:
            d = os.path.join(root, "labels", name)
            os.makedirs(d, exist_ok=True)
            for c in range(11):
                cv2.imwrite(os.path.join(d, f"{name}_lbl{c:02d}.png"), np.where(label == c, 255, 0).astype(np.uint8))
        return label

    os.makedirs(os.path.join(root, "labels"), exist_ok=True)
    for k, (lst, split, name) in enumerate(names):
        write_image(os.path.join(root, "images", name + ".jpg"), k, 48, 40)
        label = write_labels(name, k, single=(k == 3))
        lists[lst].append(f"{len(lists[lst]) + 1} , {name}")
        lay.expected[name] = {"split": split, "size": (48, 40), "bboxes": [[0, 0, 48, 40]], "parsing": label}
    t = os.path.join(root, "testing.txt")
    if "missing_image" in bad:
        write_labels("absent", 9)
        lists["testing.txt"].append(f"{len(lists['testing.txt']) + 1} , absent")
        lay.bad["missing_image"] = f"{t}:{len(lists['testing.txt'])}"
    if "malformed_line" in bad:
        lists["testing.txt"].append("this line has no comma")
        lay.bad["malformed_line"] = f"{t}:{len(lists['testing.txt'])}"
    if "corrupt_image" in bad:
        write_image(os.path.join(root, "images", "c.jpg"), 20, 48, 40)
        corrupt_image(os.path.join(root, "images", "c.jpg"))
        write_labels("c", 10)
        lists["testing.txt"].append(f"{len(lists['testing.txt']) + 1} , c")
        lay.bad["corrupt_image"] = f"{t}:{len(lists['testing.txt'])}"
    if "size_mismatch" in bad:
        write_image(os.path.join(root, "images", "s.jpg"), 21, 48, 40)
        write_labels("s", 11, size=(40, 40))
        lists["testing.txt"].append(f"{len(lists['testing.txt']) + 1} , s")
        lay.bad["size_mismatch"] = f"{t}:{len(lists['testing.txt'])}"
    for f, lines in lists.items():
        write_text(os.path.join(root, f), lines)
    return lay


# --------------------------------------------------------------------------- MTFL
def make_mtfl(root: str, bad=()) -> Layout:
    """MTFL: ``training.txt`` / ``testing.txt`` with backslash paths + images."""
    lay = Layout(root, {"root": root})
    lists = {"training.txt": [], "testing.txt": []}
    entries = [("training.txt", "train", "lfw_5590\\Aaron_Eckhart_0001.jpg", (1, 2, 2, 3)),
               ("training.txt", "train", "net_7876\\0000001.jpg", (2, 1, 1, 1)),
               ("testing.txt", "test", "AFLW\\0001-image20056.jpg", (1, 1, 2, 5))]

    def line(rel, pts, labels, lead=""):
        return lead + rel + " " + " ".join(f"{v:.2f}" for v in list(pts[:, 0]) + list(pts[:, 1])) + " " + \
            " ".join(str(v) for v in labels)

    for k, (lst, split, rel, labels) in enumerate(entries):
        write_image(os.path.join(root, rel.replace("\\", "/")), k)
        pts = np.round(np.array([[24, 26], [40, 26], [32, 34], [26, 44], [38, 44]]) + k, 2).astype(float)
        lists[lst].append(line(rel, pts, labels, " " if lst == "testing.txt" else ""))
        g, s, gl, p = labels
        # By hand: the points span 16 x 18 px about (32 + k, 35 + k); the box is the
        # square of 2.2 x the larger extent (39.6 px) about that centre.
        box = [12.2 + k, 15.2 + k, 51.8 + k, 54.8 + k]
        lay.expected[rel.replace("\\", "/")] = {
            "split": split, "size": (64, 64), "landmarks": [pts], "bboxes": [box],
            "attributes": {"gender": [int(g == 1)], "smile": [int(s == 1)], "glasses": [int(gl == 1)],
                           "pose_bin": [p - 1]}}
    t = os.path.join(root, "testing.txt")
    good = np.array([[24, 26], [40, 26], [32, 34], [26, 44], [38, 44]], float)
    if "missing_image" in bad:
        lists["testing.txt"].append(line("AFLW\\absent.jpg", good, (1, 1, 1, 3)))
        lay.bad["missing_image"] = f"{t}:{len(lists['testing.txt'])}"
    if "malformed_line" in bad:
        write_image(os.path.join(root, "AFLW/m.jpg"), 20)
        lists["testing.txt"].append(line("AFLW\\m.jpg", good, (1, 7, 1, 3)))
        lay.bad["malformed_line"] = f"{t}:{len(lists['testing.txt'])}"
    if "outside_image" in bad:
        write_image(os.path.join(root, "AFLW/o.jpg"), 21)
        lists["testing.txt"].append(line("AFLW\\o.jpg", good * 3, (1, 1, 1, 3)))
        lay.bad["outside_image"] = f"{t}:{len(lists['testing.txt'])}"
    if "corrupt_image" in bad:
        write_image(os.path.join(root, "AFLW/c.jpg"), 22)
        corrupt_image(os.path.join(root, "AFLW/c.jpg"))
        lists["testing.txt"].append(line("AFLW\\c.jpg", good, (1, 1, 1, 3)))
        lay.bad["corrupt_image"] = f"{t}:{len(lists['testing.txt'])}"
    if "point_count" in bad:
        write_image(os.path.join(root, "AFLW/p.jpg"), 23)
        lists["testing.txt"].append("AFLW\\p.jpg 1 2 3 4 5 6 7 8 1 1 1 3")
        lay.bad["point_count"] = f"{t}:{len(lists['testing.txt'])}"
    for f, lines in lists.items():
        write_text(os.path.join(root, f), lines)
    return lay


# --------------------------------------------------------------------------- CelebA
def make_celeba(root: str, bad=(), in_the_wild: bool = False) -> Layout:
    """CelebA: ``Anno/`` (attributes, landmarks, boxes, identities), ``Eval/`` partition,
    ``Img/img_align_celeba`` (or ``img_celeba``)."""
    from keras_facemt.data import schema

    lay = Layout(root, {"root": root, "in_the_wild": in_the_wild})
    sub = "img_celeba" if in_the_wild else "img_align_celeba"
    rng = np.random.default_rng(0)
    attr, lms, boxes, ids, part = [], [], [], [], []
    names = list(schema.CELEBA_ATTRIBUTES)
    for k in range(4):
        img = f"{k + 1:06d}.jpg"
        write_image(os.path.join(root, "Img", sub, img), k)
        a = rng.choice([-1, 1], 40)
        pts = np.array([[22, 26], [42, 27], [32, 36], [24, 46], [40, 46]], float) + k
        box = (4 + k, 5, 50, 52)
        attr.append(img + " " + " ".join(f"{v:2d}" for v in a))
        lms.append(f"{img}    " + "  ".join(f"{int(v)}" for v in pts.ravel()))
        boxes.append(f"{img}  {box[0]} {box[1]} {box[2]} {box[3]}")
        ids.append(f"{img} {100 + k % 2}")
        part.append(f"{img} {k % 3}")
        attrs = {f"celeba/{n}": [int(v == 1)] for n, v in zip(names, a)}
        attrs.update({"gender": attrs["celeba/Male"], "smile": attrs["celeba/Smiling"],
                      "glasses": attrs["celeba/Eyeglasses"]})
        # Aligned images: by hand, the points span 20 x 20 px about (32 + k, 36 + k); the
        # box is the square of 2.2 x 20 = 44 px about that centre.
        bbox = [box[0], box[1], box[0] + box[2], box[1] + box[3]] if in_the_wild else \
            [10 + k, 14 + k, 54 + k, 58 + k]
        lay.expected[img] = {"split": ("train", "val", "test")[k % 3], "size": (64, 64), "landmarks": [pts],
                             "bboxes": [bbox], "identity": [99 + k % 2], "attributes": attrs}
    good = "  ".join(str(v) for v in [22, 26, 42, 27, 32, 36, 24, 46, 40, 46])
    ones = " ".join(["1"] * 40)
    pfile = os.path.join(root, "Eval", "list_eval_partition.txt")
    afile = os.path.join(root, "Anno", "list_attr_celeba.txt")
    lfile = os.path.join(root, "Anno", "list_landmarks_celeba.txt" if in_the_wild
                         else "list_landmarks_align_celeba.txt")

    def add(img, landmarks=good, attributes=ones, write=True, corrupt=False):
        if write:
            write_image(os.path.join(root, "Img", sub, img), 50)
            if corrupt:
                corrupt_image(os.path.join(root, "Img", sub, img))
        attr.append(f"{img} {attributes}")
        lms.append(f"{img} {landmarks}")
        boxes.append(f"{img} 1 1 40 40")
        part.append(f"{img} 2")

    if "missing_image" in bad:
        add("100001.jpg", write=False)
        lay.bad["missing_image"] = f"{pfile}:{len(part)}"
    if "malformed_line" in bad:
        add("100002.jpg", attributes=" ".join(["1"] * 39 + ["2"]))
        lay.bad["malformed_line"] = f"{afile}:{len(attr) + 2}"
    if "outside_image" in bad:
        add("100003.jpg", landmarks="  ".join(["300"] * 10))
        lay.bad["outside_image"] = f"{pfile}:{len(part)}"
    if "corrupt_image" in bad:
        add("100004.jpg", corrupt=True)
        lay.bad["corrupt_image"] = f"{pfile}:{len(part)}"
    if "point_count" in bad:
        add("100005.jpg", landmarks="22 26 42 27 32 36 24 46")
        lay.bad["point_count"] = f"{lfile}:{len(lms) + 2}"
    write_text(afile, [str(len(attr)), " ".join(names) + " "] + attr)
    coords = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    write_text(lfile, [str(len(lms)), coords] + lms)
    write_text(os.path.join(root, "Anno", "list_bbox_celeba.txt"), [str(len(boxes)), "image_id x_1 y_1 width height"]
               + boxes)
    write_text(os.path.join(root, "Anno", "identity_CelebA.txt"), ids)
    write_text(pfile, part)
    return lay


# --------------------------------------------------------------------------- identity folders
def make_identity_folders(root: str, bad=(), as_list: bool = False) -> Layout:
    """CASIA-style ``<identity>/<image>`` tree, or an MS-Celeb style list file."""
    lay = Layout(root, {"root": root})
    names = ["0000045", "0000099", "m.0107_f"]
    lines = []
    k = 0
    for i, name in enumerate(names):
        for j in range(2):
            rel = f"{name}/{j + 1:03d}.jpg"
            write_image(os.path.join(root, rel), k)
            k += 1
            lines.append(f"{rel} {name}")
            lay.expected[rel] = {"split": "train", "size": (64, 64), "bboxes": [[0, 0, 64, 64]], "identity": [i]}
    lst = os.path.join(root, "clean_list.txt")
    if as_list:
        lay.kwargs["list_file"] = lst
        if "missing_image" in bad:
            lines.append("0000045/absent.jpg 0000045")
            lay.bad["missing_image"] = f"{lst}:{len(lines)}"
        if "malformed_line" in bad:
            lines.append("0000045/002.jpg")
            lay.bad["malformed_line"] = f"{lst}:{len(lines)}"
    if "corrupt_image" in bad:
        p = os.path.join(root, "0000099", "zz_corrupt.jpg")
        write_image(p, 40)
        corrupt_image(p)
        lines.append("0000099/zz_corrupt.jpg 0000099")
        lay.bad["corrupt_image"] = f"{lst}:{len(lines)}" if as_list else p
    write_text(lst, lines)
    return lay


# --------------------------------------------------------------------------- LFW
def make_lfw(root: str, bad=()) -> Layout:
    """LFW: ``lfw/<Name>/<Name>_XXXX.jpg`` and ``pairs.txt`` (2 folds x 1 pair)."""
    tree = os.path.join(root, "lfw")
    lay = Layout(tree, {"root": tree})
    people = {"Aaron_Peirsol": 2, "Abel_Pacheco": 2, "Zico": 1}
    names = sorted(people)
    k = 0
    for i, name in enumerate(names):
        for j in range(1, people[name] + 1):
            rel = f"{name}/{name}_{j:04d}.jpg"
            write_image(os.path.join(tree, rel), k)
            k += 1
            lay.expected[rel] = {"split": "test", "size": (64, 64), "identity": [i]}
    lines = ["2\t1", "Aaron_Peirsol\t1\t2", "Aaron_Peirsol\t1\tZico\t1", "Abel_Pacheco\t1\t2",
             "Abel_Pacheco\t2\tZico\t1"]
    lay.pairs = [(0, "Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Aaron_Peirsol/Aaron_Peirsol_0002.jpg", True),
                 (0, "Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Zico/Zico_0001.jpg", False),
                 (1, "Abel_Pacheco/Abel_Pacheco_0001.jpg", "Abel_Pacheco/Abel_Pacheco_0002.jpg", True),
                 (1, "Abel_Pacheco/Abel_Pacheco_0002.jpg", "Zico/Zico_0001.jpg", False)]
    pf = os.path.join(root, "pairs.txt")
    if "missing_image" in bad:
        lines.append("Zico\t1\t7")
        lay.bad["missing_image"] = f"{pf}:{len(lines)}"
    if "malformed_line" in bad:
        lines.append("Zico\tone\ttwo")
        lay.bad["malformed_line"] = f"{pf}:{len(lines)}"
    if "corrupt_image" in bad:
        p = os.path.join(tree, "Zico", "Zico_0002.jpg")
        write_image(p, 40)
        corrupt_image(p)
        lay.bad["corrupt_image"] = p
    write_text(pf, lines)
    return lay


# --------------------------------------------------------------------------- emotion folders
def make_emotion_folders(root: str, bad=(), split_dirs: bool = True) -> Layout:
    """BNU-LSVED style frames: ``<split>/<emotion>/<video>/<frame>.jpg``."""
    from keras_facemt.data import schema

    lay = Layout(root, {"root": root})
    k = 0
    for split in ("train", "test") if split_dirs else (None,):
        for emo in ("Happy", "surprise", "tired"):
            for frame in range(2):
                rel = "/".join(p for p in (split, emo, "video01", f"frame{frame:03d}.jpg") if p)
                write_image(os.path.join(root, rel), k)
                k += 1
                name = {"Happy": "happy", "surprise": "surprised", "tired": "tired"}[emo]
                lay.expected[rel] = {"split": split, "size": (64, 64),
                                     "attributes": {"emotion": [schema.EMOTIONS.index(name)]}}
    base = os.path.join(root, "train") if split_dirs else root
    if "malformed_line" in bad:
        write_image(os.path.join(base, "angry", "v", "f.jpg"), 50)
        lay.bad["malformed_line"] = os.path.join(base, "angry")
    if "corrupt_image" in bad:
        p = os.path.join(base, "tired", "video02", "c.jpg")
        write_image(p, 51)
        corrupt_image(p)
        lay.bad["corrupt_image"] = p
    return lay


# --------------------------------------------------------------------------- MORPH II
def make_morph(root: str, bad=()) -> Layout:
    """MORPH II: ``morph_2008_nonCommercial.csv`` + ``Album2/<id>_<pic><G><age>.JPG``."""
    from tfrecords_tools.common import ratio_split

    lay = Layout(root, {"root": root, "val_fraction": 0.0, "test_fraction": 0.5})
    header = "id_num,picture_num,dob,doa,race,gender,facial_hair,age,age_diff,glasses,photo"
    rows = []
    people = [("003384", "B", "M", 20), ("003384", "B", "M", 22), ("012345", "W", "F", 41), ("200001", "H", "M", 33)]
    for k, (pid, race, g, age) in enumerate(people):
        rel = f"Album2/{pid}_{k:02d}{g}{age}.JPG"
        write_image(os.path.join(root, rel), k)
        rows.append(f"{pid},{k:02d},01/01/1980,01/01/2000,{race},{g},0,{age},0,0,{rel}")
        attrs = {"age": [float(age)], "gender": [int(g == "M")],
                 "ethnicity": [{"W": 0, "B": 1, "A": 2}.get(race)]}
        lay.expected[rel] = {"split": ratio_split(pid, 0, 0.0, 0.5), "size": (64, 64), "attributes": attrs,
                             "identity": [{"003384": 0, "012345": 1, "200001": 2}[pid]]}
    csv_path = os.path.join(root, "morph_2008_nonCommercial.csv")
    if "missing_image" in bad:
        rows.append("300000,00,x,x,W,M,0,30,0,0,Album2/absent.JPG")
        lay.bad["missing_image"] = f"{csv_path}:{len(rows) + 1}"
    if "malformed_line" in bad:
        write_image(os.path.join(root, "Album2/m.JPG"), 20)
        rows.append("300001,00,x,x,W,X,0,30,0,0,Album2/m.JPG")
        lay.bad["malformed_line"] = f"{csv_path}:{len(rows) + 1}"
    if "corrupt_image" in bad:
        write_image(os.path.join(root, "Album2/c.JPG"), 21)
        corrupt_image(os.path.join(root, "Album2/c.JPG"))
        rows.append("300002,00,x,x,W,M,0,30,0,0,Album2/c.JPG")
        lay.bad["corrupt_image"] = f"{csv_path}:{len(rows) + 1}"
    write_text(csv_path, [header] + rows)
    return lay


# --------------------------------------------------------------------------- IMDB-WIKI
def make_imdb_wiki(root: str, bad=()) -> Layout:
    """IMDB-WIKI: ``imdb.mat`` (MATLAB v5 struct) + ``<nn>/<name>.jpg`` images, with
    entries the usual filtering drops (low face score, second face, unknown gender)."""
    import datetime

    import scipy.io

    from tfrecords_tools.common import ratio_split

    lay = Layout(root, {"root": root})
    os.makedirs(root, exist_ok=True)

    def datenum(y, m, d):
        return float(datetime.date(y, m, d).toordinal() + 366)

    rows = []  # path, dob, taken, gender, loc, score, second, expected?
    good = [("01/nm0000001_rm1_1950-3-1_1980.jpg", datenum(1950, 3, 1), 1980, 1.0, [5, 6, 40, 50]),
            ("02/nm0000002_rm2_1961-9-10_2001.jpg", datenum(1961, 9, 10), 2001, 0.0, [10.5, 4, 60, 60])]
    for k, (rel, dob, taken, g, loc) in enumerate(good):
        write_image(os.path.join(root, rel), k)
        rows.append((rel, dob, taken, g, loc, 3.5, float("nan")))
        age = 30 if k == 0 else 39
        lay.expected[f"imdb.mat/{rel}"] = {"split": ratio_split(rel, 0, 0.05, 0.05), "size": (64, 64),
                                           "bboxes": [loc], "attributes": {"age": [float(age)], "gender": [int(g)]}}
    for k, (score, second, g) in enumerate([(-np.inf, np.nan, 1.0), (2.0, 1.5, 1.0), (2.0, np.nan, np.nan)]):
        rel = f"03/filtered_{k}.jpg"
        write_image(os.path.join(root, rel), 10 + k)
        rows.append((rel, datenum(1970, 1, 1), 2000, g, [1, 1, 1, 1], score, second))
    if "missing_image" in bad:
        rows.append(("04/absent.jpg", datenum(1970, 1, 1), 2000, 1.0, [1, 1, 20, 20], 3.0, np.nan))
        lay.bad["missing_image"] = f"{os.path.join(root, 'imdb.mat')}:entry={len(rows)}"
    if "malformed_line" in bad:
        write_image(os.path.join(root, "04/m.jpg"), 20)
        rows.append(("04/m.jpg", datenum(1970, 1, 1), 2000, 1.0, [1, 1, 20], 3.0, np.nan))
        lay.bad["malformed_line"] = f"{os.path.join(root, 'imdb.mat')}:entry={len(rows)}"
    if "outside_image" in bad:
        write_image(os.path.join(root, "04/o.jpg"), 21)
        rows.append(("04/o.jpg", datenum(1970, 1, 1), 2000, 1.0, [30, 30, 200, 200], 3.0, np.nan))
        lay.bad["outside_image"] = f"{os.path.join(root, 'imdb.mat')}:entry={len(rows)}"
    if "corrupt_image" in bad:
        write_image(os.path.join(root, "04/c.jpg"), 22)
        corrupt_image(os.path.join(root, "04/c.jpg"))
        rows.append(("04/c.jpg", datenum(1970, 1, 1), 2000, 1.0, [1, 1, 20, 20], 3.0, np.nan))
        lay.bad["corrupt_image"] = f"{os.path.join(root, 'imdb.mat')}:entry={len(rows)}"
    n = len(rows)
    paths = np.empty(n, dtype=object)
    locs = np.empty(n, dtype=object)
    for i, r in enumerate(rows):
        paths[i] = r[0]
        locs[i] = np.asarray(r[4], np.float64)
    scipy.io.savemat(os.path.join(root, "imdb.mat"), {"imdb": {
        "full_path": paths, "dob": np.array([r[1] for r in rows]), "photo_taken": np.array([r[2] for r in rows]),
        "gender": np.array([r[3] for r in rows]), "face_location": locs,
        "face_score": np.array([r[5] for r in rows]), "second_face_score": np.array([r[6] for r in rows]),
        "name": paths.copy()}})
    return lay


# --------------------------------------------------------------------------- Adience
def make_adience(root: str, bad=()) -> Layout:
    """Adience: ``fold_{0,1}_data.txt`` (tab-separated) + ``aligned/<user>/landmark_aligned_face.*``."""
    lay = Layout(root, {"root": root})
    header = "user_id\toriginal_image\tface_id\tage\tgender\tx\ty\tdx\tdy\ttilt_ang\tfiducial_yaw_angle\tfiducial_score"
    folds = {0: [header], 1: [header]}
    entries = [(0, "30601258@N03", "10399646885_67c7d20df9_o.jpg", 1, "(25, 32)", "f", 4, "f"),
               (0, "30601258@N03", "10424815813_e94629b1ec_o.jpg", 2, "(60, 100)", "m", 7, "m"),
               (1, "7153718@N04", "11315206224_3b6e6e1b8b_o.jpg", 3, "35", "u", 4, None),
               (1, "7153718@N04", "11315206225_aaaaaaaaaa_o.jpg", 4, "None", "", None, None)]
    for k, (fold, user, img, fid, age, g, group, gender) in enumerate(entries):
        rel = f"aligned/{user}/landmark_aligned_face.{fid}.{img}"
        write_image(os.path.join(root, rel), k)
        folds[fold].append(f"{user}\t{img}\t{fid}\t{age}\t{g}\t1\t2\t300\t300\t-90\t0\t50")
        lay.expected[rel] = {"split": f"fold{fold}", "size": (64, 64), "bboxes": [[0, 0, 64, 64]],
                             "attributes": {"age_group": [group],
                                            "gender": [None if gender is None else int(gender == "m")]}}
    f1 = os.path.join(root, "fold_1_data.txt")
    if "missing_image" in bad:
        folds[1].append("7153718@N04\tabsent.jpg\t9\t(8, 12)\tm\t1\t2\t3\t4\t0\t0\t50")
        lay.bad["missing_image"] = f"{f1}:{len(folds[1])}"
    if "malformed_line" in bad:
        write_image(os.path.join(root, "aligned/7153718@N04/landmark_aligned_face.10.m.jpg"), 20)
        folds[1].append("7153718@N04\tm.jpg\t10\tforty\tm\t1\t2\t3\t4\t0\t0\t50")
        lay.bad["malformed_line"] = f"{f1}:{len(folds[1])}"
    if "corrupt_image" in bad:
        p = os.path.join(root, "aligned/7153718@N04/landmark_aligned_face.11.c.jpg")
        write_image(p, 21)
        corrupt_image(p)
        folds[1].append("7153718@N04\tc.jpg\t11\t(8, 12)\tm\t1\t2\t3\t4\t0\t0\t50")
        lay.bad["corrupt_image"] = f"{f1}:{len(folds[1])}"
    for fold, lines in folds.items():
        write_text(os.path.join(root, f"fold_{fold}_data.txt"), lines)
    return lay


# --------------------------------------------------------------------------- JSON lines
def make_jsonl(root: str, bad=()) -> Layout:
    """Generic JSON lines, pixel and normalised coordinates, with a parsing map."""
    import json

    lay = Layout(root, {"root": root})
    lines = []
    write_image(os.path.join(root, "images/a.jpg"), 0)
    pts = [[20, 24], [44, 24], [32, 34], [24, 46], [40, 46]]
    lines.append(json.dumps({"image": "images/a.jpg", "split": "train", "landmark_scheme": "mtfl5", "has_boxes": 1,
                             "faces": [{"bbox": [10, 12, 54, 60], "landmarks": pts, "pose": [10, -5, 2],
                                        "identity": 3, "attributes": {"age": 31.5, "gender": 1, "emotion": 2}}]}))
    lay.expected["images/a.jpg"] = {"split": "train", "size": (64, 64), "bboxes": [[10, 12, 54, 60]],
                                    "landmarks": [pts], "pose": [[10, -5, 2]], "identity": [3],
                                    "attributes": {"age": [31.5], "gender": [1], "emotion": [2]}}
    write_image(os.path.join(root, "images/b.png"), 1, 48, 32)
    label = np.random.default_rng(0).integers(0, 11, (32, 48)).astype(np.uint8)
    os.makedirs(os.path.join(root, "labels"), exist_ok=True)
    cv2.imwrite(os.path.join(root, "labels/b.png"), label)
    lines.append(json.dumps({"image": "images/b.png", "split": "val", "coordinates": "normalized",
                             "parsing": "labels/b.png", "faces": [{"bbox": [0.25, 0.25, 0.75, 0.5]}, {}]}))
    lay.expected["images/b.png"] = {"split": "val", "size": (48, 32), "bboxes": [[12, 8, 36, 16], [0, 0, 48, 32]],
                                    "parsing": label}
    f = os.path.join(root, "annotations.jsonl")
    if "missing_image" in bad:
        lines.append(json.dumps({"image": "images/absent.jpg"}))
        lay.bad["missing_image"] = f"{f}:{len(lines)}"
    if "malformed_line" in bad:
        lines.append('{"image": "images/a.jpg", "faces": [{"bbox": [1, 2, 3, 4], "atributes": {}}]}')
        lay.bad["malformed_line"] = f"{f}:{len(lines)}"
    if "outside_image" in bad:
        lines.append(json.dumps({"image": "images/a.jpg", "source_id": "o", "faces": [{"bbox": [40, 40, 120, 90]}]}))
        lay.bad["outside_image"] = f"{f}:{len(lines)}"
    if "corrupt_image" in bad:
        write_image(os.path.join(root, "images/c.jpg"), 2)
        corrupt_image(os.path.join(root, "images/c.jpg"))
        lines.append(json.dumps({"image": "images/c.jpg"}))
        lay.bad["corrupt_image"] = f"{f}:{len(lines)}"
    if "point_count" in bad:
        lines.append(json.dumps({"image": "images/a.jpg", "source_id": "p", "landmark_scheme": "ibug68",
                                 "faces": [{"landmarks": pts}]}))
        lay.bad["point_count"] = f"{f}:{len(lines)}"
    write_text(f, lines)
    return lay
