"""Input pipeline: batch layout, geometry, scheme mapping, sharding, determinism,
error policy and up-front checks, and stream mixing."""

import os

import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.configs.data import AugmentConfig, DataConfig
from keras_facemt.data import landmarks as lm
from keras_facemt.data import schema
from keras_facemt.data.codec import FaceRecord, encode_image, encode_label_map
from keras_facemt.data.error_log import ErrorLog, raise_data_errors
from keras_facemt.data.pipeline import build_dataset, check_task_presence, steps_per_epoch
from keras_facemt.data.shards import ShardWriter
from keras_facemt.errors import ConfigError, DataError

SIZE = (32, 32)


def _record(i, h=32, w=32, n=1, scheme="mtfl5", fmt="png", image=None, **kw):
    rng = np.random.default_rng(i)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8) if image is None else image
    k = lm.num_points(scheme) if scheme != "none" else 0
    fields = dict(
        image=encode_image(img, fmt),
        image_format=fmt,
        height=img.shape[0],
        width=img.shape[1],
        source_id=f"img_{i:03d}.{fmt}",
        dataset="synth",
        bboxes=np.tile([[0.2, 0.2, 0.8, 0.8]], (n, 1)).astype(np.float32),
        has_boxes=1,
        identity=np.full((n,), i),
        attributes={"emotion": np.full((n,), i % 7), "age": np.full((n,), 20.0 + i)},
    )
    if k:
        fields.update(landmark_scheme=scheme, landmarks=rng.uniform(0.1, 0.9, (n, k, 2)).astype(np.float32))
    fields.update(kw)
    return FaceRecord(**fields)


def _write(path, records, num_shards=1):
    with ShardWriter(str(path), num_shards=num_shards) as w:
        w.write_all(records)
    return str(path)


def _append_raw_shard(data_dir, name, serialized):
    with tf.io.TFRecordWriter(os.path.join(data_dir, name)) as w:
        for s in serialized:
            w.write(s)
    return os.path.join(data_dir, name)


def _cfg(data_dir, **kw):
    base = dict(name="s", data_dir=data_dir, image_size=SIZE, global_batch_size=2, shuffle_buffer=0,
                repeat=False, tasks=("landmarks", "emotion"))
    base.update(kw)
    return DataConfig(**base)


def _all(ds):
    return [{k: v.numpy() for k, v in b.items()} for b in ds]


def _ids(ds):
    return sorted(int(x) for b in ds for x in np.ravel(b["identity"].numpy()))


@pytest.fixture(scope="module")
def crops_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("crops") / "ds"
    return _write(d, [_record(i) for i in range(6)], num_shards=2)


# ------------------------------------------------------------------ layout
def test_crops_batch_keys_shapes_and_dtypes(tmp_path):
    recs = [_record(i, scheme="ibug68", parsing=encode_label_map(np.full((32, 32), 4)),
                    pose=np.array([[10.0, 5.0, -3.0]]), teacher_embedding=np.ones((1, 8))) for i in range(4)]
    d = _write(tmp_path / "ds", recs)
    tasks = ("landmarks", "parsing", "pose", "identity", "teacher_embedding", "emotion", "age")
    cfg = _cfg(d, tasks=tasks, landmark_scheme="mtfl5", embedding_dim=8, domain=3, augment=AugmentConfig())
    b = next(iter(build_dataset(cfg)))
    expected = {
        "image": ((2, 32, 32, 3), tf.float32), "domain": ((2,), tf.int32), "bbox": ((2, 4), tf.float32),
        "landmarks": ((2, 5, 2), tf.float32), "landmarks_visible": ((2, 5), tf.float32),
        "has_landmarks": ((2,), tf.float32), "parsing": ((2, 32, 32), tf.int32), "has_parsing": ((2,), tf.float32),
        "pose": ((2, 3), tf.float32), "has_pose": ((2,), tf.float32), "identity": ((2,), tf.int32),
        "has_identity": ((2,), tf.float32), "teacher_embedding": ((2, 8), tf.float32),
        "has_teacher_embedding": ((2,), tf.float32), "attr/emotion": ((2,), tf.int32),
        "has_attr/emotion": ((2,), tf.float32), "attr/age": ((2,), tf.float32), "has_attr/age": ((2,), tf.float32),
    }
    assert sorted(b) == sorted(expected)
    for key, (shape, dtype) in expected.items():
        assert tuple(b[key].shape) == shape, key
        assert b[key].dtype == dtype, key
    img = b["image"].numpy()
    assert 0.0 <= img.min() and img.max() <= 1.0
    np.testing.assert_array_equal(b["domain"].numpy(), [3, 3])
    np.testing.assert_array_equal(b["has_parsing"].numpy(), [1, 1])


