"""MTFL (Zhang et al., ECCV 2014, TCDCN) -> ``mtfl5`` landmarks, gender, smile,
glasses and head-pose bins.

Layout as distributed::

    <root>/training.txt
    <root>/testing.txt
    <root>/lfw_5590/... <root>/net_7876/... <root>/AFLW/...

Each line is ``path x1 x2 x3 x4 x5 y1 y2 y3 y4 y5 gender smile glasses pose``
(paths use backslashes; some lines start with a space). The points are left eye,
right eye, nose, left and right mouth corner (image left first), the ``mtfl5``
order. Labels are 1-based: gender 1 male / 2 female; smile and glasses 1 yes / 2
no; pose 1..5 (left profile, left, frontal, right, right profile) -> ``pose_bin``
0..4. The face box is a square around the points (MTFL gives none): 2.2 times the
points' larger extent, about brow to chin.
"""

from __future__ import annotations

import os
from typing import Iterator, List

import numpy as np

from tfrecords_tools.common import (
    MALFORMED,
    POINT_COUNT,
    Converter,
    Face,
    Problem,
    Problems,
    Sample,
    box_around_points,
    find_file,
    parse_floats,
    parse_lines,
)

SPLIT_FILES = (("training.txt", "train"), ("testing.txt", "test"))
BOX_SCALE = 2.2


def five_point_box(points: np.ndarray) -> List[float]:
    """Square box around five face points (eyes, nose, mouth corners)."""
    return box_around_points(points, scale=BOX_SCALE, square=True)


def _binary(value: int, loc: str, what: str) -> int:
    if value not in (1, 2):
        raise Problem(loc, MALFORMED, f"{what} must be 1 or 2, got {value}")
    return 1 if value == 1 else 0


class MtflConverter(Converter):
    """MTFL annotation lists.

    Args:
        root: directory holding ``training.txt`` / ``testing.txt`` and the images.
    """

    name = "mtfl"
    dataset = "mtfl"
    version = "1"
    description = "MTFL training.txt/testing.txt -> mtfl5, gender, smile, glasses, pose bins"

    def _lists(self):
        find_file(self.root, [f for f, _ in SPLIT_FILES], "MTFL training.txt or testing.txt")
        return [(os.path.join(self.root, f), s) for f, s in SPLIT_FILES if os.path.isfile(os.path.join(self.root, f))]

    def source_files(self) -> List[str]:
        return [p for p, _ in self._lists()]

    def samples(self, problems: Problems) -> Iterator[Sample]:
        for path, split in self._lists():
            yield from parse_lines(path, lambda line, loc, split=split: self._parse(line, loc, split), problems)

    def _parse(self, line: str, loc: str, split: str) -> Sample:
        tok = line.split()
        if len(tok) < 11:
            raise Problem(loc, POINT_COUNT if len(tok) > 1 else MALFORMED,
                          f"expected 'path x1..x5 y1..y5 gender smile glasses pose', got {len(tok)} fields")
        numbers = tok[1:]
        if len(numbers) not in (10, 14):
            raise Problem(loc, POINT_COUNT, f"expected 10 coordinates (5 points) and 4 labels, "
                                            f"got {len(numbers)} values")
        values = parse_floats(numbers, loc, "MTFL line")
        pts = np.stack([values[0:5], values[5:10]], -1)
        face = Face(bbox=five_point_box(pts), landmarks=pts)
        if len(values) == 14:
            g, s, gl, pose = (int(v) for v in values[10:14])
            face.attributes["gender"] = _binary(g, loc, "gender")
            face.attributes["smile"] = _binary(s, loc, "smile")
            face.attributes["glasses"] = _binary(gl, loc, "glasses")
            if not 1 <= pose <= 5:
                raise Problem(loc, MALFORMED, f"pose must be 1..5, got {pose}")
            face.attributes["pose_bin"] = pose - 1
        rel = tok[0].replace("\\", "/")
        return Sample(image_path=os.path.join(self.root, rel), source_id=rel, split=split, origin=loc,
                      faces=[face], landmark_scheme="mtfl5")
