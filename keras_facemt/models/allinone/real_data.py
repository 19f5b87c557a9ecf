"""Converted datasets as All-in-One training streams (``--data STREAM=DIR``).

Each of Table I's five streams can read a dataset converted by
``tfrecords_tools`` instead of its SynthFace population. The records go through the
same code as the rendered ones, so a real stream and a synthetic one give the
network the same kind of example:

=============  ================================  =======================================
stream         needs (per face)                  e.g.
=============  ================================  =======================================
``aflw``       boxes (every face of the image),  ``convert_aflw.py`` (21 points,
               points of a scheme that maps to   visibility, pose); ``ibug68`` sets map
               ``aflw21``; pose when present     to 19 of the 21 points
``celeba``     ``smile``; ``gender`` if present  ``convert_celeba.py``
``imdb_wiki``  ``age`` in years; ``gender``      ``convert_imdb_wiki.py``
``morph``      ``age`` in years; ``gender``      ``convert_morph.py``
``casia``      ``identity``; ``gender``          ``convert_identity_folders.py``
=============  ================================  =======================================

``aflw`` images are padded to a square and resized to ``scene_size``, then cut into
IoU-labelled proposals around their boxes (``data._add_proposals``); landmarks,
visibility and pose are regressed only where the face carries them. AFLW's
boxes are not exhaustive (its converter writes ``has_boxes`` 0), so a random
background box may hold an unannotated face; the paper labels AFLW's proposals by
IoU with the annotated faces all the same, and so does this stream. The other
streams take every labelled face, aligned onto the 5-point template by its points
when the record has a scheme that gives them (else cut by a jittered box), at
``render_size``.

Adience's converter writes ``age_group`` (8 ranges) only. Eq. 6 regresses years
and the paper does not say how it used Adience's groups; rather than invent group
midpoints, an age stream without ``age`` labels is refused.

Records are decoded once and held in memory (uint8 crops), like the rendered
streams; the held-out SynthFace sets are still what ``task.evaluate`` scores, so
score a real test split with ``facemt evaluate``.
"""

from __future__ import annotations

from typing import Callable, Dict, List

import numpy as np

from keras_facemt.errors import DataError

# The label each stream cannot do without, and the optional one it also reads.
PRIMARY = {"aflw": "boxes", "celeba": "smile", "imdb_wiki": "age", "morph": "age", "casia": "identity"}


def _square(image: np.ndarray, size: int):
    """``image`` padded (bottom, right) to a square and resized to ``size``; returns (square, side before resize)."""
    import cv2

    h, w = image.shape[:2]
    side = max(h, w)
    canvas = np.zeros((side, side, 3), np.uint8)
    canvas[:h, :w] = image
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(canvas, (size, size), interpolation=interp), side


def _records(data_dir: str, split: str):
    from keras_facemt.data import shards

    for path in shards.list_shards(data_dir, split):
        yield from shards.iter_records(path)


def _face_frame(rec, side: int) -> np.ndarray:
    """Scale of normalised record coordinates into the padded square's [0, 1] frame, ``[2]``."""
    return np.array([rec.width / side, rec.height / side], np.float64)


def _flag(values, n: int) -> np.ndarray:
    return np.ones(n, bool) if values is None else np.asarray(values).reshape(n) > 0


