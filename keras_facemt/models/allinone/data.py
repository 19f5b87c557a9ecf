"""All-in-One's data on SynthFace: the five training streams of Table I and the test sets.

Table I trains five sub-networks on different datasets at once. Each stream here
is a SynthFace population standing in for one of them, carrying only the labels
its dataset has (a missing label is a zero presence flag, never a negative):

=============  ===========================================  =========================
stream         labels                                       paper dataset (Table I)
=============  ===========================================  =========================
``aflw``       detection, 21 points + visibility, pose      AFLW
``celeba``     smile, gender                                CelebA
``imdb_wiki``  age, gender                                  IMDB+WIKI
``morph``      age, gender                                  MORPH
``casia``      identity, gender                             CASIA-WebFace
=============  ===========================================  =========================

``aflw`` crops are region proposals sampled around the faces of multi-face scenes
and labelled by IoU (``proposals.py``). The other streams are faces aligned to the
5-point template by their points with a little noise (``aligned_crops``, the
paper's stage-2 input: stage 1's predicted points are not exact), or else crops
cut by a jittered face box (IoU > 0.5 with it). Adience (age groups only) is left out: the paper gives no
mapping from its 8 groups to the regressed age (``real_data.py`` refuses it for the
age streams). SynthFace smiles are rare (about
13%), so the ``celeba`` population renders every other face as ``happy``.

Everything is rendered once into arrays (cached as ``.npz`` under the cache
directory) and streamed by ``tf.data`` from memory.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Callable, Dict, Sequence

import numpy as np

from keras_facemt.data import batch as B
from keras_facemt.data.landmarks import convert_points
from keras_facemt.models.allinone import proposals as P
from keras_facemt.metrics.binned_error import YAW_BINS
from keras_facemt.models.allinone.losses import DETECTION, HAS_DETECTION

STREAMS = ("aflw", "celeba", "imdb_wiki", "morph", "casia")
STREAM_TASKS = {"aflw": ("detection", "landmarks", "visibility", "pose"), "celeba": ("smile", "gender"),
                "imdb_wiki": ("age", "gender"), "morph": ("age", "gender"), "casia": ("identity", "gender")}
SCHEME = "aflw21"


def _faces_aflw21(labels: Dict, size: int):
    """Pixel aflw21 points ``[F, 21, 2]`` and visibility ``[F, 21]`` of SynthFace labels (normalised ibug68)."""
    pts, vis = convert_points(np.asarray(labels["landmarks"]).reshape(-1, 68, 2),
                              np.asarray(labels["landmarks_visible"]).reshape(-1, 68), "ibug68", SCHEME)
    return pts * size, vis


def _empty_proposals():
    out = {k: [] for k in ("image", "iou", "scene", "face", "proposal", DETECTION, HAS_DETECTION, B.LANDMARKS,
                           B.LANDMARKS_VISIBLE, B.HAS_LANDMARKS, B.POSE, B.HAS_POSE)}
    faces = {k: [] for k in ("face_box", "face_points", "face_visible", "face_pose", "face_scene", "face_gender",
                             "face_smile", "face_age")}
    return out, faces


def _synth_faces(lab: Dict, image_size: int) -> Dict[str, np.ndarray]:
    """Per-face labels (pixels) of a SynthFace render, in ``_add_proposals``'s form."""
    pts, vis = _faces_aflw21(lab, image_size)
    return {"box": np.asarray(lab["bbox"]).reshape(-1, 4) * image_size, "points": pts, "visible": vis,
            "pose": np.asarray(lab["pose"], np.float32).reshape(-1, 3), "gender": np.reshape(lab["gender"], -1),
            "smile": np.reshape(lab["smile"], -1), "age": np.reshape(lab["age"], -1)}


