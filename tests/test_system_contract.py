"""A new system is one folder and one registry call.

The test writes a complete (tiny) system into a temporary folder outside the
package: its config and presets, model, output declaration and experiment job. One
``register_system`` call later it trains through ``facemt train`` (the shared
runner, 2 steps), is scored by ``facemt evaluate``, exports to every format with
verification in each runtime, and serves through ``FaceAnalyzer``. Nothing in the
package was edited for it.
"""

import json
import os
import sys
import textwrap

import numpy as np
import pytest

from keras_facemt import cli
from keras_facemt.models.registry import get_system, list_systems, register_system, unregister_system

MODEL_PY = '''
"""A toy crop system: 5 landmarks and emotion from a 32x32 face."""

import dataclasses

import keras

from keras_facemt.configs.outputs import OutputSpec, Preprocessing, ServingSpec
from keras_facemt.data import schema


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    image_size: int = 32
    width: int = 8


CONFIG_CLASS = ToyConfig
PRESETS = {"small": ToyConfig, "tiny": lambda: ToyConfig(width=4)}


def build_model(config):
    image = keras.Input((config.image_size, config.image_size, 3), name="image")
    x = keras.layers.Conv2D(config.width, 3, strides=2, activation="relu")(image)
    x = keras.layers.GlobalAveragePooling2D()(x)
    points = keras.layers.Reshape((5, 2), name="landmarks")(keras.layers.Dense(10, activation="sigmoid")(x))
    emotion = keras.layers.Dense(schema.attribute_spec("emotion").num_classes, name="emotion_logits")(x)
    return keras.Model({"image": image}, {"landmarks": points, "emotion_logits": emotion}, name="toy")


def serving_spec(config):
    names = schema.attribute_spec("emotion").class_names
    return ServingSpec({"landmarks": OutputSpec("landmarks", task="landmarks", scheme="mtfl5"),
                        "emotion_logits": OutputSpec("class_logits", task="emotion", names=names,
                                                     activation="softmax")},
                       Preprocessing(resize="stretch"))
'''

JOB_PY = '''
"""The toy system's experiment job for the shared runner."""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_facemt.configs.data import DataConfig
from keras_facemt.configs.named_experiments import named_experiment
from keras_facemt.data import batch as B
from keras_facemt.data.pipeline import build_dataset
from keras_facemt.data.synthetic_cache import cached_synthetic
from keras_facemt.losses.classification import sparse_softmax_cross_entropy
from keras_facemt.metrics.headline import headline_entry
from keras_facemt.models.model_info import write_run_config
from keras_facemt.models.registry import get_system
from keras_facemt.serving.keras_format import save_model
from keras_facemt.training.schedule import LearningRate, LossTerm, Phase
from keras_facemt.training.trainer import Trainer, TrainerConfig


@dataclasses.dataclass(frozen=True)
class ToyExperiment:
    name: str
    preset: str = "tiny"
    steps: int = 2
    seed: int = 0


EXPERIMENTS = {"toy_smoke": lambda: ToyExperiment("toy_smoke")}
DEFAULT_EXPERIMENT = "toy_smoke"
DATA_TASKS = ("faces",)


def get_experiment(name, **overrides):
    return named_experiment(EXPERIMENTS, name, overrides, "toy")


def add_arguments(parser):
    parser.add_argument("--steps", type=int, default=None)


def configure(exp, args):
    changes = {k: getattr(args, k) for k in ("preset", "seed", "steps") if getattr(args, k, None) is not None}
    return dataclasses.replace(exp, **changes)


def _stream(data_dir, split, training):
    return DataConfig(name="faces", data_dir=data_dir, split=split, image_size=(32, 32), global_batch_size=8,
                      tasks=("landmarks", "emotion"), landmark_scheme="mtfl5", repeat=training, seed=0)


def _landmarks(batch, pred):
    return tf.reduce_mean(tf.square(pred - batch[B.LANDMARKS]), axis=[1, 2])


def _emotion(batch, logits):
    return sparse_softmax_cross_entropy(batch[B.attr("emotion")], logits)


def run(exp, ctx):
    system = get_system("toy")
    cfg = system.config(exp.preset)
    data = ctx.data.get("faces") or cached_synthetic(
        "toy", tasks=("landmarks", "emotion"), domain="studio", splits=(("train", 48), ("test", 24)), seed=7,
        image_size=32, cache_dir=ctx.cache_dir)
    terms = (LossTerm("landmarks", "landmarks", B.HAS_LANDMARKS, _landmarks),
             LossTerm("emotion", "emotion_logits", B.has_attr("emotion"), _emotion))
    trainer = Trainer(lambda: system.build(cfg, exp.preset), terms, {"faces": _stream(data, "train", True)},
                      [Phase("train", exp.steps, ("faces",), learning_rate=LearningRate(1e-3))],
                      TrainerConfig(model_dir=ctx.model_dir, steps_per_loop=1, optimizer="adam", seed=exp.seed,
                                    deterministic=ctx.deterministic, summaries=False, progress=False),
                      strategy=ctx.strategy)
    write_run_config(ctx.model_dir, system.model_info(cfg, exp.preset), exp.name, {"faces": data})
    history = trainer.train()
    points, truth, emotion, labels = [], [], [], []
    for batch in build_dataset(_stream(data, "test", False)):
        out = trainer.model({"image": batch["image"]}, training=False)
        points.append(out["landmarks"].numpy())
        truth.append(batch[B.LANDMARKS].numpy())
        emotion.append(out["emotion_logits"].numpy().argmax(-1))
        labels.append(batch[B.attr("emotion")].numpy().reshape(-1))
    points, truth = np.concatenate(points), np.concatenate(truth)
    emotion, labels = np.concatenate(emotion), np.concatenate(labels)
    mean_shape = truth.mean(0, keepdims=True)
    err = lambda p: float(np.linalg.norm(p - truth, axis=-1).mean())
    majority = float((labels == np.bincount(labels).argmax()).mean())
    path = save_model(trainer.model, ctx.path("model.keras"), info=system.model_info(cfg, exp.preset))
    return {"steps": int(history["global_step"]),
            "data_issues": history.get("data_issues", {}), "paths": {"model_keras": path, "data": data},
            "headline": [
                headline_entry("landmark_error", "test", err(points), [("mean shape", err(mean_shape))], False),
                headline_entry("emotion_accuracy", "test", float((emotion == labels).mean()),
                               [("majority class", majority)])]}


def results_markdown(results):
    return "\\n".join(f"| {h['metric']} | {h['model']:.4f} | {h['baseline']:.4f} |" for h in results["headline"])
'''


