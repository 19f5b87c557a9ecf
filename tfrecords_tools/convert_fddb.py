"""FDDB (Jain and Learned-Miller, 2010) -> detection shards, one split per fold.

Layout as distributed::

    <root>/FDDB-folds/FDDB-fold-01-ellipseList.txt ... -10-ellipseList.txt
    <root>/originalPics/2002/08/11/big/img_591.jpg

An ellipse-list entry is the image path without extension, the face count, then one
line per face ``major_axis_radius minor_axis_radius angle center_x center_y 1``
(pixels; the angle, in radians, is that of the major axis from the x axis). A face
is stored as the axis-aligned box that bounds its ellipse. The fold is kept as the
split (``fold01`` ... ``fold10``), as the FDDB protocol cross-validates over folds.
"""

from __future__ import annotations

import glob
import math
import os
import re
from typing import Iterator, List, Optional, Sequence

from keras_facemt.errors import DataError
from tfrecords_tools.common import (
    MALFORMED,
    Converter,
    Face,
    Problem,
    Problems,
    Sample,
    parse_floats,
    read_lines,
    where,
)


def ellipse_to_box(major: float, minor: float, angle: float, cx: float, cy: float) -> List[float]:
    """Axis-aligned ``(xmin, ymin, xmax, ymax)`` bounding an FDDB ellipse."""
    c, s = math.cos(angle), math.sin(angle)
    half_w = math.sqrt((major * c) ** 2 + (minor * s) ** 2)
    half_h = math.sqrt((major * s) ** 2 + (minor * c) ** 2)
    return [cx - half_w, cy - half_h, cx + half_w, cy + half_h]


class FddbConverter(Converter):
    """FDDB ellipse lists.

    Args:
        root: directory holding ``FDDB-folds/`` and ``originalPics/``.
        folds: fold numbers to convert (None: every fold file present).
    """

    name = "fddb"
    dataset = "fddb"
    version = "1"
    description = "FDDB FDDB-folds/FDDB-fold-XX-ellipseList.txt (fold kept as split)"

    def __init__(self, root: str, folds: Optional[Sequence[int]] = None):
        super().__init__(root)
        self.folds = sorted(int(f) for f in folds) if folds else None

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--folds", type=int, nargs="+", default=None, help="fold numbers (default: all)")

    def _fold_files(self):
        files = sorted(glob.glob(os.path.join(self.root, "FDDB-folds", "FDDB-fold-*-ellipseList.txt")))
        out = []
        for f in files:
            m = re.search(r"FDDB-fold-(\d+)-ellipseList\.txt$", f)
            if m and (self.folds is None or int(m.group(1)) in self.folds):
                out.append((int(m.group(1)), f))
        if not out:
            raise DataError(f"{os.path.join(self.root, 'FDDB-folds')}: no FDDB-fold-XX-ellipseList.txt files"
                            + (f" for folds {self.folds}" if self.folds else "") + ".")
        return out

    def source_files(self) -> List[str]:
        return [f for _, f in self._fold_files()]

    def samples(self, problems: Problems) -> Iterator[Sample]:
        for fold, path in self._fold_files():
            yield from self._parse(path, f"fold{fold:02d}", problems)

    def _parse(self, path: str, split: str, problems: Problems) -> Iterator[Sample]:
        lines = [(ln, t.strip()) for ln, t in read_lines(path)]
        lines = [(ln, t) for ln, t in lines if t]
        i = 0
        while i < len(lines):
            ln, name = lines[i]
            loc = where(path, ln)
            if i + 1 >= len(lines) or not lines[i + 1][1].isdigit():
                problems.report(loc, MALFORMED, f"expected an image path followed by a face count near {name!r}")
                i += 1
                continue
            count = int(lines[i + 1][1])
            body = lines[i + 2 : i + 2 + count]
            i += 2 + count
            try:
                if len(body) < count:
                    raise Problem(loc, MALFORMED, f"{name}: {count} faces announced, file ends after {len(body)}")
                faces = []
                for fl, text in body:
                    floc = where(path, fl)
                    tok = text.split()
                    if len(tok) != 6:
                        raise Problem(floc, MALFORMED, "expected 'major_axis_radius minor_axis_radius angle "
                                                       f"center_x center_y 1', got {len(tok)} values")
                    major, minor, angle, cx, cy, _ = parse_floats(tok, floc, "ellipse")
                    if major <= 0 or minor <= 0:
                        raise Problem(floc, MALFORMED, f"ellipse radii must be positive, got {major}, {minor}")
                    faces.append(Face(bbox=ellipse_to_box(major, minor, angle, cx, cy)))
            except Problem as p:
                problems.add(p)
                continue
            yield Sample(image_path=os.path.join(self.root, "originalPics", name + ".jpg"),
                         source_id=name, split=split, origin=loc, faces=faces, has_boxes=1)
