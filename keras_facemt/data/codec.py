"""``FaceRecord`` <-> ``tf.train.Example``, and the in-graph decoder.

``FaceRecord`` is the one host-side form of a labelled image: converters, SynthFace
and tests build it, ``to_example`` serialises it, ``FaceRecord.from_example`` reads it
back losslessly, and ``parse_example`` is the ``tf.data`` decoder the training
pipeline uses (absent optional features decode to zeros with a zero presence flag).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from keras_facemt.data import schema
from keras_facemt.data.landmarks import get_scheme
from keras_facemt.errors import SchemaError


def encode_image(image: np.ndarray, fmt: str = "jpeg", quality: int = 95) -> bytes:
    """Encodes an RGB uint8 image ``[H, W, 3]`` (or gray ``[H, W]``) to JPEG/PNG bytes."""
    import cv2

    if fmt not in schema.IMAGE_FORMATS:
        raise SchemaError(f"Unknown image format {fmt!r}. Received: fmt={fmt!r}")
    arr = np.asarray(image)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ext = ".jpg" if fmt == "jpeg" else ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else []
    ok, buf = cv2.imencode(ext, arr, params)
    if not ok:
        raise SchemaError(f"Could not encode image as {fmt}. Received: shape={arr.shape}")
    return buf.tobytes()


def decode_image(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decodes JPEG/PNG bytes to RGB uint8 ``[H, W, 3]``.

    Raises:
        SchemaError: naming ``source`` when the bytes are not a decodable image.
    """
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise SchemaError(f"{source}: image bytes could not be decoded as JPEG/PNG.")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def encode_label_map(label_map: np.ndarray) -> bytes:
    """PNG-encodes a parsing label map ``[H, W]`` of class ids (uint8)."""
    arr = np.asarray(label_map)
    if arr.ndim != 2 or arr.min(initial=0) < 0 or arr.max(initial=0) >= schema.NUM_PARSING_CLASSES:
        raise SchemaError(
            "A parsing label map must be [H, W] with class ids in "
            f"[0, {schema.NUM_PARSING_CLASSES}). Received: shape={arr.shape}, "
            f"max={arr.max(initial=0)}"
        )
    return encode_image(arr.astype(np.uint8), "png")


def decode_label_map(data: bytes, source: str = "<bytes>") -> np.ndarray:
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise SchemaError(f"{source}: parsing label map could not be decoded as PNG.")
    return arr if arr.ndim == 2 else arr[..., 0]


def _f32(x, shape) -> np.ndarray:
    return np.asarray(x, np.float32).reshape(shape)


def _i64(x, shape) -> np.ndarray:
    return np.asarray(x, np.int64).reshape(shape)


