"""The iFAN job for the shared runner: data, Algorithm 1 training, evaluation, reports.

``run(experiment, context)`` is what ``training.runner.run_experiment`` calls for
``facemt train ifan``, ``recipes/train_ifan.py`` and ``recipes/ablate_ifan.py``:

1. Data: each task's dataset is the user's shards or a SynthFace dataset from the
   cache (rendered on first use). Every input problem (a task without data, a
   directory whose records lack the task's labels or have no test split) raises
   before anything is trained (``prepare_data``).
2. Streams: one training stream per task (its own BN domain id), one held-out
   stream per task.
3. Training: ``hybrid.algorithm1_phases`` run by the generic ``Trainer``; after
   every phase the held-out sets are scored (stage 1 with the iteration-0 model,
   stage 2 at every iteration), giving the training-stage curves of Fig. 7.
4. Final evaluation of every task at every iteration, trivial baselines, and the
   reports (``models.ifan.reports``) in ``model_dir``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
import zlib
from typing import Callable, Dict, Mapping, Optional

from keras_facemt.configs.data import AugmentConfig, DataConfig
from keras_facemt.models.ifan.experiments import EXPERIMENTS, IFANExperiment, get_experiment  # noqa: F401
from keras_facemt.errors import ConfigError, DataError
from keras_facemt.data import shards
from keras_facemt.models.ifan import hybrid
from keras_facemt.training.strategy import describe_distribution, distribution_line, worker_index

TRAIN_SPLIT = "train"
TEST_SPLIT = "test"
# Decoded examples of a stream are cached in memory below this size.
_CACHE_BYTES = 512 * 2**20


def _synth_seed(exp: IFANExperiment, task: str) -> int:
    # Disjoint datasets (Sec. 3.3: no image carries labels of two tasks): each task's
    # SynthFace seed differs, and does not depend on the order tasks are listed in.
    return exp.synth_seed + zlib.crc32(task.encode()) % 100_000


def prepare_data(exp: IFANExperiment, cache_dir: Optional[str] = None, log: Callable = print) -> Dict[str, str]:
    """Each task's dataset directory, checked for that task's labels in both splits.

    Synthetic datasets are rendered into the cache on first use.

    Raises:
        ConfigError: a dataset whose records lack its task's labels in a split.
        DataError: a missing directory, shard or ``dataset.json``, or no test split.
    """
    from keras_facemt.data.pipeline import check_shards, check_task_presence
    from keras_facemt.data.synthetic_cache import cached_synthetic

    dirs = {}
    for d in exp.data:
        if d.data_dir:
            path = os.path.abspath(os.path.expanduser(d.data_dir))
        else:
            path = cached_synthetic(d.task, tasks=(d.task,), domain=d.domain,
                                    splits=((TRAIN_SPLIT, d.train_count), (TEST_SPLIT, d.test_count)),
                                    seed=_synth_seed(exp, d.task), image_size=exp.image_size,
                                    cache_dir=cache_dir, log=log)
        for split in (TRAIN_SPLIT, TEST_SPLIT):
            try:
                check_shards(path, split)
            except DataError as e:
                raise DataError(f"Task {d.task!r}: {e} iFAN trains on split {TRAIN_SPLIT!r} and evaluates on "
                                f"{TEST_SPLIT!r}; both are needed. Received: data_dir={path!r}") from None
            check_task_presence(path, split, (d.task,))
        dirs[d.task] = path
    return dirs


def split_count(data_dir: str, split: str) -> int:
    count = int(shards.read_manifest(data_dir).get("counts", {}).get(split, 0))
    if count <= 0:
        raise DataError(f"{data_dir}: dataset.json counts no examples of split {split!r}. Received: split={split!r}")
    return count


def make_stream(exp: IFANExperiment, task: str, data_dir: str, training: bool) -> DataConfig:
    """The ``DataConfig`` of ``task``'s training or held-out stream."""
    d = exp.task_data(task)
    split = TRAIN_SPLIT if training else TEST_SPLIT
    count = split_count(data_dir, split)
    return DataConfig(
        name=task,
        data_dir=data_dir,
        split=split,
        image_size=(exp.image_size, exp.image_size),
        global_batch_size=d.batch_size if training else exp.eval_batch_size,
        domain=exp.domain_id(task),
        tasks=(task,),
        landmark_scheme=exp.landmark_scheme if task == "landmarks" else None,
        augment=AugmentConfig() if (training and exp.augment) else None,
        shuffle_buffer=min(count, 2048) if (training and exp.shuffle) else 0,
        repeat=training,
        seed=exp.seed,
        cache=count * exp.image_size**2 * 3 * 4 < _CACHE_BYTES,
    )


