"""Shared machinery of the dataset converters: reading, reporting, parallel conversion.

A converter only parses its annotation layout into :class:`Sample` objects (pixel
geometry, labels, the image path and the ``file:line`` the entry came from).
:func:`run_conversion` does the rest the same way for every layout:

1. A first pass over the samples counts images and bytes per split, which sizes the
   shards and, with the checksums of the annotation files, fingerprints the input.
   A complete output with the same fingerprint is left as it is (idempotent re-run).
2. Workers read each image's bytes, take its size from the JPEG/PNG header
   (``image_header.probe_image``; the original bytes are stored, never re-encoded),
   check and normalise the geometry to [0, 1], and serialise a ``FaceRecord``.
3. The parent writes the records through ``ShardWriter`` (size-balanced shards under
   a temporary name, ``dataset.json`` last), decodes a sample of them with the
   training pipeline's decoder (``codec.parse_example``) before committing, and
   reports every skipped entry as ``file:line: reason``.

Bad input (a missing or corrupt image, a malformed line, coordinates outside the
image, a point count that does not match the scheme) is skipped and counted by
default, and fatal with ``strict=True``.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import inspect
import json
import math
import multiprocessing
import os
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

import numpy as np

from keras_facemt.data import schema
from keras_facemt.data.codec import FaceRecord, encode_label_map
from keras_facemt.data.landmarks import get_scheme
from keras_facemt.data.shards import MANIFEST, ShardWriter, read_manifest
from keras_facemt.errors import ConfigError, DataError, SchemaError
from keras_facemt.progress import ProgressBar
from tfrecords_tools import image_header

T = TypeVar("T")

CONVERTER_FORMAT_VERSION = 1
# Problem kinds reported in ``dataset.json`` and the summary line.
MISSING_IMAGE = "missing_image"
MALFORMED = "malformed_line"
OUTSIDE = "outside_image"
CORRUPT = "corrupt_image"
POINT_COUNT = "point_count"
SIZE_MISMATCH = "size_mismatch"
PROBLEM_KINDS = (MISSING_IMAGE, MALFORMED, OUTSIDE, CORRUPT, POINT_COUNT, SIZE_MISMATCH)
_MAX_REPORTED = 1000


# ------------------------------------------------------------------------ samples
@dataclasses.dataclass
class Face:
    """One face of a sample, in pixel coordinates of the source image.

    Attributes:
        bbox: ``(xmin, ymin, xmax, ymax)`` pixels, or None for the whole image.
        landmarks: float ``[K, 2]`` pixel points of the sample's scheme, or None.
        visible: float ``[K]`` visibility (None: all visible). Invisible points may
            hold any coordinates; they are stored as given and not range-checked.
        pose: ``(yaw, pitch, roll)`` degrees, or None.
        identity: class id within the dataset, or None.
        attributes: registered attribute name -> value.
    """

    bbox: Optional[Sequence[float]] = None
    landmarks: Optional[np.ndarray] = None
    visible: Optional[np.ndarray] = None
    pose: Optional[Sequence[float]] = None
    identity: Optional[int] = None
    attributes: Dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Sample:
    """One image entry parsed from an annotation layout.

    Attributes:
        image_path: path of the image file.
        source_id: stable id (usually the path relative to the dataset root).
        split: split name as the dataset defines it (``train``, ``fold03``, ...).
        origin: ``file:line`` of the annotation entry (used in every report).
        faces: the faces of the image.
        has_boxes: 1 when ``faces`` is the exhaustive list of faces (detection).
        landmark_scheme: scheme of every face's landmarks (``none`` without).
        parsing_paths: label images: one path (a class-id map) or eleven paths
            (per-class probability images, Smith et al. Helen layout).
        normalized: geometry is already in [0, 1] of the image size (not pixels).
    """

    image_path: str
    source_id: str
    split: str
    origin: str
    faces: List[Face] = dataclasses.field(default_factory=list)
    has_boxes: int = 0
    landmark_scheme: str = "none"
    parsing_paths: Optional[Tuple[str, ...]] = None
    normalized: bool = False


class Problem(Exception):
    """A skippable defect of one entry, raised while parsing or converting it."""

    def __init__(self, where: str, kind: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where, self.kind, self.reason = where, kind, reason

    def __reduce__(self):
        # Workers return problems to the parent; rebuild from the three fields.
        return (Problem, (self.where, self.kind, self.reason))

    @property
    def message(self) -> str:
        return f"{self.where}: {self.reason}"


class Problems:
    """Collects skipped entries; with ``strict`` the first one is fatal.

    Args:
        strict: raise ``DataError`` on the first problem instead of skipping.
        echo: stream where each problem is printed as it is found (None: silent).
    """

    def __init__(self, strict: bool = False, echo=None):
        self.strict = strict
        self.echo = echo
        self.counts: collections.Counter = collections.Counter()
        self.messages: List[str] = []

    def add(self, problem: Problem) -> None:
        if problem.kind not in PROBLEM_KINDS:
            raise ValueError(f"unknown problem kind {problem.kind!r}")
        if self.strict:
            raise DataError(f"{problem.message} (fatal under --strict)")
        self.counts[problem.kind] += 1
        if len(self.messages) < _MAX_REPORTED:
            self.messages.append(problem.message)
        if self.echo is not None:
            print(f"skipped {problem.message}", file=self.echo)

    def report(self, where: str, kind: str, reason: str) -> None:
        self.add(Problem(where, kind, reason))

    @property
    def total(self) -> int:
        return int(sum(self.counts.values()))

    def summary(self) -> str:
        if not self.total:
            return "0 entries skipped"
        kinds = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(self.counts.items()))
        return f"{self.total} entries skipped ({kinds})"

    def to_json(self) -> Dict[str, object]:
        return {"skipped": self.total, "by_kind": dict(self.counts), "messages": list(self.messages)}


# ------------------------------------------------------------------------ reading
def where(path: str, line: int) -> str:
    """``file:line`` location used in reports."""
    return f"{path}:{line}"


def require_file(path: str, what: str) -> str:
    """Returns ``path`` if it is a file, else raises a DataError naming ``what``."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: {what} not found.")
    return path


