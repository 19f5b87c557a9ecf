"""The All-in-One job for the shared runner: data -> mixed multi-task training -> evaluation.

``run`` (called by ``training.runner.run_experiment``) does, for an
``AllInOneExperiment``:

1. renders the five Table I streams and the held-out sets (``data.py``): scene
   proposals labelled by IoU for detection, landmarks, visibility and pose; face
   proposals of separate populations for smile, gender, age and identity;
2. trains with the shared ``Trainer``: one batch from every stream per update
   (``mix``), Eq. 8 over the active terms, Eq. 6's age loss Euclidean then
   Gaussian (two phases);
3. evaluates every task next to its trivial baselines (``task.py``);
4. writes ``model.keras`` and ``run_config.json``; the runner writes
   ``results.json`` (with its ``headline`` list) and ``results.md``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Dict

from keras_facemt.models.allinone import task
from keras_facemt.models.allinone.experiments import (  # noqa: F401 (EXPERIMENTS, get_experiment: job API)
    EXPERIMENTS, AllInOneExperiment, get_experiment)

DEFAULT_EXPERIMENT = "allinone"
# ``--data STREAM=DIR``: a converted dataset replaces that Table I stream (``real_data.py``).
DATA_TASKS = ("aflw", "celeba", "imdb_wiki", "morph", "casia")


def model_config(exp: AllInOneExperiment):
    from keras_facemt.models.registry import get_system

    overrides = {"scene_size": exp.scene_size, "stage2_aligned": exp.aligned_crops, **dict(exp.model_overrides)}
    overrides["num_identities"] = exp.train_identities
    return get_system("allinone").config(exp.preset, **overrides)


def add_arguments(parser) -> None:
    """All-in-One's own flags for ``facemt train allinone``."""
    parser.add_argument("--steps", default=None,
                        help="EUCLIDEAN,GAUSSIAN updates (Eq. 6 lambda 0, then 1), e.g. 1500,500")


def parse_steps(text: str) -> dict:
    """``"EUCLIDEAN,GAUSSIAN"`` -> experiment overrides.

    Raises:
        ConfigError: for anything but two non-negative integers (the first >= 1).
    """
    from keras_facemt.training.runner import step_counts

    s1, s2 = step_counts(text, "EUCLIDEAN,GAUSSIAN", minimum=(1,))
    return {"steps_euclidean": s1, "steps_gaussian": s2}


def configure(exp: AllInOneExperiment, args) -> AllInOneExperiment:
    """``exp`` with the command line's ``--preset``, ``--seed`` and ``--steps``."""
    from keras_facemt.training.runner import common_overrides

    overrides = common_overrides(args)
    if getattr(args, "steps", None):
        overrides.update(parse_steps(args.steps))
    exp = dataclasses.replace(exp, **overrides) if overrides else exp
    model_config(exp)  # validates the preset now, not after rendering
    return exp


