"""Throughput mode: every photo of a directory through a pipeline, streamed to JSON lines.

``analyse_folder`` decodes photos on a small thread pool while the models run
(OpenCV decoding releases the GIL), at most ``prefetch`` photos ahead, so memory
stays bounded whatever the directory holds. Each photo's result is one JSON line
(``{"image": <path relative to the directory>, "faces": [...], "dropped_faces": n}``,
or ``{"image": ..., "error": ...}`` for a file that does not decode), flushed after
each batch, so a killed run loses at most the batch it was writing; a rerun on the
same output skips the photos already recorded (a cut last line is dropped and its
photo redone). A progress bar runs on stderr, and the summary gives images/s and
faces/s of the run.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import sys
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from keras_facemt.errors import DataError
from keras_facemt.progress import ProgressBar, format_duration

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def list_photos(directory: str) -> List[str]:
    """Image files under ``directory`` (recursively, by extension), sorted, relative paths.

    Raises:
        DataError: when ``directory`` is not a directory.
    """
    if not os.path.isdir(directory):
        raise DataError(f"{directory}: not a directory of photos.")
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in files:
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(root, name), directory))
    return sorted(found)


def recorded_photos(out_path: str) -> Tuple[set, int]:
    """Photos already recorded in ``out_path`` (a JSON-lines file), and the byte length
    of its complete lines (a cut last line, from a killed run, is not counted)."""
    done, good = set(), 0
    if not os.path.exists(out_path):
        return done, 0
    with open(out_path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            try:
                done.add(json.loads(line)["image"])
            except (ValueError, KeyError, TypeError):
                break
            good += len(line)
    return done, good


def decode_photo(path: str) -> np.ndarray:
    """An image file as an RGB(A)/gray array.

    Raises:
        DataError: naming the file when it is empty or does not decode.
    """
    from keras_facemt.inference.image_files import read_images

    return read_images([path])[0]


def _prefetched(paths: Sequence[str], directory: str, workers: int, prefetch: int
                ) -> Iterator[Tuple[str, Optional[np.ndarray], Optional[str]]]:
    """``(relative path, image or None, error or None)`` in order, decoded ahead by
    ``workers`` threads, never more than ``prefetch`` photos in flight."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        pending: collections.deque = collections.deque()
        it = iter(paths)
        for rel in it:
            pending.append((rel, pool.submit(decode_photo, os.path.join(directory, rel))))
            if len(pending) >= prefetch:
                break
        while pending:
            rel, fut = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(decode_photo, os.path.join(directory, nxt))))
            try:
                yield rel, fut.result(), None
            except DataError as e:
                yield rel, None, str(e)


def analyse_folder(run: Callable[[List[np.ndarray]], Tuple[List[list], Sequence[int]]], directory: str,
                   out_path: str, batch_size: int = 8, workers: int = 2, prefetch: int = 32,
                   progress: bool = True, stream=None) -> Dict[str, object]:
    """Runs ``run`` over every photo of ``directory``, appending one JSON line per photo.

    Args:
        run: photos -> ``(faces per photo, faces dropped per photo)`` (see
            ``pipeline_runner``).
        directory: the photos (searched recursively).
        out_path: the JSON-lines file; photos it already records are skipped.
        batch_size: photos per call of ``run``.
        workers: decoding threads.
        prefetch: most photos decoded ahead of the models.
        progress: show the progress bar on ``stream``.
        stream: where the progress bar and notes go (default stderr).

    Returns:
        ``{"photos", "skipped", "processed", "errors", "faces", "seconds",
        "images_per_s", "faces_per_s"}`` of this run.
    """
    from keras_facemt.inference.face import face_to_json

    stream = stream if stream is not None else sys.stderr
    paths = list_photos(directory)
    done, good = recorded_photos(out_path)
    todo = [p for p in paths if p not in done]
    if os.path.exists(out_path) and good < os.path.getsize(out_path):
        with open(out_path, "r+b") as f:  # a cut last line: redo its photo
            f.truncate(good)
    bar = ProgressBar(len(todo), "photos", unit="img/s", stream=stream) if progress and todo else None
    counts = {"processed": 0, "errors": 0, "faces": 0}
    start = time.perf_counter()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "a") as out:
        batch: List[Tuple[str, np.ndarray]] = []

        def flush_batch():
            if not batch:
                return
            faces, dropped = run([im for _, im in batch])
            for (rel, _), fs, lost in zip(batch, faces, dropped):
                out.write(json.dumps({"image": rel, "faces": [face_to_json(f) for f in fs],
                                      "dropped_faces": int(lost)}) + "\n")
                counts["faces"] += len(fs)
            counts["processed"] += len(batch)
            out.flush()
            batch.clear()

        for rel, image, error in _prefetched(todo, directory, max(1, workers), max(prefetch, batch_size)):
            if error is not None:
                out.write(json.dumps({"image": rel, "error": error}) + "\n")
                out.flush()
                counts["errors"] += 1
                print(f"skipped {error}", file=stream)
            else:
                batch.append((rel, image))
                if len(batch) >= batch_size:
                    flush_batch()
            if bar is not None:
                elapsed = max(time.perf_counter() - start, 1e-9)
                bar.update(done=counts["processed"] + counts["errors"],
                           postfix=f"{counts['faces'] / elapsed:.1f} faces/s")
        flush_batch()
        os.fsync(out.fileno())
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.update(done=counts["processed"] + counts["errors"],
                   postfix=f"{counts['faces'] / max(seconds, 1e-9):.1f} faces/s", force=True)
        bar.close()
    return {"photos": len(paths), "skipped": len(paths) - len(todo), **counts, "seconds": seconds,
            "images_per_s": counts["processed"] / seconds if seconds > 0 else 0.0,
            "faces_per_s": counts["faces"] / seconds if seconds > 0 else 0.0}


def pipeline_runner(pipeline) -> Callable:
    """``analyse_folder``'s ``run`` for a ``FacePipeline`` (faces beyond its
    ``max_faces`` are counted in each line's ``dropped_faces``)."""
    import warnings

    def run(images):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # recorded per photo as dropped_faces instead
            faces = pipeline(images)
        return faces, list(pipeline.dropped)

    return run


def analyzer_runner(analyzer) -> Callable:
    """``analyse_folder``'s ``run`` for a single-model ``FaceAnalyzer``."""

    def run(images):
        faces = analyzer(images)
        return faces, [0] * len(faces)

    return run


def summary_line(summary: Dict[str, object]) -> str:
    """``processed 120 photos (3 skipped as done, 1 unreadable): 14.2 images/s, 40.3 faces/s, 0:08``."""
    return (f"processed {summary['processed']} photos ({summary['skipped']} already done, {summary['errors']} "
            f"unreadable), {summary['faces']} faces: {summary['images_per_s']:.1f} images/s, "
            f"{summary['faces_per_s']:.1f} faces/s in {format_duration(summary['seconds'])}")