def test_scenes_pads_faces_with_mask_and_reports_truncation(tmp_path):
    recs = [_record(0, h=24, w=48, n=2), _record(1, h=24, w=48, n=4), _record(2, h=24, w=48, n=0, scheme="none")]
    d = _write(tmp_path / "ds", recs)
    log = ErrorLog()
    cfg = _cfg(d, mode="scenes", max_faces=3, global_batch_size=3, tasks=("landmarks", "identity", "detection"))
    b = next(iter(build_dataset(cfg, error_log=log)))
    assert b["image"].shape == (3, 32, 32, 3)
    assert b["bbox"].shape == (3, 3, 4)
    assert b["landmarks"].shape == (3, 3, 5, 2)
    assert b["identity"].shape == (3, 3)
    np.testing.assert_array_equal(b["face_mask"].numpy(), [[1, 1, 0], [1, 1, 1], [0, 0, 0]])
    np.testing.assert_array_equal(b["has_boxes"].numpy(), [1, 1, 1])
    # Padded faces carry zero labels and zero presence.
    assert np.all(b["bbox"].numpy()[0, 2] == 0) and np.all(b["landmarks"].numpy()[0, 2] == 0)
    assert b["has_landmarks"].numpy()[0, 2] == 0
    # The 4-face record lost one face: reported with its source_id.
    truncated = log.truncated()
    assert [t.source_id for t in truncated] == ["img_001.png"]
    assert "4 faces" in truncated[0].reason and log.skipped() == []


def test_absent_labels_are_zero_with_zero_presence(tmp_path):
    rec = _record(0, scheme="none", attributes={}, identity=None)
    labelled = _record(1, parsing=encode_label_map(np.ones((32, 32))), pose=np.ones((1, 3)))
    d = _write(tmp_path / "ds", [rec, labelled])
    cfg = _cfg(d, tasks=("landmarks", "parsing", "pose", "emotion"), global_batch_size=2)
    b = next(iter(build_dataset(cfg)))
    first = {k: v.numpy()[0] for k, v in b.items()}
    for key in ("landmarks", "landmarks_visible", "has_landmarks", "parsing", "has_parsing", "pose", "has_pose",
                "attr/emotion", "has_attr/emotion"):
        assert np.all(first[key] == 0), key
    assert b["has_landmarks"].numpy()[1] == 1 and b["has_attr/emotion"].numpy()[1] == 1


# ------------------------------------------------------------------ geometry
def _dots_image(h, w, points, radius=2):
    img = np.zeros((h, w, 3), np.uint8)
    for x, y in points:
        cx, cy = int(x * w), int(y * h)
        img[max(cy - radius, 0): cy + radius + 1, max(cx - radius, 0): cx + radius + 1] = 255
    return img


def _value_at(image, point):
    h, w = image.shape[:2]
    x = int(np.clip(np.floor(point[0] * w), 0, w - 1))
    y = int(np.clip(np.floor(point[1] * h), 0, h - 1))
    return image[y, x].mean()


