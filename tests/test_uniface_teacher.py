
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.configs.data import DataConfig
from keras_facemt.data.pipeline import build_dataset
from keras_facemt.data.shards import iter_records, list_shards
from keras_facemt.data.synthetic import SynthFace, write_synthetic
from keras_facemt.data.landmarks import convert_points
from keras_facemt.errors import ConfigError, DataError
from keras_facemt.models.uniface import teacher
from keras_facemt.ops.align import align_faces
from tests.helpers import run_layer_test
from tfrecords_tools import add_teacher_embeddings as tool


def test_teacher_embeddings_are_unit_norm_and_classifier_contract():
    m = teacher.build_teacher(32, (8, 16), 12)
    e = m(np.random.default_rng(0).uniform(size=(3, 32, 32, 3)).astype("float32")).numpy()
    assert e.shape == (3, 12)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    run_layer_test(teacher.CosineClassifier, {"num_classes": 5}, np.ones((2, 12), "float32"), (2, 5),
                   expected_num_trainable_weights=1)
    with pytest.raises(ConfigError, match="input_size"):
        teacher.build_teacher(8)


def test_margin_softmax_loss_values():
    cos = np.array([[0.9, 0.1], [0.2, 0.3]], "float32")
    got = teacher.margin_softmax_loss([0, 1], cos, scale=10, margin=0.2).numpy()
    logits = 10 * (cos - 0.2 * np.eye(2))
    ref = -np.log(np.exp(logits[[0, 1], [0, 1]]) / np.exp(logits).sum(1))
    np.testing.assert_allclose(got, ref, rtol=1e-4)


def test_teacher_learns_synthetic_identities(tmp_path):
    synth = SynthFace(seed=3, image_size=64, num_identities=4)
    crops, labels = [], []
    for i in range(48):
        rgb, lab = synth.render_crop(i, identity=i % 4)
        lm, _ = convert_points(lab["landmarks"], lab["landmarks_visible"], "ibug68", "mtfl5")
        crops.append(align_faces(rgb[None].astype("float32") / 255, lm[None, None], 32).numpy()[0, 0])
        labels.append(i % 4)
    build = lambda: teacher.build_teacher(32, (8, 16), 16)  # noqa: E731
    m, out = teacher.train_teacher(build, np.stack(crops), labels, 4, str(tmp_path / "teacher"), steps=40,
                                   batch_size=16)
    # The shared trainer trained it: its checkpoint is there, and the loss over the crops fell.
    assert os.path.isdir(tmp_path / "teacher" / "checkpoints")
    assert out["loss_after"] < out["loss_before"] and out["accuracy"] > 0.25
    emb = m(np.stack(crops)[:4]).numpy()
    assert emb.shape == (4, 16)
    with pytest.raises(ConfigError, match="labels"):
        teacher.train_teacher(build, np.stack(crops), np.full(48, 7), 4, str(tmp_path / "t2"), steps=1)


def test_add_teacher_embeddings_tool(tmp_path):
    data = str(tmp_path / "scenes")
    write_synthetic(data, kind="scenes", tasks=("detection", "landmarks"), count=3, shards=1, image_size=64,
                    max_faces=3, splits=(("train", 1.0),))
    keras.utils.set_random_seed(0)
    m = teacher.build_teacher(32, (8,), 6, dropout=0.0)
    path = str(tmp_path / "teacher.keras")
    m.save(path)
    out = str(tmp_path / "with_teacher")
    manifest = tool.add_teacher_embeddings(data, out, path, log=lambda s: None)
    assert manifest["teacher_embeddings"]["crop_size"] == 32
    rec = next(iter_records(list_shards(out, "train")[0]))
    assert rec.teacher_embedding.shape == (rec.num_faces, 6) and rec.has_teacher_embedding.all()
    # The stored targets are the teacher's embeddings of the aligned crops.
    src = next(iter_records(list_shards(data, "train")[0]))
    lm, _ = convert_points(src.landmarks.reshape(src.num_faces, 68, 2), np.ones((src.num_faces, 68)), "ibug68", "mtfl5")
    from keras_facemt.data.codec import decode_image
    img = decode_image(src.image).astype("float32") / 255
    ref = m(align_faces(img[None], lm[None], 32)[0]).numpy()
    np.testing.assert_allclose(rec.teacher_embedding, ref, atol=1e-4)
    # The pipeline decodes them in scenes mode.
    cfg = DataConfig(name="s", data_dir=out, mode="scenes", image_size=(64, 64), global_batch_size=3,
                     tasks=("detection", "landmarks", "teacher_embedding"), landmark_scheme="mtfl5", max_faces=3,
                     embedding_dim=6, repeat=False, shuffle_buffer=0)
    batch = next(iter(build_dataset(cfg)))
    assert batch["teacher_embedding"].shape == (3, 3, 6)
    assert float(tf.reduce_sum(batch["has_teacher_embedding"])) == float(tf.reduce_sum(batch["face_mask"]))
    # A SavedModel teacher gives the same numbers.
    sm = str(tmp_path / "teacher_sm")
    m.export(sm, verbose=False)
    fn, size = tool.load_embedding_model(sm)
    crops = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(fn(crops), m(crops).numpy(), atol=1e-5)
    with pytest.raises(DataError, match="not found"):
        tool.load_embedding_model(str(tmp_path / "missing.onnx"))
    assert tool.main(["--data_dir", data, "--out_dir", str(tmp_path / "x"), "--teacher", str(tmp_path / "nope.keras")]) == 2
