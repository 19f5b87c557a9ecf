"""Emotion folders (BNU-LSVED sampled frames, or any ``<emotion>/<image>`` tree)
-> ``emotion``.

Layouts::

    <root>/<emotion>/<image or video folder>/...
    <root>/<split>/<emotion>/...            (split folders: train, val, test)

Folder names are matched case-insensitively to the seven BNU-LSVED classes of the
schema (happy, surprised, disgusted, puzzled, concentrated, tired, distracted),
also under their noun forms (``happiness``, ``surprise``, ...). A folder with any
other name is reported and skipped. Without split folders, a seeded hash splits by
the first folder under the emotion (the video, for sampled frames) so frames of one
video never straddle splits.
"""

from __future__ import annotations

import os
from typing import Iterator, List, Optional

from keras_facemt.data import schema
from keras_facemt.errors import DataError
from tfrecords_tools.common import (
    MALFORMED,
    Converter,
    Face,
    Problems,
    Sample,
    check_fractions,
    ratio_split,
    subdirectories,
    walk_images,
)

ALIASES = {
    "happiness": "happy", "surprise": "surprised", "disgust": "disgusted", "puzzlement": "puzzled",
    "puzzle": "puzzled", "concentration": "concentrated", "tiredness": "tired", "fatigue": "tired",
    "distraction": "distracted",
}
SPLIT_DIRS = {"train": "train", "training": "train", "val": "val", "validation": "val", "test": "test",
              "testing": "test"}


def emotion_id(folder: str) -> Optional[int]:
    """Schema emotion id of a folder name, or None."""
    name = folder.strip().lower()
    name = ALIASES.get(name, name)
    return schema.EMOTIONS.index(name) if name in schema.EMOTIONS else None


class EmotionFoldersConverter(Converter):
    """``<emotion>/<image>`` trees.

    Args:
        root: tree root.
        dataset_name: value of ``image/dataset`` (default ``bnu_lsved``).
        seed, val_fraction, test_fraction: the seeded split when there are no split
            folders.
    """

    name = "emotion_folders"
    dataset = "bnu_lsved"
    version = "1"
    description = "<emotion>/<image> trees (BNU-LSVED frames) -> emotion"
    split_source = "split folders, else seeded ratio by video folder"

    def __init__(self, root: str, dataset_name: Optional[str] = None, seed: int = 0,
                 val_fraction: float = 0.1, test_fraction: float = 0.1):
        super().__init__(root)
        check_fractions(val_fraction, test_fraction)
        self.dataset_name = dataset_name
        if dataset_name:
            self.dataset = dataset_name
        self.seed, self.val_fraction, self.test_fraction = seed, val_fraction, test_fraction

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--dataset-name", default=None, help="image/dataset value (default: bnu_lsved)")

    def source_files(self) -> List[str]:
        return []

    def samples(self, problems: Problems) -> Iterator[Sample]:
        top = subdirectories(self.root)
        if not top:
            raise DataError(f"{self.root}: no emotion folders found.")
        if all(d.lower() in SPLIT_DIRS for d in top):
            groups = [(os.path.join(self.root, d), SPLIT_DIRS[d.lower()]) for d in top]
        else:
            groups = [(self.root, None)]
        for base, split in groups:
            for folder in subdirectories(base):
                emo = emotion_id(folder)
                edir = os.path.join(base, folder)
                if emo is None:
                    problems.report(edir, MALFORMED, f"folder name {folder!r} is not one of the emotions "
                                                     f"{list(schema.EMOTIONS)}; its images are skipped")
                    continue
                for path in walk_images(edir):
                    rel = os.path.relpath(path, edir).replace(os.sep, "/")
                    group = f"{folder}/{rel.split('/')[0]}"
                    yield Sample(image_path=path, source_id=self.relative(path), origin=path,
                                 split=split or ratio_split(group, self.seed, self.val_fraction, self.test_fraction),
                                 faces=[Face(attributes={"emotion": emo})])