def load_scene_stream(data_dir: str, scene_size: int, input_size: int, seed: int, jittered_per_face: int,
                      random_per_scene: int, split: str = "train") -> Dict[str, np.ndarray]:
    """The ``aflw`` stream of a converted detection + landmark dataset.

    Returns:
        the arrays of ``data.render_scene_proposals``.

    Raises:
        DataError: no record with boxes, or points that do not map to ``aflw21``.
    """
    from keras_facemt.data.codec import decode_image
    from keras_facemt.data.landmarks import convert_points
    from keras_facemt.errors import ConfigError
    from keras_facemt.models.allinone.data import SCHEME, _add_proposals, _empty_proposals, _proposal_arrays

    rng = np.random.default_rng((seed, 37))
    out, faces = _empty_proposals()
    index = 0
    for rec in _records(data_dir, split):
        n = len(rec.bboxes)
        if not n:
            continue
        image, side = _square(decode_image(rec.image, rec.source_id), scene_size)
        frame = _face_frame(rec, side)
        box = np.asarray(rec.bboxes, np.float64) * np.tile(frame, 2)
        has_pts = _flag(rec.has_landmarks, n) & (rec.landmarks is not None) & (rec.landmark_scheme != "none")
        pts, vis = np.zeros((n, 21, 2)), np.zeros((n, 21))
        if rec.landmarks is not None and rec.landmark_scheme != "none":
            try:
                p, v = convert_points(rec.landmarks, np.ones(rec.landmarks.shape[:2], np.float32)
                                      if rec.landmarks_visible is None else rec.landmarks_visible,
                                      rec.landmark_scheme, SCHEME)
            except ConfigError as e:
                raise DataError(f"{data_dir}: record {rec.source_id} has {rec.landmark_scheme!r} points, which do "
                                f"not map to {SCHEME!r} ({e}).") from None
            pts, vis = p * frame, v * has_pts[:, None]
        pose = np.zeros((n, 3)) if rec.pose is None else np.asarray(rec.pose, np.float64)
        has_pose = _flag(rec.has_pose, n) & (rec.pose is not None)
        attr = rec.attributes or {}
        have = rec.has_attributes or {}
        labels = {"box": box * scene_size, "points": pts * scene_size, "visible": vis, "pose": pose,
                  "has_points": has_pts.astype(np.float32), "has_pose": has_pose.astype(np.float32),
                  **{k: np.where(_flag(have.get(k), n), np.asarray(attr[k], np.float64).reshape(n), -1)
                     if k in attr else np.full(n, -1.0) for k in ("gender", "smile", "age")}}
        # AFLW's boxes are not exhaustive (its converter writes has_boxes 0): a random background
        # box may hold an unlabelled face. The paper labels AFLW's Selective Search proposals by
        # IoU with the annotated faces all the same, and so does this stream.
        _add_proposals(out, faces, image, labels, index, scene_size, input_size, rng, jittered_per_face,
                       random_per_scene)
        index += 1
    if not index:
        raise DataError(f"{data_dir}: no {split!r} record with face boxes; the aflw stream needs a detection "
                        f"dataset (e.g. convert_aflw.py).")
    return _proposal_arrays(out, faces)


def load_crop_stream(name: str, data_dir: str, render_size: int, input_size: int, seed: int, aligned: bool,
                     split: str = "train") -> Dict[str, np.ndarray]:
    """The ``celeba`` / ``imdb_wiki`` / ``morph`` / ``casia`` stream of a converted dataset.

    Returns:
        the arrays of ``data.render_face_crops`` (``image``, ``identity``,
        ``gender``, ``smile``, ``age``, ``face``) plus ``has_<label>`` presence.

    Raises:
        DataError: no face with the stream's label; an age stream of age groups only.
    """
    from keras_facemt.data.codec import decode_image
    from keras_facemt.data.landmarks import convert_points
    from keras_facemt.errors import ConfigError
    from keras_facemt.models.allinone import proposals as P
    from keras_facemt.models.allinone.data import align_crops, face_proposal

    primary = PRIMARY[name]
    rng = np.random.default_rng((seed, 41))
    cols: Dict[str, List] = {k: [] for k in ("identity", "gender", "smile", "age", "has_identity", "has_gender",
                                             "has_smile", "has_age", "face")}
    squares, fives, crops = [], [], []
    for rec in _records(data_dir, split):
        n = max(len(rec.bboxes), 1)
        attr, have = rec.attributes or {}, rec.has_attributes or {}
        if primary == "identity":
            labelled = _flag(rec.has_identity, n) & (rec.identity is not None)
        else:
            labelled = _flag(have.get(primary), n) & (primary in attr)
        if not labelled.any():
            continue
        image, side = _square(decode_image(rec.image, rec.source_id), render_size)
        frame = _face_frame(rec, side)
        five = None
        if rec.landmarks is not None and rec.landmark_scheme != "none":
            try:
                five, _ = convert_points(rec.landmarks, np.ones(rec.landmarks.shape[:2], np.float32),
                                         rec.landmark_scheme, "mtfl5")
            except ConfigError:
                five = None
        for f in np.flatnonzero(labelled):
            has_pts = five is not None and _flag(rec.has_landmarks, n)[f]
            if aligned and has_pts:
                squares.append(image)
                fives.append(five[f] * frame)
                crops.append(None)
            else:
                box = (np.asarray(rec.bboxes[f], np.float64) if len(rec.bboxes) else np.array([0, 0, 1, 1.0])) \
                    * np.tile(frame, 2) * render_size
                crops.append(P.crop_box(image, face_proposal(box, rng), input_size))
            ident = -1 if rec.identity is None else int(np.asarray(rec.identity).reshape(-1)[f])
            cols["identity"].append(ident)
            cols["has_identity"].append(float(primary == "identity" or (rec.identity is not None and _flag(
                rec.has_identity, n)[f])))
            for k in ("gender", "smile", "age"):
                ok = k in attr and _flag(have.get(k), n)[f]
                cols[k].append(float(np.asarray(attr[k]).reshape(-1)[f]) if ok else -1.0)
                cols[f"has_{k}"].append(float(ok))
            cols["face"].append(len(cols["face"]))
    if not cols["face"]:
        raise DataError(f"{data_dir}: no {split!r} face carries {primary!r}, the label the {name} stream trains.")
    if squares:
        warped = iter(align_crops(np.stack(squares), np.stack(fives), input_size))
        crops = [next(warped) if c is None else c for c in crops]
    arrays = {k: np.asarray(v) for k, v in cols.items()}
    arrays["image"] = np.stack(crops).astype(np.uint8)
    for k in ("identity", "gender", "smile", "face"):
        arrays[k] = arrays[k].astype(np.int64)
    arrays["age"] = arrays["age"].astype(np.float32)
    return arrays


