"""The one TFRecord shard writer and reader helpers (used by SynthFace and converters).

Writing is atomic: shards go to a hidden temporary directory beside the output,
``dataset.json`` is written last, and the directory is renamed into place. A killed
run therefore never leaves an output that looks complete: a directory is a dataset
exactly when it holds ``dataset.json``.

Layout of a dataset directory::

    <out>/dataset.json
    <out>/<split>-00000-of-00004.tfrecord
"""

from __future__ import annotations

import collections
import datetime
import glob
import json
import os
import shutil
import tempfile
from typing import Dict, Iterable, List, Optional

import numpy as np
import tensorflow as tf

from keras_facemt.data import schema
from keras_facemt.data.codec import FaceRecord
from keras_facemt.errors import DataError
from keras_facemt.io import swap_directory, write_json_atomic

MANIFEST = "dataset.json"
FORMAT_VERSION = 1


def shard_name(split: str, index: int, total: int) -> str:
    return f"{split}-{index:05d}-of-{total:05d}.tfrecord"




class DatasetStats:
    """Accumulates the counts ``dataset.json`` reports."""

    def __init__(self):
        self.examples = collections.Counter()  # split -> images
        self.faces = collections.Counter()
        self.presence: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.histograms: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.schemes = collections.Counter()
        self.datasets = collections.Counter()

    def add(self, rec: FaceRecord) -> None:
        s = rec.split
        self.examples[s] += 1
        self.faces[s] += rec.num_faces
        self.schemes[rec.landmark_scheme] += 1
        self.datasets[rec.dataset] += 1
        p = self.presence[s]
        p["detection"] += int(rec.has_boxes)
        p["parsing"] += int(rec.parsing is not None)
        for task, flag in (("landmarks", rec.has_landmarks), ("pose", rec.has_pose),
                           ("identity", rec.has_identity), ("teacher_embedding", rec.has_teacher_embedding)):
            if flag is not None:
                p[task] += int(np.sum(flag > 0))
        for name, flag in rec.has_attributes.items():
            p[name] += int(np.sum(flag > 0))
            spec = schema.attribute_spec(name)
            vals = rec.attributes[name][flag > 0]
            if spec.kind == "regression":
                vals = np.floor(vals / 10.0) * 10  # decade bins
            for v in vals:
                self.histograms[name][str(int(v))] += 1

    def to_json(self) -> Dict[str, object]:
        return {
            "counts": dict(self.examples),
            "faces": dict(self.faces),
            "presence": {k: dict(v) for k, v in self.presence.items()},
            "attribute_histograms": {k: dict(v) for k, v in self.histograms.items()},
            "landmark_schemes": dict(self.schemes),
            "datasets": dict(self.datasets),
        }


class ShardWriter:
    """Writes records into balanced shards per split, atomically.

    Use as a context manager; on a clean exit the dataset is committed (manifest
    written last, directory moved into place); on an exception nothing is left
    at ``out_dir`` that looks complete.

    Args:
        out_dir: final dataset directory.
        num_shards: shards per split, as one int for every split or a dict
            ``{split: shards}`` (splits not in the dict get one shard).
        overwrite: replace an existing complete dataset at ``out_dir``.
        extra: additional manifest fields (converter name/version, source files).
        balance: ``"records"`` (round-robin: shard sizes differ by at most one
            record) or ``"bytes"`` (each record goes to the shard of its split with
            the fewest bytes so far, so shard byte sizes differ by at most one
            record's size even when image sizes vary widely).
        before_commit: optional ``fn(tmp_dir)`` called after the shards are closed
            and before anything is moved into place (e.g. decode a sample); if it
            raises, nothing is committed.
    """

    def __init__(self, out_dir: str, num_shards=1, overwrite: bool = False,
                 extra: Optional[Dict[str, object]] = None, balance: str = "records",
                 before_commit=None):
        counts = num_shards.values() if isinstance(num_shards, dict) else [num_shards]
        for n in counts:
            if int(n) < 1:
                raise DataError(f"num_shards must be >= 1. Received: num_shards={num_shards}")
        if balance not in ("records", "bytes"):
            raise DataError(f"balance must be 'records' or 'bytes'. Received: balance={balance!r}")
        self.out_dir = os.path.abspath(out_dir)
        self.num_shards = num_shards
        self.balance = balance
        self.overwrite = overwrite
        self.extra = dict(extra or {})
        self.stats = DatasetStats()
        self._writers: Dict[str, List[tf.io.TFRecordWriter]] = {}
        self._bytes: Dict[str, List[int]] = {}
        self._records: Dict[str, List[int]] = {}
        self._next: Dict[str, int] = collections.Counter()
        self._files: Dict[str, bytes] = {}
        self._before_commit = before_commit
        self._tmp: Optional[str] = None

    def shards_for(self, split: str) -> int:
        """Number of shards ``split`` is written to."""
        if isinstance(self.num_shards, dict):
            return int(self.num_shards.get(split, 1))
        return int(self.num_shards)

    def __enter__(self) -> "ShardWriter":
        if os.path.exists(self.out_dir) and not os.path.isdir(self.out_dir):
            raise DataError(f"{self.out_dir}: exists and is not a directory; choose another output directory.")
        if os.path.exists(os.path.join(self.out_dir, MANIFEST)) and not self.overwrite:
            raise DataError(f"{self.out_dir}: a dataset already exists here; pass overwrite=True (--overwrite) to replace it.")
        parent = os.path.dirname(self.out_dir)
        os.makedirs(parent, exist_ok=True)
        self._tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(self.out_dir)}.tmp-", dir=parent)
        return self

    def write(self, rec: FaceRecord) -> None:
        self.write_serialized(rec.serialize(), rec)  # serialize() validates

    def write_serialized(self, data: bytes, rec: FaceRecord) -> None:
        """Writes an already serialised record; ``rec`` (image bytes may be empty)
        supplies the split and the manifest statistics."""
        split = rec.split
        if split not in self._writers:
            total = self.shards_for(split)
            self._writers[split] = [
                tf.io.TFRecordWriter(os.path.join(self._tmp, shard_name(split, i, total)))
                for i in range(total)
            ]
            self._bytes[split] = [0] * total
            self._records[split] = [0] * total
        sizes = self._bytes[split]
        if self.balance == "bytes":
            i = int(np.argmin(sizes))
        else:
            i = self._next[split] % len(sizes)
        self._next[split] += 1
        sizes[i] += len(data)
        self._records[split][i] += 1
        self._writers[split][i].write(data)
        self.stats.add(rec)

    def add_file(self, name: str, data: bytes) -> None:
        """Adds a side file (e.g. a verification pairs list) committed with the shards."""
        if os.path.basename(name) != name or name in (MANIFEST, "") or name.startswith("."):
            raise DataError(f"Side files must be plain names other than {MANIFEST}. Received: name={name!r}")
        self._files[name] = bytes(data)

    def write_all(self, records: Iterable[FaceRecord]) -> None:
        for r in records:
            self.write(r)

    def __exit__(self, exc_type, exc, tb) -> None:
        for ws in self._writers.values():
            for w in ws:
                w.close()
        if exc_type is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            return
        if self._before_commit is not None:
            try:
                self._before_commit(self._tmp)
            except BaseException:
                shutil.rmtree(self._tmp, ignore_errors=True)
                raise
        for name, data in self._files.items():
            with open(os.path.join(self._tmp, name), "wb") as f:
                f.write(data)
        manifest = {
            "format_version": FORMAT_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "num_shards": self.num_shards,
            "shard_bytes": {k: list(v) for k, v in self._bytes.items()},
            # Records per shard file: a damaged shard's lost records can be counted.
            "shard_records": {k: list(v) for k, v in self._records.items()},
            "splits": sorted(self._writers),
            **self.stats.to_json(),
            **self.extra,
        }
        write_json_atomic(os.path.join(self._tmp, MANIFEST), manifest)
        swap_directory(self._tmp, self.out_dir)


