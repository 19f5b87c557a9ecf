"""The TFN job: data -> the four-stage alternating scheme -> evaluation -> report.

``run_experiment`` does, for a ``TFNExperiment``:

1. renders (or reuses, from ``cache_dir``) the SynthFace train / test scenes with
   boxes, 68 points, age, gender and ethnicity;
2. trains with the shared ``Trainer`` through Sec. IV-C's four stages as phases:
   (1) every Eq. 1 term, every variable; (2) RPN + detection terms, the stem, the
   RPN and the detection subnet; (3) the landmark term, only the landmark subnet and
   its block (samples: shaken ground-truth boxes and their refinement by the
   detection subnet); (4) the attribute terms, only the attribute subnet and its
   block. Each stage has step learning-rate decay (/10 at ``stage_drops``);
3. evaluates the deployable graph (``task.evaluate``): AP@0.5, matched-face NME
   with CED / failure rates, age MAE, gender and ethnicity accuracy, each next to
   its trivial baseline;
4. writes ``model.keras`` (with its model info), ``run_config.json``,
   ``results.json`` (with its ``headline`` list) and ``results.md`` atomically.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Dict, Optional

from keras_facemt.errors import ConfigError
from keras_facemt.models.tfn import task
from keras_facemt.models.tfn.experiments import TFNExperiment

SCENES_FORMAT = 1
EVAL_SCORE_THRESHOLD = 0.05


def model_config(exp: TFNExperiment):
    from keras_facemt.models.registry import get_system

    return get_system("tfn").config(exp.preset, **dict(exp.model_overrides))


def _has_checkpoint(model_dir: str) -> bool:
    from keras_facemt.training.checkpointing import latest_checkpoint

    return os.path.isdir(model_dir) and latest_checkpoint(model_dir) is not None


def render_scenes(exp: TFNExperiment, image_size: int, cache_dir: str, log: Callable = print) -> str:
    """Renders (or reuses) the train / test scenes of ``exp`` under ``cache_dir``."""
    from keras_facemt.data.shards import read_manifest
    from keras_facemt.data.synthetic import write_synthetic

    key = (f"tfn_scenes_v{SCENES_FORMAT}_{exp.domain}_s{exp.seed}_{image_size}px_{exp.train_scenes}+"
           f"{exp.test_scenes}_f{exp.min_faces}-{exp.max_faces}")
    path = os.path.join(cache_dir, key)
    try:
        read_manifest(path)
        return path
    except Exception:  # noqa: BLE001 - an absent or unreadable manifest means "render again"
        pass
    t = time.time()
    total = exp.train_scenes + exp.test_scenes
    write_synthetic(path, kind="scenes", tasks=task.TASKS, domain=exp.domain, count=total, shards=2, seed=exp.seed,
                    image_size=image_size,
                    splits=(("train", exp.train_scenes / total), ("test", exp.test_scenes / total)),
                    overwrite=True, max_faces=exp.max_faces, min_faces=exp.min_faces, landmark_scheme="ibug68")
    log(f"rendered {total} scenes in {time.time() - t:.0f}s")
    return path


def loss_terms(cfg):
    """The Eq. 1 terms as ``LossTerm``s (presence: images with exhaustive boxes)."""
    from keras_facemt.data import batch as batch_keys
    from keras_facemt.models.tfn.losses import loss_functions
    from keras_facemt.models.tfn.model import anchors_of
    from keras_facemt.training.schedule import LossTerm

    heatmap = cfg.roi_size * cfg.heatmap_upsample if cfg.heatmap_landmarks else None
    return tuple(LossTerm(name, output, batch_keys.HAS_BOXES, fn, weight)
                 for name, (output, fn, weight) in loss_functions(anchors_of(cfg), heatmap).items())


def phases(exp: TFNExperiment):
    """Sec. IV-C's four stages as trainer phases (a stage with 0 steps is left out)."""
    from keras_facemt.models.tfn.model import PART_VARIABLES as parts
    from keras_facemt.training.schedule import LearningRate, Phase

    specs = [
        ("stage1_joint", ("*",), ()),
        ("stage2_detection", ("rpn/*", "detection/*"), parts["stem"] + parts["rpn"] + parts["detection"]),
        ("stage3_landmarks", ("landmarks",), parts["landmarks"]),
        ("stage4_attributes", ("attributes/*",), parts["attributes"]),
    ]
    out = []
    for (name, terms, trainable), steps, lr in zip(specs, exp.stage_steps, exp.learning_rates):
        if not steps:
            continue
        drops = tuple(sorted({int(round(f * steps)) for f in exp.stage_drops if 1 <= int(round(f * steps)) < steps}))
        out.append(Phase(name, steps, ("scenes",), loss_terms=terms, trainable=trainable,
                         learning_rate=LearningRate(lr, decay="step", boundaries=drops)))
    return out


