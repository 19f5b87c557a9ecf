"""MORPH II (Ricanek and Tesafaye, 2006) CSV -> age, gender, ethnicity, identity.

Layout as distributed with the academic release: a CSV with a header row and the
images beside it, e.g.::

    id_num,picture_num,dob,doa,race,gender,facial_hair,age,age_diff,glasses,photo
    003384,00,...,B,M,...,20,...,Album2/003384_00M20.JPG

Columns are found by name (case-insensitive): the image path (``photo``, ``file``,
``filename``, ``image`` or ``path``), ``age``, ``gender`` (M/F), ``race`` (W, B, A map
to the schema's white, black, asian; H and O leave ethnicity unlabelled) and the
subject id (``id_num`` or ``id``, stored as the identity). MORPH defines no split;
subjects are split by a seeded hash of their id so no person is in two splits.
"""

from __future__ import annotations

import csv
import os
from typing import Dict, Iterator, List, Optional

from keras_facemt.errors import DataError
from tfrecords_tools.common import (
    MALFORMED,
    Converter,
    Face,
    Problem,
    Problems,
    Sample,
    check_fractions,
    ratio_split,
    require_file,
    where,
)

IMAGE_COLUMNS = ("photo", "file", "filename", "image", "path", "img")
RACES = {"w": 0, "white": 0, "b": 1, "black": 1, "a": 2, "asian": 2}
UNLABELLED_RACES = {"h", "o", "hispanic", "other", ""}
GENDERS = {"m": 1, "male": 1, "f": 0, "female": 0}


class MorphConverter(Converter):
    """MORPH II metadata CSV.

    Args:
        root: directory the CSV's image paths are relative to.
        csv_file: the metadata CSV (default: the single ``*.csv`` in ``root``).
        seed, val_fraction, test_fraction: the seeded split by subject.
    """

    name = "morph"
    dataset = "morph2"
    version = "1"
    description = "MORPH II CSV (age, gender, race columns)"
    split_source = "seeded ratio by subject"

    def __init__(self, root: str, csv_file: Optional[str] = None, seed: int = 0,
                 val_fraction: float = 0.0, test_fraction: float = 0.2):
        super().__init__(root)
        check_fractions(val_fraction, test_fraction)
        if csv_file is None:
            found = sorted(f for f in os.listdir(self.root) if f.lower().endswith(".csv"))
            if len(found) != 1:
                raise DataError(f"{self.root}: expected one MORPH .csv file, found {found}; pass --csv.")
            csv_file = os.path.join(self.root, found[0])
        self.csv_file = require_file(os.path.abspath(csv_file), "MORPH CSV")
        self.seed, self.val_fraction, self.test_fraction = seed, val_fraction, test_fraction

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--csv", dest="csv_file", default=None, help="MORPH metadata CSV")

    def options(self):
        return {"seed": self.seed, "val_fraction": self.val_fraction, "test_fraction": self.test_fraction}

    def source_files(self) -> List[str]:
        return [self.csv_file]

    def samples(self, problems: Problems) -> Iterator[Sample]:
        with open(self.csv_file, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f)
            header = [h.strip().lower() for h in next(reader, [])]
            col: Dict[str, Optional[int]] = {
                "image": next((header.index(c) for c in IMAGE_COLUMNS if c in header), None),
                "age": header.index("age") if "age" in header else None,
                "gender": header.index("gender") if "gender" in header else None,
                "race": header.index("race") if "race" in header else None,
                "id": next((header.index(c) for c in ("id_num", "id", "subject") if c in header), None),
            }
            if col["image"] is None:
                raise DataError(f"{where(self.csv_file, 1)}: no image column (one of {list(IMAGE_COLUMNS)}) "
                                f"in header {header}.")
            ids: Dict[str, int] = {}
            for ln, row in enumerate(reader, 2):
                if not any(c.strip() for c in row):
                    continue
                loc = where(self.csv_file, ln)
                try:
                    yield self._sample(row, col, ids, loc, len(header))
                except Problem as p:
                    problems.add(p)

    def _sample(self, row, col, ids, loc, width) -> Sample:
        if len(row) != width:
            raise Problem(loc, MALFORMED, f"expected {width} columns, got {len(row)}")
        face = Face()
        if col["age"] is not None:
            try:
                age = float(row[col["age"]])
            except ValueError:
                raise Problem(loc, MALFORMED, f"age {row[col['age']]!r} is not a number") from None
            if not 0 <= age <= 120:
                raise Problem(loc, MALFORMED, f"age {age} is outside [0, 120]")
            face.attributes["age"] = age
        if col["gender"] is not None:
            g = row[col["gender"]].strip().lower()
            if g not in GENDERS:
                raise Problem(loc, MALFORMED, f"gender must be M or F, got {row[col['gender']]!r}")
            face.attributes["gender"] = GENDERS[g]
        if col["race"] is not None:
            r = row[col["race"]].strip().lower()
            if r in RACES:
                face.attributes["ethnicity"] = RACES[r]
            elif r not in UNLABELLED_RACES:
                raise Problem(loc, MALFORMED, f"race must be one of W, B, A, H, O, got {row[col['race']]!r}")
        subject = row[col["id"]].strip() if col["id"] is not None else None
        if subject is not None:
            face.identity = ids.setdefault(subject, len(ids))
        rel = row[col["image"]].strip().replace("\\", "/")
        key = subject if subject is not None else rel
        return Sample(image_path=os.path.join(self.root, rel), source_id=rel, origin=loc, faces=[face],
                      split=ratio_split(key, self.seed, self.val_fraction, self.test_fraction))
