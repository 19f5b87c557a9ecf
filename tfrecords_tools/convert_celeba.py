"""CelebA (Liu et al., ICCV 2015) -> 40 binary attributes, 5 points, boxes, identity.

Layout as distributed::

    <root>/Anno/list_attr_celeba.txt            count, 40 names, "<img> -1 1 ..."
    <root>/Anno/list_landmarks_align_celeba.txt count, header, "<img> lx ly rx ry nx ny lmx lmy rmx rmy"
    <root>/Anno/list_landmarks_celeba.txt       same, for the in-the-wild images
    <root>/Anno/list_bbox_celeba.txt            count, header, "<img> x_1 y_1 width height"
    <root>/Anno/identity_CelebA.txt             "<img> <identity>"
    <root>/Eval/list_eval_partition.txt         "<img> 0|1|2" (train / val / test)
    <root>/Img/img_align_celeba/<img>           aligned crops (default)
    <root>/Img/img_celeba/<img>                 in-the-wild images (``--in-the-wild``)

The same files directly under ``root`` are accepted too. Attributes -1/1 become
0/1 under ``celeba/<name>``; ``Male``, ``Smiling`` and ``Eyeglasses`` also fill
``gender``, ``smile`` and ``glasses`` so CelebA trains those shared heads. The five
points are left eye, right eye, nose, left and right mouth corner (image left
first), the ``mtfl5`` order. Identities 1..10177 are stored 0-based. Boxes come
from ``list_bbox_celeba.txt`` for in-the-wild images; aligned crops get a square
around the points. The partition file defines the splits; without it, every image
in the attribute file is ``train``.
"""

from __future__ import annotations

import os
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from keras_facemt.data import schema
from keras_facemt.errors import DataError
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
from tfrecords_tools.convert_mtfl import five_point_box

PARTITIONS = {"0": "train", "1": "val", "2": "test"}
SHARED = {"Male": "gender", "Smiling": "smile", "Eyeglasses": "glasses"}


def _anno(root: str, name: str, required: bool = False) -> Optional[str]:
    return find_file(root, [f"Anno/{name}", name], f"CelebA {name}", required=required)


