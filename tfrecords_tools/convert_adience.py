"""Adience (Eidinger et al., 2014) ``fold_*_data.txt`` -> age groups and gender.

Layout as distributed::

    <root>/fold_0_data.txt ... fold_4_data.txt     (tab-separated, header row)
    <root>/aligned/<user_id>/landmark_aligned_face.<face_id>.<original_image>
    <root>/faces/<user_id>/coarse_tilt_aligned_face.<face_id>.<original_image>

Columns: ``user_id original_image face_id age gender x y dx dy tilt_ang
fiducial_yaw_angle fiducial_score``. Ages are the eight groups ``(0, 2)``, ``(4, 6)``,
``(8, 12)``, ``(15, 20)``, ``(25, 32)``, ``(38, 43)``, ``(48, 53)``, ``(60, 100)`` ->
``age_group`` 0..7; the release's few single ages and off-grid ranges map to the
group containing (or nearest to) their midpoint; ``None`` leaves the age
unlabelled. Gender ``m`` / ``f``; ``u`` or empty is unlabelled. The fold is kept as
the split (``fold0`` ... ``fold4``) for the 5-fold protocol. The face images are
crops, so the box is the whole image.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Iterator, List, Optional

from keras_facemt.errors import DataError
from tfrecords_tools.common import MALFORMED, Converter, Face, Problem, Problems, Sample, read_lines, where

AGE_GROUPS = ((0, 2), (4, 6), (8, 12), (15, 20), (25, 32), (38, 43), (48, 53), (60, 100))
COLUMNS = ("user_id", "original_image", "face_id", "age", "gender")


def age_group(text: str) -> Optional[int]:
    """Age-group id of an Adience age field; None for ``None``/empty.

    Raises:
        ValueError: if the field is not a number or a ``(lo, hi)`` range.
    """
    t = text.strip()
    if t in ("", "None"):
        return None
    nums = [float(v) for v in re.findall(r"\d+(?:\.\d+)?", t)]
    if not nums or len(nums) > 2 or re.sub(r"[\d.,()\s]", "", t):
        raise ValueError(f"age {text!r} is neither a number nor a '(lo, hi)' range")
    mid = sum(nums) / len(nums)
    for i, (lo, hi) in enumerate(AGE_GROUPS):
        if lo <= mid <= hi:
            return i
    return min(range(len(AGE_GROUPS)), key=lambda i: min(abs(mid - AGE_GROUPS[i][0]), abs(mid - AGE_GROUPS[i][1])))


class AdienceConverter(Converter):
    """Adience fold files.

    Args:
        root: directory holding ``fold_*_data.txt`` and the image folders.
        image_style: ``aligned`` (landmark_aligned_face) or ``faces``
            (coarse_tilt_aligned_face).
    """

    name = "adience"
    dataset = "adience"
    version = "1"
    description = "Adience fold_*_data.txt (age groups, gender; fold kept as split)"

    def __init__(self, root: str, image_style: str = "aligned"):
        super().__init__(root)
        if image_style not in ("aligned", "faces"):
            from keras_facemt.errors import ConfigError

            raise ConfigError(f"image_style must be 'aligned' or 'faces'. Received: image_style={image_style!r}")
        self.image_style = image_style

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--image-style", default="aligned", choices=("aligned", "faces"))

    def _folds(self):
        files = sorted(glob.glob(os.path.join(self.root, "fold_*_data.txt")))
        if not files:
            raise DataError(f"{self.root}: no fold_*_data.txt files found.")
        return [(re.search(r"fold_(\d+)_data", os.path.basename(f)).group(1), f) for f in files]

    def source_files(self) -> List[str]:
        return [f for _, f in self._folds()]

    def samples(self, problems: Problems) -> Iterator[Sample]:
        prefix = "landmark_aligned_face" if self.image_style == "aligned" else "coarse_tilt_aligned_face"
        for fold, path in self._folds():
            header = None
            for ln, line in read_lines(path):
                if not line.strip():
                    continue
                tok = line.split("\t")
                if header is None:
                    header = [t.strip() for t in tok]
                    missing = [c for c in COLUMNS if c not in header]
                    if missing:
                        raise DataError(f"{where(path, ln)}: header lacks columns {missing}.")
                    idx = {c: header.index(c) for c in COLUMNS}
                    continue
                loc = where(path, ln)
                try:
                    if len(tok) < len(header):
                        raise Problem(loc, MALFORMED, f"expected {len(header)} tab-separated fields, got {len(tok)}")
                    f = {c: tok[i].strip() for c, i in idx.items()}
                    face = Face()
                    try:
                        group = age_group(f["age"])
                    except ValueError as e:
                        raise Problem(loc, MALFORMED, str(e)) from None
                    if group is not None:
                        face.attributes["age_group"] = group
                    if f["gender"] in ("m", "f"):
                        face.attributes["gender"] = 1 if f["gender"] == "m" else 0
                    elif f["gender"] not in ("u", ""):
                        raise Problem(loc, MALFORMED, f"gender must be m, f or u, got {f['gender']!r}")
                except Problem as p:
                    problems.add(p)
                    continue
                rel = f"{self.image_style}/{f['user_id']}/{prefix}.{f['face_id']}.{f['original_image']}"
                yield Sample(image_path=os.path.join(self.root, rel), source_id=rel, split=f"fold{fold}",
                             origin=loc, faces=[face])
