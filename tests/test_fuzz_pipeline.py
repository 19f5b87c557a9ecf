"""Seeded fuzz of the input pipeline over real SynthFace records.

Every mutation kind is built to have one known outcome: a damaging kind must be
reported (with the mutated record's source_id, file and index) and never reach a
batch; a benign kind must pass with its labels unchanged. The test asserts that no
exception escapes, that every batch holds only finite, in-range labels, and that
the number of reported records equals the number of damaged ones.
"""

import json
import os
import shutil
import struct

import cv2
import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.configs.data import DataConfig
from keras_facemt.data import batch as B
from keras_facemt.data import schema
from keras_facemt.data.error_log import ErrorLog
from keras_facemt.data.pipeline import build_dataset
from keras_facemt.data.synthetic import write_synthetic

SEED = 20261130
MUTATIONS = 1050
BASE_RECORDS = 24
SIZE = 64
TASKS = ("landmarks", "parsing", "pose", "identity", "age", "age_class", "gender", "ethnicity", "smile", "emotion")
CLASS_ATTRIBUTES = ("emotion", "gender", "ethnicity", "smile", "age_class")


def _feature(ex, key):
    return ex.features.feature[key]


def _image(ex):
    return _feature(ex, schema.IMAGE_ENCODED).bytes_list.value[0]


def _set_image(ex, data):
    _feature(ex, schema.IMAGE_ENCODED).bytes_list.value[0] = data


def _set_float(ex, key, rng, values):
    floats = _feature(ex, key).float_list.value
    floats[int(rng.integers(len(floats)))] = float(rng.choice(values))


def _visible_point_out_of_range(ex, rng):
    """A *visible* landmark moved outside the image (an invisible point's position is
    not a label, so moving one damages nothing)."""
    floats = _feature(ex, schema.FACE_LANDMARKS).float_list.value
    visible = [k for k, v in enumerate(_feature(ex, schema.FACE_LANDMARKS_VISIBLE).float_list.value) if v > 0]
    k = int(rng.choice(visible))
    floats[2 * k + int(rng.integers(2))] = float(rng.choice([-0.5, 1.5, 7.0]))


def _huffman(ex, rng):
    # Keeps every marker but makes the first Huffman table's code counts exceed 256
    # symbols: libjpeg stops with "Bogus Huffman table definition".
    data = bytearray(_image(ex))
    at = data.find(b"\xff\xc4")
    data[at + 5 : at + 21] = b"\xff" * 16
    _set_image(ex, bytes(data))


def _huge_header(ex, rng):
    data = bytearray(_image(ex))
    at = data.find(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", 60000, 60000)
    _set_image(ex, bytes(data))
    _feature(ex, schema.IMAGE_HEIGHT).int64_list.value[0] = 60000
    _feature(ex, schema.IMAGE_WIDTH).int64_list.value[0] = 60000


def _parsing_map(ex):
    raw = _feature(ex, schema.PARSING_ENCODED).bytes_list.value[0]
    return cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)


def _parsing_class(ex, rng):
    labels = _parsing_map(ex)
    labels[int(rng.integers(labels.shape[0])), int(rng.integers(labels.shape[1]))] = int(rng.integers(11, 256))
    _feature(ex, schema.PARSING_ENCODED).bytes_list.value[0] = cv2.imencode(".png", labels)[1].tobytes()


def _parsing_corrupt(ex, rng):
    # Damaged compressed data: the chunk CRC no longer matches (IEND intact).
    raw = bytearray(_feature(ex, schema.PARSING_ENCODED).bytes_list.value[0])
    at = raw.find(b"IDAT") + 8
    raw[at : at + 4] = bytes(b ^ 0xA5 for b in raw[at : at + 4])
    _feature(ex, schema.PARSING_ENCODED).bytes_list.value[0] = bytes(raw)


def _class_out_of_range(ex, rng):
    name = str(rng.choice(CLASS_ATTRIBUTES))
    n = schema.attribute_spec(name).num_classes
    _feature(ex, schema.ATTR_PREFIX + name).int64_list.value[0] = int(rng.choice([-3, n, n + 92]))


def _identity_out_of_range(ex, rng):
    _feature(ex, schema.FACE_IDENTITY).int64_list.value[0] = int(rng.choice([-1, 1000, 10**6]))


def _presence_flag(ex, rng):
    name = str(rng.choice(CLASS_ATTRIBUTES))
    _feature(ex, schema.HAS_ATTR_PREFIX + name).int64_list.value[0] = int(rng.choice([-1, 2, 7]))


def _drop_label(ex, rng):
    del ex.features.feature[schema.ATTR_PREFIX + "smile"]
    del ex.features.feature[schema.HAS_ATTR_PREFIX + "smile"]


def _unknown_feature(ex, rng):
    ex.features.feature["face/not_in_schema"].float_list.value.extend(rng.normal(size=3).tolist())