@dataclasses.dataclass
class FaceRecord:
    """One labelled image with N faces.

    Per-face arrays have a leading dimension N = ``len(bboxes)``. Absent labels are
    ``None`` (or an all-zero presence vector); a present label has presence 1.

    Attributes:
        image: Encoded JPEG/PNG bytes.
        image_format: ``"jpeg"`` or ``"png"``.
        height, width: Image size in pixels.
        source_id: Stable id (file name) used in every error and report.
        dataset: Source dataset name (mapped to a BN domain by the experiment).
        split: ``train``, ``val`` or ``test``.
        bboxes: float32 ``[N, 4]`` (xmin, ymin, xmax, ymax) in [0, 1].
        has_boxes: 1 when boxes are exhaustively annotated (detection label).
        parsing: PNG bytes of an ``[H, W]`` label map, or None.
        landmark_scheme: ``ibug68``, ``aflw21``, ``mtfl5`` or ``none``.
        landmarks: float32 ``[N, K, 2]`` or None.
        landmarks_visible: float32 ``[N, K]`` or None (all visible).
        has_landmarks: int64 ``[N]`` or None.
        pose: float32 ``[N, 3]`` yaw, pitch, roll in degrees, or None.
        has_pose: int64 ``[N]`` or None.
        identity: int64 ``[N]`` or None.
        has_identity: int64 ``[N]`` or None.
        teacher_embedding: float32 ``[N, D]`` or None.
        has_teacher_embedding: int64 ``[N]`` or None.
        attributes: name -> ``[N]`` values (float32 regression, int64 otherwise).
        has_attributes: name -> int64 ``[N]`` presence.
    """

    image: bytes
    height: int
    width: int
    source_id: str
    dataset: str
    image_format: str = "jpeg"
    split: str = "train"
    bboxes: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros((0, 4), np.float32)
    )
    has_boxes: int = 0
    parsing: Optional[bytes] = None
    landmark_scheme: str = "none"
    landmarks: Optional[np.ndarray] = None
    landmarks_visible: Optional[np.ndarray] = None
    has_landmarks: Optional[np.ndarray] = None
    pose: Optional[np.ndarray] = None
    has_pose: Optional[np.ndarray] = None
    identity: Optional[np.ndarray] = None
    has_identity: Optional[np.ndarray] = None
    teacher_embedding: Optional[np.ndarray] = None
    has_teacher_embedding: Optional[np.ndarray] = None
    attributes: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    has_attributes: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def num_faces(self) -> int:
        return int(np.asarray(self.bboxes).reshape(-1, 4).shape[0])

    # ------------------------------------------------------------------ validation
    def _err(self, field: str, msg: str) -> SchemaError:
        return SchemaError(f"{self.source_id}: field {field!r}: {msg}")

    def validate(self) -> "FaceRecord":
        """Normalises dtypes/shapes in place and checks consistency.

        Raises:
            SchemaError: naming the source_id and the inconsistent field.
        """
        if not self.image:
            raise self._err(schema.IMAGE_ENCODED, "missing or empty image bytes")
        if self.image_format not in schema.IMAGE_FORMATS:
            raise self._err(schema.IMAGE_FORMAT, f"must be one of {schema.IMAGE_FORMATS}, got {self.image_format!r}")
        if int(self.height) <= 0 or int(self.width) <= 0:
            raise self._err("image/height,width", f"must be positive, got {self.height}x{self.width}")
        b = np.asarray(self.bboxes, np.float32)
        if b.size % 4:
            raise self._err(schema.FACE_BBOX, f"length {b.size} is not a multiple of 4")
        self.bboxes = b.reshape(-1, 4)
        n = self.num_faces

        def per_face(field, value, tail, cast):
            if value is None:
                return None
            arr = np.asarray(value)
            expected = n * int(np.prod(tail)) if tail else n
            if arr.size != expected:
                raise self._err(field, f"has {arr.size} values; {n} faces need {expected}")
            return cast(arr, (n,) + tuple(tail))

        if self.landmarks is not None:
            if self.landmark_scheme == "none":
                raise self._err(schema.LANDMARK_SCHEME, "landmarks given but scheme is 'none'")
            k = get_scheme(self.landmark_scheme).num_points
            self.landmarks = per_face(schema.FACE_LANDMARKS, self.landmarks, (k, 2), _f32)
            if self.landmarks_visible is None:
                self.landmarks_visible = np.ones((n, k), np.float32)
            self.landmarks_visible = per_face(
                schema.FACE_LANDMARKS_VISIBLE, self.landmarks_visible, (k,), _f32
            )
            if self.has_landmarks is None:
                self.has_landmarks = np.ones((n,), np.int64)
        self.has_landmarks = per_face(schema.FACE_HAS_LANDMARKS, self.has_landmarks, (), _i64)
        if self.landmark_scheme != "none":
            get_scheme(self.landmark_scheme)
        for name, tail, cast in (("pose", (3,), _f32), ("identity", (), _i64)):
            value = getattr(self, name)
            setattr(self, name, per_face(f"face/{name}", value, tail, cast))
            flag = getattr(self, f"has_{name}")
            if value is not None and flag is None:
                flag = np.ones((n,), np.int64)
            setattr(self, f"has_{name}", per_face(f"face/has_{name}", flag, (), _i64))
        if self.teacher_embedding is not None:
            emb = np.asarray(self.teacher_embedding, np.float32)
            if n == 0 or emb.size % n:
                raise self._err(schema.FACE_TEACHER_EMBEDDING, f"{emb.size} values do not split over {n} faces")
            self.teacher_embedding = emb.reshape(n, -1)
            if self.has_teacher_embedding is None:
                self.has_teacher_embedding = np.ones((n,), np.int64)
        self.has_teacher_embedding = per_face(
            schema.FACE_HAS_TEACHER_EMBEDDING, self.has_teacher_embedding, (), _i64
        )
        for name in list(self.attributes):
            spec = schema.attribute_spec(name)
            cast = _f32 if spec.kind == "regression" else _i64
            key = schema.ATTR_PREFIX + name
            self.attributes[name] = per_face(key, self.attributes[name], (), cast)
            flag = self.has_attributes.get(name)
            self.has_attributes[name] = per_face(
                schema.HAS_ATTR_PREFIX + name,
                np.ones((n,), np.int64) if flag is None else flag,
                (),
                _i64,
            )
            vals = self.attributes[name][self.has_attributes[name] > 0]
            lo, hi = spec.value_range
            if vals.size and (vals.min() < lo or vals.max() > hi):
                raise self._err(key, f"values outside [{lo}, {hi}]: min={vals.min()}, max={vals.max()}")
        for name in self.has_attributes:
            if name not in self.attributes:
                raise self._err(schema.HAS_ATTR_PREFIX + name, "presence given without values")
        return self

    # ------------------------------------------------------------------ encoding
    def to_example(self) -> tf.train.Example:
        """Serialises to a ``tf.train.Example`` (validates first)."""
        self.validate()
        f: Dict[str, tf.train.Feature] = {}

        def b(key, v):
            f[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

        def i(key, v):
            f[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(v, np.int64).ravel()))

        def fl(key, v):
            f[key] = tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(v, np.float32).ravel()))

        b(schema.IMAGE_ENCODED, self.image)
        b(schema.IMAGE_FORMAT, self.image_format.encode())
        i(schema.IMAGE_HEIGHT, [self.height])
        i(schema.IMAGE_WIDTH, [self.width])
        b(schema.IMAGE_SOURCE_ID, self.source_id.encode())
        b(schema.IMAGE_DATASET, self.dataset.encode())
        b(schema.IMAGE_SPLIT, self.split.encode())
        b(schema.LANDMARK_SCHEME, self.landmark_scheme.encode())
        i(schema.HAS_BOXES, [self.has_boxes])
        fl(schema.FACE_BBOX, self.bboxes)
        i(schema.HAS_PARSING, [1 if self.parsing is not None else 0])
        if self.parsing is not None:
            b(schema.PARSING_ENCODED, self.parsing)
        if self.landmarks is not None:
            fl(schema.FACE_LANDMARKS, self.landmarks)
            fl(schema.FACE_LANDMARKS_VISIBLE, self.landmarks_visible)
        if self.has_landmarks is not None:
            i(schema.FACE_HAS_LANDMARKS, self.has_landmarks)
        if self.pose is not None:
            fl(schema.FACE_POSE, self.pose)
            i(schema.FACE_HAS_POSE, self.has_pose)
        if self.identity is not None:
            i(schema.FACE_IDENTITY, self.identity)
            i(schema.FACE_HAS_IDENTITY, self.has_identity)
        if self.teacher_embedding is not None:
            fl(schema.FACE_TEACHER_EMBEDDING, self.teacher_embedding)
            i(schema.FACE_HAS_TEACHER_EMBEDDING, self.has_teacher_embedding)
        for name, values in self.attributes.items():
            if schema.attribute_spec(name).kind == "regression":
                fl(schema.ATTR_PREFIX + name, values)
            else:
                i(schema.ATTR_PREFIX + name, values)
            i(schema.HAS_ATTR_PREFIX + name, self.has_attributes[name])
        return tf.train.Example(features=tf.train.Features(feature=f))

    def serialize(self) -> bytes:
        return self.to_example().SerializeToString()

    @classmethod
    def from_example(cls, example, source: str = "<record>") -> "FaceRecord":
        """Parses a ``tf.train.Example`` (or its serialised bytes) back to a record.

        Raises:
            SchemaError: naming the source and the missing/inconsistent field.
        """
        if isinstance(example, (bytes, bytearray)):
            try:
                example = tf.train.Example.FromString(bytes(example))
            except Exception as e:  # protobuf DecodeError
                raise SchemaError(f"{source}: not a serialised tf.train.Example ({e})") from None
        feat = example.features.feature

        def get(key, kind):
            if key not in feat:
                return None
            return list(getattr(feat[key], kind).value)

        sid = get(schema.IMAGE_SOURCE_ID, "bytes_list")
        sid = sid[0].decode() if sid else source
        for key, kind in ((schema.IMAGE_ENCODED, "bytes_list"), (schema.IMAGE_HEIGHT, "int64_list"), (schema.IMAGE_WIDTH, "int64_list")):
            if not get(key, kind):
                raise SchemaError(f"{sid}: required field {key!r} is missing")

        def one(key, kind, default):
            v = get(key, kind)
            return v[0] if v else default

        rec = cls(
            image=one(schema.IMAGE_ENCODED, "bytes_list", b""),
            height=int(one(schema.IMAGE_HEIGHT, "int64_list", 0)),
            width=int(one(schema.IMAGE_WIDTH, "int64_list", 0)),
            source_id=sid,
            dataset=one(schema.IMAGE_DATASET, "bytes_list", b"").decode(),
            image_format=one(schema.IMAGE_FORMAT, "bytes_list", b"jpeg").decode(),
            split=one(schema.IMAGE_SPLIT, "bytes_list", b"train").decode(),
            bboxes=np.asarray(get(schema.FACE_BBOX, "float_list") or [], np.float32),
            has_boxes=int(one(schema.HAS_BOXES, "int64_list", 0)),
            landmark_scheme=one(schema.LANDMARK_SCHEME, "bytes_list", b"none").decode(),
        )
        if one(schema.HAS_PARSING, "int64_list", 0):
            rec.parsing = one(schema.PARSING_ENCODED, "bytes_list", None)
            if rec.parsing is None:
                raise SchemaError(f"{sid}: {schema.HAS_PARSING}=1 but {schema.PARSING_ENCODED!r} is missing")

        def arr(key, kind, dtype):
            v = get(key, kind)
            return None if v is None else np.asarray(v, dtype)

        rec.landmarks = arr(schema.FACE_LANDMARKS, "float_list", np.float32)
        rec.landmarks_visible = arr(schema.FACE_LANDMARKS_VISIBLE, "float_list", np.float32)
        rec.has_landmarks = arr(schema.FACE_HAS_LANDMARKS, "int64_list", np.int64)
        rec.pose = arr(schema.FACE_POSE, "float_list", np.float32)
        rec.has_pose = arr(schema.FACE_HAS_POSE, "int64_list", np.int64)
        rec.identity = arr(schema.FACE_IDENTITY, "int64_list", np.int64)
        rec.has_identity = arr(schema.FACE_HAS_IDENTITY, "int64_list", np.int64)
        rec.teacher_embedding = arr(schema.FACE_TEACHER_EMBEDDING, "float_list", np.float32)
        rec.has_teacher_embedding = arr(schema.FACE_HAS_TEACHER_EMBEDDING, "int64_list", np.int64)
        for key in feat:
            if key.startswith(schema.ATTR_PREFIX):
                name = key[len(schema.ATTR_PREFIX):]
                kind = "float_list" if schema.attribute_spec(name).kind == "regression" else "int64_list"
                dtype = np.float32 if kind == "float_list" else np.int64
                rec.attributes[name] = arr(key, kind, dtype)
                rec.has_attributes[name] = arr(schema.HAS_ATTR_PREFIX + name, "int64_list", np.int64)
                if rec.has_attributes[name] is None:
                    raise SchemaError(f"{sid}: {key!r} present without {schema.HAS_ATTR_PREFIX + name!r}")
        return rec.validate()


