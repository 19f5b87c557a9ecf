"""Identity folders (CASIA-WebFace, MS-Celeb cleaned lists, any ``<identity>/<image>``
tree) -> identity labels.

Two layouts:

* a tree ``<root>/<identity>/<image>`` (images may sit in subfolders of the identity
  folder), as CASIA-WebFace and most cleaned MS-Celeb releases ship;
* a list file (``--list``) with lines ``<image path relative to root> <identity>``,
  as the MS-Celeb-1M cleaned lists are distributed.

Identity names are sorted and numbered 0..C-1; ``identities.json`` beside the shards
maps each id back to its name. Recognition sets define no split: every image is
``train`` unless ``--val-fraction`` / ``--test-fraction`` hold out a seeded share of
each identity's images (same identities, for closed-set validation).
"""

from __future__ import annotations

import json
import os
from typing import Dict, Iterator, List, Optional, Tuple

from keras_facemt.errors import DataError
from tfrecords_tools.common import (
    MALFORMED,
    Converter,
    Face,
    Problems,
    Sample,
    check_fractions,
    ratio_split,
    read_lines,
    require_file,
    subdirectories,
    walk_images,
    where,
)


class IdentityFoldersConverter(Converter):
    """``<identity>/<image>`` trees or ``<path> <identity>`` lists.

    Args:
        root: the tree root (or the directory list paths are relative to).
        list_file: optional ``<path> <identity>`` list.
        dataset_name: value of ``image/dataset`` (e.g. ``casia_webface``).
        seed, val_fraction, test_fraction: the seeded hold-out.
    """

    name = "identity_folders"
    dataset = "identity_folders"
    version = "1"
    description = "<identity>/<image> trees or '<path> <identity>' lists -> identity labels"
    split_source = "seeded ratio by image (default: all train)"

    def __init__(self, root: str, list_file: Optional[str] = None, dataset_name: Optional[str] = None,
                 seed: int = 0, val_fraction: float = 0.0, test_fraction: float = 0.0):
        super().__init__(root)
        check_fractions(val_fraction, test_fraction)
        self.list_file = require_file(os.path.abspath(list_file), "identity list") if list_file else None
        self.dataset_name = dataset_name
        if dataset_name:
            self.dataset = dataset_name
        self.seed, self.val_fraction, self.test_fraction = seed, val_fraction, test_fraction
        self._names: List[str] = []

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--list", dest="list_file", default=None, help="'<path> <identity>' list file")
        parser.add_argument("--dataset-name", default=None, help="image/dataset value (e.g. casia_webface)")

    def options(self):
        return {"list_file": self.list_file and os.path.basename(self.list_file), "dataset_name": self.dataset_name,
                "seed": self.seed, "val_fraction": self.val_fraction, "test_fraction": self.test_fraction}

    def source_files(self) -> List[str]:
        return [self.list_file] if self.list_file else []

    def _entries(self, problems: Problems) -> List[Tuple[str, str, str]]:
        """(image path, identity name, origin)."""
        if self.list_file:
            out = []
            for ln, line in read_lines(self.list_file):
                if not line.strip():
                    continue
                tok = line.split()
                if len(tok) != 2:
                    problems.report(where(self.list_file, ln), MALFORMED,
                                    f"expected '<image path> <identity>', got {len(tok)} fields")
                    continue
                out.append((os.path.join(self.root, tok[0]), tok[1], where(self.list_file, ln)))
            return out
        out = []
        for ident in subdirectories(self.root):
            out += [(p, ident, p) for p in walk_images(os.path.join(self.root, ident))]
        if not out:
            raise DataError(f"{self.root}: no '<identity>/<image>' files found.")
        return out

    def samples(self, problems: Problems) -> Iterator[Sample]:
        entries = self._entries(problems)
        self._names = sorted({ident for _, ident, _ in entries})
        index: Dict[str, int] = {n: i for i, n in enumerate(self._names)}
        for path, ident, origin in entries:
            rel = self.relative(path)
            yield Sample(image_path=path, source_id=rel, origin=origin,
                         split=ratio_split(rel, self.seed, self.val_fraction, self.test_fraction),
                         faces=[Face(identity=index[ident])])

    def side_files(self, written) -> Dict[str, bytes]:
        return {"identities.json": json.dumps({"num_identities": len(self._names), "names": self._names},
                                              indent=1).encode()}
