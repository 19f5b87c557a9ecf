"""The MTFR job for the shared runner: data -> stage 1 (identity) -> stage 2 (identity + attributes) -> evaluation.

``run`` (called by ``training.runner.run_experiment``) does, for an ``MTFRExperiment``:

1. renders the aligned SynthFace populations (``data.py``): training shards (with
   noisy attribute labels repaired by the per-identity vote when asked), and the
   threshold, test and distractor populations, all disjoint;
2. trains with the shared ``Trainer``: SGD with momentum and step decay, stage 1
   on the identity softmax alone (lambda1 = 0), stage 2 on Eq. 2 with lambda1 > 0;
3. evaluates verification, identification with distractors, TAR at FAR and the
   attributes, next to trivial baselines (chance, majority class, raw pixels);
4. writes ``model.keras`` and ``run_config.json``; the runner writes
   ``results.json`` (with its ``headline`` list) and ``results.md``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Dict

import numpy as np

from keras_facemt.models.mtfr import task
from keras_facemt.models.mtfr.experiments import EXPERIMENTS, MTFRExperiment, get_experiment  # noqa: F401


def model_config(exp: MTFRExperiment):
    from keras_facemt.models.registry import get_system

    overrides = dict(exp.model_overrides)
    overrides["num_identities"] = exp.train_identities
    return get_system("mtfr").config(exp.preset, **overrides)


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

    from keras_facemt.models.model_info import write_run_config
    from keras_facemt.models.mtfr import model as mtfr_model
    from keras_facemt.models.mtfr.losses import loss_terms
    from keras_facemt.models.registry import get_system
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
    if trainer.is_chief:
        write_run_config(model_dir, get_system("mtfr").model_info(cfg, exp.preset), exp.name, {"train": train_dir})
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


DEFAULT_EXPERIMENT = "mtfr"
DATA_TASKS = ("train",)


def add_arguments(parser) -> None:
    """MTFR's own flags for ``facemt train mtfr``."""
    parser.add_argument("--steps", default=None, help="STAGE1,STAGE2 updates, e.g. 1400,600")


def parse_steps(text: str) -> dict:
    """``"STAGE1,STAGE2"`` -> experiment overrides.

    Raises:
        ConfigError: for anything but two non-negative integers.
    """
    from keras_facemt.training.runner import step_counts

    s1, s2 = step_counts(text, "STAGE1,STAGE2")
    return {"stage1_steps": s1, "stage2_steps": s2}


def configure(exp: MTFRExperiment, args) -> MTFRExperiment:
    """``exp`` with the command line's ``--preset``, ``--seed`` and ``--steps``."""
    from keras_facemt.training.runner import common_overrides

    overrides = common_overrides(args)
    if getattr(args, "steps", None):
        overrides.update(parse_steps(args.steps))
    exp = dataclasses.replace(exp, **overrides) if overrides else exp
    model_config(exp)  # validates the preset now, not after rendering
    return exp


def run(exp: MTFRExperiment, ctx) -> Dict[str, object]:
    """Runs ``exp`` into ``ctx.model_dir`` (``training.runner.RunContext``); returns MTFR's results.

    ``ctx.data["train"]``, when given, is a converted dataset (identity +
    ``celeba/<name>`` labels, aligned crops) trained on instead of the synthetic
    training population; evaluation stays on the synthetic held-out populations.
    """
    t0 = time.time()
    timings: Dict[str, float] = {}
    cfg = model_config(exp)
    from keras_facemt.models.mtfr.data import prepare

    data = prepare(exp, cfg.image_size, ctx.cache_dir or ctx.path("data"), log=ctx.log)
    train_dir = ctx.data.get("train") or data["train_dir"]
    timings["data"] = time.time() - t0
    model, history, seconds = train(exp, cfg, train_dir, ctx.model_dir, ctx.strategy, ctx.deterministic, log=ctx.log)
    timings["train"] = seconds
    t = time.time()
    train_labels = _train_labels(train_dir)
    res = evaluate(model, cfg, exp, data, train_labels)
    timings["evaluate"] = time.time() - t
    results = {
        "config": dataclasses.asdict(cfg), "params": int(model.count_params()),
        "train_images_per_second": exp.batch_size * (exp.stage1_steps + exp.stage2_steps) / max(seconds, 1e-9),
        **res, "timings_seconds": timings, "data_issues": history.get("data_issues", {}),
    }
    results["headline"] = task.headline(results, exp)
    from keras_facemt.models.registry import get_system
    from keras_facemt.serving.keras_format import save_model

    # The file says what it is: MTFR, its preset and config, its output declaration.
    path = save_model(model, ctx.path("model.keras"), info=get_system("mtfr").model_info(cfg, exp.preset))
    results["paths"] = {"model_keras": path}
    return results


results_markdown = task.results_markdown
