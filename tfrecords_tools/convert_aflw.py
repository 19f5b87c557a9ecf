"""AFLW (Koestinger et al., 2011) -> boxes, ``aflw21`` landmarks with visibility,
pose and gender.

Layout as distributed: ``aflw.sqlite`` (read with the stdlib ``sqlite3``) and the
images under ``flickr/<filepath>``. Tables used::

    FaceImages(file_id, filepath, width, height)
    Faces(face_id, file_id)
    FaceRect(face_id, x, y, w, h)              face box, pixels
    FeatureCoords(face_id, feature_id, x, y)   one row per *visible* point, ids 1..21
    FacePose(face_id, roll, pitch, yaw)        radians
    FaceMetaData(face_id, sex)                 'm' / 'f'

Feature id ``i`` becomes ``aflw21`` index ``i - 1`` (the scheme follows the AFLW id
order, image left first); points without a row are stored invisible. Pose is stored
in degrees as (yaw, pitch, roll). One record holds all faces of an image. AFLW
defines no split, so images are split by a seeded hash of their file id.
Locations in reports read ``aflw.sqlite:face_id=<id>``.
"""

from __future__ import annotations

import collections
import math
import os
import sqlite3
from typing import Dict, Iterator, List, Optional

import numpy as np

from keras_facemt.errors import DataError
from tfrecords_tools.common import (
    MALFORMED,
    POINT_COUNT,
    Converter,
    Face,
    Problem,
    Problems,
    Sample,
    check_fractions,
    find_file,
    ratio_split,
)

NUM_FEATURES = 21


class AflwConverter(Converter):
    """AFLW sqlite database.

    Args:
        root: directory holding ``aflw.sqlite`` (or ``data/aflw.sqlite``) and the
            ``flickr/`` (or ``data/flickr/``) image tree.
        sqlite: explicit path of ``aflw.sqlite``.
        image_dir: explicit image directory (``filepath`` is relative to it).
        seed, val_fraction, test_fraction: the seeded split.
    """

    name = "aflw"
    dataset = "aflw"
    version = "1"
    description = "AFLW aflw.sqlite -> boxes, aflw21 landmarks, pose, gender"
    split_source = "seeded ratio by image"

    def __init__(self, root: str, sqlite: Optional[str] = None, image_dir: Optional[str] = None,
                 seed: int = 0, val_fraction: float = 0.05, test_fraction: float = 0.1):
        super().__init__(root)
        check_fractions(val_fraction, test_fraction)
        self.sqlite = os.path.abspath(sqlite) if sqlite else find_file(
            self.root, ["aflw.sqlite", "data/aflw.sqlite"], "AFLW database aflw.sqlite")
        if not os.path.isfile(self.sqlite):
            raise DataError(f"{self.sqlite}: AFLW database not found.")
        if image_dir is None:
            for c in ("flickr", "data/flickr", "."):
                if os.path.isdir(os.path.join(self.root, c)):
                    image_dir = os.path.join(self.root, c)
                    break
        self.image_dir = os.path.abspath(image_dir)
        self.seed, self.val_fraction, self.test_fraction = seed, val_fraction, test_fraction

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--sqlite", default=None, help="path of aflw.sqlite (default: searched under root)")
        parser.add_argument("--image-dir", default=None, help="image directory (default: root/flickr)")

    def source_files(self) -> List[str]:
        return [self.sqlite]

    def options(self):
        return {"seed": self.seed, "val_fraction": self.val_fraction, "test_fraction": self.test_fraction}

    def samples(self, problems: Problems) -> Iterator[Sample]:
        try:
            con = sqlite3.connect(f"file:{self.sqlite}?mode=ro", uri=True)
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as e:
            raise DataError(f"{self.sqlite}: not a readable sqlite database ({e}).") from None
        missing = {"FaceImages", "Faces", "FaceRect", "FeatureCoords"} - tables
        if missing:
            raise DataError(f"{self.sqlite}: missing AFLW tables {sorted(missing)}.")
        try:
            rects = {r[0]: r[1:] for r in con.execute("SELECT face_id, x, y, w, h FROM FaceRect")}
            coords: Dict[int, list] = collections.defaultdict(list)
            for fid, feat, x, y in con.execute("SELECT face_id, feature_id, x, y FROM FeatureCoords"):
                coords[fid].append((feat, x, y))
            poses = ({r[0]: r[1:] for r in con.execute("SELECT face_id, roll, pitch, yaw FROM FacePose")}
                     if "FacePose" in tables else {})
            sexes = ({r[0]: r[1] for r in con.execute("SELECT face_id, sex FROM FaceMetaData")}
                     if "FaceMetaData" in tables else {})
            rows = con.execute(
                "SELECT Faces.face_id, Faces.file_id, FaceImages.filepath FROM Faces "
                "JOIN FaceImages ON Faces.file_id = FaceImages.file_id ORDER BY Faces.file_id, Faces.face_id"
            ).fetchall()
        finally:
            con.close()

        by_image: Dict[str, list] = collections.OrderedDict()
        for face_id, file_id, filepath in rows:
            by_image.setdefault(file_id, []).append((face_id, filepath))
        for file_id, faces in by_image.items():
            loc = f"{self.sqlite}:face_id={faces[0][0]}"
            try:
                out = [self._face(f"{self.sqlite}:face_id={fid}", fid, rects, coords, poses, sexes)
                       for fid, _ in faces]
            except Problem as p:
                problems.add(p)
                continue
            filepath = faces[0][1]
            yield Sample(image_path=os.path.join(self.image_dir, filepath), source_id=filepath,
                         split=ratio_split(file_id, self.seed, self.val_fraction, self.test_fraction),
                         origin=loc, faces=out, has_boxes=0, landmark_scheme="aflw21")

    @staticmethod
    def _face(loc, fid, rects, coords, poses, sexes) -> Face:
        rect = rects.get(fid)
        if rect is None or any(v is None for v in rect):
            raise Problem(loc, MALFORMED, "face has no FaceRect row")
        x, y, w, h = (float(v) for v in rect)
        if w <= 0 or h <= 0:
            raise Problem(loc, MALFORMED, f"FaceRect has a non-positive size {w}x{h}")
        pts = np.zeros((NUM_FEATURES, 2))
        vis = np.zeros(NUM_FEATURES)
        for feat, px, py in coords.get(fid, []):
            if feat is None or not 1 <= int(feat) <= NUM_FEATURES:
                raise Problem(loc, POINT_COUNT, f"feature_id {feat} is not one of the {NUM_FEATURES} AFLW points")
            if px is None or py is None:
                raise Problem(loc, MALFORMED, f"feature_id {feat} has no coordinates")
            pts[int(feat) - 1] = (float(px), float(py))
            vis[int(feat) - 1] = 1.0
        face = Face(bbox=(x, y, x + w, y + h), landmarks=pts, visible=vis)
        if fid in poses and None not in poses[fid]:
            roll, pitch, yaw = (math.degrees(float(v)) for v in poses[fid])
            face.pose = (yaw, pitch, roll)
        sex = (sexes.get(fid) or "").strip().lower()
        if sex in ("m", "f"):
            face.attributes["gender"] = 1 if sex == "m" else 0
        return face
