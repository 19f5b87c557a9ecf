"""The TFRecord schema of keras-facemt: the single source of truth.

Every converter, SynthFace, the input pipeline and the evaluators read feature keys,
task names, attribute kinds and parsing classes from here and nowhere else.

Geometry is normalised to [0, 1]; points are (x, y); boxes are
(xmin, ymin, xmax, ymax). "Left"/"right" in class and landmark names always mean the
image's left/right (the viewer's), so a horizontal flip swaps them.

A missing label is never a negative label: every label has a presence flag.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple

from keras_facemt.errors import ConfigError

# --- Per-image keys -----------------------------------------------------------------
IMAGE_ENCODED = "image/encoded"
IMAGE_FORMAT = "image/format"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
IMAGE_SOURCE_ID = "image/source_id"
IMAGE_DATASET = "image/dataset"
IMAGE_SPLIT = "image/split"
PARSING_ENCODED = "image/parsing/encoded"
HAS_PARSING = "image/has_parsing"
LANDMARK_SCHEME = "image/landmark_scheme"
# 1 when the image's face boxes are annotated exhaustively (0 faces is then a label).
HAS_BOXES = "image/has_boxes"

# --- Per-face keys (flattened, N faces) --------------------------------------------
FACE_BBOX = "face/bbox"  # N*4
FACE_LANDMARKS = "face/landmarks"  # N*K*2
FACE_LANDMARKS_VISIBLE = "face/landmarks/visible"  # N*K
FACE_HAS_LANDMARKS = "face/has_landmarks"  # N
FACE_POSE = "face/pose"  # N*3 (yaw, pitch, roll) degrees
FACE_HAS_POSE = "face/has_pose"  # N
FACE_IDENTITY = "face/identity"  # N
FACE_HAS_IDENTITY = "face/has_identity"  # N
FACE_TEACHER_EMBEDDING = "face/teacher_embedding"  # N*D
FACE_HAS_TEACHER_EMBEDDING = "face/has_teacher_embedding"  # N
ATTR_PREFIX = "face/attr/"
HAS_ATTR_PREFIX = "face/has_attr/"

IMAGE_FORMATS = ("jpeg", "png")
# How far (fraction of the image side) boxes and visible landmarks may lie outside
# [0, 1]: the converters' default tolerance; the input pipeline rejects beyond it.
GEOMETRY_TOLERANCE = 0.1

# --- Parsing classes (Helen as labelled by Smith et al., used by iFAN) -------------
PARSING_CLASSES: Tuple[str, ...] = (
    "background",
    "face_skin",
    "left_brow",
    "right_brow",
    "left_eye",
    "right_eye",
    "nose",
    "upper_lip",
    "inner_mouth",
    "lower_lip",
    "hair",
)
NUM_PARSING_CLASSES = len(PARSING_CLASSES)
# Class id permutation applied to a label map under a horizontal flip.
PARSING_FLIP_PERMUTATION: Tuple[int, ...] = (0, 1, 3, 2, 5, 4, 6, 7, 8, 9, 10)
# Classes the iFAN / Smith et al. "overall" F-score is computed over.
PARSING_OVERALL_CLASSES: Tuple[str, ...] = (
    "left_brow",
    "right_brow",
    "left_eye",
    "right_eye",
    "nose",
    "upper_lip",
    "inner_mouth",
    "lower_lip",
)
PARSING_MOUTH_CLASSES: Tuple[str, ...] = ("upper_lip", "inner_mouth", "lower_lip")

# --- Emotions: the 7 BNU-LSVED classes (iFAN Sec. 4.1.1) --------------------------
EMOTIONS: Tuple[str, ...] = (
    "happy",
    "surprised",
    "disgusted",
    "puzzled",
    "concentrated",
    "tired",
    "distracted",
)
GENDERS: Tuple[str, ...] = ("female", "male")
ETHNICITIES: Tuple[str, ...] = ("white", "black", "asian")


@dataclasses.dataclass(frozen=True)
class AttributeSpec:
    """A registered per-face attribute.

    Attributes:
        name: Attribute key, stored as ``face/attr/<name>``.
        kind: ``"class"`` (integer id in ``[0, num_classes)``), ``"binary"`` (0/1) or
            ``"regression"`` (float in ``value_range``).
        num_classes: Number of classes for ``class``/``binary`` kinds.
        value_range: Inclusive valid range of the stored value.
        class_names: Optional names of the classes.
    """

    name: str
    kind: str
    num_classes: int = 0
    value_range: Tuple[float, float] = (0.0, 1.0)
    class_names: Optional[Tuple[str, ...]] = None

    @property
    def dtype(self) -> str:
        return "float32" if self.kind == "regression" else "int64"


def _build_attributes() -> Dict[str, AttributeSpec]:
    specs = [
        AttributeSpec("age", "regression", value_range=(0.0, 120.0)),
        AttributeSpec("age_sigma", "regression", value_range=(0.0, 50.0)),
        AttributeSpec("age_class", "class", 101, (0, 100)),
        AttributeSpec("gender", "class", 2, (0, 1), GENDERS),
        AttributeSpec("ethnicity", "class", 3, (0, 2), ETHNICITIES),
        AttributeSpec("smile", "binary", 2, (0, 1), ("no", "yes")),
        AttributeSpec("emotion", "class", 7, (0, 6), EMOTIONS),
        AttributeSpec("glasses", "binary", 2, (0, 1), ("no", "yes")),
        AttributeSpec("pose_bin", "class", 5, (0, 4)),
        AttributeSpec("age_group", "class", 8, (0, 7)),
    ]
    specs += [
        AttributeSpec(f"celeba/{name}", "binary", 2, (0, 1)) for name in CELEBA_ATTRIBUTES
    ]
    return {s.name: s for s in specs}


# The 40 CelebA attributes in the order of list_attr_celeba.txt.
CELEBA_ATTRIBUTES: Tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald",
    "Bangs", "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose",
    "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip

ATTRIBUTES: Dict[str, AttributeSpec] = _build_attributes()

# --- Tasks ------------------------------------------------------------------------
# A task is what a model predicts and a loss trains. Attribute tasks are named after
# their attribute. The presence flag of each task is what masks its loss.
STRUCTURAL_TASKS: Tuple[str, ...] = (
    "detection",
    "landmarks",
    "parsing",
    "pose",
    "identity",
    "teacher_embedding",
)


def all_tasks() -> Tuple[str, ...]:
    """Every task name the schema knows: structural tasks then attributes."""
    return STRUCTURAL_TASKS + tuple(ATTRIBUTES)


def attribute_spec(name: str) -> AttributeSpec:
    """Looks up a registered attribute.

    Raises:
        ConfigError: if ``name`` is not registered.
    """
    try:
        return ATTRIBUTES[name]
    except KeyError:
        raise ConfigError(
            f"Unknown attribute {name!r}. Registered attributes: "
            f"{sorted(a for a in ATTRIBUTES if not a.startswith('celeba/'))} and "
            f"'celeba/<name>' for the 40 CelebA attributes. Received: name={name!r}"
        ) from None


def validate_tasks(tasks) -> Tuple[str, ...]:
    """Checks task names against the schema and returns them as a tuple.

    Raises:
        ConfigError: naming the first unknown task.
    """
    known = set(all_tasks())
    tasks = tuple(tasks)
    for t in tasks:
        if t not in known:
            raise ConfigError(
                f"Unknown task {t!r}. Known tasks: {list(STRUCTURAL_TASKS)} or a "
                f"registered attribute (e.g. 'emotion', 'gender', 'age'). "
                f"Received: tasks={list(tasks)}"
            )
    return tasks


def presence_key(task: str) -> str:
    """The presence-flag feature key of a task (e.g. ``face/has_landmarks``)."""
    if task == "parsing":
        return HAS_PARSING
    if task == "detection":
        return HAS_BOXES
    if task in ATTRIBUTES:
        return HAS_ATTR_PREFIX + task
    if task in STRUCTURAL_TASKS:
        return f"face/has_{task}"
    raise ConfigError(f"Unknown task {task!r}. Received: task={task!r}")
