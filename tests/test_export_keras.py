"""The ``.keras`` format: safe-mode loading with registered classes only, in a fresh process."""

import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

from keras_facemt.errors import CheckpointError
from keras_facemt.serving.keras_format import load_model, required_modules, save_model
from tests.test_export_formats import SIZE, build_test_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = build_test_model(seed=3)
    path = save_model(model, str(tmp_path_factory.mktemp("keras") / "model.keras"))
    return model, path


def _inputs(n=2):
    rng = np.random.default_rng(1)
    return {"image": rng.uniform(0, 1, (n, SIZE, SIZE, 3)).astype("float32"), "domain": np.array([0, 1][:n], "int32")}


def test_round_trip_equal_outputs(saved):
    model, path = saved
    restored = load_model(path)
    a, b = model(_inputs(), training=False), restored(_inputs(), training=False)
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_allclose(np.asarray(a[key]), np.asarray(b[key]), atol=1e-6)
    assert required_modules(path) == {"keras_facemt.layers.domain_batch_norm"}


def test_loads_in_a_fresh_process_that_imports_only_keras_facemt(saved, tmp_path):
    model, path = saved
    np.save(tmp_path / "image.npy", _inputs()["image"])
    np.save(tmp_path / "domain.npy", _inputs()["domain"])
    script = (
        "import sys, numpy as np, keras_facemt\n"
        "m = keras_facemt.load_model(sys.argv[1])\n"
        "o = m({'image': np.load(sys.argv[2]), 'domain': np.load(sys.argv[3])}, training=False)\n"
        "np.save(sys.argv[4], np.asarray(o['parsing_logits']))\n"
    )
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            path,
            str(tmp_path / "image.npy"),
            str(tmp_path / "domain.npy"),
            str(tmp_path / "out.npy"),
        ],
        check=True,
        env=env,
        timeout=300,
        cwd=str(tmp_path),
    )
    expected = np.asarray(model(_inputs(), training=False)["parsing_logits"])
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)


def test_lambda_layers_are_refused(tmp_path):
    inputs = keras.Input((4,), name="image")
    outputs = keras.layers.Lambda(lambda x: x * 2.0)(inputs)
    path = str(tmp_path / "lambda.keras")
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(CheckpointError, match="lambda.keras.*safe mode"):
        load_model(path)


def test_unregistered_class_is_refused(tmp_path):
    class Unregistered(keras.layers.Layer):
        def call(self, x):
            return x + 1.0

    inputs = keras.Input((4,))
    path = str(tmp_path / "custom.keras")
    keras.Model(inputs, Unregistered()(inputs)).save(path)
    with pytest.raises(CheckpointError, match="custom.keras"):
        load_model(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a zip", "not a zip archive"),
        (None, "no such Keras model file"),
    ],
)
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.keras"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_model(str(path))


def test_zip_without_config_is_refused(tmp_path):
    path = tmp_path / "empty.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", "{}")
    with pytest.raises(CheckpointError, match="no config.json"):
        load_model(str(path))


def test_save_is_atomic_and_checks_suffix(saved, tmp_path):
    model, _ = saved
    with pytest.raises(CheckpointError, match="must end in '.keras'"):
        save_model(model, str(tmp_path / "model.h5"))
    path = save_model(model, str(tmp_path / "m.keras"))
    with pytest.raises(CheckpointError, match="exists"):
        save_model(model, path, overwrite=False)
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]
