"""The TFN job for the shared runner: data -> the four-stage alternating scheme -> evaluation.

``run`` (called by ``training.runner.run_experiment``) does, for a ``TFNExperiment``:

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
4. writes ``model.keras`` (with its model info) and ``run_config.json``; the
   runner writes ``results.json`` (with its ``headline`` list) and ``results.md``.

With ``--data morph=DIR`` (a ``convert_morph.py --protocol s123`` conversion) the run
is the MORPH II S1 / S2 / S3 protocol of Table V instead (``morph_protocol.py``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Dict

from keras_facemt.models.tfn import task
from keras_facemt.models.tfn.experiments import EXPERIMENTS, TFNExperiment, get_experiment  # noqa: F401
from keras_facemt.models.tfn.scheme import (EVAL_SCORE_THRESHOLD, SCENES_FORMAT, STAGE_NAMES,  # noqa: F401
                                            evaluate_scenes, final_losses, loss_terms, model_config, phases,
                                            render_scenes, train)

DEFAULT_EXPERIMENT = "tfn"
# ``morph``: a ``convert_morph.py --protocol s123`` conversion; the run becomes the
# Table V protocol (``morph_protocol.py``).
DATA_TASKS = ("train", "morph")


def add_arguments(parser) -> None:
    """TFN's own flags for ``facemt train tfn``."""
    parser.add_argument("--steps", default=None, help="S1,S2,S3,S4 updates of the four stages, e.g. 1500,300,200,200")
    parser.add_argument("--partial-labels", action="store_true", help="JFA-like partial landmark / attribute labels")
    parser.add_argument("--scenes", default=None, help="TRAIN,TEST SynthFace scenes, e.g. 480,80")


def parse_steps(text: str) -> dict:
    """``"S1,S2,S3,S4"`` -> experiment overrides.

    Raises:
        ConfigError: for anything but four integers.
    """
    from keras_facemt.training.runner import step_counts

    return {"stage_steps": step_counts(text, "S1,S2,S3,S4")}


def parse_scenes(text: str) -> dict:
    """``"TRAIN,TEST"`` -> experiment overrides.

    Raises:
        ConfigError: for anything but two integers >= 1.
    """
    from keras_facemt.errors import ConfigError
    from keras_facemt.training.runner import step_counts

    try:
        train, test = step_counts(text, "TRAIN,TEST", (1, 1))
    except ConfigError:
        raise ConfigError(f"--scenes must be TRAIN,TEST (two counts >= 1). Received: --scenes={text!r}") from None
    return {"train_scenes": train, "test_scenes": test}


def configure(exp: TFNExperiment, args) -> TFNExperiment:
    """``exp`` with the command line's ``--preset``, ``--seed``, ``--steps``, ``--scenes`` and ``--partial-labels``."""
    from keras_facemt.training.runner import common_overrides

    overrides = common_overrides(args)
    if getattr(args, "steps", None):
        overrides.update(parse_steps(args.steps))
    if getattr(args, "scenes", None):
        overrides.update(parse_scenes(args.scenes))
    if getattr(args, "partial_labels", False):
        overrides["partial_labels"] = True
    exp = dataclasses.replace(exp, **overrides) if overrides else exp
    model_config(exp)  # validates the preset now, not after rendering
    return exp


def run(exp: TFNExperiment, ctx) -> Dict[str, object]:
    """Runs ``exp`` into ``ctx.model_dir`` (``training.runner.RunContext``); returns TFN's results.

    ``ctx.data["train"]``, when given, is a converted scenes dataset (boxes, ibug68
    landmarks, age_class, gender, ethnicity) trained on instead of the synthetic
    training split; evaluation stays on the synthetic held-out scenes.
    ``ctx.data["morph"]`` runs the MORPH II S1 / S2 / S3 protocol instead
    (``morph_protocol.run``).
    """
    from keras_facemt.models.registry import get_system
    from keras_facemt.serving.keras_format import save_model

    if "morph" in ctx.data:
        from keras_facemt.models.tfn import morph_protocol

        return morph_protocol.run(exp, ctx)
    t0 = time.time()
    timings: Dict[str, float] = {}
    cfg = model_config(exp)
    scenes = render_scenes(exp, cfg.image_size, ctx.cache_dir or ctx.path("data"), ctx.log)
    train_dir = ctx.data.get("train") or scenes
    timings["data"] = time.time() - t0
    model, history, seconds = train(exp, cfg, train_dir, ctx.model_dir, ctx.strategy, ctx.deterministic, ctx.log)
    timings["train"] = seconds
    t = time.time()
    res = evaluate_scenes(exp, cfg, model, scenes, train_dir)
    timings["evaluate"] = time.time() - t
    results = {
        "config": dataclasses.asdict(cfg), "params": int(model.count_params()),
        "train_images_per_second": exp.batch_size * sum(exp.stage_steps) / max(seconds, 1e-9),
        "final_losses": final_losses(history), "nonfinite_steps": int(history.get("nonfinite_steps", 0)),
        "data_issues": history.get("data_issues", {}),
        **res, "timings_seconds": timings,
    }
    results["headline"] = task.headline(results, exp)
    system = get_system("tfn")
    path = save_model(model, ctx.path("model.keras"), info=system.model_info(cfg, exp.preset))
    results["paths"] = {"model_keras": path, "scenes": scenes}
    return results


def results_markdown(results: Dict) -> str:
    """``results.md``: the MORPH protocol's Table V, or the SynthFace run's tables."""
    if "morph" in results:
        from keras_facemt.models.tfn import morph_protocol

        return morph_protocol.results_markdown(results)
    return task.results_markdown(results)