def schedule(exp: IFANExperiment, dirs: Mapping[str, str]):
    """Algorithm 1's phases with epochs turned into steps from the datasets' sizes.

    Stage 1 trains each task ``pretrain_epochs`` passes over its dataset. In stage 2
    tasks alternate with one update each per round; one epoch is enough rounds for
    the largest dataset (in batches) to be traversed once.
    """
    per_epoch = {t: math.ceil(split_count(dirs[t], TRAIN_SPLIT) / exp.task_data(t).batch_size) for t in exp.tasks}
    pretrain = {t: hybrid.steps_for_epochs(exp.pretrain_epochs, per_epoch[t], 1) for t in exp.tasks}
    rounds = hybrid.steps_for_epochs(exp.finetune_epochs, max(per_epoch.values()), 1)
    return hybrid.algorithm1_phases(exp.tasks, pretrain, rounds * len(exp.tasks), pretrain_lr=exp.pretrain_lr,
                                    finetune_lr=exp.finetune_lr, finetune_final_lr=exp.finetune_final_lr,
                                    iterations=exp.iterations, eval_points=exp.eval_points,
                                    literal_stage2=exp.literal_stage2)


def stage_of(phase_name: str) -> str:
    """The stage a phase piece belongs to: ``pretrain_<task>`` or ``finetune`` (piece suffix dropped)."""
    head, _, tail = phase_name.rpartition("_")
    return head if head and tail.isdigit() else phase_name


def training_domains(exp: IFANExperiment, dirs: Mapping[str, str]) -> Dict[str, int]:
    """BN domain id of every training dataset, by name, for ``run_config.json``.

    Export reads a ``--data`` directory's dataset names (``dataset.json``) to pick the
    BN domain its examples are verified in, and ``--domain NAME`` freezes one; both
    take these names. Each task's datasets map to the task's domain; the task names
    map to it too (``--domain landmarks``). A dataset name used by two tasks with
    different domains is left out (ambiguous): its directories then need a frozen
    ``--domain``.
    """
    domains: Dict[str, int] = {t: exp.domain_id(t) for t in exp.tasks}
    ambiguous = set()
    for task in exp.tasks:
        for name in (shards.read_manifest(dirs[task]).get("datasets") or {}):
            if name in domains and domains[name] != exp.domain_id(task):
                ambiguous.add(name)
            domains.setdefault(name, exp.domain_id(task))
    return {n: i for n, i in domains.items() if n not in ambiguous}


DEFAULT_EXPERIMENT = "ifan_3t"
DATA_TASKS = ("parsing", "landmarks", "emotion")


def add_arguments(parser) -> None:
    """iFAN's own flags for ``facemt train ifan``."""
    parser.add_argument("--tasks", default=None, help="comma-separated tasks, in stage-1 order (default: the experiment's)")
    parser.add_argument("--iter", type=int, default=None, help="ITER, task-interaction iterations (>= 0)")
    parser.add_argument("--epochs", default=None, help="fine-tuning epochs, or PRETRAIN,FINETUNE epochs (e.g. 30,200)")
    parser.add_argument("--literal-stage2", action="store_true",
                        help="Algorithm 1's stage 2 to the letter: ITER + 1 separate updates per sampled batch")