@pytest.mark.parametrize("mode", ["crops", "scenes"])
def test_landmark_dots_stay_on_their_pixels_through_resize_and_augmentation(tmp_path, mode):
    pts = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.35, 0.75], [0.65, 0.75]], np.float32)
    h, w = (48, 64) if mode == "crops" else (40, 96)
    px = (pts * [w, h]).astype(int) / [w, h] + 0.5 / np.array([w, h])  # pixel centres
    img = _dots_image(h, w, px, radius=3)
    rec = _record(0, h=h, w=w, image=img, landmarks=px[None].astype(np.float32))
    d = _write(tmp_path / "ds", [rec])
    aug = AugmentConfig(flip=0.5, scale_range=(0.85, 1.15), shift=0.08, brightness=0.0, contrast=0.0,
                        saturation=0.0, hue=0.0)
    cfg = _cfg(d, mode=mode, global_batch_size=1, repeat=True, augment=aug, seed=3, max_faces=2,
               image_size=(64, 64))
    for b in build_dataset(cfg).take(8):
        image = b["image"].numpy()[0]
        points = b["landmarks"].numpy()[0] if mode == "crops" else b["landmarks"].numpy()[0, 0]
        vis = b["landmarks_visible"].numpy()[0] if mode == "crops" else b["landmarks_visible"].numpy()[0, 0]
        for p, v in zip(points, vis):
            if v:
                assert _value_at(image, p) > 0.5, (p, mode)


def test_flip_in_pipeline_swaps_parsing_eyes_and_landmark_order(tmp_path):
    labels = np.zeros((32, 32), np.uint8)
    labels[8:14, 4:10] = schema.PARSING_CLASSES.index("left_eye")
    pts = np.array([[[0.2, 0.3], [0.8, 0.3], [0.5, 0.5], [0.3, 0.8], [0.7, 0.8]]], np.float32)
    d = _write(tmp_path / "ds", [_record(0, parsing=encode_label_map(labels), landmarks=pts,
                                         pose=np.array([[20.0, 5.0, 10.0]]))])
    flip = AugmentConfig(flip=1.0, scale_range=(1.0, 1.0), shift=0.0, brightness=0.0, contrast=0.0,
                         saturation=0.0, hue=0.0)
    b = next(iter(build_dataset(_cfg(d, tasks=("landmarks", "parsing", "pose"), global_batch_size=1,
                                     augment=flip))))
    parsing = b["parsing"].numpy()[0]
    right_eye = schema.PARSING_CLASSES.index("right_eye")
    assert set(np.unique(parsing)) == {0, right_eye}
    assert np.all(parsing[8:14, 22:28] == right_eye)
    out = b["landmarks"].numpy()[0]
    # Left-eye index now holds the mirrored right eye: (1 - 0.8, 0.3).
    np.testing.assert_allclose(out[0], [0.2, 0.3], atol=1e-6)
    np.testing.assert_allclose(out[3], [1 - 0.7, 0.8], atol=1e-6)
    np.testing.assert_allclose(b["pose"].numpy()[0], [-20.0, 5.0, -10.0])
    np.testing.assert_allclose(b["bbox"].numpy()[0], [0.2, 0.2, 0.8, 0.8], atol=1e-6)


def test_scheme_mapping_ibug68_to_mtfl5(tmp_path):
    rng = np.random.default_rng(7)
    pts = rng.uniform(0.1, 0.9, (1, 68, 2)).astype(np.float32)
    vis = np.ones((1, 68), np.float32)
    vis[0, 37] = 0  # one left-eye contour point hidden -> left eye centre hidden
    d = _write(tmp_path / "ds", [_record(0, scheme="ibug68", landmarks=pts, landmarks_visible=vis)])
    b = next(iter(build_dataset(_cfg(d, tasks=("landmarks",), landmark_scheme="mtfl5", global_batch_size=1))))
    out = b["landmarks"].numpy()[0]
    np.testing.assert_allclose(out[0], pts[0, 36:42].mean(0), atol=1e-6)
    np.testing.assert_allclose(out[1], pts[0, 42:48].mean(0), atol=1e-6)
    np.testing.assert_allclose(out[2], pts[0, 30], atol=1e-6)
    np.testing.assert_allclose(out[3:], pts[0, [48, 54]], atol=1e-6)
    np.testing.assert_array_equal(b["landmarks_visible"].numpy()[0], [0, 1, 1, 1, 1])