def _add_proposals(out, faces, rgb, labels, index, image_size, input_size, rng, jittered_per_face, random_per_scene):
    """Appends the IoU-labelled proposals of one square image (and its faces) to ``out`` / ``faces``.

    Args:
        labels: per face ``box`` ``[F, 4]`` and ``points`` ``[F, 21, 2]`` (pixels),
            ``visible`` ``[F, 21]``, ``pose`` ``[F, 3]``, ``gender`` / ``smile`` /
            ``age`` ``[F]`` (-1: unknown), optional ``has_points`` / ``has_pose``
            ``[F]`` (default: all present).
    """
    boxes, pts, vis, pose = labels["box"], labels["points"], labels["visible"], labels["pose"]
    has_pts = np.asarray(labels.get("has_points", np.ones(len(boxes))), np.float32)
    has_pose = np.asarray(labels.get("has_pose", np.ones(len(boxes))), np.float32)
    first = len(faces["face_box"])
    for f in range(len(boxes)):
        faces["face_box"].append(boxes[f])
        faces["face_points"].append(pts[f])
        faces["face_visible"].append(vis[f])
        faces["face_pose"].append(pose[f])
        faces["face_scene"].append(index)
        faces["face_gender"].append(int(labels["gender"][f]))
        faces["face_smile"].append(int(labels["smile"][f]))
        faces["face_age"].append(float(labels["age"][f]))
    props = np.stack([P.rounded(b) for b in P.sample_proposals(boxes, image_size, rng, jittered_per_face,
                                                               random_per_scene)])
    lab_p = P.label_proposals(props, boxes)
    for j, box in enumerate(props):
        m = int(lab_p["match"][j])
        reg = float(lab_p["regress"][j])
        out["image"].append(P.crop_box(rgb, box, input_size))
        out["iou"].append(lab_p["iou"][j])
        out["scene"].append(index)
        out["face"].append(first + m if reg else -1)
        out["proposal"].append(box)
        out[DETECTION].append(lab_p["detection"][j])
        out[HAS_DETECTION].append(lab_p["has_detection"][j])
        out[B.LANDMARKS].append(P.to_box_frame(pts[m], box) if reg else np.zeros((21, 2), np.float32))
        out[B.LANDMARKS_VISIBLE].append(vis[m] if reg else np.zeros(21, np.float32))
        out[B.HAS_LANDMARKS].append(reg * has_pts[m])
        out[B.POSE].append(pose[m] if reg else np.zeros(3, np.float32))
        out[B.HAS_POSE].append(reg * has_pose[m])


def _proposal_arrays(out, faces) -> Dict[str, np.ndarray]:
    arrays = {k: np.asarray(v) for k, v in out.items()}
    arrays["image"] = arrays["image"].astype(np.uint8)
    for k in (B.LANDMARKS, B.LANDMARKS_VISIBLE, B.HAS_LANDMARKS, B.POSE, B.HAS_POSE, HAS_DETECTION, "iou"):
        arrays[k] = arrays[k].astype(np.float32)
    arrays[DETECTION] = arrays[DETECTION].astype(np.int32)
    arrays.update({k: np.asarray(v) for k, v in faces.items()})
    return arrays


def render_scene_proposals(seed: int, count: int, image_size: int, input_size: int, max_faces: int = 3,
                           jittered_per_face: int = 6, random_per_scene: int = 6, domain: str = "studio",
                           keep_scenes: bool = False) -> Dict[str, np.ndarray]:
    """Proposals of ``count`` rendered scenes with IoU labels and regression targets.

    Returns:
        ``image`` uint8 ``[P, S, S, 3]``; ``detection`` / ``has_detection`` /
        ``landmarks`` ``[P, 21, 2]`` (crop frame) / ``landmarks_visible`` /
        ``has_landmarks`` / ``pose`` ``[P, 3]`` / ``has_pose`` (batch keys), plus
        ``iou``, ``scene`` (scene index), ``face`` (face id, -1 for none),
        ``proposal`` ``[P, 4]`` pixels; and per face ``face_box`` ``[F, 4]``,
        ``face_points`` ``[F, 21, 2]``, ``face_visible``, ``face_pose`` (pixels,
        degrees), ``face_scene``, ``face_gender``, ``face_smile``, ``face_age``.
        With ``keep_scenes`` also ``scenes`` uint8 ``[count, H, W, 3]``.
    """
    from keras_facemt.data.synthetic import SynthFace

    synth = SynthFace(seed=seed, domain=domain, image_size=image_size)
    rng = np.random.default_rng((seed, 17))
    out, faces = _empty_proposals()
    scenes = []
    for i in range(count):
        rgb, lab = synth.render_scene(i, max_faces=max_faces)
        _add_proposals(out, faces, rgb, _synth_faces(lab, image_size), i, image_size, input_size, rng,
                       jittered_per_face, random_per_scene)
        if keep_scenes:
            scenes.append(rgb)
    arrays = _proposal_arrays(out, faces)
    if keep_scenes:
        arrays["scenes"] = np.stack(scenes).astype(np.uint8)
    return arrays