def configure(exp: IFANExperiment, args) -> IFANExperiment:
    """The experiment the command line describes, fully validated (nothing is trained or rendered here).

    Raises:
        ConfigError: unknown task or preset, a negative --iter, a bad --epochs value,
            a task without data.
    """
    if getattr(args, "iter", None) is not None:
        if args.iter < 0:
            raise ConfigError(f"--iter must be >= 0 (ITER, the task-interaction iterations). Received: --iter {args.iter}")
        exp = dataclasses.replace(exp, iterations=args.iter)
    data = dict(getattr(args, "data", None) or {})
    if data:
        hybrid.check_tasks(tuple(data))
    tasks = exp.tasks
    if getattr(args, "tasks", None) is not None:
        tasks = hybrid.check_tasks(tuple(t.strip() for t in args.tasks.split(",") if t.strip()))
    for task, path in data.items():
        if task not in tasks:
            raise ConfigError(f"--data names task {task!r}, which is not trained (tasks: {list(tasks)}). "
                              f"Received: --data {task}={path}")
        exp = exp.with_data_dir(task, path)
    missing = [t for t in tasks if t not in exp.tasks]
    if missing:
        raise ConfigError(f"Task(s) {missing} have no data in experiment {exp.name!r} (it has data for "
                          f"{list(exp.tasks)}): pass --data TASK=DIR for each. Received: --tasks {','.join(tasks)}")
    exp = exp.with_tasks(tasks)
    from keras_facemt.training.runner import common_overrides

    exp = dataclasses.replace(exp, **common_overrides(args, preset_field="model_preset"))
    if getattr(args, "epochs", None) is not None:
        try:
            parts = [float(x) for x in str(args.epochs).split(",")]
        except ValueError:
            parts = []
        if len(parts) not in (1, 2) or min(parts) < 0:
            raise ConfigError(f"--epochs expects FINETUNE or PRETRAIN,FINETUNE (numbers >= 0). Received: --epochs {args.epochs}")
        exp = dataclasses.replace(exp, finetune_epochs=parts[-1], **({"pretrain_epochs": parts[0]} if len(parts) == 2 else {}))
    if getattr(args, "deterministic", False):
        exp = dataclasses.replace(exp, deterministic=True)
    if getattr(args, "literal_stage2", False):
        exp = dataclasses.replace(exp, literal_stage2=True)
    exp.model_config()  # validates the preset and the model overrides now, not after data generation
    return exp