def test_gray_and_rgba_images_decode_to_rgb(tmp_path):
    gray = np.full((32, 32), 200, np.uint8)
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 10
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    assert ok
    recs = [_record(0, image=gray), _record(1, image=np.zeros((32, 32, 3), np.uint8))]
    recs[1].image = buf.tobytes()
    d = _write(tmp_path / "ds", recs)
    b = next(iter(build_dataset(_cfg(d, global_batch_size=2))))
    img = b["image"].numpy()
    np.testing.assert_allclose(img[0], 200 / 255, atol=1e-5)
    np.testing.assert_allclose(img[1][..., 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(img[1][..., 1:], 0.0, atol=1e-5)


# ------------------------------------------------------------------ order, sharding, determinism
def test_same_seed_same_stream_and_other_seed_differs(crops_dir):
    def stream(seed):
        cfg = _cfg(crops_dir, tasks=("identity",), shuffle_buffer=16, repeat=True, seed=seed,
                   augment=AugmentConfig())
        return _all(build_dataset(cfg).take(6))

    a, b, c = stream(1), stream(1), stream(2)
    for x, y in zip(a, b):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)
    assert any(not np.array_equal(x["image"], y["image"]) for x, y in zip(a, c))


@pytest.mark.parametrize("shards", [2, 1])
def test_input_context_shards_are_disjoint_and_complete(tmp_path, shards):
    d = _write(tmp_path / "ds", [_record(i) for i in range(8)], num_shards=shards)
    seen = []
    for pid in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pid, num_replicas_in_sync=2)
        ds = build_dataset(_cfg(d, tasks=("identity",), global_batch_size=4), ctx)
        first = next(iter(ds))
        assert first["image"].shape[0] == 2  # per-replica batch
        seen.append(_ids(ds))
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(8))


@pytest.mark.distributed
def test_mirrored_strategy_gets_per_replica_batches(crops_dir):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    cfg = _cfg(crops_dir, tasks=("identity",), global_batch_size=4, repeat=True)
    dist = strategy.distribute_datasets_from_function(lambda ctx: build_dataset(cfg, ctx))
    batch = next(iter(dist))
    images = strategy.experimental_local_results(batch["image"])
    assert [tuple(t.shape) for t in images] == [(2, 32, 32, 3)] * 2
    ids = np.concatenate([t.numpy() for t in strategy.experimental_local_results(batch["identity"])])
    assert len(set(ids.tolist())) == 4


def test_batch_that_does_not_split_over_replicas_is_a_config_error(crops_dir):
    ctx = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=2)
    with pytest.raises(ConfigError, match="global_batch_size"):
        build_dataset(_cfg(crops_dir, global_batch_size=3), ctx)


def test_evaluation_keeps_last_partial_batch_and_training_drops_it(crops_dir):
    sizes = [b["image"].shape[0] for b in build_dataset(_cfg(crops_dir, global_batch_size=4))]
    assert sizes == [4, 2]
    assert steps_per_epoch(_cfg(crops_dir, global_batch_size=4)) == 2
    train = build_dataset(_cfg(crops_dir, global_batch_size=4, repeat=True))
    assert train.element_spec["image"].shape[0] == 4