def check_labels(name: str, data_dir: str, split: str = "train") -> None:
    """Refuses, from ``dataset.json`` alone, a dataset that cannot feed stream ``name``.

    Raises:
        DataError: no ``split``; no face with the stream's label; an age stream given
            age groups only (Adience).
    """
    from keras_facemt.data import shards

    manifest = shards.read_manifest(data_dir)
    presence = manifest.get("presence") or {}
    key = "boxes" if PRIMARY[name] == "boxes" else PRIMARY[name]
    have = (manifest.get("faces") or {}) if key == "boxes" else (presence.get(split) or {})
    if int(have.get(split if key == "boxes" else key, 0)) > 0:
        return
    if key == "age" and any(int(p.get("age_group", 0)) for p in presence.values()):
        raise DataError(f"{data_dir}: the {name} stream regresses age in years (Eq. 6), but this dataset carries "
                        f"age groups only (age_group, e.g. Adience's 8 ranges). The paper gives no mapping from groups "
                        f"to years and none is invented here: give ages in years (e.g. convert_jsonl.py with 'age').")
    splits = manifest.get("splits") or sorted(manifest.get("counts") or {})
    if split not in splits:
        raise DataError(f"{data_dir}: no {split!r} split (it has {list(splits)}); the {name} stream trains on it.")
    raise DataError(f"{data_dir}: no {split!r} face carries {key!r}, the label the {name} stream trains "
                    f"(labels present: {sorted(k for k, v in (presence.get(split) or {}).items() if v)}).")


def load_streams(data: Dict[str, str], exp, input_size: int, log: Callable = print) -> Dict[str, Dict[str, np.ndarray]]:
    """``{stream: arrays}`` of every ``--data STREAM=DIR`` (each checked before any is read)."""
    for name, path in data.items():
        check_labels(name, path)
    out = {}
    for i, (name, path) in enumerate(sorted(data.items())):
        if name == "aflw":
            out[name] = load_scene_stream(path, exp.scene_size, input_size, exp.seed + 50 + i, exp.jittered_per_face,
                                          exp.random_per_scene)
        else:
            out[name] = load_crop_stream(name, path, exp.render_size, input_size, exp.seed + 50 + i,
                                         exp.aligned_crops)
        log(f"{name} stream from {path}: {len(out[name]['image'])} examples")
    return out


def identities_in(arrays: Dict[str, np.ndarray], data_dir: str) -> int:
    """Identity classes of a ``casia`` stream: the dataset's own count, else the largest id + 1."""
    from keras_facemt.data import shards

    n = shards.identity_count(data_dir)
    top = int(arrays["identity"].max()) + 1
    if n is not None and n < top:
        raise DataError(f"{data_dir}: identity ids reach {top - 1} but the dataset declares {n} identities.")
    return int(n or top)

