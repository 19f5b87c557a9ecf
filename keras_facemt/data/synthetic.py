"""SynthFace: procedurally rendered faces with ground truth for every schema task.

No downloads, no assets: faces are drawn with OpenCV from a parametric 3-D face
(``synth_geometry``) of a seeded identity (``synth_identity``) showing one of the 7
BNU-LSVED emotions (``synth_expression``), posed by yaw/pitch/roll, painted with a
matching parsing label map (``synth_painter``) and styled by a named domain
(``synth_domains``). It stands in for the real datasets in tests, smoke runs and
the recipes' default runs, and it exercises the same code paths: records are
written through ``codec.FaceRecord`` and ``shards.ShardWriter`` like converters do.

Labels per face:

* ``bbox``: (xmin, ymin, xmax, ymax) in [0, 1] of the face skin region (jaw to
  hairline), always exhaustive (``has_boxes = 1``);
* ``landmarks``: 68 ibug68 points (x, y) in [0, 1] with visibility (0 when the point
  faces away from the camera, hides behind the nose, is covered by another person
  in a scene, or leaves the image). Records store ``ibug68`` unless
  ``landmark_scheme`` asks for ``mtfl5``/``aflw21`` (mapped by
  ``landmarks.convert_points``); pipelines can also map at read time;
* ``parsing``: ``[H, W]`` uint8 map of the 11 ``schema.PARSING_CLASSES``;
* ``pose``: (yaw, pitch, roll) degrees (conventions in ``synth_geometry``);
* ``identity`` in ``[0, num_identities)``; ``gender``, ``ethnicity``, ``age`` (years),
  ``age_class`` (rounded age), ``emotion``, ``smile``.

Determinism: sample ``index`` of ``SynthFace(seed=s)`` is drawn from
``np.random.default_rng((s, index, kind, stream))``, so it is the same image and labels
whatever ``count``, order or shard layout. The content does not depend on the
domain (the same seed in two domains shows the same people and poses in two
styles); use different seeds for disjoint datasets. Identities come from
``identity_seed``: the same id is the same person in every dataset of that seed.

Example::

    synth = SynthFace(seed=0, domain="outdoor", image_size=128)
    rgb, labels = synth.render_crop(0)            # uint8 [128, 128, 3], dict
    rec = synth.crop_record(0, tasks=("landmarks", "emotion"))
    manifest = write_synthetic("/tmp/emo", tasks=("emotion",), domain="webcam",
                               count=1000, shards=4)
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from keras_facemt.data import schema
from keras_facemt.data.codec import FaceRecord, encode_image, encode_label_map
from keras_facemt.data.landmarks import convert_points, get_scheme
from keras_facemt.data.shards import ShardWriter, read_manifest
from keras_facemt.data.synth_domains import DOMAINS, SynthDomain, apply_domain, get_domain, render_background
from keras_facemt.data.synth_expression import (
    DEFAULT_INTENSITY_RANGE,
    Expression,
    neutral_expression,
    sample_expression,
)
from keras_facemt.data.synth_geometry import FacePose, build_face, pose_face
from keras_facemt.data.synth_identity import ATTRIBUTE_RULES, SynthIdentity, identity_attributes, make_identity
from keras_facemt.data.synth_painter import paint_face
from keras_facemt.errors import ConfigError

__all__ = [
    "DOMAINS",
    "SUPPORTED_TASKS",
    "KINDS",
    "SynthFace",
    "SynthDomain",
    "write_synthetic",
    "validate_synth_tasks",
]

# Tasks SynthFace can label (schema names).
SUPPORTED_TASKS: Tuple[str, ...] = (
    "detection",
    "landmarks",
    "parsing",
    "pose",
    "identity",
    "age",
    "age_class",
    "gender",
    "ethnicity",
    "smile",
    "emotion",
) + tuple(f"celeba/{n}" for n in tuple(ATTRIBUTE_RULES) + ("Male",))
# MTFR's 7 attributes (Table 1), identity-level, under their CelebA names.
CELEBA_TASKS: Tuple[str, ...] = tuple(t for t in SUPPORTED_TASKS if t.startswith("celeba/"))
KINDS = ("crops", "scenes")
_ATTRIBUTE_TASKS = ("age", "age_class", "gender", "ethnicity", "smile", "emotion") + CELEBA_TASKS
_KIND_CODE = {"crops": 0, "scenes": 1}
DEFAULT_SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))


def validate_synth_tasks(tasks) -> Tuple[str, ...]:
    """Checks task names against the schema and what SynthFace can label.

    Raises:
        ConfigError: naming the first unknown or unsupported task.
    """
    if isinstance(tasks, str):
        tasks = tuple(t.strip() for t in tasks.split(",") if t.strip())
    tasks = tuple(tasks)
    if not tasks:
        raise ConfigError(f"At least one task is needed; SynthFace labels {list(SUPPORTED_TASKS)}. Received: tasks=[]")
    schema.validate_tasks(tasks)
    for t in tasks:
        if t not in SUPPORTED_TASKS:
            raise ConfigError(
                f"SynthFace cannot label task {t!r}; it labels {list(SUPPORTED_TASKS)}. "
                f"Received: tasks={list(tasks)}"
            )
    return tasks


class SynthFace:
    """Renderer of labelled synthetic face crops and multi-face scenes.

    Args:
        seed: Non-negative sample seed.
        domain: Domain name (``DOMAINS``) or a ``SynthDomain``.
        image_size: Side of the square output images in pixels (crops and scenes).
        num_identities: Identities are drawn uniformly from ``[0, num_identities)``.
        identity_seed: Population seed of the identities (see ``make_identity``).
        max_yaw: Largest |yaw| sampled, degrees.
        intensity_range: Range of the emotion intensity (the prototype scale; the
            per-sample jitter is fixed): the default ``(0.45, 1.0)`` keeps emotion
            learnable but far from trivial; raise the low end for easier data.
        attribute_noise: probability that each ``celeba/<name>`` label of an image
            is flipped (seeded per image): per-image pseudo-label noise that the
            per-identity vote (``facemt vote-attributes``) repairs. 0: the
            identity's true labels.
    """

    def __init__(self, seed: int = 0, domain="studio", image_size: int = 128,
                 num_identities: int = 1000, identity_seed: int = 0, max_yaw: float = 75.0,
                 intensity_range: Tuple[float, float] = DEFAULT_INTENSITY_RANGE, attribute_noise: float = 0.0):
        if not 0.0 <= float(attribute_noise) < 0.5:
            raise ConfigError(f"attribute_noise must be in [0, 0.5). Received: attribute_noise={attribute_noise}")
        self.attribute_noise = float(attribute_noise)
        if int(seed) < 0:
            raise ConfigError(f"seed must be >= 0. Received: seed={seed}")
        if int(image_size) < 32:
            raise ConfigError(f"image_size must be >= 32 pixels. Received: image_size={image_size}")
        if int(num_identities) < 1:
            raise ConfigError(f"num_identities must be >= 1. Received: num_identities={num_identities}")
        if int(identity_seed) < 0:
            raise ConfigError(f"identity_seed must be >= 0. Received: identity_seed={identity_seed}")
        if not 0.0 <= float(max_yaw) <= 90.0:
            raise ConfigError(f"max_yaw must be in [0, 90] degrees. Received: max_yaw={max_yaw}")
        lo_hi = tuple(float(v) for v in intensity_range)
        if len(lo_hi) != 2 or not 0.0 <= lo_hi[0] <= lo_hi[1] <= 1.5:
            raise ConfigError(
                f"intensity_range must be (low, high) with 0 <= low <= high <= 1.5. "
                f"Received: intensity_range={intensity_range!r}"
            )
        self.intensity_range = lo_hi
        self.seed = int(seed)
        self.domain = get_domain(domain)
        self.image_size = int(image_size)
        self.num_identities = int(num_identities)
        self.identity_seed = int(identity_seed)
        self.max_yaw = float(max_yaw)
        self._identities: Dict[int, SynthIdentity] = {}

    # ---------------------------------------------------------------- sampling
    def _rngs(self, index: int, kind: str) -> Tuple[np.random.Generator, ...]:
        """Independent (content, background, style) generators of one sample.

        Separate streams keep the content (people, poses, framing) the same in
        every domain, however many draws a domain's background or style takes.
        """
        if int(index) < 0:
            raise ConfigError(f"index must be >= 0. Received: index={index}")
        key = (self.seed, int(index), _KIND_CODE[kind])
        return tuple(np.random.default_rng(key + (stream,)) for stream in (0, 1, 2))

    def identity(self, identity: int) -> SynthIdentity:
        """The (cached) ``SynthIdentity`` of id ``identity``."""
        identity = int(identity)
        if not 0 <= identity < self.num_identities:
            raise ConfigError(
                f"identity must be in [0, {self.num_identities}). Received: identity={identity}"
            )
        ident = self._identities.get(identity)
        if ident is None:
            if len(self._identities) > 20000:
                self._identities.clear()
            ident = self._identities[identity] = make_identity(identity, self.identity_seed)
        return ident

    def _sample_face(self, rng, identity=None, emotion=None, pose=None, neutral=False):
        ident = self.identity(rng.integers(self.num_identities) if identity is None else identity)
        age = float(np.clip(ident.base_age + rng.uniform(-2.0, 2.0), 1.0, 100.0))
        if neutral:
            expr = neutral_expression()
        else:
            if emotion is not None:
                if isinstance(emotion, str):
                    if emotion not in schema.EMOTIONS:
                        raise ConfigError(f"Unknown emotion {emotion!r}; expected one of {list(schema.EMOTIONS)}. Received: emotion={emotion!r}")
                    emotion = schema.EMOTIONS.index(emotion)
                if not 0 <= int(emotion) < len(schema.EMOTIONS):
                    raise ConfigError(f"emotion must be in [0, {len(schema.EMOTIONS)}). Received: emotion={emotion}")
            expr = sample_expression(rng, emotion, intensity_range=self.intensity_range)
        if pose is None:
            yaw = float(np.clip(rng.normal(0.0, 24.0), -self.max_yaw, self.max_yaw))
            pitch = float(np.clip(rng.normal(0.0, 10.0), -35.0, 35.0))
            roll = float(np.clip(rng.normal(0.0, 8.0), -30.0, 30.0))
            pose = FacePose(
                float(np.clip(yaw + expr["head_yaw"], -90.0, 90.0)),
                pitch + expr["head_pitch"],
                roll + expr["head_roll"],
            )
        elif not isinstance(pose, FacePose):
            values = np.asarray(pose, np.float64).reshape(-1)
            if values.shape != (3,) or not np.all(np.isfinite(values)) or np.any(np.abs(values) > 90):
                raise ConfigError(f"pose must be finite (yaw, pitch, roll) degrees within +-90. Received: pose={pose!r}")
            pose = FacePose(*values.tolist())
        return ident, expr, age, pose

    def _attribute_labels(self, ident: SynthIdentity, index: int, kind: str, face: int = 0) -> Dict[str, int]:
        """``celeba/<name>`` labels of one face, flipped at ``attribute_noise`` (seeded per image and face)."""
        labels = {f"celeba/{k}": v for k, v in identity_attributes(ident).items()}
        if self.attribute_noise > 0:
            rng = np.random.default_rng((self.seed, int(index), _KIND_CODE[kind], 3, int(face)))
            flips = rng.random(len(CELEBA_TASKS)) < self.attribute_noise
            for key, flip in zip(CELEBA_TASKS, flips):
                labels[key] = int(labels[key] ^ int(flip))
        return labels

    @staticmethod
    def _face_labels(ident: SynthIdentity, expr: Expression, age: float, pose: FacePose) -> Dict[str, object]:
        return {
            "pose": pose.as_array(),
            "identity": ident.identity,
            "gender": ident.gender,
            "ethnicity": ident.ethnicity,
            "age": np.float32(age),
            "age_class": int(np.clip(round(age), 0, 100)),
            "emotion": expr.emotion,
            "emotion_intensity": np.float32(expr.intensity),
            "smile": expr.smile,
        }

    # ---------------------------------------------------------------- crops
    def render_crop(self, index: int, identity: Optional[int] = None, emotion=None, pose=None,
                    neutral: bool = False) -> Tuple[np.ndarray, Dict[str, object]]:
        """Renders face crop ``index``.

        Args:
            index: Sample index (>= 0).
            identity: Force this identity id (else sampled).
            emotion: Force this emotion (index or name in ``schema.EMOTIONS``).
            pose: Force (yaw, pitch, roll) degrees (else sampled, plus the
                expression's head offset).
            neutral: Render the neutral expression (``emotion`` label -1, for
                inspecting identities).

        Returns:
            ``(rgb, labels)``: uint8 ``[S, S, 3]`` and a dict with ``bbox`` ``[4]``,
            ``landmarks`` ``[68, 2]``, ``landmarks_visible`` ``[68]``, ``parsing``
            uint8 ``[S, S]``, ``pose`` ``[3]``, ``identity``, ``gender``,
            ``ethnicity``, ``age``, ``age_class``, ``emotion``,
            ``emotion_intensity``, ``smile``, ``jpeg_quality``.
        """
        rng, bg_rng, style_rng = self._rngs(index, "crops")
        size = self.image_size
        canvas = render_background(self.domain, bg_rng, size, size).astype(np.uint8)
        ident, expr, age, pose = self._sample_face(rng, identity, emotion, pose, neutral)
        face = build_face(ident, expr, age)
        rotated, visible = pose_face(face, pose)
        scale = size * float(rng.uniform(0.44, 0.6))
        anchor = np.array([0.0, -0.06, 0.0]) @ pose.rotation().T
        centre = size / 2.0 - anchor[:2] * scale + rng.uniform(-0.05, 0.05, 2) * size - 0.5
        parsing = np.zeros((size, size), np.uint8)
        painted = paint_face(canvas, parsing, face, rotated, scale, centre, ident, expr, age)
        rgb = apply_domain(canvas.astype(np.float32), self.domain, style_rng)
        lm = (painted.landmarks + 0.5) / size
        inside = np.all((lm >= 0.0) & (lm <= 1.0), axis=-1)
        labels = {
            "bbox": np.clip(painted.box / size, 0.0, 1.0).astype(np.float32),
            "landmarks": lm.astype(np.float32),
            "landmarks_visible": (visible * inside).astype(np.float32),
            "parsing": parsing,
            "jpeg_quality": self.domain.jpeg_quality,
        }
        labels.update(self._face_labels(ident, expr, age, pose))
        labels.update(self._attribute_labels(ident, index, "crops"))
        return rgb, labels

    def render(self, index: int, kind: str = "crops") -> np.ndarray:
        """Renders only the RGB image of sample ``index`` (``[S, S, 3]`` uint8)."""
        if kind == "crops":
            return self.render_crop(index)[0]
        if kind == "scenes":
            return self.render_scene(index)[0]
        raise ConfigError(f"kind must be one of {list(KINDS)}. Received: kind={kind!r}")

    # ---------------------------------------------------------------- scenes
    def render_scene(self, index: int, max_faces: int = 20, min_faces: int = 1) -> Tuple[np.ndarray, Dict[str, object]]:
        """Renders scene ``index`` with ``min_faces..max_faces`` faces.

        Faces take varied scales (face width from about 5% to 45% of the image),
        barely overlap (head boxes are placed without intersecting), and are drawn
        far (small) to near (large); bodies may cover smaller faces, which is
        reflected in their landmark visibility. The face count can fall below the
        sampled number when the image has no room left, but never below 1.

        Returns:
            ``(rgb, labels)``: uint8 ``[S, S, 3]`` and a dict with per-face arrays
            ``bbox`` ``[N, 4]``, ``landmarks`` ``[N, 68, 2]``, ``landmarks_visible``
            ``[N, 68]``, ``pose`` ``[N, 3]``, ``identity``/``gender``/``ethnicity``/
            ``age_class``/``emotion``/``smile`` ``[N]`` int64, ``age``/
            ``emotion_intensity`` ``[N]`` float32, and ``parsing`` uint8 ``[S, S]``.
        """
        if not 1 <= int(min_faces) <= int(max_faces):
            raise ConfigError(
                f"Need 1 <= min_faces <= max_faces. Received: min_faces={min_faces}, max_faces={max_faces}"
            )
        rng, bg_rng, style_rng = self._rngs(index, "scenes")
        size = self.image_size
        canvas = render_background(self.domain, bg_rng, size, size).astype(np.uint8)
        wanted = int(rng.integers(int(min_faces), int(max_faces) + 1))
        lo = max(10.0, 0.05 * size)
        hi = max(lo * 1.01, 0.45 * size / max(1.0, np.sqrt(wanted) * 0.6))
        # Stratified log-scales so every scene mixes near and far faces; the
        # largest are placed first while there is room, and a face that does not
        # fit shrinks until it does (or is dropped). A smaller face keeps its head
        # off the heads and the bodies of larger ones, which are drawn over it.
        u = (np.arange(wanted) + rng.uniform(0.0, 1.0, wanted)) / wanted
        scales = np.sort(np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo))))[::-1]
        placed = []  # (scale, centre, head box)
        blocked = []  # head and body boxes of the placed faces
        for s in scales:
            for attempt in range(30):
                if attempt and attempt % 6 == 0:
                    s = max(lo, s * 0.8)
                c = np.array([rng.uniform(0.55 * s, size - 0.55 * s), rng.uniform(0.8 * s, size - 0.7 * s)])
                head = np.array([c[0] - 0.68 * s, c[1] - 1.0 * s, c[0] + 0.68 * s, c[1] + 0.75 * s])
                if all(
                    head[0] >= o[2] or head[2] <= o[0] or head[1] >= o[3] or head[3] <= o[1]
                    for o in blocked
                ):
                    placed.append((float(s), c, head))
                    blocked.append(head)
                    blocked.append(np.array([c[0] - 1.1 * s, c[1] + 0.9 * s, c[0] + 1.1 * s, c[1] + 2.3 * s]))
                    break
        if not placed:  # always at least one face
            s = 0.4 * size
            placed.append((s, np.array([size / 2, size / 2]), None))
        placed.sort(key=lambda p: p[0])
        parsing = np.zeros((size, size), np.uint8)
        instances = np.zeros((size, size), np.int32)
        faces = []
        for i, (s, c, _) in enumerate(placed):
            ident, expr, age, pose = self._sample_face(rng)
            face = build_face(ident, expr, age)
            rotated, visible = pose_face(face, pose)
            anchor = np.array([0.0, -0.06, 0.0]) @ pose.rotation().T
            centre = c - anchor[:2] * s - 0.5
            painted = paint_face(canvas, parsing, face, rotated, s, centre, ident, expr, age,
                                 instances=instances, instance_id=i + 1)  # fmt: skip
            faces.append((painted, visible, self._face_labels(ident, expr, age, pose)))
        rgb = apply_domain(canvas.astype(np.float32), self.domain, style_rng)
        n = len(faces)
        out: Dict[str, object] = {"parsing": parsing, "jpeg_quality": self.domain.jpeg_quality}
        boxes, lms, vis = [], [], []
        for i, (painted, visible, _) in enumerate(faces):
            px = np.round(painted.landmarks).astype(np.int64)
            inside = np.all((px >= 0) & (px < size), axis=-1)
            covered = np.zeros(68, bool)
            ids = instances[np.clip(px[:, 1], 0, size - 1), np.clip(px[:, 0], 0, size - 1)]
            covered[inside] = ids[inside] > i + 1  # drawn later by a nearer person
            boxes.append(np.clip(painted.box / size, 0.0, 1.0))
            lms.append((painted.landmarks + 0.5) / size)
            vis.append(visible * inside * ~covered)
        out["bbox"] = np.asarray(boxes, np.float32).reshape(n, 4)
        out["landmarks"] = np.asarray(lms, np.float32).reshape(n, 68, 2)
        out["landmarks_visible"] = np.asarray(vis, np.float32).reshape(n, 68)
        for key in ("pose",):
            out[key] = np.stack([f[2][key] for f in faces]).astype(np.float32)
        for key in ("age", "emotion_intensity"):
            out[key] = np.array([f[2][key] for f in faces], np.float32)
        for key in ("identity", "gender", "ethnicity", "age_class", "emotion", "smile"):
            out[key] = np.array([f[2][key] for f in faces], np.int64)
        per_face = [self._attribute_labels(self.identity(int(i)), index, "scenes", j)
                    for j, i in enumerate(out["identity"])]
        for key in CELEBA_TASKS:
            out[key] = np.array([a[key] for a in per_face], np.int64)
        return rgb, out

    # ---------------------------------------------------------------- records
    def _record(self, rgb, labels, index, kind, tasks, split, dataset_name, landmark_scheme) -> FaceRecord:
        tasks = validate_synth_tasks(tasks)
        get_scheme(landmark_scheme)
        name = dataset_name or f"synth_{self.domain.name}"
        bbox = np.asarray(labels["bbox"], np.float32).reshape(-1, 4)
        n = bbox.shape[0]
        rec = FaceRecord(
            image=encode_image(rgb, "jpeg", quality=self.domain.jpeg_quality),
            height=rgb.shape[0],
            width=rgb.shape[1],
            source_id=f"{name}/{kind}-s{self.seed}-{index:07d}",
            dataset=name,
            image_format="jpeg",
            split=split,
            bboxes=bbox,
            has_boxes=1,
        )
        if "landmarks" in tasks:
            pts = np.asarray(labels["landmarks"], np.float32).reshape(n, 68, 2)
            vis = np.asarray(labels["landmarks_visible"], np.float32).reshape(n, 68)
            if landmark_scheme != "ibug68":
                pts, vis = convert_points(pts, vis, "ibug68", landmark_scheme)
            rec.landmark_scheme = landmark_scheme
            rec.landmarks, rec.landmarks_visible = pts, vis
            rec.has_landmarks = np.ones(n, np.int64)
        if "parsing" in tasks:
            rec.parsing = encode_label_map(labels["parsing"])
        if "pose" in tasks:
            rec.pose = np.asarray(labels["pose"], np.float32).reshape(n, 3)
            rec.has_pose = np.ones(n, np.int64)
        if "identity" in tasks:
            rec.identity = np.asarray(labels["identity"], np.int64).reshape(n)
            rec.has_identity = np.ones(n, np.int64)
        for a in _ATTRIBUTE_TASKS:
            if a in tasks:
                dtype = np.float32 if schema.attribute_spec(a).kind == "regression" else np.int64
                rec.attributes[a] = np.asarray(labels[a], dtype).reshape(n)
                rec.has_attributes[a] = np.ones(n, np.int64)
        return rec.validate()

    def crop_record(self, index: int, tasks: Sequence[str] = SUPPORTED_TASKS, split: str = "train",
                    dataset_name: Optional[str] = None, landmark_scheme: str = "ibug68") -> FaceRecord:
        """``FaceRecord`` of crop ``index`` carrying only the labels of ``tasks``.

        Boxes are always stored (``has_boxes = 1``): a crop holds exactly one face.
        ``dataset_name`` defaults to ``synth_<domain>``.
        """
        rgb, labels = self.render_crop(index)
        return self._record(rgb, labels, index, "crop", tasks, split, dataset_name, landmark_scheme)

    def scene_record(self, index: int, tasks: Sequence[str] = SUPPORTED_TASKS, split: str = "train",
                     dataset_name: Optional[str] = None, max_faces: int = 20, min_faces: int = 1,
                     landmark_scheme: str = "ibug68") -> FaceRecord:
        """``FaceRecord`` of scene ``index`` (every face annotated, ``has_boxes = 1``)."""
        rgb, labels = self.render_scene(index, max_faces=max_faces, min_faces=min_faces)
        return self._record(rgb, labels, index, "scene", tasks, split, dataset_name, landmark_scheme)


def _validate_splits(splits) -> Tuple[Tuple[str, float], ...]:
    try:
        pairs = tuple((str(name), float(ratio)) for name, ratio in splits)
    except (TypeError, ValueError):
        raise ConfigError(f"splits must be (name, ratio) pairs. Received: splits={splits!r}") from None
    if not pairs or any(r < 0 for _, r in pairs) or sum(r for _, r in pairs) <= 0:
        raise ConfigError(f"splits need non-negative ratios with a positive sum. Received: splits={splits!r}")
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names) or any(not n or "/" in n or "-" in n for n in names):
        raise ConfigError(f"split names must be unique, non-empty, without '/' or '-'. Received: splits={splits!r}")
    total = sum(r for _, r in pairs)
    return tuple((n, r / total) for n, r in pairs)


def assign_splits(count: int, splits, seed: int) -> np.ndarray:
    """Split name per index ``[count]``: exact largest-remainder sizes, seeded order.

    Every split with a positive ratio gets at least one example when ``count``
    allows it.
    """
    pairs = _validate_splits(splits)
    quotas = np.array([r * count for _, r in pairs])
    sizes = np.floor(quotas).astype(int)
    for i in np.argsort(-(quotas - sizes), kind="stable")[: count - sizes.sum()]:
        sizes[i] += 1
    for i, (_, r) in enumerate(pairs):  # no empty split that was asked for
        if r > 0 and sizes[i] == 0 and sizes.max() > 1:
            sizes[int(np.argmax(sizes))] -= 1
            sizes[i] += 1
    names = np.repeat(np.array([n for n, _ in pairs], dtype=object), sizes)
    order = np.random.default_rng((int(seed), 104729)).permutation(count)
    out = np.empty(count, dtype=object)
    out[order] = names
    return out


def write_synthetic(
    out_dir: str,
    kind: str = "crops",
    tasks: Iterable[str] = SUPPORTED_TASKS,
    domain="studio",
    count: int = 1000,
    shards: int = 4,
    seed: int = 0,
    image_size: int = 128,
    dataset_name: Optional[str] = None,
    splits=DEFAULT_SPLITS,
    overwrite: bool = False,
    num_identities: int = 1000,
    identity_seed: int = 0,
    max_faces: int = 20,
    min_faces: int = 1,
    landmark_scheme: str = "ibug68",
    contact_sheet: int = 0,
    intensity_range: Tuple[float, float] = DEFAULT_INTENSITY_RANGE,
    attribute_noise: float = 0.0,
) -> Dict[str, object]:
    """Renders a synthetic dataset into TFRecord shards (atomically).

    Args:
        out_dir: Dataset directory (``dataset.json`` + ``<split>-*-of-*.tfrecord``).
        kind: ``crops`` (one face per image) or ``scenes`` (1..``max_faces`` faces).
        tasks: Labels the records carry (``SUPPORTED_TASKS``); others are absent.
        domain: Domain name or ``SynthDomain``.
        count: Number of images (>= 1).
        shards: Shards per split (>= 1).
        seed: Sample seed; index ``i`` renders the same whatever ``count``.
        image_size: Image side in pixels.
        dataset_name: ``image/dataset`` of every record (default ``synth_<domain>``).
        splits: ``(name, ratio)`` pairs; sizes are exact (largest remainder) and the
            assignment of indices to splits is seeded.
        overwrite: Replace an existing dataset at ``out_dir``.
        num_identities, identity_seed: Identity population (see ``SynthFace``).
        intensity_range: Emotion intensity range (see ``SynthFace``).
        attribute_noise: per-image flip rate of the ``celeba/<name>`` labels (see
            ``SynthFace``).
        max_faces, min_faces: Faces per scene (``kind="scenes"``).
        landmark_scheme: Stored scheme (``ibug68``, ``aflw21`` or ``mtfl5``).
        contact_sheet: When > 0, also writes ``<out_dir>/contact_sheet.png`` of the
            first that many records with their labels drawn (decoded from the shards'
            bytes, so it shows exactly what was stored).

    Returns:
        The manifest (``dataset.json``), which also records the generator settings
        under ``"synthface"``.

    Raises:
        ConfigError: for an unknown kind, task, domain or scheme, or a bad count,
            shard count, size or split.
        DataError: when ``out_dir`` holds a dataset and ``overwrite`` is False.
    """
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {list(KINDS)}. Received: kind={kind!r}")
    tasks = validate_synth_tasks(tasks)
    dom = get_domain(domain)
    if isinstance(count, bool) or int(count) != count or int(count) < 1:
        raise ConfigError(f"count must be a positive integer. Received: count={count!r}")
    if isinstance(shards, bool) or int(shards) != shards or int(shards) < 1:
        raise ConfigError(f"shards must be a positive integer. Received: shards={shards!r}")
    if int(contact_sheet) < 0:
        raise ConfigError(f"contact_sheet must be >= 0. Received: contact_sheet={contact_sheet}")
    get_scheme(landmark_scheme)
    count, shards = int(count), int(shards)
    split_of = assign_splits(count, splits, seed)
    synth = SynthFace(seed=seed, domain=dom, image_size=image_size, num_identities=num_identities,
                      identity_seed=identity_seed, intensity_range=intensity_range,
                      attribute_noise=attribute_noise)  # fmt: skip
    name = dataset_name or f"synth_{dom.name}"
    settings = {
        "kind": kind, "tasks": list(tasks), "domain": dom.name, "count": count, "seed": int(seed),
        "image_size": int(image_size), "num_identities": int(num_identities),
        "identity_seed": int(identity_seed), "landmark_scheme": landmark_scheme,
        "splits": [[n, r] for n, r in _validate_splits(splits)],
        "jpeg_quality": dom.jpeg_quality, "intensity_range": list(synth.intensity_range),
        "attribute_noise": synth.attribute_noise,
    }  # fmt: skip
    if kind == "scenes":
        settings.update(max_faces=int(max_faces), min_faces=int(min_faces))
    sheet_records = []
    with ShardWriter(out_dir, num_shards=shards, overwrite=overwrite,
                     extra={"generator": "synthface", "synthface": settings}) as writer:  # fmt: skip
        for i in range(count):
            if kind == "crops":
                rec = synth.crop_record(i, tasks, str(split_of[i]), name, landmark_scheme)
            else:
                rec = synth.scene_record(i, tasks, str(split_of[i]), name, max_faces, min_faces, landmark_scheme)
            writer.write(rec)
            if len(sheet_records) < int(contact_sheet):
                sheet_records.append(rec)
    if sheet_records:
        from keras_facemt.data.drawing import contact_sheet as make_sheet
        from keras_facemt.data.drawing import draw_labels, record_labels

        drawn = [draw_labels(*record_labels(r)) for r in sheet_records]
        make_sheet(drawn, os.path.join(out_dir, "contact_sheet.png"))
    return read_manifest(out_dir)
