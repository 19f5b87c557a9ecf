"""Untrusted ``.keras`` files: code and objects outside Keras/keras_facemt are refused
by ``keras_facemt.load_model`` and ``FaceAnalyzer``, before anything is imported."""

import json
import os
import zipfile

import keras
import pytest

from keras_facemt import FaceAnalyzer, load_model
from keras_facemt.configs.outputs import OutputSpec, ServingSpec
from keras_facemt.data import schema
from keras_facemt.models.model_info import ModelInfo
from keras_facemt.serving.keras_format import save_model
from keras_facemt.errors import CheckpointError

PROBE = "facemt_untrusted_probe"


@pytest.fixture
def base(tmp_path):
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model({"image": inputs}, {"emotion_logits": keras.layers.Dense(7, activation="relu", name="d")(x)})
    spec = ServingSpec({"emotion_logits": OutputSpec("class_logits", task="emotion", names=schema.EMOTIONS,
                                                     activation="softmax")})
    return save_model(model, str(tmp_path / "base.keras"), info=ModelInfo("emotion_test", {}, spec))


def _edited(base, path, edit):
    """A copy of ``base`` whose config.json ``edit`` changed (what a tampered file holds)."""
    with zipfile.ZipFile(base) as z:
        members = {n: z.read(n) for n in z.namelist()}
    config = json.loads(members["config.json"])
    dense = next(layer for layer in config["config"]["layers"] if layer["config"]["name"] == "d")
    edit(dense)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _function(module, name):
    return {"module": module, "class_name": "function", "config": name, "registered_name": name}


TAMPERED = {
    "builtin_eval_activation": lambda d: d["config"].__setitem__("activation", _function("builtins", "eval")),
    "os_system_activation": lambda d: d["config"].__setitem__("activation", _function("os", "system")),
    "foreign_layer_class": lambda d: d.update(module=PROBE, class_name="Probe", registered_name="Probe"),
    "foreign_function": lambda d: d["config"].__setitem__("activation", _function(PROBE, "probe")),
}


@pytest.mark.parametrize("loader", ["load_model", "FaceAnalyzer"])
@pytest.mark.parametrize("kind", sorted(TAMPERED))
def test_objects_outside_keras_and_keras_facemt_are_refused_unimported(base, tmp_path, monkeypatch, kind, loader):
    # A module that records being imported: loading must never run its code.
    marker = tmp_path / "imported"
    (tmp_path / f"{PROBE}.py").write_text(f"open({str(marker)!r}, 'w').close()\nProbe = probe = print\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = _edited(base, str(tmp_path / f"{kind}.keras"), TAMPERED[kind])
    with pytest.raises(CheckpointError, match=f"{kind}.keras: refers to .*safe mode refuses untrusted code"):
        load_model(path) if loader == "load_model" else FaceAnalyzer(path)
    assert not marker.exists()


@pytest.mark.parametrize("loader", ["load_model", "FaceAnalyzer"])
def test_lambda_layer_is_refused(tmp_path, loader):
    inputs = keras.Input((8, 8, 3), name="image")
    outputs = {"emotion_logits": keras.layers.Lambda(lambda x: x[:, 0, 0, :] * 2.0)(inputs)}
    path = str(tmp_path / "lambda.keras")
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(CheckpointError, match="lambda.keras: carries a Lambda layer"):
        load_model(path) if loader == "load_model" else FaceAnalyzer(path)


def test_trusted_file_still_loads(base):
    assert FaceAnalyzer(base).input_size == (8, 8)
    assert os.path.exists(base)
