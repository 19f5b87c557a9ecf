"""Adds teacher embeddings (``face/teacher_embedding``) to a dataset of shards.

Uniface's mimic loss (Liao et al., Sec. III-E.2, Eq. (3)) regresses the network's
per-face embedding onto ``g(x_i)``, a well-trained recognition model's embedding of
the face "cropped and aligned from the original image". This tool computes those
targets offline: for every annotated face with 5-point landmarks (any scheme that
maps to ``mtfl5``), it aligns the face with ``keras_facemt.ops.align`` (the one
alignment used everywhere) and runs the teacher on the crop.

The teacher may be a ``.keras`` file, a SavedModel directory (its
``serving_default`` signature) or an ``.onnx`` file. It must take float32 RGB crops
in [0, 1], ``[batch, S, S, 3]``, and return ``[batch, D]``; S is read from the model.

Faces without landmarks get ``has_teacher_embedding = 0``. Output is a new dataset
(same splits and shard counts), written atomically.

Usage::

    python -m tfrecords_tools.add_teacher_embeddings --data_dir IN --out_dir OUT --teacher PATH
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import os
import sys
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from keras_facemt.errors import ConfigError, DataError


def load_embedding_model(path: str) -> Tuple[Callable[[np.ndarray], np.ndarray], int]:
    """Loads a teacher as ``(fn(crops [N, S, S, 3]) -> [N, D], S)``.

    Raises:
        DataError: if ``path`` is missing or not a ``.keras`` / SavedModel / ``.onnx``.
    """
    if not os.path.exists(path):
        raise DataError(f"Teacher model not found. Received: teacher={path!r}")
    if path.endswith(".keras"):
        import keras

        model = keras.saving.load_model(path, safe_mode=True)
        size = int(model.inputs[0].shape[1])
        return (lambda x: np.asarray(model(x, training=False), np.float32)), size
    if path.endswith(".onnx"):
        import onnxruntime as ort

        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        size = inp.shape[1]
        if not isinstance(size, int):
            raise DataError(f"{path}: the ONNX input needs a static crop size. Received: shape={inp.shape}")
        return (lambda x: np.asarray(sess.run(None, {inp.name: x.astype(np.float32)})[0], np.float32)), size
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "saved_model.pb")):
        import tensorflow as tf

        loaded = tf.saved_model.load(path)
        fn = loaded.signatures["serving_default"]
        (name, spec), = fn.structured_input_signature[1].items()
        size = int(spec.shape[1])

        def run(x):
            out = fn(**{name: tf.constant(x, tf.float32)})
            return np.asarray(next(iter(out.values())), np.float32)

        return run, size
    raise DataError(f"Teacher must be a .keras file, a SavedModel directory or an .onnx file. Received: teacher={path!r}")


def _mtfl5_landmarks(rec) -> Tuple[Optional[np.ndarray], np.ndarray]:
    from keras_facemt.data.landmarks import convert_points

    n = rec.num_faces
    if rec.landmarks is None or rec.landmark_scheme in (None, "none") or n == 0:
        return None, np.zeros(n, np.int64)
    lms = np.asarray(rec.landmarks, np.float32).reshape(n, -1, 2)
    vis = np.ones(lms.shape[:2], np.float32) if rec.landmarks_visible is None else \
        np.asarray(rec.landmarks_visible, np.float32).reshape(n, -1)
    has = np.ones(n, np.int64) if rec.has_landmarks is None else np.asarray(rec.has_landmarks, np.int64).reshape(n)
    if rec.landmark_scheme != "mtfl5":
        lms, _ = convert_points(lms, vis, rec.landmark_scheme, "mtfl5")
    return lms.astype(np.float32), has


def _decoded(rec):
    """``(float32 RGB image [H, W, 3] in [0, 1], mtfl5 landmarks [n, 5, 2], has [n])``, or None."""
    from keras_facemt.data.codec import decode_image

    lms, has = _mtfl5_landmarks(rec)
    if lms is None or not has.any():
        return None, has
    image = decode_image(rec.image, rec.source_id).astype(np.float32) / 255.0
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, -1)
    return (image[..., :3], lms), has


def _align_group(items, crop_size: int):
    """Aligns the faces of same-sized images in one batched call; returns crops per item."""
    import tensorflow as tf

    from keras_facemt.ops.align import align_faces

    most = max(len(lms) for _, lms in items)
    images = np.stack([img for img, _ in items])
    lms = np.zeros((len(items), most, 5, 2), np.float32)
    for i, (_, l) in enumerate(items):
        lms[i, :len(l)] = l
    crops = align_faces(tf.constant(images), tf.constant(lms), crop_size).numpy()
    return [crops[i, :len(l)] for i, (_, l) in enumerate(items)]


def embed_records(records, teacher: Callable, crop_size: int, batch_size: int = 256):
    """Returns the records with teacher embeddings of their faces and the count embedded.

    Images of the same size are aligned together and crops of many records are
    embedded together, ``batch_size`` at a time.
    """
    decoded, flags = [], []
    for rec in records:
        d, has = _decoded(rec)
        decoded.append(d)
        flags.append(has)
    crops_of = [None] * len(records)
    groups = collections.defaultdict(list)
    for r, d in enumerate(decoded):
        if d is not None:
            groups[d[0].shape].append(r)
    for members in groups.values():
        for r, c in zip(members, _align_group([decoded[r] for r in members], crop_size)):
            crops_of[r] = c
    owners = [r for r, c in enumerate(crops_of) if c is not None for _ in range(len(c))]
    if not owners:
        return [dataclasses.replace(r, teacher_embedding=None, has_teacher_embedding=None) for r in records], 0
    crops = np.concatenate([c for c in crops_of if c is not None], 0)
    emb = np.concatenate([teacher(crops[s:s + batch_size]) for s in range(0, len(crops), batch_size)], 0)
    owners = np.asarray(owners)
    out, count = [], 0
    for r, rec in enumerate(records):
        mine = emb[owners == r]
        if len(mine) == 0:
            out.append(dataclasses.replace(rec, teacher_embedding=None, has_teacher_embedding=None))
            continue
        has = flags[r]
        mine = np.where(has[:, None] > 0, mine, 0.0).astype(np.float32)
        out.append(dataclasses.replace(rec, teacher_embedding=mine, has_teacher_embedding=has.astype(np.int64)))
        count += int(has.sum())
    return out, count


def add_teacher_embeddings(data_dir: str, out_dir: str, teacher: str, overwrite: bool = False,
                           log: Callable[[str], None] = print, records_per_batch: int = 64) -> dict:
    """Writes a copy of ``data_dir`` with ``face/teacher_embedding`` on every face with landmarks.

    Returns:
        The new manifest.

    Raises:
        DataError: for a missing dataset or teacher.
    """
    from keras_facemt.data.shards import ShardWriter, iter_records, read_manifest

    read_manifest(data_dir)
    files = sorted(glob.glob(os.path.join(data_dir, "*.tfrecord")))
    if not files:
        raise DataError(f"{data_dir}: no .tfrecord shards found.")
    per_split = collections.Counter(os.path.basename(f).split("-")[0] for f in files)
    fn, size = load_embedding_model(teacher)
    faces = images = 0
    dim = None
    with ShardWriter(out_dir, num_shards=dict(per_split), overwrite=overwrite,
                     extra={"teacher_embeddings": {"teacher": os.path.abspath(teacher), "crop_size": size}}) as w:
        pending = []

        def flush():
            nonlocal faces, images, dim
            done, k = embed_records(pending, fn, size)
            for rec in done:
                if rec.teacher_embedding is not None:
                    dim = rec.teacher_embedding.shape[-1]
                w.write(rec)
            faces += k
            images += len(done)
            pending.clear()

        for path in files:
            for rec in iter_records(path):
                pending.append(rec)
                if len(pending) >= records_per_batch:
                    flush()
        if pending:
            flush()
    log(f"add_teacher_embeddings: {faces} faces in {images} images embedded (D={dim}) -> {out_dir}")
    return read_manifest(out_dir)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True, help="input dataset (dataset.json + shards)")
    parser.add_argument("--out_dir", required=True, help="output dataset directory")
    parser.add_argument("--teacher", required=True, help=".keras file, SavedModel directory or .onnx file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out_dir")
    args = parser.parse_args(argv)
    try:
        add_teacher_embeddings(args.data_dir, args.out_dir, args.teacher, args.overwrite)
    except (DataError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