# ------------------------------------------------------------------ error policy
def _bad_records():
    """Not an image, a truncated JPEG, no image bytes, inconsistent lengths, damaged image / parsing data."""
    corrupt = _record(10)
    corrupt.image = b"GIF89a" + b"garbage" * 10
    corrupt.source_id = "corrupt.png"
    damaged = _record(14)
    middle = len(damaged.image) // 2
    damaged.image = damaged.image[:middle] + b"\x00" * 20 + damaged.image[middle + 20:]
    damaged.source_id = "damaged.png"
    bad_parsing = _record(15, parsing=encode_label_map(np.random.default_rng(0).integers(0, 11, (32, 32))))
    middle = len(bad_parsing.parsing) // 2
    bad_parsing.parsing = bad_parsing.parsing[:middle] + b"\x00" * 20 + bad_parsing.parsing[middle + 20:]
    bad_parsing.source_id = "bad_parsing.png"
    truncated = _record(11, fmt="jpeg")
    truncated.image = truncated.image[: len(truncated.image) // 2]
    truncated.source_id = "truncated.jpg"
    missing = tf.train.Example.FromString(_record(12).serialize())
    del missing.features.feature[schema.IMAGE_ENCODED]
    missing.features.feature[schema.IMAGE_SOURCE_ID].bytes_list.value[0] = b"no_image.png"
    inconsistent = tf.train.Example.FromString(_record(13).serialize())
    inconsistent.features.feature[schema.FACE_LANDMARKS].float_list.value.append(0.5)
    inconsistent.features.feature[schema.IMAGE_SOURCE_ID].bytes_list.value[0] = b"inconsistent.png"
    other_scheme = _record(16, scheme="ibug68", parsing=encode_label_map(np.ones((32, 32))))
    other_scheme.source_id = "other_scheme.png"
    return [corrupt.serialize(), truncated.serialize(), missing.SerializeToString(), inconsistent.SerializeToString(),
            damaged.serialize(), bad_parsing.serialize(), other_scheme.serialize()]


@pytest.fixture
def dirty_dir(tmp_path):
    labels = encode_label_map(np.ones((32, 32)))
    d = _write(tmp_path / "ds", [_record(i, parsing=labels) for i in range(4)])
    _append_raw_shard(d, "train-bad.tfrecord", _bad_records())
    return d


def test_skip_policy_drops_counts_and_reports_bad_records(dirty_dir, caplog):
    log = ErrorLog()
    cfg = _cfg(dirty_dir, tasks=("identity", "landmarks", "parsing"), global_batch_size=1)
    ds = build_dataset(cfg, error_log=log)
    assert _ids(ds) == [0, 1, 2, 3]
    issues = {i.source_id: i for i in log.skipped()}
    assert sorted(issues) == ["bad_parsing.png", "corrupt.png", "damaged.png", "inconsistent.png", "no_image.png",
                              "other_scheme.png", "truncated.jpg"]
    assert all(i.file.endswith("train-bad.tfrecord") for i in issues.values())
    assert "'image/encoded' is not a JPEG/PNG" in issues["corrupt.png"].reason
    assert "truncated" in issues["truncated.jpg"].reason
    assert "'image/encoded'" in issues["no_image.png"].reason and "missing" in issues["no_image.png"].reason
    assert "'face/landmarks'" in issues["inconsistent.png"].reason
    assert "'image/encoded' could not be decoded" in issues["damaged.png"].reason
    assert "'image/parsing/encoded' could not be decoded" in issues["bad_parsing.png"].reason
    expected = '\'image/landmark_scheme\' is "ibug68" but this stream\'s records use "mtfl5"'
    assert expected in issues["other_scheme.png"].reason
    order = ("corrupt.png", "truncated.jpg", "no_image.png", "inconsistent.png", "damaged.png", "bad_parsing.png",
             "other_scheme.png")
    assert [issues[s].index for s in order] == list(range(7))
    assert any("corrupt.png" in r.getMessage() for r in caplog.records)
    # Reading again (a second epoch) does not count a record twice.
    _ids(ds)
    assert log.counts() == {"s": {"skipped": 7}}
    assert "corrupt.png" in log.summary()


def test_fail_policy_raises_naming_file_source_id_and_field(tmp_path):
    d = _write(tmp_path / "ds", [_record(0, pose=np.zeros((1, 3)))])
    inconsistent = tf.train.Example.FromString(_record(1).serialize())
    inconsistent.features.feature[schema.FACE_HAS_POSE].int64_list.value.extend([1, 1])
    inconsistent.features.feature[schema.FACE_POSE].float_list.value.extend([1.0, 2.0, 3.0])
    inconsistent.features.feature[schema.IMAGE_SOURCE_ID].bytes_list.value[0] = b"two_poses.png"
    bad = _append_raw_shard(d, "train-bad.tfrecord", [inconsistent.SerializeToString()])
    ds = build_dataset(_cfg(d, tasks=("pose",), error_policy="fail", global_batch_size=1), error_log=ErrorLog())
    with pytest.raises(DataError) as info:
        with raise_data_errors():
            _all(ds)
    msg = str(info.value)
    assert bad in msg and "two_poses.png" in msg and "'face/has_pose' length" in msg


def test_decoded_size_contradicting_header_is_skipped(tmp_path):
    rec = _record(0)
    rec.height = 40
    d = _write(tmp_path / "ds", [rec, _record(1)])
    log = ErrorLog()
    assert _ids(build_dataset(_cfg(d, tasks=("identity",)), error_log=log)) == [1]
    assert "decodes to 32x32" in log.skipped()[0].reason


# ------------------------------------------------------------------ up-front checks
def test_missing_and_empty_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_dataset(_cfg(str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no 'train-\\*.tfrecord' shards"):
        build_dataset(_cfg(str(tmp_path / "empty")))


def test_shard_that_is_not_a_tfrecord_is_named(crops_dir, tmp_path):
    d = _write(tmp_path / "ds", [_record(0)])
    bogus = os.path.join(d, "train-zzz.tfrecord")
    with open(bogus, "wb") as f:
        f.write(b"this is a text file, not a TFRecord" * 4)
    with pytest.raises(DataError, match="train-zzz.tfrecord: not a TFRecord"):
        build_dataset(_cfg(d))


def test_directory_without_manifest_is_incomplete(tmp_path):
    d = _write(tmp_path / "ds", [_record(0)])
    os.remove(os.path.join(d, "dataset.json"))
    with pytest.raises(DataError, match="dataset.json"):
        build_dataset(_cfg(d))


def test_unknown_task_or_attribute_is_a_config_error(crops_dir):
    with pytest.raises(ConfigError, match="Unknown task 'smiles'"):
        _cfg(crops_dir, tasks=("smiles",))
    with pytest.raises(ConfigError, match="celeba/Nope"):
        check_task_presence(crops_dir, "train", ("celeba/Nope",))


@pytest.mark.parametrize("bad", [dict(flip=1.5), dict(scale_range=(1.2, 1.0)), dict(shift=-0.1), dict(hue=0.7)])
def test_invalid_augmentation_is_a_config_error(crops_dir, bad):
    name = next(iter(bad))
    with pytest.raises(ConfigError, match=f"augment.{name}"):
        build_dataset(_cfg(crops_dir, augment=AugmentConfig(**bad)))


def test_task_without_labels_fails_before_training(crops_dir):
    with pytest.raises(ConfigError, match="task 'parsing'") as info:
        build_dataset(_cfg(crops_dir, tasks=("landmarks", "parsing")))
    assert crops_dir in str(info.value)
    check_task_presence(crops_dir, "train", ("landmarks", "emotion", "identity"))


def test_mixed_landmark_schemes_in_one_stream(tmp_path):
    d = _write(tmp_path / "ds", [_record(0, scheme="mtfl5"), _record(1, scheme="ibug68")])
    with pytest.raises(DataError, match="mix landmark schemes"):
        build_dataset(_cfg(d))


def test_unmappable_landmark_scheme_is_a_config_error(tmp_path):
    d = _write(tmp_path / "ds", [_record(0, scheme="mtfl5"), _record(1, scheme="none")])
    with pytest.raises(ConfigError, match="No landmark subset map from 'mtfl5' to 'ibug68'"):
        build_dataset(_cfg(d, landmark_scheme="ibug68"))


# ------------------------------------------------------------------ damaged shard files
def _truncated_dataset(tmp_path, cut=0):
    d = _write(tmp_path / "ds", [_record(i) for i in range(12)], num_shards=2)
    path = os.path.join(d, "train-00000-of-00002.tfrecord")
    data = open(path, "rb").read()
    with open(path, "wb") as f:  # as an interrupted copy leaves it (cut 0: at a record boundary)
        f.write(data[: len(data) * 2 // 3 - cut])
    readable = sum(1 for _ in tf.data.TFRecordDataset(path).ignore_errors())
    return d, path, readable


@pytest.mark.parametrize("cut", [0, 100])
def test_truncated_shard_is_reported_by_name_and_its_readable_records_are_used(tmp_path, cut):
    d, path, readable = _truncated_dataset(tmp_path, cut)
    log = ErrorLog()
    ids = _ids(build_dataset(_cfg(d, tasks=("identity",)), error_log=log))
    # Round-robin shards: file 0 holds the even ids, file 1 the odd ones.
    assert ids == sorted(list(range(1, 12, 2)) + list(range(0, 12, 2))[:readable])
    (lost,) = log.lost()
    assert lost.file == path and lost.index == readable - 1
    assert lost.lost_records == 6 - readable > 0
    assert f"after record {readable - 1}" in lost.reason
    assert log.counts() == {"s": {"lost": 1, "lost_records": 6 - readable}}
    assert path in log.summary() and log.skipped() == []


def test_truncated_shard_fails_naming_the_file_under_fail(tmp_path):
    d, path, _ = _truncated_dataset(tmp_path)
    ds = build_dataset(_cfg(d, tasks=("identity",), error_policy="fail"), error_log=ErrorLog())
    with pytest.raises(DataError, match=f"{path}: shard file is truncated or damaged"):
        with raise_data_errors():
            _ids(ds)


def test_training_history_lists_skipped_records_and_lost_shard_files(tmp_path):
    from keras_facemt.data.error_log import DEFAULT_ERROR_LOG
    from keras_facemt.training.schedule import Phase
    from keras_facemt.training.trainer import Trainer, TrainerConfig
    from tests import trainer_fixtures as fx

    records = [_record(i, h=fx.IMAGE, w=fx.IMAGE, attributes={"emotion": np.full((1,), i % 3)}) for i in range(12)]
    d = str(tmp_path / "ds")
    with ShardWriter(d, num_shards=2) as w:
        for i, r in enumerate(records):
            if i == 3:  # out of the schema's emotion range: the writer would refuse it
                ex = tf.train.Example.FromString(_record(3, h=fx.IMAGE, w=fx.IMAGE).serialize())
                ex.features.feature[schema.ATTR_PREFIX + "emotion"].int64_list.value[0] = 99
                w.write_serialized(ex.SerializeToString(), _record(3, h=fx.IMAGE, w=fx.IMAGE))
            else:
                w.write(r)
    path = os.path.join(d, "train-00000-of-00002.tfrecord")
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2 + 10])
    DEFAULT_ERROR_LOG.clear()
    stream = _cfg(d, tasks=("emotion",), image_size=(fx.IMAGE, fx.IMAGE), global_batch_size=2, repeat=True)
    trainer = Trainer(fx.tiny_model, fx.loss_terms()[1:], {"emotion": stream}, [Phase("p", 6, ("emotion",))],
                      config=TrainerConfig(str(tmp_path / "run"), steps_per_loop=6, progress=False, summaries=False))
    history = trainer.train()
    DEFAULT_ERROR_LOG.clear()
    counts = {"skipped": 1, "lost": 1, "lost_records": 3}
    assert history["phases"][0]["data_issues"] == {"s": counts} == history["data_issues"]