def render_yaw_faces(seed: int, per_bin: Sequence[int], bins: Sequence[Sequence[float]], image_size: int,
                     input_size: int, jittered_per_face: int = 6, max_yaw: float = 75.0) -> Dict[str, np.ndarray]:
    """Single-face images posed into |yaw| bins, cut into proposals like the test scenes.

    Tops up the Table II bins (AFLW's protocol takes a third of its 450 test faces
    from each of [0, 30), [30, 60), [60, 90]): ``per_bin[b]`` faces with |yaw|
    uniform in bin ``b`` (random sign; capped at ``max_yaw``, SynthFace's largest
    sampled yaw, so no face is posed beyond anything the training scenes show),
    pitch and roll as SynthFace samples them. Jittered proposals only (no random
    background boxes: detection is scored on the scenes).

    Returns:
        the arrays of ``render_scene_proposals`` (``face_scene`` is the image index).
    """
    from keras_facemt.data.synthetic import SynthFace

    synth = SynthFace(seed=seed, image_size=image_size)
    rng = np.random.default_rng((seed, 29))
    out, faces = _empty_proposals()
    index = 0
    for (lo, hi), count in zip(bins, per_bin):
        hi = min(float(hi), max_yaw)
        for _ in range(int(count)):
            yaw = float(rng.uniform(lo, max(hi, lo))) * rng.choice((-1.0, 1.0))
            pose = (yaw, float(np.clip(rng.normal(0.0, 10.0), -35.0, 35.0)),
                    float(np.clip(rng.normal(0.0, 8.0), -30.0, 30.0)))
            rgb, lab = synth.render_crop(index, pose=pose)
            _add_proposals(out, faces, rgb, _synth_faces(lab, image_size), index, image_size, input_size, rng,
                           jittered_per_face, 0)
            index += 1
    if not index:
        return {}
    return _proposal_arrays(out, faces)


def face_proposal(box: np.ndarray, rng: np.random.Generator, jitter: float = 0.1) -> np.ndarray:
    """A jittered copy of ``box`` (pixels) with IoU > 0.5 (a face proposal of the detection stage)."""
    for _ in range(20):
        cand = P.rounded(P.jitter_boxes(box[None], 1, rng, jitter, jitter)[0])
        if P.box_iou(cand[None], box[None])[0, 0] > P.FACE_IOU:
            return cand
    return P.rounded(box)


def align_crops(images: np.ndarray, points: np.ndarray, size: int, chunk: int = 256) -> np.ndarray:
    """Faces warped onto ``ops.align``'s 5-point template (Sec. III-D's similarity alignment).

    Args:
        images: uint8 ``[N, H, W, 3]``.
        points: ``[N, 5, 2]`` normalised (x, y) in the ``mtfl5`` order.
        size: side of the square aligned crop.

    Returns:
        uint8 ``[N, size, size, 3]``.
    """
    import tensorflow as tf

    from keras_facemt.ops.align import align_faces

    out = []
    for s in range(0, len(images), chunk):
        crops = align_faces(tf.constant(images[s:s + chunk], tf.float32),
                            np.asarray(points[s:s + chunk], np.float32)[:, None], size).numpy()[:, 0]
        out.append(np.clip(np.round(crops), 0, 255).astype(np.uint8))
    return np.concatenate(out, 0) if out else np.zeros((0, size, size, 3), np.uint8)


