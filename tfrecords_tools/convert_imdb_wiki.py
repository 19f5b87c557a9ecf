"""IMDB-WIKI (Rothe et al., 2015/2018) ``.mat`` metadata -> age, gender, face box.

Layout as distributed::

    <root>/imdb.mat  (struct ``imdb``)   with <root>/00/nm0000100_rm46373120_1955-1-6_2003.jpg ...
    <root>/wiki.mat  (struct ``wiki``)   likewise for the wiki crop

Fields read: ``full_path``, ``dob`` (MATLAB datenum), ``photo_taken`` (year),
``gender`` (1 male, 0 female, NaN unknown), ``face_location`` (``[x1 y1 x2 y2]``
pixels), ``face_score`` (``-Inf`` when no face was found) and ``second_face_score``
(NaN when there is no second face). Age is ``photo_taken`` minus the birth year,
one less for births in the second half of the year (the photo is taken to be from
mid-year), as in the dataset's own scripts.

The usual filtering keeps an entry only when ``face_score >= --min-face-score``
(default 1.0), ``second_face_score`` is NaN (``--allow-second-face`` lifts this),
the age is in [0, 100] and the gender is known; filtered entries are counted in the
manifest, not reported as defects. IMDB-WIKI defines no split: images are split by
a seeded hash of their path. Locations in reports read ``imdb.mat:entry=<n>``
(1-based).
"""

from __future__ import annotations

import collections
import datetime
import math
import os
from typing import Dict, Iterator, List, Optional

import numpy as np

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
)

FIELDS = ("full_path", "dob", "photo_taken", "gender", "face_location", "face_score", "second_face_score")


def age_from_datenum(dob: float, photo_taken: float) -> int:
    """Age in years at ``photo_taken`` of a MATLAB datenum birth date."""
    birth = datetime.date.fromordinal(max(int(dob) - 366, 1))
    return int(photo_taken) - birth.year - (0 if birth.month < 7 else 1)


class ImdbWikiConverter(Converter):
    """IMDB-WIKI metadata.

    Args:
        root: directory holding the ``.mat`` file and the image folders.
        mat_file: the metadata file (default: ``imdb.mat`` or ``wiki.mat`` in root).
        min_face_score: minimum ``face_score``.
        allow_second_face: keep images where a second face was detected.
        seed, val_fraction, test_fraction: the seeded split.
    """

    name = "imdb_wiki"
    dataset = "imdb_wiki"
    version = "1"
    description = "IMDB-WIKI .mat metadata (age, gender, face box; usual filtering)"
    split_source = "seeded ratio by image"

    def __init__(self, root: str, mat_file: Optional[str] = None, min_face_score: float = 1.0,
                 allow_second_face: bool = False, seed: int = 0, val_fraction: float = 0.05,
                 test_fraction: float = 0.05):
        super().__init__(root)
        check_fractions(val_fraction, test_fraction)
        if mat_file is None:
            found = [f for f in ("imdb.mat", "wiki.mat") if os.path.isfile(os.path.join(self.root, f))]
            if not found:
                raise DataError(f"{self.root}: neither imdb.mat nor wiki.mat found; pass --mat.")
            mat_file = os.path.join(self.root, found[0])
        self.mat_file = require_file(os.path.abspath(mat_file), "IMDB-WIKI metadata")
        self.min_face_score, self.allow_second_face = float(min_face_score), bool(allow_second_face)
        self.seed, self.val_fraction, self.test_fraction = seed, val_fraction, test_fraction
        self.filtered: Dict[str, int] = {}

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--mat", dest="mat_file", default=None, help="imdb.mat or wiki.mat")
        parser.add_argument("--min-face-score", type=float, default=1.0)
        parser.add_argument("--allow-second-face", action="store_true")

    def options(self):
        return {"min_face_score": self.min_face_score, "allow_second_face": self.allow_second_face,
                "seed": self.seed, "val_fraction": self.val_fraction, "test_fraction": self.test_fraction}

    def source_files(self) -> List[str]:
        return [self.mat_file]

    def _load(self) -> Dict[str, np.ndarray]:
        import scipy.io

        try:
            mat = scipy.io.loadmat(self.mat_file, squeeze_me=True)
        except Exception as e:  # scipy raises several types for a bad file
            raise DataError(f"{self.mat_file}: not a readable MATLAB v5 file ({e}).") from None
        keys = [k for k in mat if not k.startswith("__")]
        if len(keys) != 1:
            raise DataError(f"{self.mat_file}: expected one struct (imdb or wiki), found {keys}.")
        meta = mat[keys[0]]
        names = meta.dtype.names or ()
        missing = [f for f in FIELDS if f not in names]
        if missing:
            raise DataError(f"{self.mat_file}: struct {keys[0]!r} lacks fields {missing}.")
        out = {}
        for f in FIELDS:
            v = np.asarray(meta[f].item() if meta.shape == () else meta[f])
            if f == "face_location" and v.dtype != object:
                v = np.array([None], dtype=object)
                v[0] = np.asarray(meta[f].item() if meta.shape == () else meta[f])  # one entry squeezed to [4]
            out[f] = np.atleast_1d(v)
        n = len(out["full_path"])
        bad = [f for f in FIELDS if len(out[f]) != n]
        if bad:
            raise DataError(f"{self.mat_file}: fields {bad} do not have {n} entries like full_path.")
        return out

    def samples(self, problems: Problems) -> Iterator[Sample]:
        m = self._load()
        filtered = collections.Counter()
        base = os.path.basename(self.mat_file)
        for i in range(len(m["full_path"])):
            loc = f"{self.mat_file}:entry={i + 1}"
            try:
                rel = str(m["full_path"][i]).replace("\\", "/")
                score, second = float(m["face_score"][i]), float(m["second_face_score"][i])
                if not (score >= self.min_face_score):
                    filtered["face_score"] += 1
                    continue
                if not self.allow_second_face and not math.isnan(second):
                    filtered["second_face"] += 1
                    continue
                gender = float(m["gender"][i])
                if math.isnan(gender):
                    filtered["unknown_gender"] += 1
                    continue
                dob, taken = float(m["dob"][i]), float(m["photo_taken"][i])
                if not (math.isfinite(dob) and math.isfinite(taken)):
                    raise Problem(loc, MALFORMED, f"dob {dob} / photo_taken {taken} is not a date")
                age = age_from_datenum(dob, taken)
                if not 0 <= age <= 100:
                    filtered["age_range"] += 1
                    continue
                box = np.asarray(m["face_location"][i], np.float64).ravel()
                if box.size != 4 or not np.all(np.isfinite(box)):
                    raise Problem(loc, MALFORMED, f"face_location must be 4 numbers, got {box.tolist()}")
                if gender not in (0.0, 1.0):
                    raise Problem(loc, MALFORMED, f"gender must be 0, 1 or NaN, got {gender}")
            except (TypeError, ValueError) as e:
                problems.add(Problem(loc, MALFORMED, f"unreadable entry ({e})"))
                continue
            except Problem as p:
                problems.add(p)
                continue
            face = Face(bbox=tuple(box), attributes={"age": float(age), "gender": int(gender)})
            yield Sample(image_path=os.path.join(self.root, rel), source_id=f"{base}/{rel}", origin=loc,
                         split=ratio_split(rel, self.seed, self.val_fraction, self.test_fraction), faces=[face])
        self.filtered = dict(filtered)

    def notes(self) -> Dict[str, object]:
        return {"filtered": self.filtered}
