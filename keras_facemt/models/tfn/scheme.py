"""TFN's training scheme and its scoring on held-out scenes, shared by ``job.run`` and the MORPH
protocol (``morph_protocol.py``): an experiment's model config, the SynthFace scenes, the Eq. 1
loss terms, Sec. IV-C's four stages as trainer phases, the trainer run and ``task.evaluate``
of the deployable graph.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Dict

from keras_facemt.models.tfn.experiments import TFNExperiment
from keras_facemt.models.tfn.task import FACE_ROI_PRESENCE, TASKS, collect_labels, evaluate, train_stream

SCENES_FORMAT = 1
EVAL_SCORE_THRESHOLD = 0.05


def model_config(exp: TFNExperiment):
    from keras_facemt.models.registry import get_system

    return get_system("tfn").config(exp.preset, **dict(exp.model_overrides))


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
    write_synthetic(path, kind="scenes", tasks=TASKS, domain=exp.domain, count=total, shards=2, seed=exp.seed,
                    image_size=image_size,
                    splits=(("train", exp.train_scenes / total), ("test", exp.test_scenes / total)),
                    overwrite=True, max_faces=exp.max_faces, min_faces=exp.min_faces, landmark_scheme="ibug68")
    log(f"rendered {total} scenes in {time.time() - t:.0f}s")
    return path


def loss_terms(cfg, rpn_matcher: str = "top_k"):
    """The Eq. 1 terms as ``LossTerm``s; ``rpn_matcher`` as ``losses.rpn_losses``.

    Presence: the RPN and detection terms count on images with exhaustive boxes
    (``has_boxes``: their negatives are every other region); the landmark and attribute
    terms on images with a face box to sample from (``FACE_ROI_PRESENCE``), so a
    one-face photo without exhaustive boxes (MORPH) still trains the attribute subnet.
    """
    from keras_facemt.data import batch as batch_keys
    from keras_facemt.models.tfn.losses import loss_functions
    from keras_facemt.models.tfn.model import anchors_of
    from keras_facemt.training.schedule import LossTerm

    heatmap = cfg.roi_size * cfg.heatmap_upsample if cfg.heatmap_landmarks else None
    return tuple(LossTerm(name, output, batch_keys.HAS_BOXES if name.startswith(("rpn/", "detection/"))
                          else FACE_ROI_PRESENCE, fn, weight)
                 for name, (output, fn, weight) in loss_functions(anchors_of(cfg), heatmap,
                                                                  rpn_matcher=rpn_matcher).items())


STAGE_NAMES = ("stage1_joint", "stage2_detection", "stage3_landmarks", "stage4_attributes")


def phases(exp: TFNExperiment, attribute_stream: str = "scenes", joint_terms=("*",)):
    """Sec. IV-C's four stages as trainer phases (a stage with 0 steps is left out).

    Args:
        attribute_stream: the stream stage 4 draws from (Sec. V-C: MORPH II's training
            subset, while stages 1-3 read the scenes).
        joint_terms: the loss terms of stage 1 (``("*",)``: every Eq. 1 term).
    """
    from keras_facemt.models.tfn.model import PART_VARIABLES as parts
    from keras_facemt.training.schedule import LearningRate, Phase

    specs = [
        (joint_terms, (), "scenes"),
        (("rpn/*", "detection/*"), parts["stem"] + parts["rpn"] + parts["detection"], "scenes"),
        (("landmarks",), parts["landmarks"], "scenes"),
        (("attributes/*",), parts["attributes"], attribute_stream),
    ]
    out = []
    for name, (terms, trainable, stream), steps, lr in zip(STAGE_NAMES, specs, exp.stage_steps, exp.learning_rates):
        if not steps:
            continue
        drops = tuple(sorted({int(round(f * steps)) for f in exp.stage_drops if 1 <= int(round(f * steps)) < steps}))
        out.append(Phase(name, steps, (stream,), loss_terms=tuple(terms), trainable=trainable,
                         learning_rate=LearningRate(lr, decay="step", boundaries=drops)))
    return out


def train(exp: TFNExperiment, cfg, data_dir: str, model_dir: str, strategy=None, deterministic: bool = False,
          log: Callable = print, streams=None, schedule=None, model_fn=None, datasets=None):
    """Runs the four stages with the shared trainer; returns (model, history, seconds).

    ``streams`` / ``schedule`` / ``model_fn`` replace the scene stream of ``data_dir``,
    ``phases(exp)`` and a freshly built TFN (the MORPH protocol trains its folds' stage 4
    from a trained base, ``morph_protocol.py``); ``datasets`` (default ``{"train":
    data_dir}``) is what ``run_config.json`` records.
    """
    import tensorflow as tf

    from keras_facemt.models.model_info import write_run_config
    from keras_facemt.models.registry import get_system
    from keras_facemt.models.tfn import model as tfn_model
    from keras_facemt.training.trainer import Trainer, TrainerConfig

    kwargs = {"momentum": exp.momentum, "weight_decay": exp.weight_decay} if exp.optimizer == "sgd" else {}
    schedule = list(schedule if schedule is not None else phases(exp))
    trainer = Trainer(
        model_fn or (lambda: tfn_model.build_model(cfg)), loss_terms(cfg, exp.rpn_matcher),
        streams or {"scenes": train_stream(exp, data_dir, cfg.image_size)}, schedule,
        TrainerConfig(model_dir=model_dir, steps_per_loop=10, optimizer=exp.optimizer, optimizer_kwargs=kwargs,
                      clipnorm=10.0, seed=exp.seed, deterministic=deterministic, summaries=False, progress=False,
                      checkpoint_every_loops=20),
        strategy=strategy if strategy is not None else tf.distribute.get_strategy(),
    )
    if trainer.is_chief:
        write_run_config(model_dir, get_system("tfn").model_info(cfg, exp.preset), exp.name,
                         dict(datasets or {"train": data_dir}))
    t = time.time()
    history = trainer.train()
    seconds = time.time() - t
    log(f"trained {'+'.join(str(p.steps) for p in schedule)} steps in {seconds:.0f}s")
    return trainer.model, history, seconds


def final_losses(history) -> Dict[str, Dict[str, float]]:
    return {p.get("name", str(i)): {k: float(v) for k, v in (p.get("metrics") or {}).items()
                                    if isinstance(v, (int, float))}
            for i, p in enumerate(history.get("phases") or [])}


def evaluate_scenes(exp: TFNExperiment, cfg, model, scenes: str, train_dir: str) -> Dict[str, object]:
    """``evaluate`` of ``model``'s deployable graph on the held-out SynthFace scenes of ``scenes``."""
    from keras_facemt.models.registry import get_system

    # AP integrates over every score: evaluate with a low threshold, as detection benchmarks do.
    served = get_system("tfn").serving_model(model, dataclasses.replace(cfg, score_threshold=EVAL_SCORE_THRESHOLD),
                                              exp.preset)
    return evaluate(served, collect_labels(exp, scenes, "test", cfg.image_size),
                    collect_labels(exp, train_dir, "train", cfg.image_size), cfg.max_detections)