def run(exp: IFANExperiment, ctx) -> Dict[str, object]:
    """Trains and evaluates ``exp`` into ``ctx.model_dir`` (``training.runner.RunContext``).

    Writes checkpoints, TensorBoard logs, ``model.keras``, ``curves.png`` and
    ``predictions.png``; returns iFAN's part of ``results.json`` (the runner writes
    it and ``results.md``).
    """
    from keras_facemt.configs.serialization import config_to_dict
    from keras_facemt.data.pipeline import build_dataset
    from keras_facemt.models.ifan import evaluation as ifan_eval, reports
    from keras_facemt.models.ifan.model import build_models
    from keras_facemt.training.trainer import Trainer, TrainerConfig

    log = ctx.log
    t_start = time.time()
    model_cfg = exp.model_config()
    model_dir = ctx.model_dir
    dirs = prepare_data(exp, ctx.cache_dir, log)
    phases = schedule(exp, dirs)
    terms = hybrid.ifan_loss_terms(model_cfg, literal_stage2=exp.literal_stage2)
    train_streams = {t: make_stream(exp, t, dirs[t], training=True) for t in exp.tasks}
    if exp.literal_stage2:
        for t in exp.tasks:
            train_streams[hybrid.literal_stream(t)] = (
                lambda ctx, cfg=train_streams[t], t=t: hybrid.per_iteration_copies(build_dataset(cfg, ctx), t,
                                                                                    exp.iterations))
    test_streams = {t: make_stream(exp, t, dirs[t], training=False) for t in exp.tasks}
    t_data = time.time()

    one_pass = {t: dataclasses.replace(train_streams[t], repeat=False, augment=None, shuffle_buffer=0, cache=False)
                for t in exp.tasks}
    evaluator = ifan_eval.IFANEvaluator(test_streams, exp.iterations, exp.landmark_scheme,
                                        calibration_streams=one_pass if exp.recalibrate_bn else None,
                                        calibration_batches=exp.calibration_batches)
    train_once = {t: _one_pass(one_pass[t], build_dataset) for t in exp.tasks}
    priors = ifan_eval.fit_training_priors(train_once, exp.tasks)
    baselines = ifan_eval.compute_baselines(priors, evaluator)

    def model_fn():
        models = build_models(model_cfg)
        if exp.init_landmark_prior and "landmarks" in priors:
            initialize_landmark_prior(models["main"], priors["landmarks"]["mean_shape"])
        return models

    def eval_fn(trainer, global_step, phase_name):
        if stage_of(phase_name).startswith("pretrain_"):
            # Interaction is off in stage 1: the iteration-0 model is what trains.
            metrics = evaluator.evaluate(trainer.models["iter0"], iterations=[0])
        else:
            metrics = evaluator.evaluate(trainer.models["main"])
        values = ifan_eval.headline_values(metrics)
        log(f"  eval after {phase_name} (step {global_step}): " + ", ".join(
            f"{t} {reports.headline(t)[0]}=" + "/".join(f"{100 * v:.2f}" for v in per.values())
            for t, per in values.items()))
        return {f"{t}/{it}": v for t, per in values.items() for it, v in per.items()}

    trainer = Trainer(
        model_fn=model_fn,
        loss_terms=terms,
        streams=train_streams,
        phases=phases,
        config=TrainerConfig(model_dir=model_dir, steps_per_loop=exp.steps_per_loop, optimizer=exp.optimizer,
                             seed=exp.seed, deterministic=exp.deterministic or ctx.deterministic),
        strategy=ctx.strategy,
        eval_fn=eval_fn,
    )
    distribution = describe_distribution(trainer.strategy, {t: train_streams[t].global_batch_size for t in exp.tasks})
    # Written before training so that `facemt export --model-dir` can rebuild the
    # model from any checkpoint of this run, finished or not.
    from keras_facemt.models.model_info import write_run_config
    from keras_facemt.models.registry import get_system

    info = get_system("ifan").model_info(model_cfg, exp.model_preset, training_domains(exp, dirs))
    if trainer.is_chief:
        write_run_config(model_dir, info, exp.name, {t: dirs[t] for t in exp.tasks}, distribution)
    log(f"Training {exp.name}: tasks {list(exp.tasks)}, ITER={exp.iterations}, "
        f"{sum(p.steps for p in phases)} updates in {len(phases)} phases, {distribution_line(distribution)} "
        f"-> {model_dir}")
    trained = trainer.train()
    t_train = time.time()
    paths = {
        "model_keras": os.path.join(model_dir, "model.keras"),
        "curves_png": os.path.join(model_dir, "curves.png"),
        "predictions_png": os.path.join(model_dir, "predictions.png"),
    }
    if not trainer.is_chief:
        # The chief evaluates and writes every output; this worker only takes part
        # in the final save, then waits for the chief so that they leave together.
        trainer.save_checkpoint()
        ctx.at_end(trainer.finish)
        log(f"Worker {worker_index()} done; the chief writes the outputs.")
        return {"distribution": distribution, "paths": paths}
    # The trainer keeps evaluations in its history (restored on resume): one entry
    # per phase end with "<task>/iter_<i>" values.
    history = [{"phase": e["phase"], "stage": stage_of(e["phase"]), "step": e["step"],
                "metrics": _unflatten(e)} for e in trained["evals"]]

    final = evaluator.evaluate(trainer.models["main"])
    examples = {t: evaluator.predict_examples(trainer.models["main"], t, exp.num_predictions) for t in exp.tasks}
    t_eval = time.time()
    results = {
        "description": exp.description,
        "tasks": list(exp.tasks),
        "iterations": exp.iterations,
        "landmark_scheme": exp.landmark_scheme,
        "final": final,
        "baselines": baselines,
        "history": history,
        "data_issues": trained.get("data_issues", {}),
        "data": {t: {"dir": dirs[t], "domain_id": exp.domain_id(t),
                     "train": split_count(dirs[t], TRAIN_SPLIT), "test": split_count(dirs[t], TEST_SPLIT)}
                 for t in exp.tasks},
        "schedule": [{"phase": p.name, "steps": p.steps, "streams": list(p.streams), "model": p.model,
                      "loss_terms": list(p.loss_terms), "trainable": list(p.trainable),
                      "lr": [p.learning_rate.initial, p.learning_rate.final]} for p in phases],
        "model_config": config_to_dict(model_cfg),
        "timings_seconds": {"data": t_data - t_start, "train": t_train - t_data, "final_eval": t_eval - t_train},
        "distribution": distribution,
    }
    results["headline"] = headline(results)
    from keras_facemt.serving.keras_format import save_model

    # The final evaluation recomputed BN statistics: keep the checkpoint and the
    # .keras file equal to the evaluated model.
    trainer.save_checkpoint()
    # The file says what it is (system, config, BN domain names, output declaration).
    paths["model_keras"] = save_model(trainer.models["main"], paths["model_keras"], info=info)
    results["paths"] = paths
    reports.write_curves_png(paths["curves_png"], results)
    reports.write_predictions_png(paths["predictions_png"], examples, exp.tasks)
    # Every worker leaves together, after the runner wrote results.json and results.md.
    ctx.at_end(trainer.finish)
    return results