def read_manifest(data_dir: str) -> Dict[str, object]:
    """Reads ``dataset.json`` of a complete dataset directory.

    Raises:
        DataError: if the directory is missing, empty, or incomplete.
    """
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: data directory does not exist.")
    path = os.path.join(data_dir, MANIFEST)
    if not os.path.exists(path):
        raise DataError(f"{data_dir}: no {MANIFEST}; not a complete keras-facemt dataset (an interrupted conversion, or the wrong directory).")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable {MANIFEST} ({e}); the dataset is damaged, convert it again.") from None
    if not isinstance(manifest, dict):
        raise DataError(f"{path}: {MANIFEST} is not a JSON object; the dataset is damaged, convert it again.")
    return manifest


def shard_record_counts(data_dir: str, split: str) -> Dict[str, int]:
    """``{shard path: records}`` from ``dataset.json`` (empty if it does not say)."""
    manifest = read_manifest(data_dir)
    counts = manifest.get("shard_records", {}).get(split)
    if not counts:
        return {}
    total = len(counts)
    return {os.path.join(data_dir, shard_name(split, i, total)): int(n) for i, n in enumerate(counts)}


def identity_count(data_dir: str) -> Optional[int]:
    """Identities the dataset's ``face/identity`` ids range over, if it says.

    Read from ``dataset.json`` (``num_identities``, or the SynthFace settings) or
    the converters' ``identities.json`` side file; None when neither says.
    """
    manifest = read_manifest(data_dir)
    n = manifest.get("num_identities", manifest.get("synthface", {}).get("num_identities"))
    side = os.path.join(data_dir, "identities.json")
    if n is None and os.path.isfile(side):
        try:
            with open(side) as f:
                n = json.load(f).get("num_identities")
        except (OSError, ValueError, AttributeError):
            n = None
    return int(n) if isinstance(n, (int, float)) and n > 0 else None


def list_shards(data_dir: str, split: str) -> List[str]:
    """Sorted shard paths of ``split`` in ``data_dir``.

    Raises:
        DataError: if the directory is missing or holds no shard of that split.
    """
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: data directory does not exist.")
    files = sorted(glob.glob(os.path.join(data_dir, f"{split}-*.tfrecord")))
    if not files:
        raise DataError(f"{data_dir}: no '{split}-*.tfrecord' shards found.")
    return files


def check_tfrecord(path: str) -> None:
    """Raises DataError if ``path`` is not a readable TFRecord file."""
    try:
        for _ in tf.data.TFRecordDataset(path).take(1):
            pass
    except tf.errors.DataLossError as e:
        raise DataError(f"{path}: not a TFRecord file (corrupted record header: {e.message.splitlines()[0]}).") from None


def iter_records(path: str) -> Iterable[FaceRecord]:
    """Yields FaceRecords of one shard (host side; for tools and tests).

    Raises:
        DataError: naming the file (and its last good record) if it is damaged.
    """
    check_tfrecord(path)
    i = 0
    try:
        for raw in tf.data.TFRecordDataset(path):
            yield FaceRecord.from_example(raw.numpy(), source=f"{path}#{i}")
            i += 1
    except tf.errors.DataLossError:
        raise DataError(
            f"{path}: shard file is truncated or damaged after record {i - 1}; the records after it cannot be read."
        ) from None