def render_face_crops(seed: int, identities: Sequence[int], identity_seed: int, num_identities: int,
                      image_size: int, input_size: int, proposals_per_face: int = 1, jitter: float = 0.1,
                      smile_every: int = 0, domain: str = "studio", aligned: bool = False,
                      point_noise: float = 0.03) -> Dict[str, np.ndarray]:
    """Face crops of rendered faces, ``proposals_per_face`` per face (consecutive).

    Args:
        identities: identity id of each face (of the population ``identity_seed``).
        jitter: face-proposal jitter (unaligned crops).
        smile_every: render every ``smile_every``-th face ``happy`` (0: never forced).
        aligned: warp each face onto the 5-point template by its points (with
            Gaussian noise of ``point_noise`` of the face-box size per coordinate,
            standing in for stage 1's predicted points) instead of cutting a
            jittered face box.

    Returns:
        ``image`` uint8 ``[N * k, S, S, 3]`` and per crop ``identity``, ``gender``,
        ``smile`` (int), ``age`` (float), ``face`` (index of the face).
    """
    from keras_facemt.data.synthetic import SynthFace

    synth = SynthFace(seed=seed, domain=domain, image_size=image_size, num_identities=max(num_identities, 1),
                      identity_seed=identity_seed)
    rng = np.random.default_rng((seed, 23))
    out = {k: [] for k in ("image", "identity", "gender", "smile", "age", "face")}
    renders, points = [], []
    for i, ident in enumerate(identities):
        emotion = "happy" if smile_every and i % smile_every == 0 else None
        rgb, lab = synth.render_crop(i, identity=int(ident), emotion=emotion)
        box = np.asarray(lab["bbox"]) * image_size
        five, _ = convert_points(lab["landmarks"], lab["landmarks_visible"], "ibug68", "mtfl5")
        size = float(np.sqrt(np.prod(np.asarray(lab["bbox"])[2:] - np.asarray(lab["bbox"])[:2])))
        for _ in range(proposals_per_face):
            if aligned:
                renders.append(rgb)
                points.append(five + rng.normal(0.0, point_noise * size, five.shape))
                out["image"].append(None)
            else:
                out["image"].append(P.crop_box(rgb, face_proposal(box, rng, jitter), input_size))
            out["identity"].append(int(ident))
            out["gender"].append(int(lab["gender"]))
            out["smile"].append(int(lab["smile"]))
            out["age"].append(float(lab["age"]))
            out["face"].append(i)
    if aligned:
        out["image"] = list(align_crops(np.stack(renders), np.stack(points), input_size))
    arrays = {k: np.asarray(v) for k, v in out.items()}
    arrays["image"] = arrays["image"].astype(np.uint8).reshape((-1, input_size, input_size, 3))
    arrays["age"] = arrays["age"].astype(np.float32)
    return arrays


