"""Record-level problems the input pipeline found, with where they came from.

The pipeline never trains on a malformed record and never drops one silently:
under the ``skip`` policy each bad record is dropped and entered here with its
shard file, record index, ``source_id`` and the reason (which names the field);
under ``fail`` the first one raises ``DataError`` with the same information.
Benign adjustments that lose labels (faces beyond ``max_faces`` in scenes mode)
are entered too, as ``truncated``. A shard file that is cut short or damaged is
entered once as ``lost``: its index is the last good record, and the records after
it (counted from ``dataset.json`` ``shard_records`` when the writer recorded them)
are lost; under ``fail`` it raises ``DataError`` naming the file.

``DEFAULT_ERROR_LOG`` collects every stream's entries unless a pipeline is given
its own log, so a trainer can print one summary after (or during) a run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import threading
from typing import Dict, Iterator, List, Tuple

import tensorflow as tf

from keras_facemt.errors import DataError

logger = logging.getLogger(__name__)
_WARN_LIMIT = 50

SKIPPED = "skipped"
TRUNCATED = "truncated"
LOST = "lost"
# Marker that lets ``raise_data_errors`` recognise a DataError raised inside a
# tf.data function (TF re-raises it as a generic OpError carrying the message).
_MARKER = "DataError: "


@dataclasses.dataclass(frozen=True)
class DataIssue:
    """One problem with one record.

    Attributes:
        stream: name of the DataConfig stream that read it.
        file: shard file path.
        index: record index within the shard file.
        source_id: the record's ``image/source_id``.
        reason: what is wrong, naming the field.
        action: ``skipped`` (record dropped), ``truncated`` (labels dropped) or
            ``lost`` (the rest of a damaged shard file could not be read).
        lost_records: for ``lost``, the records of the file that could not be read
            (-1 when ``dataset.json`` does not say how many the file held).
    """

    stream: str
    file: str
    index: int
    source_id: str
    reason: str
    action: str
    lost_records: int = 0

    def __str__(self) -> str:
        return f"{self.file}#{self.index} source_id={self.source_id!r}: {self.reason} [{self.action}]"


class ErrorLog:
    """Thread-safe collection of ``DataIssue`` s, one per (file, record, action).

    A record read again in a later epoch is not counted twice.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._issues: Dict[Tuple[str, int, str], DataIssue] = {}

    def add(self, issue: DataIssue) -> bool:
        """Enters ``issue``; returns False if that record was already entered."""
        with self._lock:
            key = (issue.file, issue.index, issue.action)
            if key in self._issues:
                return False
            self._issues[key] = issue
            return True

    def clear(self) -> None:
        with self._lock:
            self._issues.clear()

    @property
    def issues(self) -> List[DataIssue]:
        with self._lock:
            return list(self._issues.values())

    def skipped(self, stream: str | None = None) -> List[DataIssue]:
        """Records dropped (of ``stream``, or of every stream)."""
        return [i for i in self.issues if i.action == SKIPPED and (stream is None or i.stream == stream)]

    def truncated(self, stream: str | None = None) -> List[DataIssue]:
        """Records that lost faces beyond ``max_faces``."""
        return [i for i in self.issues if i.action == TRUNCATED and (stream is None or i.stream == stream)]

    def lost(self, stream: str | None = None) -> List[DataIssue]:
        """Damaged shard files (one entry per file, indexed by its last good record)."""
        return [i for i in self.issues if i.action == LOST and (stream is None or i.stream == stream)]

    def counts(self) -> Dict[str, Dict[str, int]]:
        """``{stream: {action: count}}``; ``lost`` counts files, ``lost_records``
        the records in them that could not be read (known counts only)."""
        out: Dict[str, Dict[str, int]] = {}
        for i in self.issues:
            out.setdefault(i.stream, {}).setdefault(i.action, 0)
            out[i.stream][i.action] += 1
            if i.action == LOST:
                out[i.stream]["lost_records"] = out[i.stream].get("lost_records", 0) + max(i.lost_records, 0)
        return out

    def summary(self, limit: int = 20) -> str:
        """A printable report: counts per stream, then up to ``limit`` issues."""
        issues = self.issues
        if not issues:
            return "input pipeline: no malformed records"
        lines = ["input pipeline: records with problems"]
        for stream, by_action in sorted(self.counts().items()):
            parts = ", ".join(
                f"{n} shard files lost ({by_action.get('lost_records', 0)} records known lost)" if a == LOST else f"{n} {a}"
                for a, n in sorted(by_action.items())
                if a != "lost_records"
            )
            lines.append(f"  stream {stream!r}: {parts}")
        for issue in issues[:limit]:
            lines.append(f"  {issue}")
        if len(issues) > limit:
            lines.append(f"  ... and {len(issues) - limit} more")
        return "\n".join(lines)

    def __len__(self) -> int:
        with self._lock:
            return len(self._issues)


