"""SynthFace identities: stable geometry and colouring per synthetic person.

An identity is drawn from ``np.random.default_rng((identity_seed, identity))``, so the
same id always gives the same person, whatever the sample seed, domain or order of
rendering. Pose, expression, lighting and framing vary per sample; everything here
does not.

The demographic labels drive the appearance through correlated but imperfect cues,
so that gender, age and ethnicity are learnable from the image without being read
off a single pixel:

* ethnicity -> skin tone (overlapping distributions), eye shape, hair colour;
* gender -> jaw width, brow thickness, hair length, beard shadow, lip colour;
* age -> wrinkles, grey hair, eye size and lower-face proportions (see
  ``synth_painter`` and ``synth_geometry``).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

import numpy as np

# Identity geometry parameters (offsets or scales of the canonical 3-D face).
GEOMETRY_PARAMS: Tuple[str, ...] = (
    "width",  # x scale of the whole face
    "height",  # y scale of the whole face
    "eye_spacing",  # outward shift of both eye centres
    "eye_size",  # eye scale
    "eye_tilt",  # outer-corner lift (positive: outer corner higher)
    "eye_aspect",  # eye opening height relative to width
    "nose_length",  # downward shift of the nose tip and nostrils
    "nose_width",  # nostril spread
    "mouth_width",  # mouth x scale
    "lip_thickness",  # lip height scale
    "jaw_width",  # widening of the lower jaw
    "brow_height",  # upward shift of the brows
    "brow_arch",  # brow curvature
    "chin",  # chin length
    "hairline",  # forehead height (positive: higher hairline)
    "nose_point",  # nose-tip shape: > 0 a pointed tip shadow, < 0 a round tip highlight
    "cheekbones",  # cheekbone prominence: highlight and hollow below, raised with the value
)

HAIR_STYLES: Tuple[str, ...] = ("short", "long", "bald", "fringe")

# Mean skin tone (RGB) per ethnicity (schema.ETHNICITIES order: white, black, asian).
_SKIN_MEANS = np.array(
    [[222.0, 184.0, 160.0], [128.0, 88.0, 66.0], [214.0, 178.0, 134.0]], np.float32
)
_SKIN_SPREAD = np.array([18.0, 26.0, 16.0], np.float32)

# Hair colours (RGB) and their probabilities per ethnicity.
_HAIR_COLOURS = np.array(
    [
        [28, 24, 24],  # black
        [66, 44, 30],  # dark brown
        [112, 76, 46],  # brown
        [196, 160, 98],  # blond
        [146, 68, 38],  # red
    ],
    np.float32,
)
_HAIR_PROBS = np.array(
    [
        [0.15, 0.30, 0.25, 0.22, 0.08],
        [0.75, 0.22, 0.03, 0.0, 0.0],
        [0.80, 0.17, 0.03, 0.0, 0.0],
    ]
)
_IRIS_COLOURS = np.array(
    [[60, 40, 28], [40, 28, 20], [70, 100, 140], [80, 110, 70]], np.float32
)
_IRIS_PROBS = np.array(
    [[0.35, 0.15, 0.35, 0.15], [0.3, 0.7, 0.0, 0.0], [0.4, 0.6, 0.0, 0.0]]
)


@dataclasses.dataclass(frozen=True)
class SynthIdentity:
    """One synthetic person.

    Attributes:
        identity: Identity id in ``[0, num_identities)``.
        gender: 0 female, 1 male (``schema.GENDERS``).
        ethnicity: Index into ``schema.ETHNICITIES``.
        base_age: Age in years at which this person is usually seen.
        geometry: Name -> value of every ``GEOMETRY_PARAMS`` entry.
        skin: Skin colour, float32 RGB ``[3]`` in 0..255.
        hair_colour: Hair colour before greying, float32 RGB ``[3]``.
        hair_style: Index into ``HAIR_STYLES``.
        iris_colour: float32 RGB ``[3]``.
        lip_colour: float32 RGB ``[3]``.
        brow_thickness: Brow height in face units.
        beard: Beard-shadow strength in [0, 1] (0 for none).
        greying_age: Age in years at which the hair starts turning grey.
        clothing: float32 RGB ``[3]`` of the clothes.
    """

    identity: int
    gender: int
    ethnicity: int
    base_age: float
    geometry: Dict[str, float]
    skin: np.ndarray
    hair_colour: np.ndarray
    hair_style: int
    iris_colour: np.ndarray
    lip_colour: np.ndarray
    brow_thickness: float
    beard: float
    greying_age: float
    clothing: np.ndarray


def make_identity(identity: int, identity_seed: int = 0) -> SynthIdentity:
    """Draws identity ``identity`` of the population ``identity_seed``.

    Args:
        identity: Non-negative identity id.
        identity_seed: Population seed: another seed gives other people under the
            same ids (e.g. a held-out set of people for verification).

    Returns:
        The ``SynthIdentity``; equal inputs always give equal outputs.
    """
    rng = np.random.default_rng((int(identity_seed), int(identity), 7919))
    gender = int(rng.integers(2))
    ethnicity = int(rng.integers(3))
    # 10% children/teens, the rest adults, so age is a wide regression target.
    if rng.random() < 0.1:
        base_age = float(rng.uniform(4.0, 17.0))
    else:
        base_age = float(rng.uniform(18.0, 82.0))
    child = float(np.clip((18.0 - base_age) / 14.0, 0.0, 1.0))
    male = float(gender)
    g = {name: 0.0 for name in GEOMETRY_PARAMS}
    g["width"] = 1.0 + rng.normal(0.0, 0.035) + 0.02 * male
    g["height"] = 1.0 + rng.normal(0.0, 0.035) - 0.05 * child + 0.015 * male
    g["eye_spacing"] = rng.normal(0.0, 0.014)
    g["eye_size"] = 1.0 + rng.normal(0.0, 0.07) + 0.18 * child
    g["eye_tilt"] = rng.normal(0.0, 0.008) + (0.012 if ethnicity == 2 else 0.0)
    g["eye_aspect"] = 1.0 + rng.normal(0.0, 0.1) - (0.22 if ethnicity == 2 else 0.0)
    g["nose_length"] = rng.normal(0.0, 0.018) - 0.03 * child
    g["nose_width"] = 1.0 + rng.normal(0.0, 0.09) + (0.18 if ethnicity == 1 else 0.0)
    g["mouth_width"] = 1.0 + rng.normal(0.0, 0.07)
    g["lip_thickness"] = 1.0 + rng.normal(0.0, 0.15) + (0.25 if ethnicity == 1 else 0.0) - 0.1 * male
    g["jaw_width"] = rng.normal(0.0, 0.04) + 0.07 * male - 0.04 * child
    g["brow_height"] = rng.normal(0.0, 0.012) + 0.01 * (1.0 - male)
    g["brow_arch"] = max(0.0, 0.025 + rng.normal(0.0, 0.01) + 0.012 * (1.0 - male))
    g["chin"] = rng.normal(0.0, 0.03) - 0.06 * child + 0.015 * male
    g["hairline"] = rng.normal(0.0, 0.03)
    # Drawn from their own stream so that adding them left every other draw (and so
    # every identity of earlier datasets) unchanged. Bimodal, so the derived labels
    # are mostly far from their thresholds.
    extra = np.random.default_rng((int(identity_seed), int(identity), 15485863))
    g["nose_point"] = float(extra.choice([-1.0, 1.0], p=[0.6, 0.4]) * extra.uniform(0.35, 1.0))
    g["cheekbones"] = float(extra.choice([-1.0, 1.0], p=[0.55, 0.45]) * extra.uniform(0.35, 1.0))

    skin = _SKIN_MEANS[ethnicity] + rng.normal(0.0, 1.0) * _SKIN_SPREAD[ethnicity] * np.array(
        [1.0, 1.05, 1.1], np.float32
    )
    skin = skin + rng.normal(0.0, 4.0, 3)
    hair_colour = _HAIR_COLOURS[rng.choice(5, p=_HAIR_PROBS[ethnicity])] * rng.uniform(0.85, 1.15) + rng.normal(0.0, 3.0, 3)
    long_p = 0.15 if gender else 0.7
    u = rng.random()
    if u < long_p:
        style = 1
    elif gender and base_age > 35 and rng.random() < 0.35:
        style = 2
    else:
        style = 3 if rng.random() < 0.3 else 0
    iris = _IRIS_COLOURS[rng.choice(4, p=_IRIS_PROBS[ethnicity])]
    lip = skin * np.array([0.92, 0.62, 0.62], np.float32)
    if not gender and rng.random() < 0.5:  # lipstick
        lip = np.array([178.0, 46.0, 62.0], np.float32) + rng.normal(0.0, 12.0, 3)
    brow_thickness = 0.028 + 0.016 * male + abs(rng.normal(0.0, 0.005))
    beard = float(rng.uniform(0.3, 1.0)) if (gender and base_age > 18 and rng.random() < 0.4) else 0.0
    clothing = rng.uniform(20.0, 235.0, 3)
    return SynthIdentity(
        identity=int(identity),
        gender=gender,
        ethnicity=ethnicity,
        base_age=base_age,
        geometry={k: float(v) for k, v in g.items()},
        skin=np.clip(skin, 40.0, 250.0).astype(np.float32),
        hair_colour=np.clip(hair_colour, 10.0, 240.0).astype(np.float32),
        hair_style=style,
        iris_colour=iris.astype(np.float32),
        lip_colour=np.clip(lip, 20.0, 250.0).astype(np.float32),
        brow_thickness=float(brow_thickness),
        beard=beard,
        greying_age=float(rng.uniform(38.0, 62.0)),
        clothing=clothing.astype(np.float32),
    )


# Identity-level labels of MTFR's 7 attributes (Wang et al., ICMR 2017, Table 1), each
# read off a rendered geometry parameter by a threshold near a population quantile
# (measured over 20,000 identities of seed 0): name -> (parameter, threshold, above).
# "above" True: the attribute holds when the parameter exceeds the threshold.
ATTRIBUTE_RULES: Dict[str, Tuple[str, float, bool]] = {
    "Narrow_Eyes": ("eye_aspect", 0.85, False),  # low eye opening, ~30%
    "Big_Nose": ("nose_width", 1.10, True),  # wide nostrils, ~36%
    "Pointy_Nose": ("nose_point", 0.0, True),  # pointed tip, ~40% (Male: gender, ~50%)
    "Chubby": ("width", 1.025, True),  # wide face, ~30%
    "Double_Chin": ("chin", 0.02, True),  # long lower face (chin fold drawn), ~32%
    "High_Cheekbones": ("cheekbones", 0.0, True),  # prominent cheekbones, ~45%
}


def identity_attributes(ident: SynthIdentity) -> Dict[str, int]:
    """The 7 MTFR attributes (``Male`` from ``gender``) of ``ident``, 0/1 by name."""
    out = {name: int((ident.geometry[param] > t) == above) for name, (param, t, above) in ATTRIBUTE_RULES.items()}
    out["Male"] = int(ident.gender)
    return out