# ---------------------------------------------------------------------- in-graph decode
# Largest image decoded (pixels): a header that declares more is rejected before
# any buffer is allocated (TF's JPEG decoder alone would allocate up to 512 MiB).
MAX_IMAGE_PIXELS = 1 << 26
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# End markers (JPEG FF D9, PNG IEND) are looked for in this many trailing bytes.
TAIL_BYTES = 32


def tail_has(data: tf.Tensor, marker: bytes) -> tf.Tensor:
    """True if ``marker`` occurs in the last ``TAIL_BYTES`` bytes of ``data``."""
    n = tf.strings.length(data)
    tail = tf.io.decode_raw(tf.strings.substr(data, tf.maximum(n - TAIL_BYTES, 0), TAIL_BYTES), tf.uint8)
    m = len(marker)
    size = tf.shape(tail)[0]
    windows = tf.stack([tail[i : size - m + 1 + i] for i in range(m)], axis=1) if m > 1 else tail[:, None]
    target = tf.constant(np.frombuffer(marker, np.uint8))
    return tf.reduce_any(tf.reduce_all(tf.equal(windows, target), axis=1))


def encoded_image_size(data: tf.Tensor) -> tf.Tensor:
    """``(height, width)`` int64 ``[2]`` from a PNG's IHDR or a JPEG's SOF, without decoding.

    Raises (in graph) on bytes without a readable header; callers run it where an
    error is reported (the pipeline's guarded decode, a serving request's error).
    """
    is_png = tf.equal(tf.strings.substr(data, 0, len(PNG_MAGIC)), PNG_MAGIC)

    def png():
        raw = tf.reshape(tf.cast(tf.io.decode_raw(tf.strings.substr(data, 16, 8), tf.uint8), tf.int64), [2, 4])
        width_height = tf.reduce_sum(raw * tf.constant([1 << 24, 1 << 16, 1 << 8, 1], tf.int64), axis=1)
        return tf.reverse(width_height, [0])

    return tf.cond(is_png, png, lambda: tf.cast(tf.io.extract_jpeg_shape(data)[:2], tf.int64))