DEFAULT_ERROR_LOG = ErrorLog()


def _warn(log: ErrorLog, issue: DataIssue) -> None:
    # Each problem is visible in the run's log as it happens (not only in the
    # summary), up to a cap so a badly broken dataset does not flood it.
    n = len(log)
    if n <= _WARN_LIMIT:
        logger.warning("input pipeline, stream %r: %s", issue.stream, issue)
    if n == _WARN_LIMIT:
        logger.warning("input pipeline: further record problems are collected without a log line; "
                       "see ErrorLog.summary()")


def format_failure(file: str, index: int, source_id: str, reason: str) -> str:
    """The DataError message of the ``fail`` policy (file, record, source_id, field)."""
    return f"{file}#{index}: source_id={source_id!r}: {reason}"


def _decode(value) -> str:
    return value.numpy().decode("utf-8", "replace") if hasattr(value, "numpy") else str(value)


def report_issue(log: ErrorLog, stream: str, action: str, fail: bool):
    """A ``tf.py_function`` body that records (and, if ``fail``, raises) one issue.

    Runs only on the error path of the pipeline, so healthy records never pay for
    a Python call.
    """

    def fn(file, index, source_id, reason):
        issue = DataIssue(stream, _decode(file), int(index.numpy()), _decode(source_id), _decode(reason), action)
        if log.add(issue) and not fail:
            _warn(log, issue)
        if fail:
            raise DataError(format_failure(issue.file, issue.index, issue.source_id, issue.reason))
        return True

    return fn


def check_shard_end(log: ErrorLog, stream: str, fail: bool, expected: Dict[str, int]):
    """A ``tf.py_function`` body run once per shard file after its last readable record.

    ``TFRecordDataset`` (under ``ignore_errors``) stops at the first truncated or
    corrupted record; the bytes it consumed then fall short of the file's size. The
    file is entered as ``lost`` (or, if ``fail``, raises ``DataError`` naming it).

    Args of the returned function: ``file``, ``count`` (records read) and ``nbytes``
    (bytes they occupy, framing included). Returns False (the end marker is dropped).
    """

    def fn(file, count, nbytes):
        path = _decode(file)
        count, nbytes = int(count.numpy()), int(nbytes.numpy())
        size = tf.io.gfile.stat(path).length
        total = expected.get(path, -1)
        # A cut exactly between two records leaves a well-formed file: only the
        # record count dataset.json gives can tell it is short.
        if size == nbytes and count >= total:
            return False
        lost = total - count if total >= 0 else -1
        reason = (f"shard file is truncated or damaged after record {count - 1} "
                  f"({size - nbytes} of {size} bytes unreadable); its first {count} records were read, "
                  + (f"{lost} of its {total} records are lost" if lost >= 0 else "the records after them are lost"))
        issue = DataIssue(stream, path, count - 1, "", reason, LOST, lost)
        if fail:
            raise DataError(f"{path}: {reason}")
        if log.add(issue):
            logger.warning("input pipeline, stream %r: %s", stream, issue)
        return False

    return fn


@contextlib.contextmanager
def raise_data_errors() -> Iterator[None]:
    """Re-raises a ``fail``-policy error from inside a ``tf.data`` iterator as ``DataError``.

    TF wraps Python exceptions raised in dataset functions into ``tf.errors.OpError``;
    iterate a pipeline inside this context to get the typed ``DataError`` (naming
    file, record, source_id and field) instead::

        with raise_data_errors():
            for batch in dataset: ...
    """
    try:
        yield
    except tf.errors.OpError as e:
        match = re.search(re.escape(_MARKER) + r"(.*)", e.message or "")
        if match is None:
            raise
        raise DataError(match.group(1).strip()) from None