def train(exp: TFNExperiment, cfg, data_dir: str, model_dir: str, strategy=None, deterministic: bool = False,
          log: Callable = print):
    """Runs the four stages with the shared trainer; returns (model, history, seconds)."""
    import tensorflow as tf

    from keras_facemt.io import write_json_atomic
    from keras_facemt.models.tfn import model as tfn_model
    from keras_facemt.serving.model_source import RUN_CONFIG
    from keras_facemt.training.trainer import Trainer, TrainerConfig

    kwargs = {"momentum": exp.momentum, "weight_decay": exp.weight_decay} if exp.optimizer == "sgd" else {}
    trainer = Trainer(
        lambda: tfn_model.build_model(cfg), loss_terms(cfg),
        {"scenes": task.train_stream(exp, data_dir, cfg.image_size)}, phases(exp),
        TrainerConfig(model_dir=model_dir, steps_per_loop=10, optimizer=exp.optimizer, optimizer_kwargs=kwargs,
                      clipnorm=10.0, seed=exp.seed, deterministic=deterministic, summaries=False, progress=False,
                      checkpoint_every_loops=20),
        strategy=strategy if strategy is not None else tf.distribute.get_strategy(),
    )
    write_json_atomic(os.path.join(model_dir, RUN_CONFIG), {
        "system": "tfn", "preset": exp.preset, "config": dataclasses.asdict(cfg), "domains": {},
        "datasets": [os.path.basename(os.path.normpath(data_dir))], "experiment": exp.name,
    })
    t = time.time()
    history = trainer.train()
    seconds = time.time() - t
    log(f"trained {'+'.join(str(s) for s in exp.stage_steps)} steps in {seconds:.0f}s")
    return trainer.model, history, seconds


def _final_losses(history) -> Dict[str, Dict[str, float]]:
    return {p.get("name", str(i)): {k: float(v) for k, v in (p.get("metrics") or {}).items()
                                    if isinstance(v, (int, float))}
            for i, p in enumerate(history.get("phases") or [])}


def run_experiment(exp: TFNExperiment, model_dir: str, cache_dir: Optional[str] = None, strategy=None,
                   resume: bool = False, deterministic: bool = False, train_data: Optional[str] = None,
                   log: Callable[[str], None] = print) -> Dict[str, object]:
    """Runs ``exp`` end to end into ``model_dir``; returns the results dict.

    Args:
        cache_dir: where rendered scenes are kept between runs (default ``<model_dir>/data``).
        resume: continue from the checkpoint in ``model_dir``; without it an existing
            checkpoint is refused.
        train_data: a converted scenes dataset (boxes, ibug68 landmarks, age_class,
            gender, ethnicity) to train on instead of the synthetic training split.

    Raises:
        ConfigError: a checkpoint in ``model_dir`` without ``resume``.
    """
    from keras_facemt.io import write_json_atomic, write_text_atomic
    from keras_facemt.machine import machine_info
    from keras_facemt.models.registry import get_system
    from keras_facemt.serving.keras_format import save_model

    if not resume and _has_checkpoint(model_dir):
        raise ConfigError(f"{model_dir} already holds a checkpoint. Pass --resume to continue that run, or choose "
                          f"another --model-dir. Received: model_dir={model_dir!r}")
    os.makedirs(model_dir, exist_ok=True)
    t0 = time.time()
    timings: Dict[str, float] = {}
    cfg = model_config(exp)
    scenes = render_scenes(exp, cfg.image_size, cache_dir or os.path.join(model_dir, "data"), log)
    train_dir = train_data or scenes
    timings["data"] = time.time() - t0
    model, history, seconds = train(exp, cfg, train_dir, model_dir, strategy, deterministic, log)
    timings["train"] = seconds
    t = time.time()
    system = get_system("tfn")
    # AP integrates over every score: evaluate with a low threshold, as detection benchmarks do.
    served = system.serving_model(model, dataclasses.replace(cfg, score_threshold=EVAL_SCORE_THRESHOLD), exp.preset)
    res = task.evaluate(served, task.collect_labels(exp, scenes, "test", cfg.image_size),
                        task.collect_labels(exp, train_dir, "train", cfg.image_size), cfg.max_detections)
    timings["evaluate"] = time.time() - t
    timings["total"] = time.time() - t0
    results = {
        "system": "tfn", "experiment": dataclasses.asdict(exp), "config": dataclasses.asdict(cfg),
        "machine": machine_info(), "params": int(model.count_params()),
        "train_images_per_second": exp.batch_size * sum(exp.stage_steps) / max(seconds, 1e-9),
        "final_losses": _final_losses(history), "nonfinite_steps": int(history.get("nonfinite_steps", 0)),
        **res, "timings_seconds": timings,
    }
    results["headline"] = task.headline(results)
    save_model(model, os.path.join(model_dir, "model.keras"), info=system.model_info(cfg, exp.preset))
    write_json_atomic(os.path.join(model_dir, "results.json"), results)
    write_text_atomic(os.path.join(model_dir, "results.md"), task.results_markdown(results))
    for h in results["headline"]:
        log(f"{h['metric']}: {h['model']:.4f} (baseline {h['baseline_name']} {h['baseline']:.4f})")
    return results


def resolve_strategy(name: str):
    """The ``tf.distribute`` strategy of a ``--strategy`` name (``training.strategy.get_strategy``)."""
    from keras_facemt.training.strategy import get_strategy

    return get_strategy(name)
