"""MTFR's data: aligned SynthFace crops of several disjoint populations.

Every face is rendered by SynthFace with its 68 points, reduced to the 5 points of
``mtfl5`` and warped onto the non-square template of ``ops.align`` (112x96 scaled
to the preset's input), as the paper aligns CASIA-WebFace and LFW with the code of
[44] (Sec. 4.4). The training population goes to TFRecord shards (identity + the 7
``celeba/<name>`` labels) for the shared input pipeline; the held-out populations
(threshold selection, evaluation, distractors) are small enough to keep as arrays.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, Sequence, Tuple

import numpy as np
import tensorflow as tf

from keras_facemt.data.landmarks import convert_points
from keras_facemt.models.mtfr.config import ATTRIBUTES
from keras_facemt.ops.align import align_faces

ATTRIBUTE_TASKS: Tuple[str, ...] = tuple(f"celeba/{a}" for a in ATTRIBUTES)


def render_aligned(identities: Sequence[int], identity_seed: int, seed: int, render_size: int,
                   crop_size: Tuple[int, int], num_identities: int, attribute_noise: float = 0.0,
                   chunk: int = 256) -> Dict[str, np.ndarray]:
    """Renders one image per entry of ``identities`` and aligns it.

    Returns:
        ``images`` uint8 ``[N, H, W, 3]``, ``identity`` int64 ``[N]``, ``attributes``
        int64 ``[N, 7]`` (Table 1 order; noisy at ``attribute_noise``).
    """
    from keras_facemt.data.synthetic import SynthFace

    synth = SynthFace(seed=seed, image_size=render_size, num_identities=num_identities,
                      identity_seed=identity_seed, attribute_noise=attribute_noise)
    images, attrs, lms = [], [], []
    out = []
    for i, ident in enumerate(identities):
        rgb, lab = synth.render_crop(i, identity=int(ident))
        lm, _ = convert_points(lab["landmarks"], lab["landmarks_visible"], "ibug68", "mtfl5")
        images.append(rgb)
        lms.append(lm)
        attrs.append([lab[t] for t in ATTRIBUTE_TASKS])
        if len(images) == chunk or i == len(identities) - 1:
            crops = align_faces(tf.constant(np.stack(images), tf.float32), np.asarray(lms, np.float32)[:, None],
                                crop_size).numpy()[:, 0]
            out.append(np.clip(np.round(crops), 0, 255).astype(np.uint8))
            images, lms = [], []
    return {"images": np.concatenate(out, 0) if out else np.zeros((0,) + tuple(crop_size) + (3,), np.uint8),
            "identity": np.asarray(identities, np.int64), "attributes": np.asarray(attrs, np.int64).reshape(-1, 7)}


def write_training_shards(faces: Dict[str, np.ndarray], out_dir: str, dataset_name: str = "synth_mtfr",
                          shards: int = 4, extra=None) -> str:
    """Writes aligned training crops with identity and attribute labels (atomically)."""
    from keras_facemt.data.codec import FaceRecord, encode_image
    from keras_facemt.data.shards import ShardWriter

    with ShardWriter(out_dir, num_shards=shards, overwrite=True, extra=extra or {}) as writer:
        for i, (img, ident, attrs) in enumerate(zip(faces["images"], faces["identity"], faces["attributes"])):
            rec = FaceRecord(image=encode_image(img, "jpeg", quality=95), height=img.shape[0], width=img.shape[1],
                             source_id=f"{dataset_name}/{i:07d}", dataset=dataset_name, image_format="jpeg",
                             split="train", bboxes=np.array([[0.0, 0.0, 1.0, 1.0]], np.float32), has_boxes=1,
                             identity=np.array([ident], np.int64), has_identity=np.ones(1, np.int64))
            for t, v in zip(ATTRIBUTE_TASKS, attrs):
                rec.attributes[t] = np.array([v], np.int64)
                rec.has_attributes[t] = np.ones(1, np.int64)
            writer.write(rec.validate())
    return out_dir


def identity_schedule(num_identities: int, per_identity: int, seed: int) -> np.ndarray:
    """``[num_identities * per_identity]`` identity ids in a seeded order."""
    ids = np.repeat(np.arange(num_identities), per_identity)
    return np.random.default_rng((seed, 7)).permutation(ids)


def prepare(exp, crop_size: Tuple[int, int], data_dir: str, log: Callable = print) -> Dict[str, object]:
    """Renders (or reuses) every population of ``exp`` under ``data_dir``.

    Returns:
        ``{"train_dir": shards dir, "val": faces, "test": faces, "distractors": faces}``.
    """
    from keras_facemt.data.shards import read_manifest

    os.makedirs(data_dir, exist_ok=True)
    key = (f"{exp.render_size}-{crop_size[0]}x{crop_size[1]}-{exp.seed}-n{exp.attribute_noise}")
    train_raw = os.path.join(data_dir, f"train_{exp.identity_seed}_{exp.train_identities}x{exp.images_per_identity}-{key}")
    try:
        read_manifest(train_raw)
    except Exception:  # noqa: BLE001 - missing or partial: render again
        ids = identity_schedule(exp.train_identities, exp.images_per_identity, exp.seed)
        faces = render_aligned(ids, exp.identity_seed, exp.seed, exp.render_size, crop_size, exp.train_identities,
                               exp.attribute_noise)
        write_training_shards(faces, train_raw, extra={"generator": "mtfr", "attribute_noise": exp.attribute_noise})
        log(f"rendered {len(ids)} training crops")
    train_dir = train_raw
    if exp.vote and exp.attribute_noise > 0:
        from tfrecords_tools.vote_attributes import vote_attributes

        train_dir = train_raw + "-voted"
        try:
            read_manifest(train_dir)
        except Exception:  # noqa: BLE001
            changed = vote_attributes(train_raw, train_dir, attributes=ATTRIBUTE_TASKS, overwrite=True)
            log(f"vote changed {sum(changed.values())} labels")

    def held_out(name, seed, n_ids, per):
        path = os.path.join(data_dir, f"{name}_{seed}_{n_ids}x{per}-{key}.npz")
        if os.path.exists(path):
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        ids = identity_schedule(n_ids, per, exp.seed + 1)
        faces = render_aligned(ids, seed, exp.seed + 1, exp.render_size, crop_size, max(n_ids, 1))
        tmp = path + ".tmp.npz"
        np.savez(tmp, **faces)
        os.replace(tmp, path)
        return faces

    return {
        "train_dir": train_dir,
        "train_raw_dir": train_raw,
        "val": held_out("val", exp.val_identity_seed, exp.val_identities, exp.test_images_per_identity),
        "test": held_out("test", exp.test_identity_seed, exp.test_identities, exp.test_images_per_identity),
        # One face each of `distractors` different people.
        "distractors": held_out("distractors", exp.distractor_identity_seed, max(exp.distractors, 1), 1),
    }
