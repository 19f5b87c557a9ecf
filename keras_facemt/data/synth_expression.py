"""SynthFace expressions: the 7 BNU-LSVED emotions as deformations of the face.

Each emotion is a prototype vector of action parameters (brows, eyelids, mouth,
nose, gaze, head offset). A sample scales its prototype by a random intensity and
adds per-parameter jitter shared by all emotions, so classes overlap at low
intensity: emotion is visible through the brows, eyes and mouth and learnable, but
a nearest-centroid classifier on the geometry is far from perfect.

The ``smile`` label is read from the rendered mouth (the corner lift parameter), so
it is consistent with the image whatever the emotion.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple

import numpy as np

from keras_facemt.data.schema import EMOTIONS

# Action parameters; 0 everywhere is the neutral face.
EXPRESSION_PARAMS: Tuple[str, ...] = (
    "brow_raise_l",  # image-left brow up
    "brow_raise_r",  # image-right brow up
    "brow_inner_down",  # inner brow ends down and together (frown)
    "brow_outer_droop",  # outer brow ends down (tired, sad)
    "eye_open_l",  # eyelid opening change, -1 closed .. +0.6 wide
    "eye_open_r",
    "smile",  # mouth corner lift (negative: corners down)
    "mouth_open",  # jaw drop / lip separation
    "upper_lip_raise",  # disgust
    "lip_press",  # lips pressed thin and narrow
    "mouth_asym",  # one corner pulled up/sideways (signed)
    "nose_wrinkle",
    "gaze_x",  # iris shift, -1 .. 1 of the eye half-width
    "gaze_y",
    "head_yaw",  # degrees added to the sampled head pose
    "head_pitch",
    "head_roll",
)
_INDEX = {n: i for i, n in enumerate(EXPRESSION_PARAMS)}
SMILE_THRESHOLD = 0.35
# Default range of the sampled emotion intensity (the prototype scale).
DEFAULT_INTENSITY_RANGE: Tuple[float, float] = (0.45, 1.0)


def _proto(**kw) -> np.ndarray:
    v = np.zeros(len(EXPRESSION_PARAMS), np.float64)
    for k, val in kw.items():
        v[_INDEX[k]] = val
    return v


# Prototypes at intensity 1 (signed entries marked * get a random side per sample).
_PROTOTYPES: Dict[str, np.ndarray] = {
    "happy": _proto(smile=1.0, mouth_open=0.3, eye_open_l=-0.22, eye_open_r=-0.22,
                    brow_raise_l=0.1, brow_raise_r=0.1),
    "surprised": _proto(brow_raise_l=1.0, brow_raise_r=1.0, eye_open_l=0.5, eye_open_r=0.5,
                        mouth_open=0.9, smile=-0.15),
    "disgusted": _proto(nose_wrinkle=1.0, upper_lip_raise=1.0, brow_inner_down=0.6,
                        eye_open_l=-0.3, eye_open_r=-0.3, smile=-0.45),
    "puzzled": _proto(brow_raise_l=1.0, brow_raise_r=-0.3, mouth_asym=0.9, head_roll=12.0,
                      brow_inner_down=0.2),  # *side
    "concentrated": _proto(brow_inner_down=1.0, eye_open_l=-0.3, eye_open_r=-0.3, lip_press=1.0),
    "tired": _proto(eye_open_l=-0.7, eye_open_r=-0.7, brow_outer_droop=1.0, mouth_open=0.15,
                    head_pitch=-12.0, brow_raise_l=-0.15, brow_raise_r=-0.15),
    "distracted": _proto(gaze_x=0.9, gaze_y=0.15, head_yaw=24.0),  # *side
}  # fmt: skip
_SIDED = ("puzzled", "distracted")
# Per-parameter jitter (std) added to every sample, emotion-independent.
_JITTER = _proto(
    brow_raise_l=0.16, brow_raise_r=0.16, brow_inner_down=0.14, brow_outer_droop=0.14,
    eye_open_l=0.12, eye_open_r=0.12, smile=0.13, mouth_open=0.1, upper_lip_raise=0.12,
    lip_press=0.14, mouth_asym=0.14, nose_wrinkle=0.12, gaze_x=0.2, gaze_y=0.12,
    head_yaw=3.0, head_pitch=3.0, head_roll=3.0,
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Expression:
    """A sampled expression.

    Attributes:
        emotion: Index into ``schema.EMOTIONS`` (-1 for the neutral face).
        intensity: Prototype scale in [0, 1].
        params: float64 ``[len(EXPRESSION_PARAMS)]`` action parameters.
    """

    emotion: int
    intensity: float
    params: np.ndarray

    def __getitem__(self, name: str) -> float:
        return float(self.params[_INDEX[name]])

    @property
    def smile(self) -> int:
        """1 when the mouth corners are visibly lifted."""
        return int(self["smile"] > SMILE_THRESHOLD)


def neutral_expression() -> Expression:
    """The neutral face (all parameters 0); its emotion is -1 (unlabelled)."""
    return Expression(-1, 0.0, np.zeros(len(EXPRESSION_PARAMS)))


def sample_expression(
    rng: np.random.Generator,
    emotion: Optional[int] = None,
    intensity: Optional[float] = None,
    intensity_range: Tuple[float, float] = DEFAULT_INTENSITY_RANGE,
) -> Expression:
    """Samples an expression of ``emotion`` (uniform over the 7 when None).

    Args:
        rng: The sample's generator.
        emotion: Index into ``schema.EMOTIONS`` or None.
        intensity: Prototype scale; ``U(*intensity_range)`` when None.
        intensity_range: Range of the sampled intensity (lower: harder to tell
            emotions apart).

    Returns:
        The ``Expression``.
    """
    e = int(rng.integers(len(EMOTIONS))) if emotion is None else int(emotion)
    k = float(rng.uniform(*intensity_range)) if intensity is None else float(intensity)
    name = EMOTIONS[e]
    proto = _PROTOTYPES[name].copy()
    side = 1.0 if rng.random() < 0.5 else -1.0
    if name in _SIDED:
        if name == "puzzled" and side < 0:
            proto[[_INDEX["brow_raise_l"], _INDEX["brow_raise_r"]]] = proto[
                [_INDEX["brow_raise_r"], _INDEX["brow_raise_l"]]
            ]
        for p in ("mouth_asym", "head_roll", "gaze_x", "head_yaw"):
            proto[_INDEX[p]] *= side
    params = k * proto + rng.normal(0.0, 1.0, len(EXPRESSION_PARAMS)) * _JITTER
    params[_INDEX["eye_open_l"]] = np.clip(params[_INDEX["eye_open_l"]], -0.85, 0.7)
    params[_INDEX["eye_open_r"]] = np.clip(params[_INDEX["eye_open_r"]], -0.85, 0.7)
    params[_INDEX["mouth_open"]] = np.clip(params[_INDEX["mouth_open"]], 0.0, 1.2)
    for p in ("upper_lip_raise", "lip_press", "nose_wrinkle", "brow_inner_down", "brow_outer_droop"):
        params[_INDEX[p]] = max(params[_INDEX[p]], 0.0)
    return Expression(e, k, params)
