"""Loading the model to export from a training run directory (checkpoint + run_config.json)."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.errors import CheckpointError, ConfigError
from keras_facemt.models import registry
from keras_facemt.configs.serialization import config_from_dict
from keras_facemt.serving.model_source import RUN_CONFIG, load_model_source


@dataclasses.dataclass(frozen=True)
class ExportTestConfig:
    num_domains: int = 2
    seed: int = 0
    tasks: tuple = ("landmarks", "parsing", "emotion")


CONFIG_CLASS = ExportTestConfig
PRESETS = {"small": ExportTestConfig}


def build_model(config):
    from tests.test_export_formats import build_test_model

    return build_test_model(num_domains=config.num_domains, seed=config.seed)


def serving_spec(config):
    from tests.test_export_formats import serving_spec_of_test_model

    return serving_spec_of_test_model()


@pytest.fixture
def test_system(monkeypatch):
    system = registry.System("export_test", __name__, "DomainBatchNorm test model")
    monkeypatch.setitem(registry._SYSTEMS, "export_test", system)
    return system


def _run_dir(path, config, checkpoint_seed):
    from keras_facemt.training import checkpointing

    trained = build_model(dataclasses.replace(config, seed=checkpoint_seed))
    os.makedirs(path)
    with open(os.path.join(path, RUN_CONFIG), "w") as f:
        json.dump(
            {
                "system": "export_test",
                "preset": "small",
                "config": dataclasses.asdict(config),
                "domains": {"a": 0, "b": 1},
            },
            f,
        )
    ckpt = tf.train.Checkpoint(**{checkpointing.MODEL_KEY: trained})
    tf.train.CheckpointManager(ckpt, checkpointing.checkpoint_dir(path), max_to_keep=2).save(checkpoint_number=7)
    return trained


def test_restores_the_latest_checkpoint(test_system, tmp_path):
    # Rebuilt with seed 0, restored from weights trained (initialised) with seed 5.
    trained = _run_dir(str(tmp_path / "run"), ExportTestConfig(), checkpoint_seed=5)
    model, info = load_model_source(str(tmp_path / "run"))
    assert info["system"] == "export_test" and info["domains"] == {"a": 0, "b": 1}
    assert info["source"].endswith("ckpt-7") and info["config"]["tasks"] == ("landmarks", "parsing", "emotion")
    x = {
        "image": np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype("float32"),
        "domain": np.array([0, 1], "int32"),
    }
    np.testing.assert_allclose(np.asarray(model(x)["landmarks"]), np.asarray(trained(x)["landmarks"]), atol=1e-6)


def test_checkpoint_of_another_architecture_is_refused(test_system, tmp_path):
    _run_dir(str(tmp_path / "run"), ExportTestConfig(num_domains=2), checkpoint_seed=1)
    cfg = json.load(open(tmp_path / "run" / RUN_CONFIG))
    cfg["config"]["num_domains"] = 3
    json.dump(cfg, open(tmp_path / "run" / RUN_CONFIG, "w"))
    with pytest.raises(CheckpointError, match="does not match"):
        load_model_source(str(tmp_path / "run"))


def test_run_dir_without_run_config(tmp_path):
    from keras_facemt.training import checkpointing
    from tests.test_export_formats import build_test_model

    path = str(tmp_path / "run")
    tf.train.CheckpointManager(
        tf.train.Checkpoint(model=build_test_model()), checkpointing.checkpoint_dir(path), max_to_keep=1
    ).save()
    with pytest.raises(CheckpointError, match="no run_config.json"):
        load_model_source(path)


def test_missing_path_and_wrong_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such model directory"):
        load_model_source(str(tmp_path / "nowhere"))
    (tmp_path / "weights.h5").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="not a '.keras' file"):
        load_model_source(str(tmp_path / "weights.h5"))


def test_config_from_dict_restores_tuples_and_rejects_unknown_fields():
    cfg = config_from_dict(ExportTestConfig, {"tasks": ["landmarks"], "num_domains": 3})
    assert cfg.tasks == ("landmarks",) and cfg.num_domains == 3
    with pytest.raises(ConfigError, match="no fields \\['bogus'\\]"):
        config_from_dict(ExportTestConfig, {"bogus": 1})
