"""Helen face parsing (Smith et al., CVPR 2013 labels; used by iFAN) -> 11-class maps.

Layout as distributed (``SmithCVPR2013_dataset_resized``)::

    <root>/images/<name>.jpg
    <root>/labels/<name>/<name>_lbl00.png ... <name>_lbl10.png
    <root>/exemplars.txt   (train)   lines "<index> , <name>"
    <root>/tuning.txt      (val)
    <root>/testing.txt     (test)

The eleven label images are per-class masks in the schema's class order
(background, face skin, left/right brow, left/right eye, nose, upper lip, inner
mouth, lower lip, hair); each pixel takes the class of its largest mask value. A
single class-id map ``labels/<name>.png`` is read instead where the per-class
folder is absent. Maps must have the image's size. The face box is the whole image
(the resized release is centred on one face).
"""

from __future__ import annotations

import os
from typing import Iterator, List

from keras_facemt.data import schema
from keras_facemt.errors import DataError
from tfrecords_tools.common import MALFORMED, Converter, Face, Problems, Sample, read_lines, where

SPLIT_FILES = (("exemplars.txt", "train"), ("tuning.txt", "val"), ("testing.txt", "test"))


class HelenParsingConverter(Converter):
    """Smith et al. Helen parsing labels.

    Args:
        root: the ``SmithCVPR2013_dataset_resized`` directory.
    """

    name = "helen_parsing"
    dataset = "helen"
    version = "1"
    description = "Helen parsing (Smith et al.) label images -> 11-class maps"

    def _lists(self):
        found = [(os.path.join(self.root, f), s) for f, s in SPLIT_FILES if os.path.isfile(os.path.join(self.root, f))]
        if not found:
            raise DataError(f"{self.root}: none of {[f for f, _ in SPLIT_FILES]} found (Helen split lists).")
        return found

    def source_files(self) -> List[str]:
        return [p for p, _ in self._lists()]

    def samples(self, problems: Problems) -> Iterator[Sample]:
        for path, split in self._lists():
            for ln, line in read_lines(path):
                if not line.strip():
                    continue
                parts = [p.strip() for p in line.split(",")]
                if len(parts) != 2 or not parts[1] or not parts[0].isdigit():
                    problems.report(where(path, ln), MALFORMED, f"expected '<index> , <name>', got {line.strip()!r}")
                    continue
                name = parts[1]
                per_class = os.path.join(self.root, "labels", name)
                if os.path.isdir(per_class):
                    labels = tuple(os.path.join(per_class, f"{name}_lbl{c:02d}.png")
                                   for c in range(schema.NUM_PARSING_CLASSES))
                else:
                    labels = (os.path.join(self.root, "labels", name + ".png"),)
                yield Sample(image_path=os.path.join(self.root, "images", name + ".jpg"), source_id=name,
                             split=split, origin=where(path, ln), faces=[Face()], parsing_paths=labels)
