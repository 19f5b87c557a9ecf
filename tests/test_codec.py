import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.data import schema
from keras_facemt.data.codec import FaceRecord, encode_image, encode_label_map, parse_example
from keras_facemt.errors import SchemaError


def _full_record(n=2):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (32, 40, 3), dtype=np.uint8)
    return FaceRecord(
        image=encode_image(img, "png"), image_format="png", height=32, width=40,
        source_id="img_001.png", dataset="synth_a", split="val",
        bboxes=rng.random((n, 4)).astype(np.float32), has_boxes=1,
        parsing=encode_label_map(rng.integers(0, 11, (32, 40))),
        landmark_scheme="mtfl5",
        landmarks=rng.random((n, 5, 2)).astype(np.float32),
        landmarks_visible=np.array([[1, 1, 0, 1, 1]] * n, np.float32),
        has_landmarks=np.array([1, 0][:n]),
        pose=rng.normal(size=(n, 3)).astype(np.float32), has_pose=np.ones(n),
        identity=np.arange(n), has_identity=np.ones(n),
        teacher_embedding=rng.normal(size=(n, 8)).astype(np.float32),
        attributes={"age": np.array([31.5, 40.0][:n]), "emotion": np.array([3, 6][:n]),
                    "celeba/Smiling": np.array([1, 0][:n])},
        has_attributes={"age": np.array([1, 0][:n]), "emotion": np.ones(n), "celeba/Smiling": np.ones(n)},
    )


def _assert_records_equal(a, b):
    for f in ("image", "image_format", "height", "width", "source_id", "dataset", "split",
              "has_boxes", "parsing", "landmark_scheme"):
        assert getattr(a, f) == getattr(b, f), f
    for f in ("bboxes", "landmarks", "landmarks_visible", "has_landmarks", "pose", "has_pose",
              "identity", "has_identity", "teacher_embedding", "has_teacher_embedding"):
        x, y = getattr(a, f), getattr(b, f)
        assert (x is None) == (y is None), f
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=f)
            assert x.dtype == y.dtype, f
    assert sorted(a.attributes) == sorted(b.attributes)
    for k in a.attributes:
        np.testing.assert_array_equal(a.attributes[k], b.attributes[k])
        np.testing.assert_array_equal(a.has_attributes[k], b.has_attributes[k])


def test_round_trip_every_field():
    rec = _full_record().validate()
    back = FaceRecord.from_example(rec.serialize())
    _assert_records_equal(rec, back)


def test_round_trip_minimal_record_keeps_absent_fields_absent():
    rec = FaceRecord(image=b"abc", height=4, width=4, source_id="x", dataset="d")
    back = FaceRecord.from_example(rec.serialize())
    _assert_records_equal(rec.validate(), back)
    assert back.landmarks is None and back.parsing is None and back.attributes == {}


def test_inconsistent_lengths_name_field_and_source():
    rec = _full_record()
    rec.landmarks = np.zeros((2, 4, 2))
    with pytest.raises(SchemaError, match=r"img_001.png.*face/landmarks"):
        rec.validate()
    rec = _full_record()
    rec.attributes["emotion"] = np.array([1, 2, 3])
    with pytest.raises(SchemaError, match=r"face/attr/emotion"):
        rec.validate()


def test_out_of_range_attribute_rejected():
    rec = _full_record()
    rec.attributes["emotion"] = np.array([3, 9])
    with pytest.raises(SchemaError, match="face/attr/emotion.*outside"):
        rec.validate()


def test_unknown_attribute_rejected():
    rec = _full_record()
    rec.attributes["mood"] = np.array([1, 1])
    with pytest.raises(Exception, match="Unknown attribute 'mood'"):
        rec.validate()


def test_missing_required_key_named():
    ex = _full_record().to_example()
    del ex.features.feature[schema.IMAGE_ENCODED]
    with pytest.raises(SchemaError, match="img_001.png.*image/encoded"):
        FaceRecord.from_example(ex.SerializeToString())


def test_garbage_bytes_not_an_example():
    with pytest.raises(SchemaError, match="not a serialised tf.train.Example"):
        FaceRecord.from_example(b"\xff\x00garbage", source="shard-0#3")


def test_parse_example_in_graph_matches_record():
    rec = _full_record().validate()
    out = parse_example(tf.constant(rec.serialize()), attributes=("age", "emotion", "gender"),
                        embedding_dim=8)
    assert out["error"].numpy() == b""
    np.testing.assert_allclose(out["bbox"].numpy(), rec.bboxes)
    np.testing.assert_allclose(out["landmarks"].numpy(), rec.landmarks)
    np.testing.assert_allclose(out["landmarks_visible"].numpy(), rec.landmarks_visible)
    np.testing.assert_array_equal(out["has_landmarks"].numpy(), [1, 0])
    np.testing.assert_array_equal(out["attr/emotion"].numpy(), [3, 6])
    np.testing.assert_allclose(out["attr/age"].numpy(), [31.5, 40.0])
    np.testing.assert_array_equal(out["has_attr/age"].numpy(), [1, 0])
    # Absent attribute: zeros with zero presence.
    np.testing.assert_array_equal(out["attr/gender"].numpy(), [0, 0])
    np.testing.assert_array_equal(out["has_attr/gender"].numpy(), [0, 0])
    np.testing.assert_allclose(out["teacher_embedding"].numpy(), rec.teacher_embedding)
    assert out["has_parsing"].numpy() == 1.0


def test_parse_example_flags_inconsistent_record_without_raising():
    ex = _full_record().to_example()
    ex.features.feature[schema.ATTR_PREFIX + "emotion"].int64_list.value.append(2)
    out = parse_example(tf.constant(ex.SerializeToString()), attributes=("emotion",))
    assert b"face/attr/emotion" in out["error"].numpy()
    ex = _full_record().to_example()
    del ex.features.feature[schema.IMAGE_ENCODED]
    out = parse_example(tf.constant(ex.SerializeToString()))
    assert b"image/encoded" in out["error"].numpy()
