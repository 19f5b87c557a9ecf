"""The trainer on the default strategy: contract, phases, schedules, guard, summaries."""

import glob
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_facemt.errors import CheckpointError, ConfigError, TrainingError
from keras_facemt.training.schedule import LearningRate, LossTerm, Phase
from keras_facemt.training.trainer import Trainer, TrainerConfig
from tests import trainer_fixtures as fx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(tmp_path, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("summaries", False)
    return TrainerConfig(str(tmp_path / "run"), **kw)


def _weights(model):
    return {v.path: v.numpy().copy() for v in model.weights}


def test_alternate_phase_feeds_streams_in_turn_with_the_lr_schedule(tmp_path):
    # Stream "a" contributes bias gradient 1, stream "b" 10; SGD with a decaying rate
    # leaves bias = -sum_i lr_i * g(stream of update i), which pins the order.
    lr1, lr2 = LearningRate(1.0, 0.01), LearningRate(0.5, 0.05, decay="cosine")
    phases = [Phase("alt1", 5, ("a", "b"), trainable=("probe/*",), learning_rate=lr1),
              Phase("alt2", 4, ("a", "b"), trainable=("probe/*",), learning_rate=lr2)]
    trainer = Trainer(fx.probe_model, fx.probe_terms({"has_a": 1.0, "has_b": 10.0}),
                      {"a": fx.probe_stream("has_a"), "b": fx.probe_stream("has_b")}, phases,
                      config=_config(tmp_path, steps_per_loop=2, optimizer="sgd"))
    history = trainer.train()
    # Rates by hand: exponential 1 -> 0.01 over 5 updates is 0.01 ** (i / 4); cosine
    # 0.5 -> 0.05 over 4 is 0.05 + 0.225 * (1 + cos(pi * i / 3)) = 0.5, 0.3875, 0.1625, 0.05.
    rates1 = [1.0, 0.31622776601683794, 0.1, 0.031622776601683794, 0.01]
    rates2 = [0.5, 0.3875, 0.1625, 0.05]
    expected = -sum(r * (1.0 if i % 2 == 0 else 10.0) for i, r in enumerate(rates1))
    expected -= sum(r * (1.0 if i % 2 == 0 else 10.0) for i, r in enumerate(rates2))
    bias = trainer.model.get_layer("probe").bias.numpy()[0]
    assert bias == pytest.approx(expected, rel=1e-5)
    assert history["global_step"] == trainer.global_step == 9
    assert trainer.optimizer.learning_rate.numpy() == pytest.approx(0.05)
    assert [p["name"] for p in history["phases"]] == ["alt1", "alt2"]
    assert set(history["phases"][0]["metrics"]) >= {"value_has_a", "value_has_b", "total", "examples_per_sec"}
    # Same-structure phases share traced loops: one for full loops, one for the
    # 1-update tail of alt1; each traced once.
    assert len(trainer._loop_fns) == 2
    assert [f.experimental_get_tracing_count() for f in trainer._loop_fns.values()] == [1, 1]


def test_trainable_patterns_freeze_every_other_variable(tmp_path):
    phase = Phase("probe_only", 3, ("a",), trainable=("probe/*",), learning_rate=LearningRate(0.1))
    trainer = Trainer(fx.probe_model, fx.probe_terms({"has_a": 1.0}), {"a": fx.probe_stream("has_a")}, [phase],
                      config=_config(tmp_path, optimizer="sgd"))
    before = _weights(trainer.model)
    trainer.train()
    after = _weights(trainer.model)
    assert not np.allclose(before["probe/bias"], after["probe/bias"])
    assert np.array_equal(before["other/bias"], after["other/bias"])
    assert np.array_equal(before["other/kernel"], after["other/kernel"])


def test_mix_phase_concatenates_streams_and_normalises_each_term_by_its_own_count(tmp_path):
    phase = Phase("mix", 2, ("a", "b"), mode="mix", trainable=("probe/bias",), learning_rate=LearningRate(0.5))
    trainer = Trainer(fx.probe_model, fx.probe_terms({"has_a": 1.0, "has_b": 10.0}),
                      {"a": fx.probe_stream("has_a"), "b": fx.probe_stream("has_b", global_batch=2)}, [phase],
                      config=_config(tmp_path, optimizer="sgd"))
    trainer.train()
    # Each term is a mean over its own labelled examples: gradient 1 + 10 per update.
    assert trainer.model.get_layer("probe").bias.numpy()[0] == pytest.approx(-2 * 0.5 * 11.0)


def test_phases_run_in_order_with_submodel_and_eval_fn(tmp_path):
    calls = []

    def model_fn():
        main = fx.tiny_model()
        landmarks = main.get_layer("decoder_landmarks_reshape").output
        return {"main": main, "landmarks_only": keras.Model(main.inputs, {"landmarks": landmarks})}

    phases = [
        Phase("pre_landmarks", 3, ("landmarks",), loss_terms=("landmarks",), model="landmarks_only",
              trainable=("backbone_*", "decoder_landmarks_*")),
        Phase("joint", 4, ("landmarks", "emotion")),
    ]
    trainer = Trainer(model_fn, fx.loss_terms(), {"landmarks": fx.stream("landmarks"), "emotion": fx.stream("emotion")},
                      phases, config=_config(tmp_path, steps_per_loop=2, summaries=True, eval_every_steps=2),
                      eval_fn=lambda t, step, name: calls.append((step, name)) or {"nme": 0.1 * step})
    emotion_before = trainer.model.get_layer("decoder_emotion_dense").kernel.numpy().copy()
    history = trainer.train()
    assert trainer.global_step == history["global_step"] == 7
    assert [(p["name"], p["start_step"], p["end_step"]) for p in history["phases"]] == [
        ("pre_landmarks", 0, 3), ("joint", 3, 7)]
    # Phase ends (3, 7) and the loops crossing a multiple of 2 in between (2, 5).
    assert calls == [(2, "pre_landmarks"), (3, "pre_landmarks"), (5, "joint"), (7, "joint")]
    assert history["evals"][-1] == {"step": 7, "phase": "joint", "nme": pytest.approx(0.7)}
    assert not np.array_equal(emotion_before, trainer.model.get_layer("decoder_emotion_dense").kernel.numpy())
    # TensorBoard events were written with per-term, total, lr and eval scalars.
    events = glob.glob(str(tmp_path / "run" / "logs" / "events.out.tfevents.*"))
    assert events
    tags = set()
    for record in tf.data.TFRecordDataset(events):
        event = tf.compat.v1.Event.FromString(record.numpy())
        tags.update(v.tag for v in event.summary.value)
    assert {"loss/landmarks", "loss/emotion", "loss/total", "learning_rate", "examples_per_sec", "eval/nme"} <= tags
    # A second train() on a finished run does nothing more.
    again = Trainer(model_fn, fx.loss_terms(), {"landmarks": fx.stream("landmarks"), "emotion": fx.stream("emotion")},
                    phases, config=_config(tmp_path, steps_per_loop=2))
    assert again.train()["global_step"] == 7
    assert len(again.history["evals"]) == 4
    np.testing.assert_array_equal(again.model.get_layer("decoder_emotion_dense").kernel.numpy(),
                                  trainer.model.get_layer("decoder_emotion_dense").kernel.numpy())


def test_nonfinite_losses_are_skipped_then_raise(tmp_path):
    phase = Phase("bad", 10, ("landmarks",), loss_terms=("landmarks",))
    trainer = Trainer(fx.tiny_model, fx.loss_terms(), {"landmarks": fx.stream("landmarks", poison=float("nan"))},
                      [phase], config=_config(tmp_path, steps_per_loop=1, max_nonfinite_steps=2, optimizer="adam"))
    before = _weights(trainer.model)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        with pytest.raises(TrainingError, match=r"3 updates .*phase 'bad'.*landmarks"):
            trainer.train()
    after = _weights(trainer.model)
    trainable = {v.path for v in trainer.model.trainable_variables}
    for path in trainable:
        np.testing.assert_array_equal(before[path], after[path], err_msg=path)
    assert int(trainer.optimizer.iterations.numpy()) == 0
    assert trainer.global_step == 3


def test_labels_of_unlabelled_examples_do_not_affect_training(tmp_path):
    # Same data except the labels of examples flagged has_landmarks=0: huge values there
    # must change nothing, since a missing label is never a (wrong) label.
    def stream(fill):
        def build(ctx=None):
            base = fx.stream("landmarks", labelled_every=2)(ctx)
            return base.map(lambda b: {**b, "landmarks": tf.where(b["has_landmarks"][:, None, None] > 0,
                                                                   b["landmarks"], fill)})
        return build

    weights = []
    for i, fill in enumerate((0.0, 1e6)):
        trainer = Trainer(fx.tiny_model, fx.loss_terms(), {"landmarks": stream(fill)},
                          [Phase("p", 3, ("landmarks",), loss_terms=("landmarks",))],
                          config=_config(tmp_path / str(i), max_nonfinite_steps=0))
        assert trainer.train()["nonfinite_steps"] == 0
        weights.append([v.numpy() for v in trainer.model.weights])
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_clipnorm_and_mixed_bfloat16_and_jit(tmp_path):
    phase = Phase("p", 2, ("a",), trainable=("probe/bias",), learning_rate=LearningRate(1.0))
    trainer = Trainer(fx.probe_model, fx.probe_terms({"has_a": 100.0}), {"a": fx.probe_stream("has_a")}, [phase],
                      config=_config(tmp_path / "clip", optimizer="sgd", clipnorm=0.5, jit_compile=True))
    trainer.train()
    assert trainer.model.get_layer("probe").bias.numpy()[0] == pytest.approx(-1.0, rel=1e-5)

    trainer = Trainer(fx.tiny_model, fx.loss_terms(), {"l": fx.stream("both")}, [Phase("p", 2, ("l",))],
                      config=_config(tmp_path / "bf16", mixed_precision="mixed_bfloat16"))
    history = trainer.train()
    assert trainer.model.get_layer("backbone_conv").compute_dtype == "bfloat16"
    assert np.isfinite(history["phases"][0]["metrics"]["total"])
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after building


def test_mixed_float16_uses_loss_scaling(tmp_path):
    trainer = Trainer(fx.tiny_model, fx.loss_terms(), {"l": fx.stream("both")}, [Phase("p", 2, ("l",))],
                      config=_config(tmp_path, mixed_precision="mixed_float16"))
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    history = trainer.train()
    assert history["global_step"] == 2 and np.isfinite(history["phases"][0]["metrics"]["total"])


def test_mixed_float16_loss_scaling_keeps_gradients_that_underflow_float16(tmp_path):
    # d loss / d value = 1e-8 is 0 in float16 (smallest subnormal 6e-8): only a scaled
    # loss carries it through the float16 graph; unscaled, the bias moves by lr * 1e-8.
    g = 1e-8
    terms = [LossTerm("tiny", "value", "has_a", lambda b, p: g * tf.cast(tf.reshape(p, [-1]), tf.float32))]
    trainer = Trainer(fx.probe_model, terms, {"a": fx.probe_stream("has_a")},
                      [Phase("p", 2, ("a",), trainable=("probe/*",), learning_rate=LearningRate(1.0))],
                      config=_config(tmp_path, mixed_precision="mixed_float16", optimizer="sgd"))
    trainer.train()
    assert trainer.model.get_layer("probe").compute_dtype == "float16"
    bias = float(trainer.model.get_layer("probe").bias.numpy()[0])
    assert bias == pytest.approx(-2 * g, rel=1e-2)


@pytest.mark.parametrize("kwargs, match", [
    ({"steps_per_loop": 0}, "steps_per_loop"),
    ({"optimizer": "adagrad"}, "optimizer"),
    ({"mixed_precision": "float16"}, "mixed_precision"),
    ({"optimizer_kwargs": {"learning_rate": 0.1}}, "learning_rate"),
    ({"clipnorm": -1.0}, "clipnorm"),
    ({"max_nonfinite_steps": -1}, "max_nonfinite_steps"),
    ({"model_dir": ""}, "model_dir"),
])
def test_trainer_config_rejects_bad_values(tmp_path, kwargs, match):
    kwargs.setdefault("model_dir", str(tmp_path))
    with pytest.raises(ConfigError, match=match):
        TrainerConfig(**kwargs)


def test_bad_schedule_or_streams_fail_before_training(tmp_path):
    terms = fx.loss_terms()
    streams = {"landmarks": fx.stream("landmarks")}
    cfg = _config(tmp_path)
    with pytest.raises(ConfigError, match="unknown stream 'emotion'"):
        Trainer(fx.tiny_model, terms, streams, [Phase("p", 1, ("emotion",))], config=cfg)
    with pytest.raises(ConfigError, match="select no variable"):
        Trainer(fx.tiny_model, terms, streams, [Phase("p", 1, ("landmarks",), trainable=("nope_*",))], config=cfg)
    with pytest.raises(ConfigError, match="unknown model 'iter0'"):
        Trainer(fx.tiny_model, terms, streams, [Phase("p", 1, ("landmarks",), model="iter0")], config=cfg)
    with pytest.raises(ConfigError, match="stream 'landmarks' must be a DataConfig"):
        Trainer(fx.tiny_model, terms, {"landmarks": 3}, [Phase("p", 1, ("landmarks",))], config=cfg)
    with pytest.raises(ConfigError, match="model_fn must return"):
        Trainer(lambda: "model", terms, streams, [Phase("p", 1, ("landmarks",))], config=cfg)
    from keras_facemt.training.schedule import LossTerm

    bad_output = [LossTerm("landmarks", "points", "has_landmarks", fx.landmark_fn)]
    with pytest.raises(ConfigError, match="output 'points'"):
        Trainer(fx.tiny_model, bad_output, streams, [Phase("p", 1, ("landmarks",))], config=cfg)
    no_domain = {"landmarks": lambda ctx: fx.stream("landmarks")(ctx).map(
        lambda b: {k: v for k, v in b.items() if k != "domain"})}
    with pytest.raises(ConfigError, match=r"lacks model input\(s\) \['domain'\]"):
        Trainer(fx.tiny_model, terms, no_domain, [Phase("p", 1, ("landmarks",))], config=cfg).train()
    with pytest.raises(ConfigError, match="would train nothing"):
        Trainer(fx.tiny_model, terms, {"emotion": fx.stream("emotion")},
                [Phase("p", 1, ("emotion",), loss_terms=("landmarks",))], config=cfg).train()


@pytest.mark.slow
def test_determinism_same_seed_identical_weights_in_fresh_processes(tmp_path):
    # One process per run, as users rerun: op determinism and seeds must give the same
    # weights across processes, not only within one.
    procs = {}
    for key, seed in (("seed0_a", 0), ("seed0_b", 0), ("seed1", 1)):
        cmd = [sys.executable, os.path.join(REPO, "tests", "trainer_worker.py"), "--determinism-check",
               "--seed", str(seed), "--model-dir", str(tmp_path / key), "--out", str(tmp_path / key)]
        procs[key] = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    weights = {}
    for key, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        weights[key] = np.load(str(tmp_path / key) + ".npz")["weights"]
    assert np.array_equal(weights["seed0_a"], weights["seed0_b"])
    assert not np.array_equal(weights["seed0_a"], weights["seed1"])


def test_resume_in_process_restores_layers_kept_in_lists(tmp_path):
    # Sublayers held in a Python list are not in tf.train.Checkpoint's object graph
    # under Keras 3; the checkpoint must still carry (and restore) their variables.
    streams = {"landmarks": fx.stream("landmarks"), "emotion": fx.stream("emotion", seed=4)}
    first = [Phase("a", 2, ("landmarks",), loss_terms=("landmarks",))]
    both = first + [Phase("b", 2, ("landmarks", "emotion"))]
    Trainer(fx.tiny_model_with_list_block, fx.loss_terms(), streams, first,
            config=_config(tmp_path / "split", optimizer="adam")).train()
    resumed = Trainer(fx.tiny_model_with_list_block, fx.loss_terms(), streams, both,
                      config=_config(tmp_path / "split", optimizer="adam"))
    resumed.train()
    straight = Trainer(fx.tiny_model_with_list_block, fx.loss_terms(), streams, both,
                       config=_config(tmp_path / "straight", optimizer="adam"))
    straight.train()
    assert resumed.global_step == straight.global_step == 4
    assert int(resumed.optimizer.iterations.numpy()) == 4
    for a, b in zip(resumed.model.weights, straight.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6, err_msg=a.path)


def test_restore_model_for_export_and_architecture_mismatch(tmp_path):
    from keras_facemt.training.checkpointing import restore_model

    phases = [Phase("p", 1, ("landmarks",), loss_terms=("landmarks",))]
    streams = {"landmarks": fx.stream("landmarks")}
    trained = Trainer(fx.tiny_model_with_list_block, fx.loss_terms(), streams, phases, config=_config(tmp_path))
    trained.train()
    fresh = fx.tiny_model_with_list_block()
    assert restore_model(fresh, str(tmp_path / "run")) == 1
    for a, b in zip(trained.model.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(CheckpointError, match="No checkpoint found"):
        restore_model(fx.tiny_model(), str(tmp_path))
    with pytest.raises(CheckpointError, match="does not match the model"):
        restore_model(fx.tiny_model(num_domains=3), str(tmp_path / "run"))
    with pytest.raises(CheckpointError, match="does not match"):
        Trainer(lambda: fx.tiny_model(num_domains=3), fx.loss_terms(), streams, phases,
                config=_config(tmp_path)).train()


def test_progress_bar_reports_step_loss_throughput_and_eta():
    import io

    from keras_facemt.progress import ProgressBar, format_duration

    assert format_duration(65) == "1:05" and format_duration(3725) == "1:02:05" and format_duration(float("inf")) == "?"
    out = io.StringIO()
    bar = ProgressBar(100, unit="steps/s", stream=out, log_interval_s=0.0)
    line = bar.update(done=25, label="pretrain_landmarks", postfix="loss 0.5 123.4 ex/s", seconds=5.0)
    # 25 steps in 5 s (5 steps/s) -> 75 remaining steps take 15 s.
    assert line.startswith("pretrain_landmarks 25/100 [######") and "loss 0.5 " in line
    assert "123.4 ex/s" in line and "5.0 steps/s" in line and line.endswith("ETA 0:15")
    assert out.getvalue() == line + "\n"
