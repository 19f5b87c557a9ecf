"""The input pipeline: TFRecord shards -> decode -> resize -> augment -> batches.

``build_dataset(cfg, input_context)`` turns one ``DataConfig`` stream into a
``tf.data.Dataset`` of dict batches laid out as ``data/batch.py`` documents:

1. Up-front checks, before any graph runs: the directory exists and holds shards of
   the split, every shard is a TFRecord file, ``dataset.json`` is present, each
   requested task has labels in the split (``check_task_presence``), and the
   stream's landmark scheme is a single one that maps to the target scheme. Each
   failure raises ``DataError``/``ConfigError`` naming the directory or file.
2. Files are sharded over input pipelines (``input_context``) when there are at
   least as many files as pipelines, else elements are; the file list is shuffled
   with ``cfg.seed`` and read with a deterministic parallel interleave.
3. Each record is parsed with ``codec.parse_example`` (decoding only the labels of
   ``cfg.tasks``), its image and parsing map are checked and decoded
   (``tf.io.decode_image``: JPEG/PNG, gray -> RGB, alpha dropped, float32 in
   ``[0, 1]``), per-face labels are padded to a fixed number of faces with a
   ``face_mask``, landmarks are mapped to the target scheme and the image is
   resized: crops mode stretches the crop to ``image_size`` (normalised geometry is
   unchanged by a stretch), scenes mode letterboxes (see ``augment.resize_example``).
4. Records with any problem (``error`` of ``parse_example``, bytes that do not
   parse, bytes that are not a complete JPEG/PNG, a header size that contradicts
   ``image/height``/``width`` or exceeds ``MAX_IMAGE_PIXELS``, non-finite values,
   labels outside the schema's range (class counts, regression ranges, identities
   against ``dataset.json``), presence flags other than 0/1, geometry beyond
   ``schema.GEOMETRY_TOLERANCE``, parsing ids out of range, a landmark scheme other
   than the stream's) go through ``cfg.error_policy``: ``skip`` drops the record and enters
   it in the ``ErrorLog`` (file, record index, source_id, reason naming the field);
   ``fail`` raises ``DataError`` at the first one (as ``tf.errors.OpError`` from the
   iterator; ``error_log.raise_data_errors`` re-raises it typed).
5. Optional cache, seeded shuffle, repeat, stateless augmentation seeded by
   ``(cfg.seed, element index)`` (``data/augment.py``), batching (per replica under
   an ``input_context``; ``drop_remainder`` when repeating) and prefetch.

A shard file that is cut short or damaged is read up to its last good record and
then entered once as ``lost`` (``error_log.check_shard_end``), or raises under
``fail``.

Undecodable image bytes must not crash a run, yet TF's decoders raise inside the
graph. Bytes that do not start with a JPEG (``FF D8 FF``) or PNG signature, or lack
the format's end marker (JPEG ``FF D9``, PNG ``IEND``) in their last 32 bytes, are
rejected before decoding with a precise reason (not an image / truncated); bytes
damaged in the middle (and records that no longer parse) are caught by decoding
each record in its own one-element dataset with ``ignore_errors`` and fallbacks
that yield the error instead (``_decode_guarded``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from keras_facemt.configs.data import AugmentConfig, DataConfig
from keras_facemt.data import augment
from keras_facemt.data import batch as B
from keras_facemt.data import landmarks as landmark_schemes
from keras_facemt.data import schema, shards
from keras_facemt.data.codec import MAX_IMAGE_PIXELS, PNG_MAGIC, encoded_image_size, parse_example, tail_has
from keras_facemt.data.error_log import (
    DEFAULT_ERROR_LOG,
    SKIPPED,
    TRUNCATED,
    ErrorLog,
    check_shard_end,
    raise_data_errors,
    report_issue,
)
from keras_facemt.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_ERROR_LOG",
    "ErrorLog",
    "build_dataset",
    "check_shards",
    "check_task_presence",
    "raise_data_errors",
    "steps_per_epoch",
    "stream_landmark_scheme",
]

AUTOTUNE = tf.data.AUTOTUNE
# Files read concurrently by the interleave (more only costs memory).
_CYCLE_LENGTH = 8
_JPEG_MAGIC = b"\xff\xd8\xff"
# TFRecord framing around each record's data: length (8), its CRC (4), data CRC (4).
_RECORD_FRAMING = 16
# Keys that travel with an example until error routing, then are dropped.
_META = ("_file", "_index", "_source_id", "_error", "_num_faces")


# ---------------------------------------------------------------------- up-front checks
def check_task_presence(data_dir: str, split: str, tasks: Sequence[str]) -> None:
    """Raises if ``dataset.json`` shows no labels of a requested task in ``split``.

    A stream pointed at a directory whose records lack a task's labels would train
    that task on nothing; this makes it fail before training starts.

    Args:
        data_dir: dataset directory (with ``dataset.json``).
        split: split name (``train``, ``val``, ``test``).
        tasks: schema task names.

    Raises:
        ConfigError: naming the first task with zero presence and the directory, or
            an unknown task name.
        DataError: if the directory or its ``dataset.json`` is missing.
    """
    tasks = schema.validate_tasks(tasks)
    manifest = shards.read_manifest(data_dir)
    presence = manifest.get("presence")
    if presence is None:
        # A manifest without presence counts (not written by ShardWriter) cannot be
        # checked here; the records' own presence flags still mask the losses.
        return
    counts = presence.get(split, {})
    for task in tasks:
        if int(counts.get(task, 0)) <= 0:
            raise ConfigError(
                f"{data_dir}: no record of split {split!r} has labels for task {task!r} "
                f"(dataset.json presence: {dict(counts)}). Point this stream at a directory "
                f"with {task!r} labels or drop the task. Received: task={task!r}, data_dir={data_dir!r}"
            )


def check_shards(data_dir: str, split: str) -> List[str]:
    """Sorted shard files of ``split``, each checked to be a TFRecord file.

    Raises:
        DataError: if the directory is missing, holds no shard of ``split``, a shard
            is not a TFRecord file (naming it), or ``dataset.json`` is missing.
    """
    files = shards.list_shards(data_dir, split)
    for path in files:
        shards.check_tfrecord(path)
    shards.read_manifest(data_dir)
    return files


def stream_landmark_scheme(data_dir: str, files: Sequence[str]) -> Optional[str]:
    """The one landmark scheme of a dataset's records (None if none has landmarks).

    Read from ``dataset.json`` ``landmark_schemes``; a manifest without it falls back
    to the first record.

    Raises:
        DataError: if the records mix landmark schemes.
    """
    manifest = shards.read_manifest(data_dir)
    counts = manifest.get("landmark_schemes")
    if counts is None:
        counts = {}
        for raw in tf.data.TFRecordDataset(files[0]).take(1):
            try:
                example = tf.train.Example.FromString(raw.numpy())
            except Exception:  # protobuf's DecodeError: a damaged first record
                raise DataError(
                    f"{files[0]}#0: not a tf.train.Example, and dataset.json has no landmark_schemes to read "
                    f"the stream's scheme from instead."
                ) from None
            feature = example.features.feature.get(schema.LANDMARK_SCHEME)
            values = feature.bytes_list.value if feature is not None else []
            counts = {values[0].decode() if values else "none": 1}
    used = sorted(s for s, n in counts.items() if s != "none" and int(n) > 0)
    if len(used) > 1:
        raise DataError(
            f"{data_dir}: records mix landmark schemes {used}; one stream must use one scheme "
            f"(convert the dataset to one scheme or split it into streams). Received: landmark_schemes={dict(counts)}"
        )
    if used:
        landmark_schemes.get_scheme(used[0])
        return used[0]
    return None


def _check_augment(cfg: AugmentConfig) -> None:
    if not 0.0 <= cfg.flip <= 1.0:
        raise ConfigError(f"augment.flip must be a probability in [0, 1]. Received: flip={cfg.flip}")
    lo, hi = cfg.scale_range
    if not 0.0 < lo <= hi:
        raise ConfigError(f"augment.scale_range must satisfy 0 < low <= high. Received: scale_range={cfg.scale_range}")
    for name in ("shift", "brightness", "contrast", "saturation"):
        value = getattr(cfg, name)
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"augment.{name} must be in [0, 1). Received: {name}={value}")
    if not 0.0 <= cfg.hue <= 0.5:
        raise ConfigError(f"augment.hue must be in [0, 0.5]. Received: hue={cfg.hue}")


# ---------------------------------------------------------------------- stream plan
@dataclasses.dataclass(frozen=True)
class _StreamPlan:
    """Static facts of one stream, resolved on the host before tracing."""

    cfg: DataConfig
    files: Tuple[str, ...]
    attributes: Tuple[str, ...]
    source_scheme: Optional[str]
    target_scheme: Optional[str]
    num_faces: int  # F: 1 in crops mode, max_faces in scenes mode
    num_identities: Optional[int] = None  # identity ids must lie in [0, num_identities)
    shard_records: Tuple[Tuple[str, int], ...] = ()  # (file, records) from dataset.json

    @property
    def tasks(self) -> Tuple[str, ...]:
        return self.cfg.tasks


def _plan(cfg: DataConfig) -> _StreamPlan:
    tasks = schema.validate_tasks(cfg.tasks)
    if cfg.augment is not None:
        _check_augment(cfg.augment)
    if "teacher_embedding" in tasks and cfg.embedding_dim <= 0:
        raise ConfigError(
            f"stream {cfg.name!r}: task 'teacher_embedding' needs embedding_dim > 0. "
            f"Received: embedding_dim={cfg.embedding_dim}"
        )
    files = check_shards(cfg.data_dir, cfg.split)
    check_task_presence(cfg.data_dir, cfg.split, tasks)
    source = stream_landmark_scheme(cfg.data_dir, files)
    target = cfg.landmark_scheme or source
    if target is not None:
        landmark_schemes.get_scheme(target)
    if "landmarks" in tasks:
        if target is None:
            raise ConfigError(
                f"stream {cfg.name!r}: task 'landmarks' requested but {cfg.data_dir} has no landmark scheme and "
                f"the config names none. Received: landmark_scheme={cfg.landmark_scheme!r}"
            )
        if source is not None:
            landmark_schemes.subset_matrix(source, target)  # raises ConfigError if no map
    attributes = tuple(t for t in tasks if t in schema.ATTRIBUTES)
    return _StreamPlan(
        cfg=cfg,
        files=tuple(files),
        attributes=attributes,
        source_scheme=source,
        target_scheme=target,
        num_faces=1 if cfg.mode == "crops" else cfg.max_faces,
        num_identities=shards.identity_count(cfg.data_dir),
        shard_records=tuple(sorted(shards.shard_record_counts(cfg.data_dir, cfg.split).items())),
    )


# ---------------------------------------------------------------------- decoding
def _image_bytes_error(data: tf.Tensor, field: str, png_only: bool = False) -> tf.Tensor:
    """An error message ('' if fine) for bytes that are not a complete JPEG/PNG."""
    n = tf.strings.length(data)
    is_png = tf.equal(tf.strings.substr(data, 0, len(PNG_MAGIC)), PNG_MAGIC)
    is_jpeg = tf.equal(tf.strings.substr(data, 0, len(_JPEG_MAGIC)), _JPEG_MAGIC)
    # A window shorter than the marker would make decode_raw/stack shapes invalid.
    long_enough = n >= 16
    png_ok = is_png & tf.cond(long_enough, lambda: tail_has(data, b"IEND"), lambda: tf.constant(False))
    jpeg_ok = is_jpeg & tf.cond(long_enough, lambda: tail_has(data, b"\xff\xd9"), lambda: tf.constant(False))
    kinds = "PNG" if png_only else "JPEG/PNG"
    ok = png_ok if png_only else (png_ok | jpeg_ok)
    starts = is_png if png_only else (is_png | is_jpeg)
    msg = tf.where(
        starts,
        tf.constant(f"{field!r} is a truncated {kinds} (no end marker)"),
        tf.constant(f"{field!r} is not a {kinds} image"),
    )
    return tf.where(ok, tf.constant(""), msg)


def _join_errors(errors: List[tf.Tensor]) -> tf.Tensor:
    joined = tf.strings.reduce_join(tf.stack(errors), separator="; ")
    joined = tf.strings.regex_replace(joined, "(; )+", "; ")
    return tf.strings.regex_replace(joined, "^; |; $", "")


def _pad_faces(t: tf.Tensor, f: int) -> tf.Tensor:
    """``[N, ...]`` -> ``[F, ...]``: the first ``F`` faces, zero-padded."""
    t = t[:f]
    pad = f - tf.shape(t)[0]
    paddings = tf.concat([[[0, pad]], tf.zeros([t.shape.rank - 1, 2], tf.int32)], axis=0)
    out = tf.pad(t, paddings)
    return tf.ensure_shape(out, [f] + t.shape.as_list()[1:])


def _finite_error(t: tf.Tensor, key: str) -> tf.Tensor:
    """'' if ``t`` is all finite, else a message naming feature ``key``."""
    return tf.where(tf.reduce_all(tf.math.is_finite(t)), "", f"{key!r} has non-finite values")


def _range_error(values: tf.Tensor, present: tf.Tensor, lo: float, hi: float, key: str) -> tf.Tensor:
    """'' if every value where ``present`` is in ``[lo, hi]`` (NaN is not), else a message."""
    v = tf.cast(values, tf.float32)
    ok = tf.logical_or(tf.logical_not(present), tf.logical_and(v >= lo, v <= hi))
    bad = tf.boolean_mask(v, tf.logical_not(ok))
    return tf.cond(
        tf.reduce_all(ok),
        lambda: tf.constant(""),
        lambda: tf.strings.format(f"{key!r} has value {{}} outside [{lo:g}, {hi:g}]", [bad[0]]),
    )


def _flag_error(flag: tf.Tensor, key: str) -> tf.Tensor:
    """'' if a presence/visibility flag holds only 0 and 1, else a message naming ``key``."""
    ok = tf.reduce_all(tf.logical_or(tf.equal(flag, 0.0), tf.equal(flag, 1.0)))
    return tf.where(ok, "", f"{key!r} must hold 0 or 1")


def _geometry_errors(plan: _StreamPlan, p: Dict[str, tf.Tensor]) -> List[tf.Tensor]:
    """Boxes and visible landmarks outside ``[-tol, 1 + tol]`` (the converters' tolerance)
    or boxes with ``xmax < xmin``; pose angles outside [-180, 180] degrees."""
    lo, hi = -schema.GEOMETRY_TOLERANCE, 1.0 + schema.GEOMETRY_TOLERANCE
    box = p["bbox"]
    errors = [
        _range_error(box, tf.ones_like(box, tf.bool), lo, hi, schema.FACE_BBOX),
        tf.where(tf.reduce_all(box[:, 2:] >= box[:, :2]), "", f"{schema.FACE_BBOX!r} has a box with xmax < xmin or ymax < ymin"),
    ]
    if "landmarks" in plan.tasks:
        shown = (p["landmarks_visible"] > 0) & (p["has_landmarks"][:, None] > 0)
        errors.append(_range_error(p["landmarks"], tf.stack([shown, shown], -1), lo, hi, schema.FACE_LANDMARKS))
        errors.append(_flag_error(p["has_landmarks"], schema.FACE_HAS_LANDMARKS))
    if "pose" in plan.tasks:
        present = tf.tile(p["has_pose"][:, None] > 0, [1, 3])
        errors.append(_range_error(p["pose"], present, -180.0, 180.0, schema.FACE_POSE))
        errors.append(_flag_error(p["has_pose"], schema.FACE_HAS_POSE))
    return errors


def _checked_label(values: tf.Tensor, present: tf.Tensor, lo: float, hi: float, key: str, errors: List[tf.Tensor]):
    """Appends range/flag errors of one per-face label; returns it zeroed where absent.

    An absent label carries no meaning, yet an id out of range would still break a
    sparse cross-entropy that is masked afterwards.
    """
    errors.append(_range_error(values, present > 0, lo, hi, key))
    return tf.where(present > 0, values, tf.zeros_like(values))


def _decode_record(plan: _StreamPlan, file: tf.Tensor, index: tf.Tensor, serialized: tf.Tensor) -> Dict[str, tf.Tensor]:
    """One serialised record -> a face-major example resized to ``image_size``.

    Also returns the meta keys ``_file``, ``_index``, ``_source_id``, ``_num_faces``
    and ``_error`` ('' for a healthy record) that error routing consumes.
    """
    cfg = plan.cfg
    f = plan.num_faces
    k_src = landmark_schemes.num_points(plan.source_scheme) if plan.source_scheme else None
    p = parse_example(
        serialized,
        attributes=plan.attributes,
        num_landmarks=k_src,
        embedding_dim=cfg.embedding_dim if "teacher_embedding" in plan.tasks else 0,
    )
    errors = [p["error"]]
    image_error = _image_bytes_error(p["image_bytes"], schema.IMAGE_ENCODED)
    errors.append(tf.where(tf.strings.length(p["error"]) > 0, tf.constant(""), image_error))
    header_ok = tf.equal(tf.strings.length(_join_errors(errors)), 0)
    # The size the image's own header declares is checked against the record before
    # decoding, so a header that lies (or asks for gigapixels) allocates nothing.
    header_size = tf.cond(header_ok, lambda: encoded_image_size(p["image_bytes"]), lambda: tf.zeros([2], tf.int64))
    declared = tf.cast(tf.stack([p["height"], p["width"]]), tf.int64)
    size_ok = tf.logical_or(tf.logical_not(header_ok), tf.reduce_all(tf.equal(header_size, declared)))
    errors.append(
        tf.where(
            size_ok,
            tf.constant(""),
            tf.strings.format(
                f"{schema.IMAGE_HEIGHT!r}/{schema.IMAGE_WIDTH!r} say {{}}x{{}} but "
                f"{schema.IMAGE_ENCODED!r} decodes to {{}}x{{}}",
                [p["height"], p["width"], header_size[0], header_size[1]],
            ),
        )
    )
    too_large = header_ok & size_ok & (tf.reduce_prod(declared) > MAX_IMAGE_PIXELS)
    errors.append(
        tf.where(
            too_large,
            tf.strings.format(f"{schema.IMAGE_ENCODED!r} is {{}}x{{}}, more than {MAX_IMAGE_PIXELS} pixels", [p["height"], p["width"]]),
            tf.constant(""),
        )
    )

    def decode():
        img = tf.io.decode_image(p["image_bytes"], channels=3, expand_animations=False)
        return tf.ensure_shape(img, [None, None, 3])

    image = tf.cond(header_ok & size_ok & tf.logical_not(too_large), decode, lambda: tf.zeros([1, 1, 3], tf.uint8))
    errors.append(_finite_error(p["bbox"], schema.FACE_BBOX))
    errors.extend(_geometry_errors(plan, p))
    scheme_ok = tf.reduce_any(tf.equal(p["landmark_scheme"], ["none", plan.source_scheme or "none"]))
    errors.append(
        tf.where(
            scheme_ok,
            tf.constant(""),
            tf.strings.format(
                f"{schema.LANDMARK_SCHEME!r} is {{}} but this stream's records use \"{plan.source_scheme or 'none'}\"",
                [p["landmark_scheme"]],
            ),
        )
    )

    ex: Dict[str, tf.Tensor] = {
        B.IMAGE: tf.image.convert_image_dtype(image, tf.float32),
        B.DOMAIN: tf.constant(cfg.domain, tf.int32),
        B.BBOX: _pad_faces(p["bbox"], f),
        B.FACE_MASK: _pad_faces(tf.ones([p["num_faces"]], tf.float32), f),
    }
    if cfg.mode == "scenes":
        errors.append(_flag_error(p["has_boxes"], schema.HAS_BOXES))
        ex[B.HAS_BOXES] = p["has_boxes"]
    tasks = plan.tasks
    if "landmarks" in tasks:
        errors.append(_finite_error(p["landmarks"], schema.FACE_LANDMARKS))
        ex.update(_map_landmarks(plan, p, f))
    if "parsing" in tasks:
        parsing, parsing_error = _decode_parsing(p)
        errors.append(parsing_error)
        errors.append(_flag_error(p["has_parsing"], schema.HAS_PARSING))
        ex[B.PARSING] = parsing
        ex[B.HAS_PARSING] = p["has_parsing"]
    if "pose" in tasks:
        errors.append(_finite_error(p["pose"], schema.FACE_POSE))
        ex[B.POSE] = _pad_faces(p["pose"], f)
        ex[B.HAS_POSE] = _pad_faces(p["has_pose"], f)
    if "identity" in tasks:
        hi = (plan.num_identities or 2**31) - 1
        identity = _checked_label(p["identity"], p["has_identity"], 0, hi, schema.FACE_IDENTITY, errors)
        errors.append(_flag_error(p["has_identity"], schema.FACE_HAS_IDENTITY))
        ex[B.IDENTITY] = _pad_faces(identity, f)
        ex[B.HAS_IDENTITY] = _pad_faces(p["has_identity"], f)
    if "teacher_embedding" in tasks:
        errors.append(_finite_error(p["teacher_embedding"], schema.FACE_TEACHER_EMBEDDING))
        errors.append(_flag_error(p["has_teacher_embedding"], schema.FACE_HAS_TEACHER_EMBEDDING))
        ex[B.TEACHER_EMBEDDING] = _pad_faces(p["teacher_embedding"], f)
        ex[B.HAS_TEACHER_EMBEDDING] = _pad_faces(p["has_teacher_embedding"], f)
    for name in plan.attributes:
        value, present = p[f"attr/{name}"], p[f"has_attr/{name}"]
        if value.dtype == tf.float32:
            errors.append(_finite_error(value, schema.ATTR_PREFIX + name))
        lo, hi = schema.attribute_spec(name).value_range
        value = _checked_label(value, present, lo, hi, schema.ATTR_PREFIX + name, errors)
        errors.append(_flag_error(present, schema.HAS_ATTR_PREFIX + name))
        ex[B.attr(name)] = _pad_faces(value, f)
        ex[B.has_attr(name)] = _pad_faces(p[f"has_attr/{name}"], f)

    ex = augment.resize_example(ex, cfg.image_size, letterbox=cfg.mode == "scenes")
    ex["_file"] = file
    ex["_index"] = index
    ex["_source_id"] = p["source_id"]
    ex["_error"] = _join_errors(errors)
    ex["_num_faces"] = p["num_faces"]
    return ex


def _map_landmarks(plan: _StreamPlan, p: Dict[str, tf.Tensor], f: int) -> Dict[str, tf.Tensor]:
    """Landmarks in the target scheme, ``[F, K, 2]``, with visibility and presence.

    A target point is visible only if the source defines it and every source point
    it averages is visible (``landmarks.convert_points``, in graph).
    """
    k_dst = landmark_schemes.num_points(plan.target_scheme)
    if plan.source_scheme is None:
        return {
            B.LANDMARKS: tf.zeros([f, k_dst, 2]),
            B.LANDMARKS_VISIBLE: tf.zeros([f, k_dst]),
            B.HAS_LANDMARKS: tf.zeros([f]),
        }
    matrix, defined = landmark_schemes.subset_matrix(plan.source_scheme, plan.target_scheme)
    support = (matrix > 0).astype(np.float32)
    pts = tf.einsum("ds,nsc->ndc", tf.constant(matrix), p["landmarks"])
    n_visible = tf.einsum("ds,ns->nd", tf.constant(support), p["landmarks_visible"])
    vis = tf.cast(n_visible >= support.sum(-1) - 1e-6, tf.float32) * defined
    has = p["has_landmarks"]
    return {
        B.LANDMARKS: _pad_faces(pts * has[:, None, None], f),
        B.LANDMARKS_VISIBLE: _pad_faces(vis * has[:, None], f),
        B.HAS_LANDMARKS: _pad_faces(has, f),
    }


def _decode_parsing(p: Dict[str, tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor]:
    """The parsing label map int32 ``[Hp, Wp]`` (``[1, 1]`` zeros if absent) and an error."""
    present = p["has_parsing"] > 0
    bytes_error = tf.where(present, _image_bytes_error(p["parsing_bytes"], schema.PARSING_ENCODED, png_only=True), "")
    ok = present & tf.equal(tf.strings.length(bytes_error), 0)

    def decode():
        labels = tf.io.decode_png(p["parsing_bytes"], channels=0)
        return tf.cast(labels[:, :, 0], tf.int32)

    labels = tf.cond(ok, decode, lambda: tf.zeros([1, 1], tf.int32))
    in_range = tf.reduce_max(labels) < schema.NUM_PARSING_CLASSES
    range_error = tf.where(
        in_range,
        tf.constant(""),
        tf.strings.format(
            f"{schema.PARSING_ENCODED!r} has class id {{}} >= {schema.NUM_PARSING_CLASSES}", [tf.reduce_max(labels)]
        ),
    )
    return labels, _join_errors([bytes_error, range_error])


def _image_decodes(file: tf.Tensor, index: tf.Tensor, serialized: tf.Tensor):
    """Identity on the record that fails when the record does not parse or its image
    bytes do not decode to the size the record declares."""
    spec = {
        schema.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string, default_value=""),
        schema.IMAGE_HEIGHT: tf.io.FixedLenFeature([], tf.int64, default_value=0),
        schema.IMAGE_WIDTH: tf.io.FixedLenFeature([], tf.int64, default_value=0),
    }
    p = tf.io.parse_single_example(serialized, spec)
    declared = tf.stack([p[schema.IMAGE_HEIGHT], p[schema.IMAGE_WIDTH]])
    checks = [
        tf.debugging.assert_equal(encoded_image_size(p[schema.IMAGE_ENCODED]), declared),
        tf.debugging.assert_less_equal(tf.reduce_prod(declared), tf.constant(MAX_IMAGE_PIXELS, tf.int64)),
    ]
    with tf.control_dependencies(checks):
        image = tf.io.decode_image(p[schema.IMAGE_ENCODED], channels=3, expand_animations=False)
    # The index is routed through the decoded size so the decode cannot be pruned.
    index = tf.maximum(index, -tf.cast(tf.shape(image)[0], index.dtype))
    return file, index, serialized


def _source_id_of(serialized: tf.Tensor) -> tf.Tensor:
    """``image/source_id`` of a record (raises in graph if the record does not parse)."""
    spec = {schema.IMAGE_SOURCE_ID: tf.io.FixedLenFeature([], tf.string, default_value="")}
    return tf.io.parse_single_example(serialized, spec)[schema.IMAGE_SOURCE_ID]


def salvage_source_id(serialized: bytes) -> str:
    """Best-effort ``image/source_id`` of bytes that no longer parse as an Example.

    Walks the protobuf wire format of ``Features.feature`` map entries as far as it
    stays well-formed and returns the first ``image/source_id`` value found ('' if
    none), so a damaged record can still be reported by name.
    """
    key = schema.IMAGE_SOURCE_ID.encode()
    at = serialized.find(b"\n" + bytes([len(key)]) + key)
    if at < 0:
        return ""
    rest, pos, length = serialized[at + 2 + len(key) :], 0, 0
    # value: Feature (field 2) -> BytesList (field 1) -> first value (field 1), each
    # length-delimited with a one-byte length for ids shorter than 128 bytes.
    for tag in (0x12, 0x0A, 0x0A):
        if pos + 2 > len(rest) or rest[pos] != tag or rest[pos + 1] >= 128:
            return ""
        length, pos = rest[pos + 1], pos + 2
    return rest[pos : pos + length].decode("utf-8", "replace")


def _salvaged_source_id(serialized: tf.Tensor) -> tf.Tensor:
    def fn(raw):
        try:
            return salvage_source_id(raw.numpy())
        except Exception:  # best effort only: the record is reported either way
            return ""

    out = tf.py_function(fn, [serialized], tf.string)
    out.set_shape([])
    return out


def _decode_guarded(plan: _StreamPlan):
    """``(file, index, record) -> dataset`` of exactly one example that never fails.

    TF's parsers and image decoders raise inside the graph on damaged bytes (and a
    parse error's message quotes the raw record, which is not UTF-8). Each record
    is therefore decoded in its own one-element dataset with ``ignore_errors``;
    when that comes back empty, fallbacks (each also under ``ignore_errors``) find
    what failed and yield a zero example carrying the reason, which the policy
    then reports: the image decodes (so the parsing map, or another field, broke),
    else the record parses (so the image data is corrupt), else the record is not
    an Example at all (its source_id is salvaged from the raw bytes). The last
    fallback cannot fail. Datasets are lazy: a healthy record pays for none of it.
    """
    image_failed = f"{schema.IMAGE_ENCODED!r} could not be decoded (corrupt image data)"
    other_failed = (
        f"{schema.PARSING_ENCODED!r} could not be decoded (corrupt PNG data)"
        if "parsing" in plan.tasks
        else "the record's labels could not be decoded"
    )
    unparseable = "the record is not a parseable tf.train.Example (damaged bytes)"

    def fn(file, index, serialized):
        one = tf.data.Dataset.from_tensors((file, index, serialized))
        good = one.map(lambda f, i, r: _decode_record(plan, f, i, r)).ignore_errors()
        spec = good.element_spec
        bad_other = one.map(_image_decodes).map(lambda f, i, r: _failed(spec, f, i, _source_id_of(r), other_failed))
        bad_image = one.map(lambda f, i, r: _failed(spec, f, i, _source_id_of(r), image_failed))
        bad_record = one.map(lambda f, i, r: _failed(spec, f, i, _salvaged_source_id(r), unparseable))
        return (
            good.concatenate(bad_other.ignore_errors())
            .concatenate(bad_image.ignore_errors())
            .concatenate(bad_record)
            .take(1)
        )

    return fn


def _failed(spec, file: tf.Tensor, index: tf.Tensor, source_id: tf.Tensor, reason: str) -> Dict[str, tf.Tensor]:
    """A zero example of structure ``spec`` that carries ``reason`` as its error."""
    out = {k: tf.zeros(s.shape, s.dtype) for k, s in spec.items() if s.dtype != tf.string}
    out["_source_id"] = source_id
    out["_file"], out["_index"], out["_error"] = file, index, tf.constant(reason)
    return out


# ---------------------------------------------------------------------- error routing
def _route(plan: _StreamPlan, log: ErrorLog, ex: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Reports a bad record (policy) or faces beyond F; adds ``_keep``."""
    cfg = plan.cfg
    meta = [ex["_file"], ex["_index"], ex["_source_id"]]
    bad = tf.strings.length(ex["_error"]) > 0
    fail = cfg.error_policy == "fail"
    reported = tf.cond(
        bad,
        lambda: tf.py_function(report_issue(log, cfg.name, SKIPPED, fail), meta + [ex["_error"]], tf.bool),
        lambda: tf.constant(False),
    )
    extra = ex["_num_faces"] > plan.num_faces
    reason = tf.strings.format(
        f"{{}} faces in {schema.FACE_BBOX!r}, more than the {plan.num_faces} this stream keeps; the rest were dropped",
        [ex["_num_faces"]],
    )
    noted = tf.cond(
        extra & tf.logical_not(bad),
        lambda: tf.py_function(report_issue(log, cfg.name, TRUNCATED, False), meta + [reason], tf.bool),
        lambda: tf.constant(False),
    )
    out = {k: v for k, v in ex.items() if k not in _META}
    with tf.control_dependencies([reported, noted]):
        out["_keep"] = tf.logical_not(bad)
    return out


# ---------------------------------------------------------------------- finishing
def _finish(plan: _StreamPlan, ex: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Face-major example -> the batch.py layout of the stream's mode."""
    if plan.cfg.mode == "scenes":
        return ex
    out = {}
    for key, value in ex.items():
        if key == B.FACE_MASK:
            continue
        is_per_face = key not in (B.IMAGE, B.DOMAIN, B.PARSING, B.HAS_PARSING)
        out[key] = value[0] if is_per_face else value
    return out


# ---------------------------------------------------------------------- public entry
def build_dataset(
    cfg: DataConfig,
    input_context: Optional[tf.distribute.InputContext] = None,
    error_log: Optional[ErrorLog] = None,
) -> tf.data.Dataset:
    """Builds the ``tf.data`` pipeline of one stream.

    Args:
        cfg: the stream.
        input_context: from ``strategy.distribute_datasets_from_function``; shards
            the input over pipelines and makes the batch size per replica.
        error_log: where skipped/truncated records are entered
            (default: ``error_log.DEFAULT_ERROR_LOG``).

    Returns:
        A dataset of dict batches (``data/batch.py``): ``image`` float32
        ``[B, H, W, 3]``, ``domain`` int32 ``[B]``, ``bbox`` and the label keys of
        ``cfg.tasks`` (crops mode: ``[B, ...]``; scenes mode: ``[B, F, ...]`` plus
        ``face_mask`` ``[B, F]`` and ``has_boxes`` ``[B]``). ``B`` is
        ``cfg.global_batch_size`` divided by the number of replicas under an
        ``input_context``; a repeating stream drops the last partial batch.

    Raises:
        DataError: missing/empty directory, a shard that is not a TFRecord file, no
            ``dataset.json``, or records mixing landmark schemes.
        ConfigError: unknown task, a task without labels in the split, an
            unmappable landmark scheme, or a batch size that does not split over
            replicas.
    """
    plan = _plan(cfg)
    log = DEFAULT_ERROR_LOG if error_log is None else error_log
    batch_size = cfg.global_batch_size
    num_pipelines, pipeline_id = 1, 0
    if input_context is not None:
        num_pipelines = input_context.num_input_pipelines
        pipeline_id = input_context.input_pipeline_id
        try:
            batch_size = input_context.get_per_replica_batch_size(cfg.global_batch_size)
        except ValueError:
            raise ConfigError(
                f"stream {cfg.name!r}: global_batch_size {cfg.global_batch_size} does not split evenly over "
                f"{input_context.num_replicas_in_sync} replicas. Received: global_batch_size={cfg.global_batch_size}"
            ) from None

    files = tf.data.Dataset.from_tensor_slices(list(plan.files))
    shard_by_file = num_pipelines > 1 and len(plan.files) >= num_pipelines
    if shard_by_file:
        files = files.shard(num_pipelines, pipeline_id)
    training_order = cfg.shuffle_buffer > 0
    if training_order:
        files = files.shuffle(len(plan.files), seed=cfg.seed, reshuffle_each_iteration=True)

    expected = dict(plan.shard_records)
    end_check = check_shard_end(log, cfg.name, cfg.error_policy == "fail", expected)

    def read(path):
        # ignore_errors ends a file at its first truncated/corrupted record; an end
        # marker then compares the bytes read with the file's size (one host call
        # per file), so a damaged shard is reported, never silently short.
        records = tf.data.TFRecordDataset(path).ignore_errors().map(lambda r: (r, False))
        marked = records.concatenate(tf.data.Dataset.from_tensors((tf.constant(""), True)))

        def count(state, x):
            n, nbytes = state
            record, is_end = x
            one = tf.cast(tf.logical_not(is_end), tf.int64)
            size = one * (tf.cast(tf.strings.length(record), tf.int64) + _RECORD_FRAMING)
            return (n + one, nbytes + size), (n, record, is_end, nbytes + size)

        scanned = marked.scan((tf.constant(0, tf.int64), tf.constant(0, tf.int64)), count)

        def keep(i, record, is_end, nbytes):
            return tf.cond(
                is_end,
                lambda: tf.py_function(end_check, [path, i, nbytes], tf.bool),
                lambda: tf.constant(True),
            )

        return scanned.filter(keep).map(lambda i, r, is_end, nbytes: (path, i, r))

    ds = files.interleave(
        read,
        cycle_length=min(_CYCLE_LENGTH, len(plan.files)),
        block_length=1,
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    if num_pipelines > 1 and not shard_by_file:
        ds = ds.shard(num_pipelines, pipeline_id)
    # Each input yields exactly one example, so the interleave keeps record order.
    ds = ds.interleave(_decode_guarded(plan), num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.map(lambda ex: _route(plan, log, ex), num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.filter(lambda ex: ex["_keep"])
    ds = ds.map(lambda ex: {k: v for k, v in ex.items() if k != "_keep"})
    if cfg.cache:
        ds = ds.cache()
    if training_order:
        ds = ds.shuffle(cfg.shuffle_buffer, seed=cfg.seed, reshuffle_each_iteration=True)
    if cfg.repeat:
        ds = ds.repeat()
    if cfg.augment is not None:
        aug_cfg = cfg.augment
        scheme = plan.target_scheme

        def aug(i, ex):
            # Distinct pipelines get distinct seeds; the same (seed, pipeline, index)
            # always gives the same augmentation.
            element = i * num_pipelines + pipeline_id
            seed = tf.stack([tf.constant(cfg.seed, tf.int64), element])
            return augment.augment_example(ex, seed, aug_cfg, scheme)

        ds = ds.enumerate().map(aug, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.map(lambda ex: _finish(plan, ex), num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=cfg.repeat)
    return ds.prefetch(AUTOTUNE)


def steps_per_epoch(cfg: DataConfig) -> int:
    """Global batches in one pass over the split, from ``dataset.json`` counts.

    Floor when the stream repeats (it drops the last partial batch), else ceil.

    Raises:
        DataError: if ``dataset.json`` counts no example of the split.
    """
    manifest = shards.read_manifest(cfg.data_dir)
    count = int(manifest.get("counts", {}).get(cfg.split, 0))
    if count <= 0:
        raise DataError(f"{cfg.data_dir}: dataset.json counts no examples of split {cfg.split!r}.")
    batch = cfg.global_batch_size
    return count // batch if cfg.repeat else math.ceil(count / batch)