class CelebAConverter(Converter):
    """CelebA annotation files.

    Args:
        root: CelebA root (``Anno/``, ``Eval/``, ``Img/``), or a flat directory.
        in_the_wild: use ``img_celeba`` with its landmarks and boxes instead of the
            aligned crops.
        image_dir: explicit image directory.
    """

    name = "celeba"
    dataset = "celeba"
    version = "1"
    description = "CelebA attributes, 5 points, boxes, identities, partition"

    def __init__(self, root: str, in_the_wild: bool = False, image_dir: Optional[str] = None):
        super().__init__(root)
        self.in_the_wild = bool(in_the_wild)
        sub = "img_celeba" if in_the_wild else "img_align_celeba"
        if image_dir is None:
            image_dir = next((os.path.join(self.root, c) for c in (f"Img/{sub}", sub)
                              if os.path.isdir(os.path.join(self.root, c))), os.path.join(self.root, "Img", sub))
        self.image_dir = os.path.abspath(image_dir)

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--in-the-wild", action="store_true",
                            help="convert img_celeba with its boxes instead of img_align_celeba")
        parser.add_argument("--image-dir", default=None)

    def options(self):
        return {"in_the_wild": self.in_the_wild}

    def _files(self) -> Dict[str, Optional[str]]:
        files = {
            "attr": _anno(self.root, "list_attr_celeba.txt"),
            "landmarks": _anno(self.root, "list_landmarks_celeba.txt" if self.in_the_wild
                               else "list_landmarks_align_celeba.txt"),
            "bbox": _anno(self.root, "list_bbox_celeba.txt") if self.in_the_wild else None,
            "identity": _anno(self.root, "identity_CelebA.txt"),
            "partition": find_file(self.root, ["Eval/list_eval_partition.txt", "list_eval_partition.txt"],
                                   "CelebA list_eval_partition.txt", required=False),
        }
        if not files["attr"] and not files["partition"]:
            raise DataError(f"{self.root}: neither list_attr_celeba.txt nor list_eval_partition.txt found "
                            "(under Anno/, Eval/ or the root).")
        return files

    def source_files(self) -> List[str]:
        return [p for p in self._files().values() if p]

    @staticmethod
    def _table(path: str, n_values: int, header_lines: int, what: str,
               problems: Problems) -> Tuple[Dict[str, Tuple[int, list]], List[str]]:
        """image -> (line, value tokens); rows with the wrong value count are reported."""
        rows: Dict[str, Tuple[int, list]] = {}
        header: List[str] = []
        for ln, line in read_lines(path):
            if ln <= header_lines:
                header.append(line)
                continue
            tok = line.split()
            if not tok:
                continue
            if len(tok) != n_values + 1:
                kind = POINT_COUNT if what == "landmarks" else MALFORMED
                problems.report(where(path, ln), kind, f"expected an image name and {n_values} {what} values, "
                                                       f"got {len(tok) - 1}")
                rows[tok[0]] = (ln, None)
                continue
            rows[tok[0]] = (ln, tok[1:])
        return rows, header

    def samples(self, problems: Problems) -> Iterator[Sample]:
        f = self._files()
        attrs, names = {}, list(schema.CELEBA_ATTRIBUTES)
        if f["attr"]:
            attrs, header = self._table(f["attr"], 40, 2, "attribute", problems)
            if len(header) == 2:
                names = header[1].split()
                unknown = sorted(set(names) - set(schema.CELEBA_ATTRIBUTES))
                if len(names) != 40 or unknown:
                    raise DataError(f"{where(f['attr'], 2)}: expected the 40 CelebA attribute names, "
                                    f"got {len(names)} (unknown: {unknown}).")
        lms = self._table(f["landmarks"], 10, 2, "landmarks", problems)[0] if f["landmarks"] else {}
        boxes = self._table(f["bbox"], 4, 2, "box", problems)[0] if f["bbox"] else {}
        ids = self._table(f["identity"], 1, 0, "identity", problems)[0] if f["identity"] else {}
        if f["partition"]:
            order, _ = self._table(f["partition"], 1, 0, "partition", problems)
            master = f["partition"]
        else:
            order, master = {k: (ln, ["0"]) for k, (ln, _) in attrs.items()}, f["attr"]
        for img, (ln, part) in order.items():
            loc = where(master, ln)
            try:
                if part is None:
                    continue  # already reported
                if part[0] not in PARTITIONS:
                    raise Problem(loc, MALFORMED, f"partition must be 0, 1 or 2, got {part[0]!r}")
                face = Face()
                for table, path in ((attrs, f["attr"]), (lms, f["landmarks"]), (boxes, f["bbox"]),
                                    (ids, f["identity"])):
                    if img in table and table[img][1] is None:
                        raise Problem(where(path, table[img][0]), MALFORMED, "entry skipped (reported above)")
                if img in attrs:
                    aln, values = attrs[img]
                    for name, v in zip(names, values):
                        if v not in ("1", "-1"):
                            raise Problem(where(f["attr"], aln), MALFORMED, f"attribute {name} must be -1 or 1, "
                                                                            f"got {v!r}")
                        face.attributes[f"celeba/{name}"] = 1 if v == "1" else 0
                        if name in SHARED:
                            face.attributes[SHARED[name]] = 1 if v == "1" else 0
                if img in lms:
                    lln, values = lms[img]
                    face.landmarks = np.asarray(parse_floats(values, where(f["landmarks"], lln), "landmarks"),
                                                np.float64).reshape(5, 2)
                if img in boxes:
                    bln, values = boxes[img]
                    x, y, w, h = parse_floats(values, where(f["bbox"], bln), "box")
                    face.bbox = (x, y, x + w, y + h)
                elif face.landmarks is not None:
                    face.bbox = five_point_box(face.landmarks)
                if img in ids:
                    iln, (value,) = ids[img]
                    if not value.isdigit() or int(value) < 1:
                        raise Problem(where(f["identity"], iln), MALFORMED, f"identity must be >= 1, got {value!r}")
                    face.identity = int(value) - 1
            except Problem as p:
                if not p.reason.startswith("entry skipped"):
                    problems.add(p)
                continue
            yield Sample(image_path=os.path.join(self.image_dir, img), source_id=img, split=PARTITIONS[part[0]],
                         origin=loc, faces=[face], landmark_scheme="mtfl5" if face.landmarks is not None else "none")
