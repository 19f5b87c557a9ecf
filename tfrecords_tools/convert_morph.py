"""MORPH II (Ricanek and Tesafaye, 2006) CSV -> age, gender, ethnicity, identity.

Layout as distributed with the academic release: a CSV with a header row and the
images beside it, e.g.::

    id_num,picture_num,dob,doa,race,gender,facial_hair,age,age_diff,glasses,photo
    003384,00,...,B,M,...,20,...,Album2/003384_00M20.JPG

Columns are found by name (case-insensitive): the image path (``photo``, ``file``,
``filename``, ``image`` or ``path``), ``age``, ``gender`` (M/F), ``race`` (W, B, A map
to the schema's white, black, asian; H and O leave ethnicity unlabelled) and the
subject id (``id_num`` or ``id``, stored as the identity). MORPH defines no split:

* ``protocol="ratio"`` (default): subjects are split by a seeded hash of their id
  into train / val / test, so no person is in two splits.
* ``protocol="s123"``: the S1 / S2 / S3 protocol of Guo and Mu (CVPR 2011) and Yi et
  al. (ACCV 2014), which TFN (Lin et al., TCYB 2019, Sec. V-C, Table V) follows: S1
  and S2 hold ``subset_size`` images each (10,634 in those papers) with Black : White
  = 1 : 1 and Female : Male = 1 : 3; S3 holds every other image (Hispanic, Asian,
  other and the remaining Black / White ones). Folds: train on S1, test on S2 + S3,
  and the reverse (``FOLDS``); Avg.E is the mean of the two folds' age MAE
  (``keras_facemt.metrics.regression_error.average_fold_error``). Whole subjects are
  assigned (no person in two subsets), in seeded-hash order within each of the four
  race x gender strata, each next subject going to whichever of S1 / S2 holds fewer
  images of its stratum while that stays within the stratum's quota; the assignment
  depends only on the seed, the subject ids and their image counts. A subject whose
  images disagree on race or gender goes to S3. The splits are ``s1``, ``s2``, ``s3``;
  the achieved counts per stratum are in ``dataset.json``'s notes.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from keras_facemt.errors import ConfigError, DataError
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
PROTOCOLS = ("ratio", "s123")
SUBSET_SIZE = 10634
# (ethnicity, gender) strata of S1 / S2 and their shares: Black : White = 1 : 1, Female : Male = 1 : 3.
STRATA = {(1, 0): 1 / 8, (1, 1): 3 / 8, (0, 0): 1 / 8, (0, 1): 3 / 8}
STRATUM_NAMES = {(1, 0): "black_female", (1, 1): "black_male", (0, 0): "white_female", (0, 1): "white_male"}
# (training subset, test subsets) of the two folds.
FOLDS = (("s1", ("s2", "s3")), ("s2", ("s1", "s3")))


def assign_protocol_subsets(images: Sequence[Tuple[str, str, Optional[int], Optional[int]]],
                            subset_size: int = SUBSET_SIZE, seed: int = 0) -> Dict[str, str]:
    """The S1 / S2 / S3 subset of every image (module docstring).

    Args:
        images: ``(image key, subject id, gender (0 F, 1 M) or None, ethnicity (0 W,
            1 B, 2 A) or None)`` per image.
        subset_size: images in each of S1 and S2 (fewer where a stratum runs short).
        seed: order of the subjects within a stratum.

    Returns:
        ``{image key: "s1" | "s2" | "s3"}``.

    Raises:
        ConfigError: if ``subset_size < 8`` (every stratum needs a quota).
    """
    if subset_size < 8:
        raise ConfigError(f"subset_size must be >= 8 (four strata, 1:3 shares). Received: subset_size={subset_size}")
    subjects: Dict[str, List[Tuple[str, Tuple[Optional[int], Optional[int]]]]] = {}
    for key, subject, gender, ethnicity in images:
        subjects.setdefault(subject, []).append((key, (ethnicity, gender)))
    by_stratum: Dict[Tuple[int, int], List[str]] = {s: [] for s in STRATA}
    for subject, rows in subjects.items():
        labels = {stratum for _, stratum in rows}
        if len(labels) == 1 and next(iter(labels)) in STRATA:
            by_stratum[next(iter(labels))].append(subject)
    out = {key: "s3" for key, _, _, _ in images}
    for stratum, share in STRATA.items():
        quota = int(round(subset_size * share))
        filled = {"s1": 0, "s2": 0}
        order = sorted(by_stratum[stratum], key=lambda sid: hashlib.md5(f"{seed}:{sid}".encode()).hexdigest())
        for subject in order:
            n = len(subjects[subject])
            for subset in sorted(filled, key=lambda k: (filled[k], k)):
                if filled[subset] + n <= quota:
                    filled[subset] += n
                    for key, _ in subjects[subject]:
                        out[key] = subset
                    break
    return out


class MorphConverter(Converter):
    """MORPH II metadata CSV.

    Args:
        root: directory the CSV's image paths are relative to.
        csv_file: the metadata CSV (default: the single ``*.csv`` in ``root``).
        seed, val_fraction, test_fraction: the seeded split by subject (``protocol="ratio"``).
        protocol: ``"ratio"`` or ``"s123"`` (module docstring; the fractions are unused).
        subset_size: images in each of S1 and S2 under ``"s123"``.
    """

    name = "morph"
    dataset = "morph2"
    version = "1"
    description = "MORPH II CSV (age, gender, race columns)"
    split_source = "seeded ratio by subject"

    def __init__(self, root: str, csv_file: Optional[str] = None, seed: int = 0,
                 val_fraction: float = 0.0, test_fraction: float = 0.2, protocol: str = "ratio",
                 subset_size: int = SUBSET_SIZE):
        super().__init__(root)
        check_fractions(val_fraction, test_fraction)
        if protocol not in PROTOCOLS:
            raise ConfigError(f"protocol must be one of {PROTOCOLS}. Received: protocol={protocol!r}")
        if protocol == "s123" and subset_size < 8:
            raise ConfigError(f"subset_size must be >= 8. Received: subset_size={subset_size}")
        self.protocol, self.subset_size = protocol, int(subset_size)
        if protocol == "s123":
            self.split_source = "S1/S2/S3 protocol (Guo and Mu 2011): seeded subjects, balanced race and gender"
        self._subset_counts: Dict[str, Dict[str, int]] = {}
        self._ids: Dict[str, int] = {}
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
        parser.add_argument("--protocol", choices=PROTOCOLS, default="ratio",
                            help="ratio: seeded train/val/test by subject; s123: the S1/S2/S3 protocol")
        parser.add_argument("--subset-size", type=int, default=SUBSET_SIZE, help="images in S1 and in S2 (s123)")

    def options(self):
        out = {"seed": self.seed, "val_fraction": self.val_fraction, "test_fraction": self.test_fraction}
        if self.protocol != "ratio":  # the ratio split's fingerprint stays what it was
            out.update(protocol=self.protocol, subset_size=self.subset_size)
        return out

    def notes(self):
        return {"protocol_subsets": self._subset_counts} if self.protocol == "s123" else {}

    def source_files(self) -> List[str]:
        return [self.csv_file]

    def samples(self, problems: Problems) -> Iterator[Sample]:
        if self.protocol == "ratio":
            yield from self._parsed(problems)
            return
        # The subsets balance counts over the whole CSV: parse everything, then assign.
        parsed = list(self._parsed(problems))
        names = {identity: subject for subject, identity in self._ids.items()}
        images = []
        for sample in parsed:
            face = sample.faces[0]
            subject = names[face.identity] if face.identity is not None else sample.source_id
            images.append((sample.source_id, subject, face.attributes.get("gender"), face.attributes.get("ethnicity")))
        subsets = assign_protocol_subsets(images, self.subset_size, self.seed)
        counts: Dict[str, Dict[str, int]] = {}
        for sample, (_, _, gender, ethnicity) in zip(parsed, images):
            split = subsets[sample.source_id]
            stratum = STRATUM_NAMES.get((ethnicity, gender), "other")
            counts.setdefault(split, {}).setdefault(stratum, 0)
            counts[split][stratum] += 1
            yield dataclasses.replace(sample, split=split)
        self._subset_counts = {k: dict(sorted(v.items())) for k, v in sorted(counts.items())}

    def _parsed(self, problems: Problems) -> Iterator[Sample]:
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
            ids = self._ids = {}
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
