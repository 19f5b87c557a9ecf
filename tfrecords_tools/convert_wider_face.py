"""WIDER FACE (Yang et al., CVPR 2016) -> detection shards, optional 5-point landmarks.

Layout as distributed::

    <root>/wider_face_split/wider_face_train_bbx_gt.txt
    <root>/wider_face_split/wider_face_val_bbx_gt.txt
    <root>/WIDER_train/images/<event>/<name>.jpg
    <root>/WIDER_val/images/<event>/<name>.jpg

Each ground-truth entry is the image path, the face count, then one line per face
``x y w h blur expression illumination invalid occlusion pose`` (pixels). An image with
no face has count 0 followed by one all-zero line, which is skipped. Zero-size boxes
(a handful in the release) are dropped and counted; boxes flagged ``invalid`` are
kept, since they are faces and the image's box list is exhaustive (``has_boxes=1``).

The optional RetinaFace annotation (``--retinaface-dir`` holding ``train/label.txt``
and/or ``val/label.txt``): ``# <path>`` then one line per face ``x y w h`` followed,
on train, by five ``x y flag`` triples (left eye, right eye, nose, left and right
mouth corner, image left first) and a score; ``-1`` marks absent points. Its faces
are matched to the ground truth by their boxes, and the points stored as ``mtfl5``.
"""

from __future__ import annotations

import collections
import os
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from tfrecords_tools.common import (
    MALFORMED,
    POINT_COUNT,
    Converter,
    Face,
    Problem,
    Problems,
    Sample,
    find_file,
    parse_floats,
    read_lines,
    where,
)

SPLITS = ("train", "val")


class WiderFaceConverter(Converter):
    """WIDER FACE ground truth (+ RetinaFace 5-point labels).

    Args:
        root: directory holding ``wider_face_split/`` and ``WIDER_<split>/``.
        retinaface_dir: directory with ``<split>/label.txt`` (optional).
        splits: splits to convert.
    """

    name = "wider_face"
    dataset = "wider_face"
    version = "1"
    description = "WIDER FACE bbx_gt files (+ RetinaFace label.txt landmarks)"

    def __init__(self, root: str, retinaface_dir: Optional[str] = None, splits: Tuple[str, ...] = SPLITS):
        super().__init__(root)
        self.retinaface_dir = os.path.abspath(retinaface_dir) if retinaface_dir else None
        self.splits = tuple(splits)

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--retinaface-dir", default=None,
                            help="directory with <split>/label.txt (RetinaFace 5-point labels)")
        parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)

    def _gt_file(self, split: str) -> str:
        return find_file(self.root, [f"wider_face_split/wider_face_{split}_bbx_gt.txt",
                                     f"wider_face_{split}_bbx_gt.txt"], f"WIDER FACE {split} ground truth")

    def _label_file(self, split: str) -> Optional[str]:
        if not self.retinaface_dir:
            return None
        return find_file(self.retinaface_dir, [f"{split}/label.txt"], f"RetinaFace {split} label.txt", required=False)

    def source_files(self) -> List[str]:
        files = [self._gt_file(s) for s in self.splits]
        return files + [f for f in (self._label_file(s) for s in self.splits) if f]

    def _read_retinaface(self, path: str, problems: Problems) -> Dict[str, Dict[Tuple[int, ...], np.ndarray]]:
        """image path -> rounded box -> ``[5, 3]`` (x, y, visible) or absent."""
        out: Dict[str, Dict[Tuple[int, ...], np.ndarray]] = collections.defaultdict(dict)
        current = None
        for ln, line in read_lines(path):
            if not line.strip():
                continue
            if line.startswith("#"):
                current = line[1:].strip()
                continue
            loc = where(path, ln)
            try:
                if current is None:
                    raise Problem(loc, MALFORMED, "face line before any '# <image>' line")
                tok = line.split()
                if len(tok) not in (4, 19, 20):
                    raise Problem(loc, POINT_COUNT,
                                  f"expected 4 box values and 5 points (x y flag), got {len(tok)} values")
                v = parse_floats(tok, loc, "RetinaFace label")
                key = tuple(int(round(x)) for x in v[:4])
                if len(v) >= 19:
                    out[current][key] = np.asarray(v[4:19], np.float64).reshape(5, 3)
            except Problem as p:
                problems.add(p)
        return out

    def samples(self, problems: Problems) -> Iterator[Sample]:
        for split in self.splits:
            gt = self._gt_file(split)
            label = self._label_file(split)
            points = self._read_retinaface(label, problems) if label else {}
            image_dir = os.path.join(self.root, f"WIDER_{split}", "images")
            yield from self._parse_gt(gt, split, image_dir, points, problems)

    def _parse_gt(self, path, split, image_dir, points, problems) -> Iterator[Sample]:
        lines = list(read_lines(path))
        i = 0
        while i < len(lines):
            ln, name = lines[i]
            name = name.strip()
            if not name:
                i += 1
                continue
            loc = where(path, ln)
            if not name.lower().endswith((".jpg", ".jpeg", ".png")):
                problems.report(loc, MALFORMED, f"expected an image path, got {name!r}")
                i += 1
                continue
            if i + 1 >= len(lines) or not lines[i + 1][1].strip().isdigit():
                got = lines[i + 1][1].strip() if i + 1 < len(lines) else "end of file"
                problems.report(where(path, ln + 1), MALFORMED, f"expected the face count of {name}, got {got!r}")
                i += 1
                continue
            count = int(lines[i + 1][1])
            body = lines[i + 2 : i + 2 + max(count, 1)]  # a zero-face entry still has one line
            i += 2 + max(count, 1)
            try:
                faces = []
                face_lines = body if count else []
                if len(body) < max(count, 1):
                    raise Problem(loc, MALFORMED, f"{name}: {count} faces announced, file ends after {len(body)}")
                for fl, text in face_lines:
                    floc = where(path, fl)
                    tok = text.split()
                    if len(tok) != 10:
                        raise Problem(floc, MALFORMED, f"expected 10 values 'x y w h blur expression "
                                                       f"illumination invalid occlusion pose', got {len(tok)}")
                    x, y, w, h = parse_floats(tok[:4], floc, "face box")
                    if w <= 0 or h <= 0:
                        continue  # zero-size boxes in the release carry no face
                    face = Face(bbox=(x, y, x + w, y + h))
                    pts = points.get(name, {}).get((int(round(x)), int(round(y)), int(round(w)), int(round(h))))
                    if pts is not None and np.all(pts[:, :2] >= 0):
                        face.landmarks = pts[:, :2]
                    faces.append(face)
            except Problem as p:
                problems.add(p)
                continue
            has_points = any(f.landmarks is not None for f in faces)
            yield Sample(image_path=os.path.join(image_dir, name), source_id=f"{split}/{name}", split=split,
                         origin=loc, faces=faces, has_boxes=1, landmark_scheme="mtfl5" if has_points else "none")
