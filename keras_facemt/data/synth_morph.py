"""SynthFace portraits in MORPH II's layout: a metadata CSV and an album of photos.

MORPH II (Ricanek and Tesafaye, 2006) is licensed and absent here. This writes a
stand-in that ``tfrecords_tools/convert_morph.py`` reads like the real release, so
the S1 / S2 / S3 protocol (TFN Table V) runs end to end on CPU and in tests:

* one subject per SynthFace identity (adults only, as in MORPH: base age >= 16),
  each with a seeded number of photos (several photos of a person, as MORPH's
  repeated arrests); every photo is a new render of that identity (pose,
  expression, framing) with its age (base age +- 2 years, rounded to whole years);
* ``race`` from the identity's ethnicity (W, B, A), except a seeded share of the
  subjects written as ``H`` (Hispanic), which the converter leaves without an
  ethnicity label, as it does MORPH's H and O;
* ``gender`` M / F from the identity; portrait photos ``width x height`` (MORPH's are
  taller than wide), the face filling about half the height, with no face box in
  the CSV (MORPH has none).

The people differ from the SynthFace scenes of the same ``identity_seed`` only if
the seeds differ: the default ``identity_seed=1`` keeps them apart from the scenes'
population (seed 0), so a model trained on scenes has never seen these subjects.
"""

from __future__ import annotations

import os
from typing import Tuple

import numpy as np

from keras_facemt.errors import ConfigError
from keras_facemt.io import write_text_atomic

HEADER = "id_num,picture_num,dob,doa,race,gender,facial_hair,age,age_diff,glasses,photo"
RACE_CODES = ("W", "B", "A")
MIN_AGE = 16.0


def write_morph_layout(root: str, subjects: int, photos_per_subject: Tuple[int, int] = (1, 4),
                       size: Tuple[int, int] = (100, 120), seed: int = 0, identity_seed: int = 1,
                       hispanic_share: float = 0.05, domain: str = "studio") -> str:
    """Writes ``<root>/morph.csv`` and ``<root>/Album2/*.JPG``; returns the CSV path.

    Args:
        root: output directory (created).
        subjects: number of people.
        photos_per_subject: (fewest, most) photos of a person, drawn uniformly.
        size: ``(width, height)`` of each photo in pixels.
        seed: photo renders and photo counts.
        identity_seed: SynthFace population the subjects come from.
        hispanic_share: share of subjects written with race ``H`` (no ethnicity label).
        domain: SynthFace style.

    Raises:
        ConfigError: for a non-positive count or size, or a share outside [0, 1).
    """
    import cv2

    from keras_facemt.data.synthetic import SynthFace

    lo, hi = (int(v) for v in photos_per_subject)
    width, height = (int(v) for v in size)
    if subjects < 1 or lo < 1 or hi < lo:
        raise ConfigError(f"subjects >= 1 and 1 <= fewest <= most photos are required. Received: subjects={subjects}, "
                          f"photos_per_subject={photos_per_subject}")
    if not 32 <= width <= height:
        raise ConfigError(f"size must be (width, height) with 32 <= width <= height. Received: size={size}")
    if not 0.0 <= hispanic_share < 1.0:
        raise ConfigError(f"hispanic_share must be in [0, 1). Received: hispanic_share={hispanic_share}")
    synth = SynthFace(seed=seed, domain=domain, image_size=height, num_identities=max(4 * subjects, 16),
                      identity_seed=identity_seed)
    rng = np.random.default_rng((seed, 7))
    album = os.path.join(root, "Album2")
    os.makedirs(album, exist_ok=True)
    rows, index, identity = [HEADER], 0, -1
    for subject in range(subjects):
        identity += 1
        while synth.identity(identity).base_age < MIN_AGE:  # MORPH holds adults only
            identity += 1
        ident = synth.identity(identity)
        race = "H" if rng.random() < hispanic_share else RACE_CODES[ident.ethnicity]
        gender = "M" if ident.gender == 1 else "F"
        for k in range(int(rng.integers(lo, hi + 1))):
            rgb, labels = synth.render_crop(index, identity=identity)
            index += 1
            left = (height - width) // 2
            photo = np.ascontiguousarray(rgb[:, left:left + width])
            age = int(round(float(labels["age"])))
            rel = f"Album2/{subject:06d}_{k:02d}{gender}{age}.JPG"
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
            if not ok:
                raise ConfigError(f"Could not encode photo {rel}. Received: shape={photo.shape}")
            with open(os.path.join(root, rel), "wb") as f:
                f.write(buf.tobytes())
            rows.append(f"{subject:06d},{k:02d},01/01/1970,01/01/{1970 + age},{race},{gender},0,{age},0,0,{rel}")
    path = os.path.join(root, "morph.csv")
    write_text_atomic(path, "\n".join(rows) + "\n")
    return path