def _feature_spec(attributes) -> Dict[str, object]:
    var = tf.io.VarLenFeature
    spec = {
        schema.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string, default_value=""),
        schema.IMAGE_FORMAT: tf.io.FixedLenFeature([], tf.string, default_value="jpeg"),
        schema.IMAGE_HEIGHT: tf.io.FixedLenFeature([], tf.int64, default_value=0),
        schema.IMAGE_WIDTH: tf.io.FixedLenFeature([], tf.int64, default_value=0),
        schema.IMAGE_SOURCE_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
        schema.IMAGE_DATASET: tf.io.FixedLenFeature([], tf.string, default_value=""),
        schema.LANDMARK_SCHEME: tf.io.FixedLenFeature([], tf.string, default_value="none"),
        schema.HAS_BOXES: tf.io.FixedLenFeature([], tf.int64, default_value=0),
        schema.HAS_PARSING: tf.io.FixedLenFeature([], tf.int64, default_value=0),
        schema.PARSING_ENCODED: tf.io.FixedLenFeature([], tf.string, default_value=""),
        schema.FACE_BBOX: var(tf.float32),
        schema.FACE_LANDMARKS: var(tf.float32),
        schema.FACE_LANDMARKS_VISIBLE: var(tf.float32),
        schema.FACE_HAS_LANDMARKS: var(tf.int64),
        schema.FACE_POSE: var(tf.float32),
        schema.FACE_HAS_POSE: var(tf.int64),
        schema.FACE_IDENTITY: var(tf.int64),
        schema.FACE_HAS_IDENTITY: var(tf.int64),
        schema.FACE_TEACHER_EMBEDDING: var(tf.float32),
        schema.FACE_HAS_TEACHER_EMBEDDING: var(tf.int64),
    }
    for name in attributes:
        s = schema.attribute_spec(name)
        spec[schema.ATTR_PREFIX + name] = var(tf.float32 if s.kind == "regression" else tf.int64)
        spec[schema.HAS_ATTR_PREFIX + name] = var(tf.int64)
    return spec