def stream_batches(name: str, arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The batch keys (``data/batch.py``) of stream ``name``: its labels with presence 1."""
    n = len(arrays["image"])
    one = np.ones(n, np.float32)
    if name == "aflw":
        keys = (DETECTION, HAS_DETECTION, B.LANDMARKS, B.LANDMARKS_VISIBLE, B.HAS_LANDMARKS, B.POSE, B.HAS_POSE)
        return {"image": arrays["image"], **{k: arrays[k] for k in keys}}
    out = {"image": arrays["image"]}
    for task in STREAM_TASKS[name]:
        # Converted streams say per face which labels exist; an absent label becomes a valid
        # class id (0) under a zero presence flag, never a negative id the cross-entropy rejects.
        has = np.asarray(arrays.get(f"has_{task}", one), np.float32)
        if task == "age":
            out[B.attr("age")] = np.where(has > 0, arrays["age"], 0.0).astype(np.float32)
            out[B.has_attr("age")] = has
            continue
        value = np.where(has > 0, arrays[task], 0).astype(np.int32)
        if task == "identity":
            out[B.IDENTITY], out[B.HAS_IDENTITY] = value, has
        else:
            out[B.attr(task)], out[B.has_attr(task)] = value, has
    return out


def dataset_fn(arrays: Dict[str, np.ndarray], batch_size: int, seed: int) -> Callable:
    """A trainer stream: ``input_context -> tf.data.Dataset`` of shuffled, repeated batches
    (images as float32 in [0, 1])."""
    def fn(input_context=None):
        import tensorflow as tf

        per_replica = input_context.get_per_replica_batch_size(batch_size) if input_context else batch_size
        ds = tf.data.Dataset.from_tensor_slices(arrays)
        if input_context is not None and input_context.num_input_pipelines > 1:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        ds = ds.shuffle(len(arrays["image"]), seed=seed, reshuffle_each_iteration=True).repeat()
        ds = ds.batch(per_replica, drop_remainder=True)

        def to_float(batch):
            batch = dict(batch)
            batch["image"] = tf.cast(batch["image"], tf.float32) / 255.0
            return batch

        return ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(2)

    return fn


def _cached(path: str, render: Callable[[], Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    if os.path.exists(path):
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    arrays = render()
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return arrays


def identity_schedule(num_identities: int, per_identity: int, seed: int) -> np.ndarray:
    """``[num_identities * per_identity]`` identity ids in a seeded order."""
    return np.random.default_rng((seed, 7)).permutation(np.repeat(np.arange(num_identities), per_identity))


def prepare(exp, input_size: int, data_dir: str, log: Callable = print,
            real: Dict[str, Dict[str, np.ndarray]] = None) -> Dict[str, Dict[str, np.ndarray]]:
    """Renders (or reuses) every training stream and test set of ``exp``.

    ``real`` holds the streams read from converted datasets (``real_data.py``); those
    are not rendered.

    Returns:
        ``{"train": {stream: arrays}, "test_scenes": arrays, "test_faces": arrays,
        "verification": arrays}``.
    """
    spec = {k: v for k, v in sorted(vars(exp).items()) if k not in ("name", "steps_euclidean", "steps_gaussian",
                                                                      "learning_rate", "loss_weights", "batch_sizes",
                                                                      "scene_eval_scenes", "tasks", "age_loss",
                                                                      "init_from", "yaw_bin_faces")}
    text = json.dumps({**spec, "input": input_size, "format": 2}, sort_keys=True, default=str)
    key = hashlib.sha1(text.encode()).hexdigest()[:12]
    root = os.path.join(data_dir, f"allinone-{key}")
    os.makedirs(root, exist_ok=True)
    s, r = exp.seed, exp.render_size

    def crops(seed, n_ids, per, id_seed, smile_every=0, k=1, jitter=0.1):
        return render_face_crops(seed, identity_schedule(n_ids, per, seed), id_seed, n_ids, r, input_size, k,
                                 jitter, smile_every, aligned=exp.aligned_crops,
                                 point_noise=exp.point_noise if jitter else 0.0)

    real = dict(real or {})
    render = {
        "aflw": lambda: _cached(os.path.join(root, "aflw.npz"), lambda: render_scene_proposals(
            s * 100 + 1, exp.train_scenes, exp.scene_size, input_size, exp.max_faces, exp.jittered_per_face,
            exp.random_per_scene)),
        "celeba": lambda: _cached(os.path.join(root, "celeba.npz"), lambda: crops(
            s * 100 + 2, exp.attribute_identities, exp.faces_per_identity, exp.identity_seed + 1, smile_every=2)),
        "imdb_wiki": lambda: _cached(os.path.join(root, "imdb_wiki.npz"), lambda: crops(
            s * 100 + 3, exp.attribute_identities, exp.faces_per_identity, exp.identity_seed + 2)),
        "morph": lambda: _cached(os.path.join(root, "morph.npz"), lambda: crops(
            s * 100 + 4, exp.attribute_identities, exp.faces_per_identity, exp.identity_seed + 3)),
        "casia": lambda: _cached(os.path.join(root, "casia.npz"), lambda: crops(
            s * 100 + 5, exp.train_identities, exp.images_per_identity, exp.identity_seed)),
    }
    train = {name: real[name] if name in real else render[name]() for name in STREAMS}
    test_scenes = _cached(os.path.join(root, "test_scenes.npz"), lambda: render_scene_proposals(
        s * 100 + 6, exp.test_scenes, exp.scene_size, input_size, exp.max_faces, exp.jittered_per_face,
        exp.random_per_scene, keep_scenes=True))
    yaw_faces = {}
    if exp.yaw_bin_faces:
        yaw = np.abs(test_scenes["face_pose"][:, 0])
        have = [int(np.sum((yaw >= lo) & ((yaw <= hi) if b == len(YAW_BINS) - 1 else (yaw < hi))))
                for b, (lo, hi) in enumerate(YAW_BINS)]
        need = [max(0, exp.yaw_bin_faces - h) for h in have]
        if sum(need):
            yaw_faces = _cached(os.path.join(root, f"test_yaw_faces_{exp.yaw_bin_faces}.npz"), lambda: render_yaw_faces(
                s * 100 + 9, need, YAW_BINS, exp.render_size, input_size, exp.jittered_per_face))
    test_faces = _cached(os.path.join(root, "test_faces.npz"), lambda: crops(
        s * 100 + 7, exp.test_identities, 2, exp.test_identity_seed + 1, smile_every=2, k=exp.eval_proposals))
    verification = _cached(os.path.join(root, "verification.npz"), lambda: crops(
        s * 100 + 8, exp.test_identities, exp.test_images_per_identity, exp.test_identity_seed, jitter=0.0))
    log(f"data ready under {root}: " + ", ".join(f"{k} {len(v['image'])}" for k, v in train.items()))
    return {"train": train, "test_scenes": test_scenes, "test_faces": test_faces, "verification": verification,
            "test_yaw_faces": yaw_faces}
