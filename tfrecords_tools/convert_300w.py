"""300-W / iBUG / LFPW / HELEN / AFW ``.pts`` markups -> ``ibug68`` landmarks.

Layout as distributed: each image has a ``.pts`` file with the same stem beside it::

    version: 1
    n_points:  68
    {
    x y
    ... (68 lines)
    }

Points are pixels and stored as given, normalised by the image size. The face box
is the extent of the 68 points (brow to chin, ear to ear), unless a box file is
given. Splits follow the 300-W protocol from the directory names: ``trainset`` and
``afw`` -> ``train``; ``lfpw/testset`` and ``helen/testset`` -> ``test_common``;
``ibug`` -> ``test_challenging``; ``01_Indoor`` / ``02_Outdoor`` (the 300-W test
set) -> ``test_private``; anything else -> ``train``.
"""

from __future__ import annotations

import os
from typing import Iterator, List, Optional

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
    box_around_points,
    find_image,
    parse_floats,
    read_lines,
    where,
)

NUM_POINTS = 68


def split_for_path(rel: str) -> str:
    """300-W protocol split of a file from its path relative to the root."""
    parts = [p.lower() for p in rel.replace("\\", "/").split("/")]
    if "ibug" in parts:
        return "test_challenging"
    if any(p in ("01_indoor", "02_outdoor") for p in parts):
        return "test_private"
    if "testset" in parts:
        return "test_common"
    return "train"


def read_pts(path: str) -> np.ndarray:
    """Points ``[n, 2]`` of a ``.pts`` file.

    Raises:
        Problem: ``file:line: reason`` for a malformed header or point line, or a
            point count other than the header's ``n_points``.
    """
    lines = list(read_lines(path))
    n = None
    pts = []
    in_body = False
    for ln, line in lines:
        t = line.strip()
        if not t:
            continue
        if not in_body:
            if t.startswith("version:"):
                continue
            if t.startswith("n_points:"):
                try:
                    n = int(t.split(":", 1)[1])
                except ValueError:
                    raise Problem(where(path, ln), MALFORMED, f"bad n_points line {t!r}") from None
                continue
            if t == "{":
                in_body = True
                continue
            raise Problem(where(path, ln), MALFORMED, f"unexpected header line {t!r}")
        if t == "}":
            in_body = None
            break
        tok = t.split()
        if len(tok) != 2:
            raise Problem(where(path, ln), MALFORMED, f"expected 'x y', got {t!r}")
        pts.append(parse_floats(tok, where(path, ln), "point"))
    if n is None or in_body is False:
        raise Problem(where(path, 1), MALFORMED, "missing 'n_points:' header or '{' line")
    if in_body is not None:
        raise Problem(where(path, len(lines)), MALFORMED, "missing closing '}'")
    if len(pts) != n:
        raise Problem(where(path, 1), POINT_COUNT, f"n_points is {n} but {len(pts)} points are listed")
    return np.asarray(pts, np.float64).reshape(-1, 2)


class Pts68Converter(Converter):
    """``.pts`` files beside images (300-W and its source sets).

    Args:
        root: directory searched recursively for ``.pts`` files.
        dataset_name: value of ``image/dataset`` (default ``300w``).
    """

    name = "300w"
    dataset = "300w"
    version = "1"
    description = "300-W / iBUG / LFPW / HELEN / AFW .pts files beside images -> ibug68"

    def __init__(self, root: str, dataset_name: Optional[str] = None):
        super().__init__(root)
        self.dataset_name = dataset_name
        if dataset_name:
            self.dataset = dataset_name

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--dataset-name", default=None, help="image/dataset value (default: 300w)")

    def _pts_files(self) -> List[str]:
        found = []
        for d, dirs, files in os.walk(self.root):
            dirs.sort()
            found += [os.path.join(d, f) for f in sorted(files) if f.lower().endswith(".pts")]
        if not found:
            raise DataError(f"{self.root}: no .pts files found.")
        return found

    def source_files(self) -> List[str]:
        return self._pts_files()

    def samples(self, problems: Problems) -> Iterator[Sample]:
        for pts_path in self._pts_files():
            stem = os.path.splitext(pts_path)[0]
            image = find_image(stem + ".jpg") or stem + ".jpg"
            try:
                pts = read_pts(pts_path)
                if len(pts) != NUM_POINTS:
                    raise Problem(where(pts_path, 1), POINT_COUNT,
                                  f"{len(pts)} points; the ibug68 scheme has {NUM_POINTS}")
            except Problem as p:
                problems.add(p)
                continue
            rel = self.relative(image)
            yield Sample(image_path=image, source_id=rel, split=split_for_path(rel), origin=where(pts_path, 1),
                         faces=[Face(bbox=box_around_points(pts), landmarks=pts)], landmark_scheme="ibug68")