def parse_example(serialized: tf.Tensor, attributes=(), num_landmarks: Optional[int] = None,
                  embedding_dim: int = 0) -> Dict[str, tf.Tensor]:
    """Decodes one serialised example in graph (``tf.data`` map function).

    Absent optional features become zeros with zero presence. Consistency problems
    do not raise in graph: they set ``error`` to a message naming the field, so the
    pipeline can count, report (with ``source_id``) and skip or fail by policy.

    Args:
        serialized: scalar string tensor.
        attributes: attribute names to decode (others are ignored).
        num_landmarks: K of the stream's scheme; inferred from the data if None.
        embedding_dim: D of teacher embeddings (0: not decoded).

    Returns:
        dict with ``image_bytes`` (string), ``image_format``, ``height``, ``width``,
        ``source_id``, ``dataset``, ``landmark_scheme``, ``parsing_bytes``,
        ``has_parsing`` [], ``has_boxes`` [], ``bbox`` [N, 4], ``landmarks``
        [N, K, 2], ``landmarks_visible`` [N, K], ``has_landmarks`` [N], ``pose``
        [N, 3], ``has_pose`` [N], ``identity`` [N], ``has_identity`` [N],
        ``teacher_embedding`` [N, D], ``has_teacher_embedding`` [N],
        ``attr/<name>`` [N], ``has_attr/<name>`` [N], ``num_faces`` [], and ``error``
        (empty string when the record is consistent).
    """
    spec = _feature_spec(attributes)
    p = tf.io.parse_single_example(serialized, spec)
    dense = {k: (tf.sparse.to_dense(v) if isinstance(v, tf.SparseTensor) else v) for k, v in p.items()}
    bbox_flat = dense[schema.FACE_BBOX]
    n = tf.shape(bbox_flat)[0] // 4
    errors = []

    def check(cond, msg):
        errors.append(tf.where(cond, tf.constant(""), tf.constant(msg)))

    check(tf.strings.length(dense[schema.IMAGE_ENCODED]) > 0, f"required field {schema.IMAGE_ENCODED!r} is missing or empty")
    check(tf.logical_and(dense[schema.IMAGE_HEIGHT] > 0, dense[schema.IMAGE_WIDTH] > 0), f"required fields {schema.IMAGE_HEIGHT!r}/{schema.IMAGE_WIDTH!r} are missing or not positive")
    check(tf.equal(tf.shape(bbox_flat)[0] % 4, 0), f"{schema.FACE_BBOX!r} length is not a multiple of 4")
    bbox = tf.reshape(bbox_flat[: n * 4], [n, 4])

    def per_face(key, tail, dtype):
        v = tf.cast(dense[key], dtype)
        size = tf.shape(v)[0]
        per = int(np.prod(tail)) if tail else 1
        present = size > 0
        check(tf.logical_or(tf.logical_not(present), tf.equal(size, n * per)), f"{key!r} length does not match the {schema.FACE_BBOX!r} face count")
        ok = tf.equal(size, n * per)
        v = tf.cond(ok, lambda: v, lambda: tf.zeros([n * per], dtype))
        return tf.reshape(v, tf.concat([[n], tf.constant(tail, tf.int32)], 0) if tail else [n]), ok

    out: Dict[str, tf.Tensor] = {
        "image_bytes": dense[schema.IMAGE_ENCODED],
        "image_format": dense[schema.IMAGE_FORMAT],
        "height": tf.cast(dense[schema.IMAGE_HEIGHT], tf.int32),
        "width": tf.cast(dense[schema.IMAGE_WIDTH], tf.int32),
        "source_id": dense[schema.IMAGE_SOURCE_ID],
        "dataset": dense[schema.IMAGE_DATASET],
        "landmark_scheme": dense[schema.LANDMARK_SCHEME],
        "parsing_bytes": dense[schema.PARSING_ENCODED],
        "has_parsing": tf.cast(dense[schema.HAS_PARSING], tf.float32),
        "has_boxes": tf.cast(dense[schema.HAS_BOXES], tf.float32),
        "bbox": bbox,
        "num_faces": n,
    }
    lm = dense[schema.FACE_LANDMARKS]
    if num_landmarks is None:
        k = tf.where(n > 0, tf.shape(lm)[0] // tf.maximum(2 * n, 1), 0)
    else:
        k = tf.constant(num_landmarks, tf.int32)
    lm_present = tf.shape(lm)[0] > 0
    check(tf.logical_or(tf.logical_not(lm_present), tf.equal(tf.shape(lm)[0], n * k * 2)), f"{schema.FACE_LANDMARKS!r} length does not match faces x points x 2")
    lm_ok = tf.logical_and(lm_present, tf.equal(tf.shape(lm)[0], n * k * 2))
    out["landmarks"] = tf.reshape(tf.cond(lm_ok, lambda: lm, lambda: tf.zeros([n * k * 2])), [n, k, 2])
    vis = dense[schema.FACE_LANDMARKS_VISIBLE]
    vis_ok = tf.equal(tf.shape(vis)[0], n * k)
    out["landmarks_visible"] = tf.reshape(tf.cond(vis_ok, lambda: vis, lambda: tf.ones([n * k]) * tf.cast(lm_ok, tf.float32)), [n, k])
    has_lm, has_lm_ok = per_face(schema.FACE_HAS_LANDMARKS, (), tf.float32)
    out["has_landmarks"] = has_lm * tf.cast(lm_ok, tf.float32)
    for name, tail, dtype in (("pose", (3,), tf.float32), ("identity", (), tf.int32)):
        val, ok = per_face(f"face/{name}", tail, dtype)
        flag, _ = per_face(f"face/has_{name}", (), tf.float32)
        out[name], out[f"has_{name}"] = val, flag * tf.cast(ok, tf.float32)
    if embedding_dim:
        emb, ok = per_face(schema.FACE_TEACHER_EMBEDDING, (embedding_dim,), tf.float32)
        flag, _ = per_face(schema.FACE_HAS_TEACHER_EMBEDDING, (), tf.float32)
        out["teacher_embedding"], out["has_teacher_embedding"] = emb, flag * tf.cast(ok, tf.float32)
    for name in attributes:
        s = schema.attribute_spec(name)
        val, ok = per_face(schema.ATTR_PREFIX + name, (), tf.float32 if s.kind == "regression" else tf.int32)
        flag, _ = per_face(schema.HAS_ATTR_PREFIX + name, (), tf.float32)
        out[f"attr/{name}"], out[f"has_attr/{name}"] = val, flag * tf.cast(ok, tf.float32)
    out["error"] = tf.strings.reduce_join(tf.stack(errors), separator="; ")
    out["error"] = tf.strings.regex_replace(tf.strings.regex_replace(out["error"], "(; )+", "; "), "^; |; $", "")
    return out