# kind -> (mutation of the Example proto, or of the serialised bytes; damaging?)
EXAMPLE_KINDS = {
    "image_truncated": (lambda ex, rng: _set_image(ex, _image(ex)[: len(_image(ex)) // 2]), True),
    "image_random_bytes": (lambda ex, rng: _set_image(ex, rng.bytes(len(_image(ex)))), True),
    "image_empty": (lambda ex, rng: _set_image(ex, b""), True),
    "image_missing_key": (lambda ex, rng: ex.features.feature.pop(schema.IMAGE_ENCODED), True),
    "image_corrupt_inside_markers": (_huffman, True),
    "image_size_lies": (lambda ex, rng: _feature(ex, schema.IMAGE_HEIGHT).int64_list.value.__setitem__(0, SIZE + 3), True),
    "image_huge_declared_size": (_huge_header, True),
    "landmarks_wrong_length": (lambda ex, rng: _feature(ex, schema.FACE_LANDMARKS).float_list.value.append(0.5), True),
    "landmarks_non_finite": (lambda ex, rng: _set_float(ex, schema.FACE_LANDMARKS, rng, [np.nan, np.inf, -np.inf]), True),
    "landmarks_out_of_range": (_visible_point_out_of_range, True),
    "bbox_out_of_range": (lambda ex, rng: _set_float(ex, schema.FACE_BBOX, rng, [-1.0, 2.0]), True),
    "bbox_non_finite": (lambda ex, rng: _set_float(ex, schema.FACE_BBOX, rng, [np.nan, np.inf]), True),
    "bbox_wrong_length": (lambda ex, rng: _feature(ex, schema.FACE_BBOX).float_list.value.pop(), True),
    "pose_non_finite": (lambda ex, rng: _set_float(ex, schema.FACE_POSE, rng, [np.nan, np.inf]), True),
    "age_out_of_range": (lambda ex, rng: _set_float(ex, schema.ATTR_PREFIX + "age", rng, [-5.0, 500.0, np.nan]), True),
    "class_id_out_of_range": (_class_out_of_range, True),
    "identity_out_of_range": (_identity_out_of_range, True),
    "presence_flag_not_binary": (_presence_flag, True),
    "parsing_class_id_out_of_range": (_parsing_class, True),
    "parsing_png_corrupt": (_parsing_corrupt, True),
    "landmark_scheme_of_another_stream": (
        lambda ex, rng: _feature(ex, schema.LANDMARK_SCHEME).bytes_list.value.__setitem__(0, b"aflw21"), True),
    "unknown_extra_feature": (_unknown_feature, False),
    "optional_label_absent": (_drop_label, False),
}
BYTES_KINDS = {
    "serialized_truncated": lambda raw, rng: raw[: len(raw) * 2 // 3],
    "serialized_random_bytes": lambda raw, rng: rng.bytes(int(rng.integers(1, 400))),
}
KINDS = list(EXAMPLE_KINDS) + list(BYTES_KINDS)


@pytest.fixture(scope="module")
def fuzz_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    base = str(root / "base")
    write_synthetic(base, count=BASE_RECORDS, shards=1, image_size=SIZE, tasks=TASKS, splits=(("train", 1.0),))
    originals = [r.numpy() for r in tf.data.TFRecordDataset(os.path.join(base, "train-00000-of-00001.tfrecord"))]
    rng = np.random.default_rng(SEED)
    fuzz, benign = str(root / "fuzz"), str(root / "benign")
    shards = {fuzz: [], benign: []}
    benign_originals, expected = [], {}
    for j in range(MUTATIONS):
        kind = KINDS[j % len(KINDS)]
        ex = tf.train.Example.FromString(originals[j % BASE_RECORDS])
        source_id = f"fuzz-{j:04d}-{kind}"
        _feature(ex, schema.IMAGE_SOURCE_ID).bytes_list.value[0] = source_id.encode()
        if kind in BYTES_KINDS:
            raw, damaging = BYTES_KINDS[kind](ex.SerializeToString(), rng), True
        else:
            mutate, damaging = EXAMPLE_KINDS[kind]
            clean = ex.SerializeToString()
            mutate(ex, rng)
            raw = ex.SerializeToString()
        if damaging:
            # Four shard files; the record's place in its file is its index.
            path = os.path.join(fuzz, f"train-{j % 4:05d}-of-00004.tfrecord")
            expected[(path, sum(1 for k in expected if k[0] == path))] = (source_id, kind)
            shards.setdefault(path, []).append(raw)
        else:
            shards[benign].append(raw)
            benign_originals.append(clean)
    manifest = json.load(open(os.path.join(base, "dataset.json")))
    manifest.pop("shard_records", None)
    for d, records in ((fuzz, None), (benign, shards[benign]), (str(root / "benign_originals"), benign_originals)):
        os.makedirs(d)
        shutil.copy(os.path.join(base, "dataset.json"), d)
        if records is not None:
            with tf.io.TFRecordWriter(os.path.join(d, "train-00000-of-00001.tfrecord")) as w:
                for r in records:
                    w.write(r)
    for path, records in shards.items():
        if path.endswith(".tfrecord"):
            with tf.io.TFRecordWriter(path) as w:
                for r in records:
                    w.write(r)
            # Healthy records share the files, so reports must single out the bad ones.
            with tf.io.TFRecordWriter(path + ".tmp") as w:
                for r in records + originals:
                    w.write(r)
            os.replace(path + ".tmp", path)
    return {"fuzz": fuzz, "benign": benign, "benign_originals": str(root / "benign_originals"),
            "expected": expected, "num_benign": len(benign_originals), "base": originals}


def _cfg(data_dir):
    return DataConfig(name="fuzz", data_dir=data_dir, split="train", tasks=TASKS, image_size=(SIZE, SIZE),
                      global_batch_size=16, shuffle_buffer=0, repeat=False)


def _check_batch(b):
    """Every label in a batch is finite and within its declared range."""
    for key, value in b.items():
        if value.dtype.kind == "f":
            assert np.all(np.isfinite(value)), key
        if key.startswith("has_") or key in (B.LANDMARKS_VISIBLE,):
            assert set(np.unique(value)) <= {0.0, 1.0}, key
    assert 0.0 <= b[B.IMAGE].min() and b[B.IMAGE].max() <= 1.0
    tol = schema.GEOMETRY_TOLERANCE
    assert np.all((b[B.BBOX] >= -tol) & (b[B.BBOX] <= 1 + tol))
    shown = (b[B.LANDMARKS_VISIBLE] > 0)[..., None] & (b[B.HAS_LANDMARKS] > 0)[:, None, None]
    pts = b[B.LANDMARKS][np.broadcast_to(shown, b[B.LANDMARKS].shape)]
    assert np.all((pts >= -tol) & (pts <= 1 + tol))
    assert b[B.PARSING].min() >= 0 and b[B.PARSING].max() < schema.NUM_PARSING_CLASSES
    present = b[B.HAS_IDENTITY] > 0
    assert np.all((b[B.IDENTITY][present] >= 0) & (b[B.IDENTITY][present] < 1000))
    for name in TASKS:
        if name in schema.ATTRIBUTES:
            lo, hi = schema.attribute_spec(name).value_range
            values = b[B.attr(name)][b[B.has_attr(name)] > 0]
            assert np.all((values >= lo) & (values <= hi)), name


def test_fuzzed_records_are_reported_and_never_reach_a_batch(fuzz_data, capsys):
    log = ErrorLog()
    escaped, batches = [], []
    try:
        for batch in build_dataset(_cfg(fuzz_data["fuzz"]), error_log=log):
            batches.append({k: v.numpy() for k, v in batch.items()})
    except Exception as e:  # the assertion below names it
        escaped.append(repr(e)[:500])
    for b in batches:
        _check_batch(b)
    kept = sum(len(b[B.IMAGE]) for b in batches)
    expected = fuzz_data["expected"]
    reported = {(i.file, i.index): i for i in log.skipped()}
    damaged = len(expected)
    with capsys.disabled():
        print(f"\nfuzz: mutations={MUTATIONS} kinds={len(KINDS)} damaged={damaged} "
              f"benign={fuzz_data['num_benign']} reported={len(reported)} escaped={len(escaped)}")
    assert escaped == []
    assert kept == 4 * BASE_RECORDS  # each file's healthy copies, nothing else
    assert len(reported) == damaged
    assert set(reported) == set(expected)
    for where, (source_id, kind) in expected.items():
        issue = reported[where]
        if kind in BYTES_KINDS:
            # The bytes holding the id may be gone; what survives is salvaged.
            assert issue.source_id in (source_id, ""), (kind, issue)
        else:
            assert issue.source_id == source_id, (kind, issue)
    assert log.lost() == [] and log.truncated() == []


def test_benign_mutations_pass_with_their_labels_unchanged(fuzz_data):
    log = ErrorLog()
    mutated = [{k: v.numpy() for k, v in b.items()} for b in build_dataset(_cfg(fuzz_data["benign"]), error_log=log)]
    clean = [{k: v.numpy() for k, v in b.items()} for b in build_dataset(_cfg(fuzz_data["benign_originals"]))]
    assert log.issues == []
    assert sum(len(b[B.IMAGE]) for b in mutated) == fuzz_data["num_benign"]
    for m, c in zip(mutated, clean):
        _check_batch(m)
        for key in c:
            if key in (B.attr("smile"), B.has_attr("smile")):
                continue  # the absent-label kind drops exactly this label
            np.testing.assert_array_equal(m[key], c[key], err_msg=key)