def find_file(root: str, candidates: Sequence[str], what: str, required: bool = True) -> Optional[str]:
    """First existing ``root/candidate``; DataError (naming all tried) if required."""
    for c in candidates:
        p = os.path.join(root, c)
        if os.path.isfile(p):
            return p
    if required:
        tried = ", ".join(os.path.join(root, c) for c in candidates)
        raise DataError(f"{what} not found; looked for: {tried}")
    return None


def read_lines(path: str) -> Iterator[Tuple[int, str]]:
    """Yields ``(line_number, line)`` (1-based, trailing whitespace stripped)."""
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f, 1):
            yield i, line.rstrip("\r\n").rstrip()


def parse_lines(path: str, parse: Callable[[str, str], T], problems: Problems) -> Iterator[T]:
    """Yields ``parse(line, loc)`` for each non-blank line of a text annotation file.

    A line whose ``parse`` raises ``Problem`` is recorded in ``problems`` (fatal
    there under ``--strict``) and skipped.
    """
    for ln, line in read_lines(path):
        if not line.strip():
            continue
        try:
            yield parse(line, where(path, ln))
        except Problem as p:
            problems.add(p)


def parse_floats(tokens: Sequence[str], loc: str, what: str) -> List[float]:
    """Floats of ``tokens``; a Problem (malformed line) naming the bad token."""
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise Problem(loc, MALFORMED, f"{what}: {bad!r} is not a number") from None
    if not all(math.isfinite(v) for v in values):
        raise Problem(loc, MALFORMED, f"{what}: non-finite value in {list(tokens)}")
    return values


def _is_float(t: str) -> bool:
    try:
        float(t)
        return True
    except ValueError:
        return False


