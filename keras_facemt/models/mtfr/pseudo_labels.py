"""Attribute pseudo-labels for a converted recognition dataset (Wang et al., ICMR 2017, Sec. 3.2).

The paper trains MOON on CelebA, predicts the 7 attributes of Table 1 on every
CASIA-WebFace image, then replaces each identity's labels by its majority. This
module does the prediction step for any converted dataset: it runs a trained
attribute model (an MTFR run or export, or any model with an ``attributes``
``[N, M]`` output in [0, 1]) over every face and writes ``celeba/<name>`` labels
(score >= 0.5) into a new dataset; ``tfrecords_tools.vote_attributes`` then votes.

Faces with 5-point landmarks (any scheme mapping to ``mtfl5``) are aligned onto the
model's template (``ops.align``); records without landmarks -- ``identity_folders``
stores none, CASIA-WebFace ships loose 250x250 face-centred crops -- are resized
whole, as one face.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import os
from typing import Callable, Dict, Sequence

import numpy as np

from keras_facemt.errors import DataError


def _inputs(rec, size):
    import cv2
    import tensorflow as tf

    from keras_facemt.data.codec import decode_image
    from keras_facemt.data.landmarks import convert_points
    from keras_facemt.ops.align import align_faces

    image = decode_image(rec.image, rec.source_id)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, -1)
    image = image[..., :3].astype(np.float32) / 255.0
    n = max(rec.num_faces, 1)
    if rec.landmarks is not None and rec.landmark_scheme not in (None, "none") and rec.num_faces:
        lms = np.asarray(rec.landmarks, np.float32).reshape(n, -1, 2)
        if rec.landmark_scheme != "mtfl5":
            vis = np.ones(lms.shape[:2], np.float32)
            lms, _ = convert_points(lms, vis, rec.landmark_scheme, "mtfl5")
        return align_faces(tf.constant(image[None]), np.asarray(lms, np.float32)[None], size).numpy()[0]
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)[None]


def pseudo_label_attributes(in_dir: str, out_dir: str, predict: Callable[[np.ndarray], np.ndarray],
                            attribute_names: Sequence[str], input_size, threshold: float = 0.5,
                            overwrite: bool = False, log: Callable = print) -> Dict[str, int]:
    """Writes a copy of ``in_dir`` with ``celeba/<name>`` labels predicted by ``predict``.

    Args:
        in_dir: converted dataset.
        out_dir: output dataset (written atomically; same splits and shard counts).
        predict: ``float32 [N, H, W, 3] in [0, 1] -> [N, M]`` attribute scores.
        attribute_names: the M names (CelebA names, ``Big_Nose``, or schema
            names, ``celeba/Big_Nose``).
        input_size: ``(H, W)`` of the model input.
        threshold: score giving label 1.

    Returns:
        Positive labels written per attribute (plus ``"faces"``).

    Raises:
        DataError: a missing dataset or an attribute name the schema does not know.
    """
    from keras_facemt.data import schema
    from keras_facemt.data.shards import ShardWriter, iter_records, read_manifest

    keys = [n if n.startswith("celeba/") else f"celeba/{n}" for n in attribute_names]
    for k in keys:
        try:
            schema.attribute_spec(k)
        except Exception as e:  # noqa: BLE001 - re-raised as a data error naming the attribute
            raise DataError(f"Unknown attribute {k!r}: {e}") from None
    read_manifest(in_dir)
    files = sorted(glob.glob(os.path.join(in_dir, "*.tfrecord")))
    if not files:
        raise DataError(f"{in_dir}: no .tfrecord shards found.")
    per_split = collections.Counter(os.path.basename(f).split("-")[0] for f in files)
    counts = collections.Counter()
    size = tuple(int(v) for v in input_size)
    with ShardWriter(out_dir, num_shards=dict(per_split), overwrite=overwrite,
                     extra={"pseudo_labels": {"attributes": keys, "threshold": float(threshold)}}) as writer:
        for path in files:
            for rec in iter_records(path):
                crops = _inputs(rec, size)
                scores = np.asarray(predict(crops.astype(np.float32)), np.float32).reshape(len(crops), len(keys))
                n = len(crops)
                attrs, has = dict(rec.attributes), dict(rec.has_attributes)
                for j, k in enumerate(keys):
                    attrs[k] = (scores[:, j] >= threshold).astype(np.int64)
                    has[k] = np.ones(n, np.int64)
                    counts[k] += int(attrs[k].sum())
                counts["faces"] += n
                if rec.num_faces == 0:  # a whole-image face: give it a box so the labels have a face to sit on
                    rec = dataclasses.replace(rec, bboxes=np.array([[0.0, 0.0, 1.0, 1.0]], np.float32))
                writer.write(dataclasses.replace(rec, attributes=attrs, has_attributes=has))
    if log:
        log(f"pseudo-labelled {counts['faces']} faces")
    return dict(counts)


def mtfr_predictor(path: str):
    """``(predict, attribute_names, input_size)`` of an MTFR run or export directory."""
    from keras_facemt.models.mtfr.export import load_deployable
    from keras_facemt.models.mtfr.serving import ATTRIBUTES_KEY

    model, names, _ = load_deployable(path)
    size = tuple(int(v) for v in model.input["image"].shape[1:3]) if isinstance(model.input, dict) else \
        tuple(int(v) for v in model.inputs[0].shape[1:3])

    def predict(x):
        return np.concatenate([np.asarray(model({"image": x[s:s + 128]}, training=False)[ATTRIBUTES_KEY])
                               for s in range(0, len(x), 128)], 0)

    return predict, names, size


def register_pseudo_labels(subparsers) -> None:
    """``facemt pseudo-label-attributes --model RUN_OR_EXPORT IN OUT``."""
    p = subparsers.add_parser("pseudo-label-attributes",
                              help="write celeba/<name> labels predicted by a trained MTFR attribute model")
    p.add_argument("in_dir")
    p.add_argument("out_dir")
    p.add_argument("--model", required=True, help="an MTFR run directory or export directory")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_run)


def _run(args) -> int:
    predict, names, size = mtfr_predictor(args.model)
    counts = pseudo_label_attributes(args.in_dir, args.out_dir, predict, names, size, args.threshold, args.overwrite)
    print(f"{args.out_dir}: {counts['faces']} faces labelled: "
          + ", ".join(f"{k}={v}" for k, v in sorted(counts.items()) if k != "faces"))
    return 0