def phases(exp: AllInOneExperiment) -> list:
    """Every trained stream mixed in each update; Eq. 6 Euclidean (lambda 0), then Gaussian (lambda 1).

    Adam's rate decays by a cosine within each phase: from ``learning_rate`` to the
    point a single cosine over the whole run would reach at the switch, then on to
    2% of ``learning_rate``. ``age_loss`` "euclidean" / "gaussian" keeps one age
    loss in both phases (the ablation of Eq. 6's switch).
    """
    import numpy as np

    from keras_facemt.training.schedule import LearningRate, Phase

    total = exp.steps_euclidean + exp.steps_gaussian
    lr0, lr_end = exp.learning_rate, exp.learning_rate * 0.02
    cut = lr_end + 0.5 * (lr0 - lr_end) * (1 + np.cos(np.pi * exp.steps_euclidean / max(total, 1)))
    names = task.active_streams(exp)
    gaussian = {"switch": (False, True), "euclidean": (False, False), "gaussian": (True, True)}[exp.age_loss]
    label = ["gaussian_age" if g else "euclidean_age" for g in gaussian]
    if label[0] == label[1]:
        label[1] += "_continued"
    out = [Phase(label[0], exp.steps_euclidean, names, mode="mix",
                 loss_terms=task.active_terms(exp, gaussian[0]),
                 learning_rate=LearningRate(lr0, max(float(cut), lr_end * 1.0001), decay="cosine",
                                            warmup_steps=min(50, exp.steps_euclidean // 10)))]
    if exp.steps_gaussian:
        out.append(Phase(label[1], exp.steps_gaussian, names, mode="mix",
                         loss_terms=task.active_terms(exp, gaussian[1]),
                         learning_rate=LearningRate(max(float(cut), lr_end * 1.0001), lr_end, decay="cosine")))
    return out


def initialise_from(model, path: str, log=print) -> int:
    """Copies into ``model`` the weights of every layer of ``path``'s model with the same name and shapes.

    Returns:
        the number of layers copied.

    Raises:
        ConfigError: ``path`` missing, or no layer in common.
    """
    import os

    import keras

    from keras_facemt.errors import ConfigError

    if not os.path.isfile(path):
        raise ConfigError(f"init_from must name a saved .keras model. Received: init_from={path!r}")
    source = {layer.name: layer for layer in keras.saving.load_model(path, compile=False, safe_mode=True).layers}
    copied = 0
    for layer in model.layers:
        src = source.get(layer.name)
        if src is None or not layer.weights:
            continue
        weights = src.get_weights()
        if [w.shape for w in weights] == [tuple(v.shape) for v in layer.weights]:
            layer.set_weights(weights)
            copied += 1
    if not copied:
        raise ConfigError(f"init_from shares no layer with this model (another preset?). Received: init_from={path!r}")
    log(f"initialised {copied} layers from {path}")
    return copied


def bn_domains(data_dirs: Dict[str, str]) -> Dict[str, Dict[str, int]]:
    """Per-dataset BN domains: SynthFace is domain 0, each distinct converted directory the next id.

    Returns:
        ``{"streams": {stream: id}, "names": {name: id}}``: the id of each stream
        given with ``--data`` (others are 0), and the names a user may give
        ``--domain`` (``synthface``, the stream names and the datasets the
        directories' manifests list).
    """
    from keras_facemt.data import shards

    ids: Dict[str, int] = {}
    for stream, path in sorted(data_dirs.items()):
        ids.setdefault(path, len(ids) + 1)
    names = {"synthface": 0}
    for stream, path in sorted(data_dirs.items()):
        names[stream] = ids[path]
        for dataset in shards.read_manifest(path).get("datasets") or {}:
            names.setdefault(str(dataset), ids[path])
    return {"streams": {s: ids[p] for s, p in data_dirs.items()}, "names": names}


def train(exp: AllInOneExperiment, cfg, data: Dict, ctx, domains: Dict[str, Dict[str, int]] = None):
    """Both phases with the shared trainer; returns (model, history, seconds).

    ``domains`` (``bn_domains``): the stream -> BN domain ids fed with each batch when
    the model has per-dataset BN.
    """
    import tensorflow as tf

    from keras_facemt.models.allinone.losses import loss_terms
    from keras_facemt.models.model_info import write_run_config
    from keras_facemt.models.registry import get_system
    from keras_facemt.training.schedule import LossTerm
    from keras_facemt.training.trainer import Trainer, TrainerConfig

    system = get_system("allinone")
    names = (domains or {}).get("names") if cfg.bn_domains > 1 else None
    stream_domains = (domains or {}).get("streams", {}) if cfg.bn_domains > 1 else None

    def build():
        model = system.build(cfg, exp.preset, names)
        if exp.init_from:
            initialise_from(model, exp.init_from, ctx.log)
        return model

    trainer = Trainer(
        build,
        tuple(LossTerm(*spec) for spec in loss_terms(dict(exp.loss_weights), cfg.pose_scale)),
        task.streams(exp, data["train"], stream_domains), phases(exp),
        TrainerConfig(model_dir=ctx.model_dir, steps_per_loop=25, optimizer="adam", clipnorm=10.0, seed=exp.seed,
                      deterministic=ctx.deterministic, summaries=False, progress=False, checkpoint_every_loops=20),
        strategy=ctx.strategy if ctx.strategy is not None else tf.distribute.get_strategy(),
    )
    if trainer.is_chief:
        sources = {name: dict(ctx.data).get(name, "synthface") for name in task.active_streams(exp)}
        write_run_config(ctx.model_dir, system.model_info(cfg, exp.preset, names), exp.name, sources)
    t = time.time()
    history = trainer.train()
    seconds = time.time() - t
    ctx.log(f"trained {exp.steps_euclidean}+{exp.steps_gaussian} steps in {seconds:.0f}s")
    return trainer.model, history, seconds


def run(exp: AllInOneExperiment, ctx) -> Dict[str, object]:
    """Runs ``exp`` into ``ctx.model_dir`` (``training.runner.RunContext``); returns All-in-One's results."""
    from keras_facemt.models.allinone import real_data
    from keras_facemt.models.allinone.data import prepare
    from keras_facemt.models.registry import get_system
    from keras_facemt.serving.keras_format import save_model

    t0 = time.time()
    timings: Dict[str, float] = {}
    cfg = model_config(exp)
    real = real_data.load_streams(dict(ctx.data), exp, cfg.image_size, log=ctx.log) if ctx.data else {}
    if "casia" in real:  # the identity classifier spans the converted dataset's people
        exp = dataclasses.replace(exp, train_identities=real_data.identities_in(real["casia"], ctx.data["casia"]))
    domains = bn_domains(dict(ctx.data))
    if domains["streams"] and model_config(exp).batch_norm:
        # Converted data differ from the rendered streams (and from each other): per-dataset BN.
        n = 1 + len(set(domains["streams"].values()))
        exp = dataclasses.replace(exp, model_overrides=tuple(exp.model_overrides) + (("bn_domains", n),))
    cfg = model_config(exp)
    data = prepare(exp, cfg.image_size, ctx.cache_dir or ctx.path("data"), log=ctx.log, real=real)
    # Stage 1's box prior travels with the model, so its deployable graph needs no training data.
    from keras_facemt.models.allinone.scene_pipeline import fitted_box_prior

    cfg = dataclasses.replace(cfg, detector=dataclasses.replace(
        cfg.detector, box_prior=tuple(fitted_box_prior(data["train"]["aflw"]))))
    timings["data"] = time.time() - t0
    model, history, seconds = train(exp, cfg, data, ctx, domains)
    timings["train"] = seconds
    t = time.time()
    metrics = task.evaluate(model, exp, data)
    timings["evaluate"] = time.time() - t
    steps = exp.steps_euclidean + exp.steps_gaussian
    results = {
        "config": dataclasses.asdict(cfg), "params": int(model.count_params()),
        "train_examples_per_second": sum(dict(exp.batch_sizes).values()) * steps / max(seconds, 1e-9),
        "metrics": metrics, "timings_seconds": timings, "data_issues": history.get("data_issues", {}),
        "training_examples": {k: int(len(v["image"])) for k, v in data["train"].items()},
        "training_sources": {k: dict(ctx.data).get(k, "synthface") for k in data["train"]},
    }
    results["headline"] = task.headline(metrics)
    names = domains["names"] if cfg.bn_domains > 1 else None
    path = save_model(model, ctx.path("model.keras"), info=get_system("allinone").model_info(cfg, exp.preset, names))
    results["paths"] = {"model_keras": path}
    return results


results_markdown = task.results_markdown
