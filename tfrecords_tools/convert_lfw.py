"""LFW (Huang et al., 2007) -> identity records and the verification pairs file.

Layout as distributed::

    <root>/<Name>/<Name>_0001.jpg     (lfw, lfw-deepfunneled, ... image trees)
    <root>/pairs.txt                  (or beside the image tree: <root>/../pairs.txt)

``pairs.txt`` starts with ``<folds> <pairs per fold>`` (``10 300``); each fold lists
its matched pairs ``<Name> <i> <j>`` then its mismatched pairs
``<Name1> <i> <Name2> <j>``. Every image becomes a record with its identity (names
numbered in sorted order, ``identities.json`` maps them back) in split ``test``.
The pairs are written to ``pairs.json`` beside the shards, in the form the
verification metric reads::

    {"num_folds": 10, "pairs_per_fold": 300,
     "pairs": [{"fold": 0, "a": "<source_id>", "b": "<source_id>", "same": true}, ...]}

``a`` / ``b`` are record ``source_id`` values (``<Name>/<Name>_0001.jpg``). A pair
naming a missing image is reported at its ``pairs.txt`` line and left out, as are
pairs whose image was skipped as corrupt.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Iterator, List, Optional

from keras_facemt.errors import DataError
from tfrecords_tools.common import (
    MALFORMED,
    MISSING_IMAGE,
    Converter,
    Face,
    Problems,
    Sample,
    find_file,
    read_lines,
    require_file,
    subdirectories,
    walk_images,
    where,
)


def lfw_path(name: str, index: int) -> str:
    return f"{name}/{name}_{index:04d}.jpg"


class LfwConverter(Converter):
    """LFW image tree + ``pairs.txt``.

    Args:
        root: the image tree (``<Name>/<Name>_XXXX.jpg``).
        pairs: path of ``pairs.txt`` (default: in ``root`` or its parent).
        split: split of the records (LFW is an evaluation set).
    """

    name = "lfw"
    dataset = "lfw"
    version = "1"
    description = "LFW image folders + pairs.txt -> identity records and pairs.json"
    wants_written_ids = True

    def __init__(self, root: str, pairs: Optional[str] = None, split: str = "test"):
        super().__init__(root)
        if pairs:
            self.pairs = require_file(os.path.abspath(pairs), "LFW pairs file")
        else:
            self.pairs = find_file(self.root, ["pairs.txt", "../pairs.txt"], "LFW pairs.txt")
            self.pairs = os.path.abspath(self.pairs)
        self.split = split
        self._pairs: List[dict] = []
        self._names: List[str] = []
        self._header = (0, 0)

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--pairs", default=None, help="pairs.txt (default: root/pairs.txt or root/../pairs.txt)")
        parser.add_argument("--split", default="test", help="split name of the records (default: test)")

    def options(self):
        return {"split": self.split}

    def source_files(self) -> List[str]:
        return [self.pairs]

    def _read_pairs(self, problems: Problems) -> None:
        self._pairs = []
        lines = [(ln, t.split()) for ln, t in read_lines(self.pairs) if t.strip()]
        if not lines or len(lines[0][1]) != 2 or not all(t.isdigit() for t in lines[0][1]):
            raise DataError(f"{where(self.pairs, 1)}: expected the header '<folds> <pairs per fold>'.")
        folds, per_fold = (int(t) for t in lines[0][1])
        self._header = (folds, per_fold)
        for k, (ln, tok) in enumerate(lines[1:]):
            loc = where(self.pairs, ln)
            fold = k // (2 * per_fold) if per_fold else 0
            try:
                if len(tok) == 3:
                    a, b, same = lfw_path(tok[0], int(tok[1])), lfw_path(tok[0], int(tok[2])), True
                elif len(tok) == 4:
                    a, b, same = lfw_path(tok[0], int(tok[1])), lfw_path(tok[2], int(tok[3])), False
                else:
                    raise ValueError(f"expected 3 or 4 fields, got {len(tok)}")
            except ValueError as e:
                problems.report(loc, MALFORMED, f"bad pair line ({e})")
                continue
            absent = [p for p in (a, b) if not os.path.isfile(os.path.join(self.root, p))]
            if absent:
                problems.report(loc, MISSING_IMAGE, f"pair image not found: {os.path.join(self.root, absent[0])}")
                continue
            self._pairs.append({"fold": fold, "a": a, "b": b, "same": same})

    def samples(self, problems: Problems) -> Iterator[Sample]:
        self._read_pairs(problems)
        self._names = subdirectories(self.root)
        if not self._names:
            raise DataError(f"{self.root}: no '<Name>/<image>' folders found.")
        for i, name in enumerate(self._names):
            for path in walk_images(os.path.join(self.root, name)):
                yield Sample(image_path=path, source_id=self.relative(path), split=self.split, origin=path,
                             faces=[Face(identity=i)])

    def side_files(self, written: Dict[str, str]) -> Dict[str, bytes]:
        pairs = [p for p in self._pairs if p["a"] in written and p["b"] in written]
        folds, per_fold = self._header
        return {
            "pairs.json": json.dumps({"num_folds": folds, "pairs_per_fold": per_fold, "pairs": pairs}).encode(),
            "identities.json": json.dumps({"num_identities": len(self._names), "names": self._names},
                                          indent=1).encode(),
        }
