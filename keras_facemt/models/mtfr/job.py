"""The MTFR job: data -> stage 1 (identity) -> stage 2 (identity + attributes) -> evaluation -> report.

``run_experiment`` does, for an ``MTFRExperiment``:

1. renders the aligned SynthFace populations (``data.py``): training shards (with
   noisy attribute labels repaired by the per-identity vote when asked), and the
   threshold, test and distractor populations, all disjoint;
2. trains with the shared ``Trainer``: SGD with momentum and step decay, stage 1
   on the identity softmax alone (lambda1 = 0), stage 2 on Eq. 2 with lambda1 > 0;
3. evaluates verification, identification with distractors, TAR at FAR and the
   attributes, next to trivial baselines (chance, majority class, raw pixels);
4. writes ``model.keras``, ``run_config.json``, ``results.json`` (with its
   ``headline`` list) and ``results.md`` atomically.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Dict, Optional

import numpy as np

from keras_facemt.errors import ConfigError
from keras_facemt.models.mtfr import task
from keras_facemt.models.mtfr.experiments import MTFRExperiment


def model_config(exp: MTFRExperiment):
    from keras_facemt.models.registry import get_system

    overrides = dict(exp.model_overrides)
    overrides["num_identities"] = exp.train_identities
    return get_system("mtfr").config(exp.preset, **overrides)


def _has_checkpoint(model_dir: str) -> bool:
    from keras_facemt.training.checkpointing import latest_checkpoint

    return os.path.isdir(model_dir) and latest_checkpoint(model_dir) is not None


def _train_labels(train_dir: str) -> np.ndarray:
    """``[N, 7]`` attribute labels of the training shards (for the majority baseline)."""
    import glob

    from keras_facemt.data.shards import iter_records

    rows = []
    for path in sorted(glob.glob(os.path.join(train_dir, "*.tfrecord"))):
        for rec in iter_records(path):
            rows.append([int(rec.attributes.get(t, [0])[0]) for t in task.ATTRIBUTE_TASKS])
    return np.asarray(rows, np.int64).reshape(-1, 7)


def train(exp: MTFRExperiment, cfg, train_dir: str, model_dir: str, strategy=None, deterministic: bool = False,
          with_attributes: bool = True, log: Callable = print):
    """Runs both stages with the shared trainer; returns (model, history, seconds)."""
    import tensorflow as tf

    from keras_facemt.models.mtfr import model as mtfr_model
    from keras_facemt.models.mtfr.losses import loss_terms
    from keras_facemt.serving.model_source import RUN_CONFIG
    from keras_facemt.io import write_json_atomic
    from keras_facemt.training.trainer import Trainer, TrainerConfig

    terms = loss_terms(cfg.attributes, exp.attribute_weight)
    if not cfg.attributes:
        with_attributes = False
    trainer = Trainer(
        lambda: mtfr_model.build_model(cfg), terms,
        {"faces": task.train_stream(exp, cfg.image_size, train_dir)}, task.phases(exp, with_attributes),
        TrainerConfig(model_dir=model_dir, steps_per_loop=20, optimizer="sgd",
                      optimizer_kwargs={"momentum": exp.momentum, "weight_decay": exp.weight_decay},
                      seed=exp.seed, deterministic=deterministic, summaries=False, progress=False,
                      checkpoint_every_loops=10),
        strategy=strategy if strategy is not None else tf.distribute.get_strategy(),
    )
    write_json_atomic(os.path.join(model_dir, RUN_CONFIG), {
        "system": "mtfr", "preset": exp.preset, "config": dataclasses.asdict(cfg), "domains": {},
        "datasets": [os.path.basename(os.path.normpath(train_dir))], "experiment": exp.name,
    })
    t = time.time()
    history = trainer.train()
    seconds = time.time() - t
    log(f"trained {exp.stage1_steps}+{exp.stage2_steps} steps in {seconds:.0f}s")
    return trainer.model, history, seconds


def evaluate(model, cfg, exp: MTFRExperiment, data: Dict, train_labels: np.ndarray) -> Dict[str, object]:
    """Every paper metric of ``model`` on the held-out populations, plus baselines."""
    test, val, dis = data["test"], data["val"], data["distractors"]
    pairs, same, folds = task.balanced_pairs(test["identity"], exp.verification_pairs, exp.seed)
    vp, vs, _ = task.balanced_pairs(val["identity"], max(20, exp.verification_pairs // 2) // 20 * 20, exp.seed + 1)
    distractors = dis["images"][:exp.distractors]
    p_test, p_val, p_dis = (task.predict(model, x) for x in (test["images"], val["images"], distractors))
    metrics = task.recognition_metrics(p_test["embedding"], test["identity"], p_dis["embedding"], pairs, same, folds,
                                       p_val["embedding"], vp, vs)
    if cfg.attributes:
        metrics["attributes"] = task.attribute_metrics(p_test["attributes"], test["attributes"], cfg.attributes,
                                                       train_labels)
    px = [task.pixel_embedding(x) for x in (test["images"], val["images"], distractors)]
    pixels = task.recognition_metrics(px[0], test["identity"], px[2], pairs, same, folds, px[1], vp, vs)
    return {"metrics": metrics, "baselines": {"pixels": pixels, "chance_verification": 0.5}}


def run_experiment(exp: MTFRExperiment, model_dir: str, cache_dir: Optional[str] = None, strategy=None,
                   resume: bool = False, deterministic: bool = False, train_data: Optional[str] = None,
                   log: Callable[[str], None] = print) -> Dict[str, object]:
    """Runs ``exp`` end to end into ``model_dir``; returns the results dict.

    Args:
        cache_dir: where rendered data is kept between runs (default ``<model_dir>/data``).
        resume: continue from the checkpoint in ``model_dir``; without it an existing
            checkpoint is refused.
        train_data: a converted dataset (identity + ``celeba/<name>`` labels, aligned
            crops) to train on instead of the synthetic training population.

    Raises:
        ConfigError: a checkpoint in ``model_dir`` without ``resume``.
    """
    from keras_facemt.io import write_json_atomic, write_text_atomic
    from keras_facemt.machine import machine_info

    if not resume and _has_checkpoint(model_dir):
        raise ConfigError(f"{model_dir} already holds a checkpoint. Pass --resume to continue that run, or choose "
                          f"another --model-dir. Received: model_dir={model_dir!r}")
    os.makedirs(model_dir, exist_ok=True)
    t0 = time.time()
    timings: Dict[str, float] = {}
    cfg = model_config(exp)
    from keras_facemt.models.mtfr.data import prepare

    data = prepare(exp, cfg.image_size, cache_dir or os.path.join(model_dir, "data"), log=log)
    train_dir = train_data or data["train_dir"]
    timings["data"] = time.time() - t0
    model, history, seconds = train(exp, cfg, train_dir, model_dir, strategy, deterministic, log=log)
    timings["train"] = seconds
    t = time.time()
    train_labels = _train_labels(train_dir)
    res = evaluate(model, cfg, exp, data, train_labels)
    timings["evaluate"] = time.time() - t
    timings["total"] = time.time() - t0
    results = {
        "system": "mtfr", "experiment": dataclasses.asdict(exp), "config": dataclasses.asdict(cfg),
        "machine": machine_info(), "params": int(model.count_params()),
        "train_images_per_second": exp.batch_size * (exp.stage1_steps + exp.stage2_steps) / max(seconds, 1e-9),
        **res, "timings_seconds": timings,
    }
    results["headline"] = task.headline(results)
    from keras_facemt.models.registry import get_system
    from keras_facemt.serving.keras_format import save_model

    # The file says what it is: MTFR, its preset and config, its output declaration.
    save_model(model, os.path.join(model_dir, "model.keras"),
               info=get_system("mtfr").model_info(cfg, exp.preset))
    write_json_atomic(os.path.join(model_dir, "results.json"), results)
    write_text_atomic(os.path.join(model_dir, "results.md"), task.results_markdown(results))
    for h in results["headline"]:
        log(f"{h['metric']}: {h['model']:.4f} (baseline {h['baseline_name']} {h['baseline']:.4f})")
    return results