def headline(results: Mapping) -> list:
    """Each task's paper metric at the last interaction iteration, next to its strongest trivial baseline."""
    from keras_facemt.metrics.headline import headline_entry
    from keras_facemt.models.ifan.reports import headline as task_metric

    out = []
    last = f"iter_{results['iterations']}"
    for t in results["tasks"]:
        key, _, higher = task_metric(t)
        value = results["final"][t][last][key]
        base = results["baselines"][t]
        if t == "landmarks":
            options = [("mean training shape", base["mean_shape"][key])]
        elif t == "parsing":
            options = [("all majority class", base["majority_class"][key])]
            if "prior_map" in base:
                options.append(("per-pixel prior map", base["prior_map"][key]))
        else:
            options = [("chance", base["chance"]), ("majority class", base["majority"])]
        entry = headline_entry(f"{t}_{key}", f"{t} held-out split", value, options, higher_is_better=higher)
        entry["iteration"] = results["iterations"]
        out.append(entry)
    return out


def results_markdown(results: Mapping) -> str:
    """``results.md``: the paper's Tables 1-3, the training stages and the headline."""
    from keras_facemt.models.ifan import reports

    return reports.results_markdown(reports._finite(results))


def initialize_landmark_prior(model, mean_shape) -> None:
    """Starts the landmark decoder at the mean training shape.

    Its output layer gets a zero kernel and the mean shape ``[K, 2]`` as bias, so the
    network starts from the mean-shape baseline instead of random points. Without
    it, the first updates of a short run mostly cancel the random output offsets,
    which the decoder does by switching off its ReLU hidden layer for every input;
    once all hidden units are dead the prediction is a constant that never recovers
    (observed on SynthFace with the ``tiny`` and ``small`` presets). The paper does
    not describe its initialisation; this only changes the starting point, and a
    checkpoint restored afterwards (resume) replaces it. The classification
    decoders keep their default initialisation, with which they learned faster.

    Args:
        model: the main iFAN model (with a ``decoder_landmarks_head`` layer).
        mean_shape: ``[K, 2]`` mean training landmarks.

    Raises:
        ConfigError: if the decoder has no output layer with a bias.
    """
    import numpy as np

    from keras_facemt.models.ifan.model import component_prefix

    head = model.get_layer(component_prefix("decoder", "landmarks") + "head")
    last = getattr(head, "out", None)
    if last is None or getattr(last, "bias", None) is None:
        raise ConfigError(f"Decoder {head.name!r} has no output layer with a bias to initialise. "
                          f"Received: task='landmarks'")
    last.kernel.assign(np.zeros(last.kernel.shape, np.float32))
    last.bias.assign(np.asarray(mean_shape, np.float32).reshape(last.bias.shape))


def _one_pass(cfg: DataConfig, dataset_fn):
    def batches():
        for b in dataset_fn(cfg):
            yield {k: v.numpy() for k, v in b.items()}

    return batches


def _unflatten(entry: Mapping) -> Dict[str, Dict[str, float]]:
    out: Dict[str, Dict[str, float]] = {}
    for key, value in entry.items():
        if "/iter_" in key:
            task, it = key.rsplit("/", 1)
            out.setdefault(task, {})[it] = value
    return out