@pytest.fixture
def toy_system(tmp_path, monkeypatch):
    folder = tmp_path / "systems" / "toy_system"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / "model.py").write_text(textwrap.dedent(MODEL_PY))
    (folder / "job.py").write_text(textwrap.dedent(JOB_PY))
    monkeypatch.syspath_prepend(str(tmp_path / "systems"))
    register_system("toy", "toy_system.model", "A toy crop system", "toy_system.job")
    yield
    unregister_system("toy")
    for name in [m for m in sys.modules if m.startswith("toy_system")]:
        del sys.modules[name]


@pytest.mark.timeout(900)
def test_a_system_in_a_temporary_folder_trains_evaluates_exports_and_serves(toy_system, tmp_path, capsys):
    assert "toy" in list_systems() and get_system("toy").job == "toy_system.job"
    run = tmp_path / "run"
    cache = tmp_path / "cache"
    # train: the shared runner, through facemt train (finds the system from the experiment too).
    assert cli.main(["train", "--experiment", "toy_smoke", "--model-dir", str(run), "--cache-dir", str(cache)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["system"] == "toy" and results["experiment"] == "toy_smoke"
    for key in ("headline", "machine", "timings_seconds", "run", "paths", "experiment_config", "data_issues"):
        assert key in results, key
    assert [h["metric"] for h in results["headline"]] == ["landmark_error", "emotion_accuracy"]
    assert (run / "results.md").read_text().startswith("| landmark_error |")
    # The runner refuses to train over the checkpoint without --resume.
    capsys.readouterr()
    assert cli.main(["train", "toy", "--model-dir", str(run), "--cache-dir", str(cache)]) == 2
    assert "--resume" in capsys.readouterr().err
    data = results["paths"]["data"]

    # evaluate: the declaration says which metrics apply.
    out_json = tmp_path / "eval.json"
    assert cli.main(["evaluate", "--model", str(run), "--data", data, "--out", str(out_json)]) == 0
    report = json.loads(out_json.read_text())
    tasks = report["datasets"][data]["tasks"]
    assert report["system"] == "toy" and {"landmarks", "emotion"} <= set(tasks)

    # export: every format, each loaded and compared in its runtime.
    export = tmp_path / "export"
    assert cli.main(["export", "--model-dir", str(run), "--output", str(export), "--data", data,
                     "--skip-saved-model-cli", "--examples", "16", "--calibration-samples", "16"]) == 0
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["system"] == "toy"
    checks = manifest["verification"]["checks"]
    kinds = {os.path.basename(c["artifact"]) for c in checks}
    assert {"model.keras", "model_float32.tflite", "model_int8.tflite", "model.onnx"} <= kinds, kinds
    assert any("saved_model" in c["artifact"] for c in checks)
    assert all(c["passed"] for c in checks), checks

    # FaceAnalyzer on the run's model file: the declared outputs become Face fields.
    from keras_facemt.inference.analyzer import FaceAnalyzer

    image = (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)
    faces = FaceAnalyzer(str(run / "model.keras"))([image])
    assert len(faces) == 1 and len(faces[0]) == 1
    face = faces[0][0]
    assert np.asarray(face.landmarks).shape == (5, 2)
    assert "emotion" in face.attributes