def ratio_split(key: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    """Seeded split for datasets that define none: stable per key, order independent.

    The split depends only on ``(seed, key)``, so adding images never moves existing
    ones between splits. Split by identity where identities exist (no leakage).
    """
    h = hashlib.md5(f"{seed}:{key}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2.0**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ConfigError(
            "val and test fractions must be in [0, 1) and sum below 1. "
            f"Received: val_fraction={val_fraction}, test_fraction={test_fraction}"
        )


def box_around_points(points: np.ndarray, scale: float = 1.0, square: bool = False) -> List[float]:
    """Pixel box around ``points [K, 2]``: the extent, scaled about its centre.

    ``scale=1`` gives the tight extent (68-point markups span the face from brow to
    chin). Sparse markups (5 points) need a larger ``scale`` and ``square=True`` to
    cover the face.
    """
    p = np.asarray(points, np.float64)
    x0, y0 = p.min(0)
    x1, y1 = p.max(0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = (x1 - x0) * scale, (y1 - y0) * scale
    if square:
        w = h = max(w, h)
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------ converters
class Converter:
    """Base class of a layout converter.

    Subclasses set ``name`` (the ``facemt convert`` layout name), ``dataset`` (stored
    in ``image/dataset``) and ``version``; implement :meth:`samples` and
    :meth:`source_files`; and add their own CLI options in :meth:`add_arguments`.
    Constructor keyword arguments are the options (recorded in the manifest and the
    input fingerprint).
    """

    name = ""
    dataset = ""
    version = "1"
    description = ""
    # "dataset" when splits come from the dataset's own files, else how they are made.
    split_source = "dataset"

    def __init__(self, root: str):
        if not os.path.isdir(root):
            raise DataError(f"{root}: dataset root directory does not exist.")
        self.root = os.path.abspath(root)

    @classmethod
    def add_arguments(cls, parser) -> None:
        """Adds layout-specific options to the ``facemt convert <layout>`` parser."""

    @classmethod
    def from_args(cls, args) -> "Converter":
        params = inspect.signature(cls.__init__).parameters
        kwargs = {k: getattr(args, k) for k in params if k != "self" and hasattr(args, k)}
        return cls(**kwargs)

    def options(self) -> Dict[str, object]:
        """Options that change the output (manifest and fingerprint)."""
        params = inspect.signature(type(self).__init__).parameters
        return {k: getattr(self, k, None) for k in params if k not in ("self", "root")}

    def source_files(self) -> List[str]:
        """Annotation files whose checksums go into the manifest."""
        raise NotImplementedError

    def samples(self, problems: Problems) -> Iterator[Sample]:
        """Parses the layout; reports defective entries to ``problems`` and skips them."""
        raise NotImplementedError

    def side_files(self, written: Dict[str, str]) -> Dict[str, bytes]:
        """Extra files committed with the shards; ``written`` maps source_id -> split
        of every record written (only filled when ``wants_written_ids``)."""
        return {}

    wants_written_ids = False

    def notes(self) -> Dict[str, object]:
        """Counts the manifest records beyond problems (e.g. entries filtered by rule)."""
        return {}

    def relative(self, path: str) -> str:
        """``path`` relative to the dataset root, with forward slashes (source ids)."""
        return os.path.relpath(path, self.root).replace(os.sep, "/")


# ------------------------------------------------------------------------ record building
@dataclasses.dataclass(frozen=True)
class RecordOptions:
    """How workers turn samples into records.

    Attributes:
        dataset: value of ``image/dataset``.
        tolerance: how far (fraction of the image size) visible points and boxes may
            lie outside the image before the entry is rejected; boxes within it are
            clipped to the image.
        verify_images: fully decode every image (catches damage inside the
            compressed data, at about a millisecond per image).
    """

    dataset: str
    tolerance: float = 0.1
    verify_images: bool = False


def _read_image(sample: Sample, opts: RecordOptions) -> Tuple[bytes, str, int, int]:
    path = find_image(sample.image_path)
    if path is None:
        raise Problem(sample.origin, MISSING_IMAGE, f"image not found: {sample.image_path} "
                                                    f"(nor with another extension: {', '.join(IMAGE_EXTENSIONS)})")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise Problem(sample.origin, MISSING_IMAGE, f"image not readable: {path} ({e.strerror})") from None
    try:
        if data[:2] == b"\xff\xd8" or data[:8] == b"\x89PNG\r\n\x1a\n" or not data:
            fmt, h, w = image_header.probe_image(data)
            if opts.verify_images and image_header.decode_size(data) != (h, w):
                raise image_header.ImageHeaderError("decoded size differs from the header")
        else:
            # Other formats (BMP, TIFF) are re-encoded losslessly; the decoder reads JPEG/PNG.
            data, h, w = image_header.transcode_to_png(data)
            fmt = "png"
    except image_header.ImageHeaderError as e:
        raise Problem(sample.origin, CORRUPT, f"corrupt image {path}: {e}") from None
    return data, fmt, h, w


def _read_parsing(sample: Sample, h: int, w: int) -> bytes:
    import cv2

    maps = []
    for p in sample.parsing_paths:
        arr = cv2.imread(p, cv2.IMREAD_UNCHANGED) if os.path.isfile(p) else None
        if arr is None:
            kind = CORRUPT if os.path.isfile(p) else MISSING_IMAGE
            raise Problem(sample.origin, kind, f"label image {'unreadable' if kind == CORRUPT else 'not found'}: {p}")
        if arr.ndim == 3:
            arr = arr[..., 0]
        if arr.shape != (h, w):
            raise Problem(sample.origin, SIZE_MISMATCH,
                          f"label image {p} is {arr.shape[1]}x{arr.shape[0]} but the image is {w}x{h}")
        maps.append(arr)
    if len(maps) == 1:
        label = maps[0]
        if label.max(initial=0) >= schema.NUM_PARSING_CLASSES:
            raise Problem(sample.origin, MALFORMED,
                          f"label map {sample.parsing_paths[0]} has class id {int(label.max())}; "
                          f"expected < {schema.NUM_PARSING_CLASSES}")
    else:
        # Per-class soft masks: each pixel takes the class of its largest mask value.
        label = np.argmax(np.stack(maps, -1), -1)
    return encode_label_map(label.astype(np.uint8))


def _check_range(values: np.ndarray, size: float, tol: float) -> bool:
    return bool(np.all(values >= -tol * size) and np.all(values <= (1 + tol) * size))


def build_record(sample: Sample, opts: RecordOptions) -> Tuple[bytes, FaceRecord, str]:
    """Turns one sample into a serialised record (runs in the workers).

    Returns:
        ``(serialized, record_without_image_bytes, sha256_of_image)``.

    Raises:
        Problem: missing or corrupt image, coordinates outside the image, point
            count mismatch, label-map size mismatch, or an invalid label value.
    """
    data, fmt, h, w = _read_image(sample, opts)
    loc = sample.origin
    n = len(sample.faces)
    k = get_scheme(sample.landmark_scheme).num_points if sample.landmark_scheme != "none" else 0
    bboxes = np.zeros((n, 4), np.float32)
    size = np.array([w, h, w, h], np.float64)
    # Normalised inputs are scaled to pixels so one set of checks serves both.
    scale = size if sample.normalized else np.ones(4)
    tol = opts.tolerance
    landmarks = np.zeros((n, k, 2), np.float32) if k else None
    visible = np.zeros((n, k), np.float32) if k else None
    has_lm = np.zeros((n,), np.int64)
    for i, face in enumerate(sample.faces):
        box = np.array([0, 0, w, h] if face.bbox is None else np.asarray(face.bbox, np.float64) * scale, np.float64)
        if not (_check_range(box[[0, 2]], w, tol) and _check_range(box[[1, 3]], h, tol)):
            raise Problem(loc, OUTSIDE, f"face {i} box {np.round(box, 2).tolist()} lies outside the {w}x{h} image")
        if box[2] <= box[0] or box[3] <= box[1]:
            raise Problem(loc, MALFORMED, f"face {i} box {np.round(box, 2).tolist()} is empty")
        bboxes[i] = np.clip(box / size, 0.0, 1.0)
        if face.landmarks is None:
            continue
        pts = np.asarray(face.landmarks, np.float64)
        if sample.normalized and pts.ndim == 2 and pts.shape[-1] == 2:
            pts = pts * scale[:2]
        if k == 0 or pts.shape != (k, 2):
            raise Problem(loc, POINT_COUNT,
                          f"face {i} has {pts.size // 2 if pts.ndim else 0} points; scheme "
                          f"{sample.landmark_scheme!r} has {k}")
        vis = np.ones(k) if face.visible is None else np.asarray(face.visible, np.float64)
        shown = pts[vis > 0]
        if not (_check_range(shown[:, 0], w, tol) and _check_range(shown[:, 1], h, tol)):
            raise Problem(loc, OUTSIDE, f"face {i} landmarks lie outside the {w}x{h} image")
        landmarks[i] = np.where(vis[:, None] > 0, pts / size[:2], 0.0)
        visible[i] = vis
        has_lm[i] = 1
    rec = FaceRecord(image=data, height=h, width=w, source_id=sample.source_id, dataset=opts.dataset,
                     image_format=fmt, split=sample.split, bboxes=bboxes, has_boxes=int(sample.has_boxes),
                     landmark_scheme=sample.landmark_scheme if k else "none")
    if k and has_lm.any():
        rec.landmarks, rec.landmarks_visible, rec.has_landmarks = landmarks, visible, has_lm
    if any(f.pose is not None for f in sample.faces):
        rec.pose = np.array([f.pose if f.pose is not None else (0, 0, 0) for f in sample.faces], np.float32)
        rec.has_pose = np.array([f.pose is not None for f in sample.faces], np.int64)
    if any(f.identity is not None for f in sample.faces):
        rec.identity = np.array([f.identity if f.identity is not None else 0 for f in sample.faces], np.int64)
        rec.has_identity = np.array([f.identity is not None for f in sample.faces], np.int64)
    names = sorted({a for f in sample.faces for a in f.attributes})
    for name in names:
        rec.attributes[name] = np.array([f.attributes.get(name, 0) for f in sample.faces])
        rec.has_attributes[name] = np.array([name in f.attributes for f in sample.faces], np.int64)
    if sample.parsing_paths:
        rec.parsing = _read_parsing(sample, h, w)
    try:
        serialized = rec.serialize()
    except (SchemaError, ValueError) as e:
        raise Problem(loc, MALFORMED, f"invalid label: {e}") from None
    digest = hashlib.sha256(data).hexdigest()
    rec.image = b""
    rec.parsing = b"" if rec.parsing is not None else None
    return serialized, rec, digest


# Worker state, set once per process so samples are the only per-task payload.
_WORKER_OPTS: Optional[RecordOptions] = None


def _init_worker(opts: RecordOptions) -> None:
    global _WORKER_OPTS
    _WORKER_OPTS = opts


def _work(sample: Sample):
    try:
        return build_record(sample, _WORKER_OPTS)
    except Problem as p:
        return p


# ------------------------------------------------------------------------ verification
def reservoir_sample(path: str, k: int, rng: np.random.Generator) -> List[bytes]:
    """``k`` records of a TFRecord file drawn uniformly, holding only ``k`` in memory."""
    import tensorflow as tf

    kept: List[bytes] = []
    for i, r in enumerate(tf.data.TFRecordDataset(path)):
        if i < k:
            kept.append(r.numpy())
        else:
            j = int(rng.integers(0, i + 1))
            if j < k:
                kept[j] = r.numpy()
    return kept


def verify_sample(data_dir: str, num: int = 32, seed: int = 0) -> int:
    """Decodes up to ``num`` records with the training pipeline's decoder.

    Records are picked at random (seeded) across all shards; each goes through
    ``codec.parse_example`` (its ``error`` must be empty), ``tf.io.decode_image``
    (its size must match the stored size) and, where present, the parsing map.

    Returns:
        The number of records decoded.

    Raises:
        DataError: naming the shard, the record's source_id and what failed.
    """
    import glob

    import tensorflow as tf

    from keras_facemt.data.codec import parse_example

    shards = sorted(glob.glob(os.path.join(data_dir, "*.tfrecord")))
    rng = np.random.default_rng(seed)
    checked = 0
    per_shard = max(1, math.ceil(num / max(len(shards), 1)))
    for path in shards:
        for raw in reservoir_sample(path, min(per_shard, num - checked), rng):
            attrs = tuple(FaceRecord.from_example(raw).attributes)
            out = parse_example(tf.constant(raw), attributes=attrs)
            sid = out["source_id"].numpy().decode()
            err = out["error"].numpy().decode()
            if err:
                raise DataError(f"{path}: record {sid!r} fails the pipeline decoder: {err}")
            try:
                img = tf.io.decode_image(out["image_bytes"], channels=3, expand_animations=False)
                if has := float(out["has_parsing"].numpy()):
                    lab = tf.io.decode_png(out["parsing_bytes"])
            except tf.errors.InvalidArgumentError as e:
                raise DataError(f"{path}: record {sid!r} image does not decode: {e.message}") from None
            hw = (int(out["height"].numpy()), int(out["width"].numpy()))
            if tuple(img.shape[:2]) != hw:
                raise DataError(f"{path}: record {sid!r} decodes to {tuple(img.shape[:2])} but stores {hw}")
            if has and tuple(lab.shape[:2]) != hw:
                raise DataError(f"{path}: record {sid!r} parsing map is {tuple(lab.shape[:2])}, image {hw}")
            checked += 1
        if checked >= num:
            break
    return checked


# ------------------------------------------------------------------------ the run
def _guarded(samples: Iterator[Sample], failure: List[BaseException]) -> Iterator[Sample]:
    """Feeds a pool; an error while parsing (e.g. a defect under strict) is kept for
    the parent to raise, since the pool's feeder thread cannot deliver it."""
    try:
        yield from samples
    except BaseException as e:
        failure.append(e)


@dataclasses.dataclass
class ConversionResult:
    """What a conversion did.

    Attributes:
        out_dir: the dataset directory.
        counts: records written per split.
        problems: the skipped entries.
        up_to_date: True when an identical complete output already existed.
        images_per_second: conversion throughput of this run (0 when up to date).
        verified: records decoded by the pipeline decoder before commit.
    """

    out_dir: str
    counts: Dict[str, int]
    problems: Problems
    up_to_date: bool = False
    images_per_second: float = 0.0
    verified: int = 0

    def summary(self) -> str:
        if self.up_to_date:
            return f"{self.out_dir}: already up to date ({sum(self.counts.values())} records); nothing written."
        counts = ", ".join(f"{s}={n}" for s, n in sorted(self.counts.items()))
        return (f"{self.out_dir}: wrote {sum(self.counts.values())} records ({counts}); "
                f"{self.problems.summary()}; {self.verified} decoded by the pipeline decoder; "
                f"{self.images_per_second:,.0f} images/s")


def _fingerprint(converter: Converter, sources, image_digest: str, tolerance: float, verify_images: bool) -> str:
    blob = json.dumps({
        "converter": converter.name, "version": converter.version, "format": CONVERTER_FORMAT_VERSION,
        "options": converter.options(), "sources": sources, "images": image_digest, "tolerance": tolerance,
        "verify_images": verify_images,
    }, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def run_conversion(converter: Converter, out_dir: str, *, workers: int = 1, num_shards: Optional[int] = None,
                   shard_mb: float = 200.0, strict: bool = False, overwrite: bool = False,
                   tolerance: float = 0.1, verify_images: bool = False, verify_records: int = 32,
                   progress: bool = False, log=None, chunksize: int = 64) -> ConversionResult:
    """Converts one dataset layout to schema shards at ``out_dir``.

    Args:
        converter: the layout's converter.
        out_dir: output dataset directory.
        workers: processes reading images and serialising records (1: in process).
        num_shards: shards per split; None sizes each split to about ``shard_mb``.
        shard_mb: target shard size in MiB when ``num_shards`` is None.
        strict: the first bad entry is fatal (DataError ``file:line: reason``).
        overwrite: replace an existing output made from different input.
        tolerance: see :class:`RecordOptions`.
        verify_images: fully decode every image.
        verify_records: records decoded with the pipeline decoder before commit.
        progress: draw a progress bar on stderr.
        log: stream for skipped-entry lines (None: silent).
        chunksize: samples per worker task.

    Returns:
        A :class:`ConversionResult`.

    Raises:
        ConfigError: a non-positive ``workers``, ``num_shards`` or ``shard_mb``, or a
            negative ``tolerance``.
        DataError: missing annotation files, no usable entries, a bad entry under
            ``strict``, an existing different output without ``overwrite``, or a
            written record the pipeline decoder rejects.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1. Received: workers={workers}")
    if num_shards is not None and num_shards < 1:
        raise ConfigError(f"num_shards must be >= 1. Received: num_shards={num_shards}")
    if not tolerance >= 0:
        raise ConfigError(f"tolerance must be >= 0 (a fraction of the image size). Received: tolerance={tolerance}")
    if not shard_mb > 0:
        raise ConfigError(f"shard_mb must be positive. Received: shard_mb={shard_mb}")
    out_dir = os.path.abspath(out_dir)
    # Pass 1: sizes per split and an input fingerprint; problems are reported in pass 2.
    split_count: collections.Counter = collections.Counter()
    split_bytes: collections.Counter = collections.Counter()
    listing = hashlib.sha256()
    for s in converter.samples(Problems(strict=strict)):
        split_count[s.split] += 1
        try:
            st = os.stat(s.image_path)
            split_bytes[s.split] += st.st_size
            listing.update(f"{s.source_id}\0{s.image_path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            listing.update(f"{s.source_id}\0{s.image_path}\0missing\n".encode())
    if not split_count:
        raise DataError(f"{converter.root}: no {converter.name} entries found (is this the dataset root?).")
    sources = [{"path": converter.relative(p), "sha256": sha256_file(p), "bytes": os.path.getsize(p)}
               for p in converter.source_files()]
    fingerprint = _fingerprint(converter, sources, listing.hexdigest(), tolerance, verify_images)
    problems = Problems(strict=strict, echo=log)
    if os.path.exists(os.path.join(out_dir, MANIFEST)):
        old = read_manifest(out_dir)
        clean = not old.get("problems", {}).get("skipped", 0)
        same = old.get("fingerprint") == fingerprint
        # Under strict, an output that skipped entries is redone so the defect is raised
        # (the existing output stays in place: the new one would replace it atomically).
        if same and (clean or not strict):
            return ConversionResult(out_dir, dict(old.get("counts", {})), problems, up_to_date=True)
        if not same and not overwrite:
            raise DataError(f"{out_dir}: a dataset made from different input or options already exists; "
                            "pass --overwrite to replace it.")
    if num_shards is None:
        shards = {s: max(1, math.ceil(b / (shard_mb * 2**20))) for s, b in split_bytes.items()}
        shards = {s: min(n, split_count[s]) for s, n in shards.items()}
    else:
        shards = {s: max(1, min(int(num_shards), split_count[s])) for s in split_count}
    opts = RecordOptions(dataset=converter.dataset, tolerance=tolerance, verify_images=verify_images)
    extra = {
        "converter": converter.name, "converter_version": converter.version,
        "converter_format_version": CONVERTER_FORMAT_VERSION, "options": converter.options(),
        "tolerance": tolerance, "source_root": converter.root, "source_files": sources,
        "split_source": converter.split_source, "fingerprint": fingerprint,
    }
    total = sum(split_count.values())
    bar = ProgressBar(total, f"convert {converter.name}", unit="img/s", enabled=progress)
    image_hash = hashlib.sha256()
    written: Dict[str, str] = {}
    verified = [0]

    def before_commit(tmp_dir):
        verified[0] = verify_sample(tmp_dir, verify_records) if verify_records else 0

    writer = ShardWriter(out_dir, num_shards=shards, overwrite=True, extra=extra, balance="bytes",
                         before_commit=before_commit)
    pool = None
    try:
        with writer:
            samples = converter.samples(problems)
            failure: List[BaseException] = []
            if workers > 1:
                # fork: workers inherit the imported modules; they never touch the TF runtime.
                pool = multiprocessing.get_context("fork").Pool(workers, _init_worker, (opts,))
                results: Iterable = pool.imap(_work, _guarded(samples, failure), chunksize=chunksize)
            else:
                _init_worker(opts)
                results = map(_work, samples)
            for res in results:
                if failure:
                    break
                bar.update()
                if isinstance(res, Problem):
                    problems.add(res)
                    continue
                serialized, rec, digest = res
                writer.write_serialized(serialized, rec)
                image_hash.update(bytes.fromhex(digest))
                if converter.wants_written_ids:
                    written[rec.source_id] = rec.split
            if failure:
                raise failure[0]
            if not writer.stats.examples:
                raise DataError(f"{converter.root}: every {converter.name} entry was skipped "
                                f"({problems.summary()}); nothing to write.")
            for name, data in converter.side_files(written).items():
                writer.add_file(name, data)
            writer.extra["images_sha256"] = image_hash.hexdigest()
            writer.extra["notes"] = converter.notes()
            writer.extra["problems"] = problems.to_json()
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        bar.close()
    return ConversionResult(out_dir, dict(writer.stats.examples), problems,
                            images_per_second=bar.rate, verified=verified[0])


# Any case is accepted (``.JPG`` from cameras, ``.Png`` from old tools); formats other
# than JPEG/PNG are re-encoded losslessly to PNG by ``_read_image``.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff")


def _directory_index(directory: str) -> Dict[str, str]:
    """Lower-cased file name -> actual name, for one directory.

    Listed once per directory state (keyed by its modification time), so a dataset
    whose every annotation names a ``.jpg`` stored as ``.JPG`` costs one listing per
    directory, not one per image.
    """
    try:
        mtime = os.stat(directory).st_mtime_ns
    except OSError:
        return {}
    return _directory_listing(directory, mtime)


@functools.lru_cache(maxsize=1024)
def _directory_listing(directory: str, mtime_ns: int) -> Dict[str, str]:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return {}
    index: Dict[str, str] = {}
    for name in names:
        index.setdefault(name.lower(), name)
    return index


def find_image(path: str) -> Optional[str]:
    """The image file an annotation refers to, whatever its extension and case.

    Annotations name images as their authors' copies had them (``img_1.jpg`` in a
    list, a ``.pts`` file beside its image), while distributed copies differ:
    ``img_1.JPG``, ``img_1.png``, a BMP or PPM re-save. ``path`` itself wins when it
    exists; otherwise the same name in another case, then the same stem with each
    of ``IMAGE_EXTENSIONS`` (any case), in that order.

    Args:
        path: the image path as the annotation gives it (with or without an
            extension).

    Returns:
        The existing path, or ``None`` when no such image exists.
    """
    if os.path.isfile(path):
        return path
    directory, name = os.path.split(path)
    index = _directory_index(directory or ".")
    if name.lower() in index:
        return os.path.join(directory, index[name.lower()])
    stem, ext = os.path.splitext(name)
    stem = stem if ext.lower() in IMAGE_EXTENSIONS else name
    for candidate in IMAGE_EXTENSIONS:
        actual = index.get((stem + candidate).lower())
        if actual is not None:
            return os.path.join(directory, actual)
    return None


def walk_images(directory: str) -> List[str]:
    """Image files under ``directory`` (recursive), sorted for a stable order."""
    found = []
    for d, dirs, files in os.walk(directory):
        dirs.sort()
        found += [os.path.join(d, f) for f in sorted(files)
                  if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")]
    return found


def subdirectories(directory: str) -> List[str]:
    """Sorted names of the visible subdirectories of ``directory``."""
    return sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
