"""The Uniface job for the shared runner: data -> teacher -> distillation -> evaluation.

``run`` (called by ``training.runner.run_experiment``) does, for a ``UnifaceExperiment``:

1. renders SynthFace multi-face scenes (boxes, mtfl5 landmarks, identities) into
   the cache (``--cache-dir``, else ``<out>/data``; train / test splits);
2. trains the recognition teacher on aligned crops of the same identities
   (``teacher.py``, margin softmax; the paper distils from FaceNet, Sec. IV-A) and
   saves it as ``<out>/teacher.keras``;
3. writes the teacher's embedding of every aligned scene face with
   ``tfrecords_tools/add_teacher_embeddings.py`` (``<out>/data/scenes_teacher``);
4. trains each requested Table I variant (A, B, C, D) with the shared ``Trainer`` on
   the Eq. (2) loss terms;
5. evaluates detection (AP, ROC), landmarks (NME), verification (10-fold on
   generated pairs, plus the crop/pad robustness test) next to trivial baselines, and
   returns the results (the runner writes ``results.json`` and ``results.md``).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Dict

import numpy as np
import tensorflow as tf

from keras_facemt.metrics.matched_landmark_error import matched_landmark_nme
from keras_facemt.configs.data import DataConfig
from keras_facemt.data.landmarks import convert_points
from keras_facemt.data.shards import read_manifest
from keras_facemt.errors import ConfigError
from keras_facemt.io import atomic_path
from keras_facemt.models.uniface.experiments import EXPERIMENTS, get_experiment  # noqa: F401
from keras_facemt.models.uniface import evaluation as ev
from keras_facemt.models.uniface import model as uniface_model
from keras_facemt.models.uniface.experiments import VARIANTS, UnifaceExperiment
from keras_facemt.models.uniface.losses import loss_terms
from keras_facemt.models.uniface.postprocess import detect_faces
from keras_facemt.models.uniface.teacher import build_teacher, train_teacher
from keras_facemt.ops.align import align_faces
from keras_facemt.training.strategy import describe_distribution, distribution_line

SCENE_TASKS = ("detection", "landmarks", "identity")


def _complete(path: str) -> bool:
    try:
        read_manifest(path)
        return True
    except Exception:  # noqa: BLE001 - any unreadable manifest means "render again"
        return False


def render_scenes(exp: UnifaceExperiment, path: str) -> str:
    """Renders (or reuses) the train/test scenes of ``exp``."""
    from keras_facemt.data.synthetic import write_synthetic

    if not _complete(path):
        total = exp.train_scenes + exp.test_scenes
        write_synthetic(path, kind="scenes", tasks=SCENE_TASKS, domain=exp.domain, count=total, shards=2,
                        seed=exp.seed, image_size=exp.image_size,
                        splits=(("train", exp.train_scenes / total), ("test", exp.test_scenes / total)),
                        overwrite=True, num_identities=exp.num_identities, identity_seed=exp.identity_seed,
                        max_faces=exp.max_faces, min_faces=exp.min_faces, landmark_scheme="mtfl5")
    return path


def render_faces(exp: UnifaceExperiment, count: int, seed: int, size: int):
    """Single-face images of identity ``i % K`` with mtfl5 landmarks.

    Returns:
        (uint8 ``[N, size, size, 3]``, identities ``[N]``, landmarks ``[N, 5, 2]``).
    """
    from keras_facemt.data.synthetic import SynthFace

    synth = SynthFace(seed=seed, domain=exp.domain, image_size=size, num_identities=exp.num_identities,
                      identity_seed=exp.identity_seed)
    images, ids, lms = [], [], []
    for i in range(count):
        rgb, lab = synth.render_crop(i, identity=i % exp.num_identities)
        lm, _ = convert_points(lab["landmarks"], lab["landmarks_visible"], "ibug68", "mtfl5")
        images.append(rgb)
        ids.append(i % exp.num_identities)
        lms.append(lm)
    return np.stack(images), np.asarray(ids), np.asarray(lms, np.float32)


def aligned_crops(images: np.ndarray, landmarks: np.ndarray, size: int, chunk: int = 128) -> np.ndarray:
    """``ops.align`` crops of one face per image, float32 in [0, 1]."""
    out = []
    for s in range(0, len(images), chunk):
        img = tf.constant(images[s:s + chunk].astype(np.float32) / 255.0)
        out.append(align_faces(img, landmarks[s:s + chunk, None], size).numpy()[:, 0])
    return np.concatenate(out, 0)


def scene_stream(exp: UnifaceExperiment, data_dir: str, split: str, embedding_dim: int, training: bool):
    tasks = ("detection", "landmarks", "teacher_embedding") if training else ("detection", "landmarks")
    return DataConfig(
        name="scenes", data_dir=data_dir, split=split, mode="scenes", image_size=(exp.image_size, exp.image_size),
        global_batch_size=exp.batch_size, tasks=tasks, landmark_scheme="mtfl5", max_faces=exp.max_faces,
        embedding_dim=embedding_dim if training else 0,
        # No augmentation: a flip, zoom or shift would change the faces whose teacher
        # embeddings were computed on the stored images.
        augment=None,
        shuffle_buffer=512 if training else 0, repeat=training, seed=exp.seed,
    )


def model_config(exp: UnifaceExperiment, variant: str):
    from keras_facemt.models.registry import get_system

    overrides = dict(exp.model_overrides)
    overrides.update(VARIANTS[variant])
    overrides["image_size"] = exp.image_size
    return get_system("uniface").config(exp.preset, **overrides)


def train_variant(exp: UnifaceExperiment, variant: str, data_dir: str, model_dir: str, log: Callable,
                  strategy=None, deterministic: bool = False):
    """Trains one Table I variant; returns (model, config, history, seconds, distribution)."""
    from keras_facemt.training.schedule import LearningRate, Phase
    from keras_facemt.training.trainer import Trainer, TrainerConfig

    cfg = model_config(exp, variant)
    probe = uniface_model.build_model(cfg)
    anchors = uniface_model.model_anchors(probe, cfg.level_anchor_sizes(), cfg.aspect_ratios)
    del probe
    terms = loss_terms(anchors, cfg.variances, weights=exp.loss_weights)
    lr = LearningRate(exp.learning_rate, exp.learning_rate * 0.05, "cosine", warmup_steps=min(20, exp.steps // 10))
    phase = Phase("train", exp.steps, ("scenes",), learning_rate=lr)
    trainer = Trainer(
        lambda: uniface_model.build_model(cfg), terms,
        {"scenes": scene_stream(exp, data_dir, "train", cfg.embedding_dim, training=True)}, [phase],
        TrainerConfig(model_dir=model_dir, steps_per_loop=20, optimizer="adam", clipnorm=10.0, seed=exp.seed,
                      summaries=False, progress=False, deterministic=deterministic),
        strategy=strategy if strategy is not None else tf.distribute.get_strategy(),
    )
    distribution = describe_distribution(trainer.strategy, {"scenes": exp.batch_size})
    from keras_facemt.models.model_info import write_run_config
    from keras_facemt.models.registry import get_system

    # What `facemt export --model-dir` needs to rebuild the trained variant (its
    # deployable graph, with NMS and landmark attention) from the checkpoint.
    if trainer.is_chief:
        write_run_config(model_dir, get_system("uniface").model_info(cfg, exp.preset), exp.name,
                         {"scenes": data_dir}, distribution, variant=variant)
    t = time.time()
    history = trainer.train()
    seconds = time.time() - t
    log(f"[{variant}] trained {exp.steps} steps in {seconds:.0f}s")
    return trainer.model, cfg, history, seconds, distribution


def _final_losses(history) -> Dict[str, float]:
    phases = history.get("phases") or []
    if not phases:
        return {}
    metrics = phases[-1].get("metrics") or {}
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def evaluate_variant(model, cfg, exp: UnifaceExperiment, data_dir: str, verification_set, baselines) -> Dict:
    from keras_facemt.data.pipeline import build_dataset

    inf = uniface_model.build_inference_model(model, cfg.level_anchor_sizes(), cfg.aspect_ratios, cfg.variances,
                                              max_detections=cfg.max_detections, score_threshold=0.05,
                                              iou_threshold=cfg.nms_iou_threshold)
    preds = ev.collect_scene_predictions(inf, build_dataset(scene_stream(exp, data_dir, "test", 0, False)))
    det = ev.detection_metrics(preds["det_boxes"], preds["det_scores"], preds["gt_boxes"], exp.fp_counts)
    lm = matched_landmark_nme(preds["det_boxes"], preds["det_scores"], preds["det_landmarks"], preds["gt_boxes"],
                              preds["gt_landmarks"], preds["gt_visible"], baselines["mean_shape"])
    out = {
        "ap": det["ap"], "tpr_at_fp": det["tpr_at_fp"], "test_faces": det["num_faces"],
        "nme": lm["nme"], "nme_box": lm["nme_box"],
        "mean_shape_in_detections_nme": lm["nme_mean_shape"], "mean_shape_in_detections_nme_box": lm["nme_box_mean_shape"],
        "nme_scored_faces": lm["scored_faces"], "nme_unmatched_faces": lm["unmatched_faces"],
        "params": int(model.count_params()),
    }
    if verification_set is not None:
        images, robust_images, pairs, same, folds = verification_set
        emb, missing = ev.top_face_embeddings(detect_faces(inf, list(images), batch_size=32), cfg.embedding_dim)
        emb_r, missing_r = ev.top_face_embeddings(detect_faces(inf, robust_images, batch_size=32), cfg.embedding_dim)
        out.update({"verification": ev.verification(emb, pairs, same, folds), "verification_no_face": missing,
                    "verification_robust": ev.verification(emb_r, pairs, same, folds),
                    "verification_robust_no_face": missing_r})
    return out


DEFAULT_EXPERIMENT = "uniface"
DATA_TASKS = ("scenes",)


def add_arguments(parser) -> None:
    """Uniface's own flags for ``facemt train uniface``."""
    parser.add_argument("--variants", default=None, help="comma-separated Table I models, e.g. A,B,C,D")
    parser.add_argument("--steps", type=int, default=None, help="Uniface updates per variant")


def configure(exp: UnifaceExperiment, args) -> UnifaceExperiment:
    """``exp`` with the command line's ``--preset``, ``--seed``, ``--variants`` and ``--steps``."""
    from keras_facemt.training.runner import common_overrides

    overrides = common_overrides(args)
    if getattr(args, "steps", None) is not None:
        overrides["steps"] = args.steps
    if getattr(args, "variants", None):
        overrides["variants"] = tuple(v.strip().upper() for v in args.variants.split(",") if v.strip())
    exp = dataclasses.replace(exp, **overrides) if overrides else exp
    for v in exp.variants:
        model_config(exp, v)  # validates the preset now, not after rendering
    return exp


def scenes_cache_dir(exp: UnifaceExperiment, root: str) -> str:
    """Where ``exp``'s synthetic scenes are kept under ``root``: one directory per rendering recipe."""
    import hashlib

    from keras_facemt.data.synthetic_cache import CACHE_FORMAT

    key = repr((CACHE_FORMAT, exp.seed, exp.image_size, exp.num_identities, exp.identity_seed, exp.domain,
                exp.train_scenes, exp.test_scenes, exp.min_faces, exp.max_faces))
    return os.path.join(root, f"uniface_scenes_{hashlib.sha1(key.encode()).hexdigest()[:12]}")


def check_real_scenes(data_dir: str) -> str:
    """A converted scene dataset (e.g. WIDER FACE) usable for distillation.

    Raises:
        ConfigError: without ``train``/``test`` splits, or when the training records
            carry no teacher embeddings (``tfrecords_tools/add_teacher_embeddings.py``
            writes them).
    """
    from keras_facemt.data.pipeline import check_shards, check_task_presence

    for split in ("train", "test"):
        check_shards(data_dir, split)
    check_task_presence(data_dir, "test", ("detection",))
    try:
        check_task_presence(data_dir, "train", ("detection", "teacher_embedding"))
    except ConfigError as e:
        raise ConfigError(f"{e} Uniface distils from a teacher: add its embeddings with "
                          f"python -m tfrecords_tools.add_teacher_embeddings --input {data_dir} --output DIR "
                          f"--teacher TEACHER.keras, and pass --data scenes=DIR.") from None
    return data_dir


def training_baselines(exp: UnifaceExperiment, scenes: str) -> Dict:
    """Fixed-prior detection and mean-shape landmark baselines from the training labels."""
    from keras_facemt.data.pipeline import build_dataset

    def faces(split):
        ds = build_dataset(dataclasses.replace(scene_stream(exp, scenes, split, 0, False), name=f"{split}_labels"))
        boxes, points, visible = [], [], []
        for batch in ds:
            m = batch["face_mask"].numpy() > 0
            boxes += [b[k] for b, k in zip(batch["bbox"].numpy(), m)]
            points += [p[k] for p, k in zip(batch["landmarks"].numpy(), m)]
            visible += [v[k] for v, k in zip(batch["landmarks_visible"].numpy(), m)]
        return boxes, points, visible

    tb, tl, _ = faces("train")
    gb, gl, gv = faces("test")
    prior_b, prior_s = ev.fixed_prior_detections(tb, len(gb))
    prior = ev.detection_metrics(prior_b, prior_s, gb, exp.fp_counts)
    shape = ev.mean_shape(tb, tl)
    return {
        "mean_shape": shape.tolist(),
        "fixed_prior_ap": prior["ap"], "fixed_prior_tpr_at_fp": prior["tpr_at_fp"],
        "mean_shape_nme": ev.mean_shape_nme(shape, gb, gl, gv),
        "mean_shape_nme_box": ev.mean_shape_nme(shape, gb, gl, gv, "box"),
        "chance_verification": 0.5,
    }


def run(exp: UnifaceExperiment, ctx) -> Dict:
    """Runs ``exp`` into ``ctx.model_dir`` (``training.runner.RunContext``); returns Uniface's results.

    Synthetic scenes are rendered into the cache (``ctx.cache_dir``, else
    ``<model_dir>/data``), the teacher is trained on aligned crops of the same
    identities and its embeddings are added to the scenes. ``ctx.data["scenes"]``
    replaces all of that with a converted scene dataset that already carries teacher
    embeddings (WIDER FACE + ``add_teacher_embeddings``); verification then has no
    data and is not reported.
    """
    from tfrecords_tools.add_teacher_embeddings import add_teacher_embeddings

    t0 = time.time()
    timings: Dict[str, float] = {}
    real = ctx.data.get("scenes")
    data_root = ctx.cache_dir or ctx.path("data")
    teacher_info, verification_set = None, None
    if real:
        scenes = with_teacher = check_real_scenes(real)
    else:
        scenes = render_scenes(exp, scenes_cache_dir(exp, data_root))
    timings["render_scenes"] = time.time() - t0
    baselines = training_baselines(exp, scenes)
    if not real:
        # Recognition teacher on aligned crops with identity labels.
        t = time.time()
        dim = model_config(exp, "A").embedding_dim
        images, ids, lms = render_faces(exp, exp.teacher_crops, exp.seed + 1, exp.face_image_size)
        crops = aligned_crops(images, lms, exp.teacher_size)
        teacher, teacher_fit = train_teacher(
            lambda: build_teacher(exp.teacher_size, exp.teacher_widths, dim), crops, ids, exp.num_identities,
            ctx.path("teacher"), steps=exp.teacher_steps, seed=exp.seed, strategy=ctx.strategy,
            deterministic=ctx.deterministic)
        teacher_path = ctx.path("teacher.keras")
        with atomic_path(teacher_path, suffix=".keras") as tmp:
            teacher.save(tmp)
        timings["teacher"] = time.time() - t
        ctx.log(f"teacher: train accuracy {teacher_fit['accuracy']:.3f} ({timings['teacher']:.0f}s)")
        t = time.time()
        with_teacher = ctx.path("data", "scenes_teacher")
        add_teacher_embeddings(scenes, with_teacher, teacher_path, overwrite=True, log=ctx.log)
        timings["teacher_embeddings"] = time.time() - t
        # Verification pool (LFW-like single-face images of the same identities, unseen images).
        t = time.time()
        v_images, v_ids, v_lms = render_faces(exp, exp.verification_images, exp.seed + 2, exp.face_image_size)
        pairs, same, folds = ev.make_pairs(v_ids, exp.verification_pairs, exp.seed)
        rng = np.random.default_rng(exp.seed + 3)
        robust = [ev.random_crop_or_pad(im, exp.robustness_margin, rng) for im in v_images]
        teacher_emb = teacher.predict(aligned_crops(v_images, v_lms, exp.teacher_size), verbose=0)
        baselines["teacher_on_aligned_crops"] = ev.verification(teacher_emb, pairs, same, folds)
        verification_set = (v_images, robust, pairs, same, folds)
        teacher_info = {"train_accuracy": teacher_fit["accuracy"], "path": teacher_path}
        timings["evaluation_setup"] = time.time() - t

    variants = {}
    distribution = None
    data_issues = {}
    for v in exp.variants:
        model, cfg, history, seconds, distribution = train_variant(exp, v, with_teacher, ctx.path(f"model_{v}"),
                                                                   ctx.log, ctx.strategy, ctx.deterministic)
        t = time.time()
        res = evaluate_variant(model, cfg, exp, scenes, verification_set, baselines)
        res["train_seconds"] = seconds
        res["final_losses"] = _final_losses(history)
        data_issues[v] = res["data_issues"] = history.get("data_issues", {})
        res["eval_seconds"] = time.time() - t
        variants[v] = res
        ver = (f"  verification {res['verification']['accuracy']:.3f}  robust "
               f"{res['verification_robust']['accuracy']:.3f}" if "verification" in res else "")
        ctx.log(f"[{v}] AP {res['ap']:.3f}  NME {res['nme']:.4f}{ver}")
    results = {
        "distribution": distribution,
        "teacher": teacher_info,
        "baselines": baselines,
        "variants": variants,
        "comparisons": compare_variants(variants),
        "timings_seconds": timings,
        "data_issues": data_issues,
        "paths": {"scenes": scenes, **{f"model_{v}": ctx.path(f"model_{v}") for v in exp.variants}},
    }
    results["headline"] = headline(results, exp)
    return results


def headline(results: Dict, exp: UnifaceExperiment):
    """The primary model's (A, else the first variant's) paper metrics next to trivial baselines."""
    from keras_facemt.metrics.headline import headline_entry

    v = "A" if "A" in results["variants"] else next(iter(results["variants"]))
    r, b = results["variants"][v], results["baselines"]
    split = "held-out scenes"
    out = [
        headline_entry("ap_at_iou_0.5", split, r["ap"], [("fixed prior boxes", b["fixed_prior_ap"])]),
        headline_entry("nme_inter_ocular", f"{split}, matched faces", r["nme"],
                       [("mean shape in ground-truth boxes", b["mean_shape_nme"]),
                        ("mean shape in the model's detections", r["mean_shape_in_detections_nme"])],
                       higher_is_better=False),
    ]
    if "verification" in r:
        out.append(headline_entry("verification_accuracy_10fold", "unseen images of training identities",
                                  r["verification"]["accuracy"], [("chance", 0.5)]))
    for e in out:
        e["model_name"] = f"Uniface {v}"
    return out


def compare_variants(variants: Dict[str, Dict]) -> list:
    """Plain statements of which way each ablation went (paper: A beats B, C and D)."""
    out = []
    if "A" not in variants:
        return out
    a = variants["A"]
    names = {"B": "separate networks", "C": "no fusion", "D": "no landmark attention"}
    for v, label in names.items():
        if v not in variants:
            continue
        b = variants[v]
        for key, better in (("verification", "higher"), ("verification_robust", "higher"), ("ap", "higher"),
                            ("nme", "lower"), ("nme_box", "lower")):
            if key not in a or key not in b:
                continue
            va = a[key]["accuracy"] if key.startswith("verification") else a[key]
            vb = b[key]["accuracy"] if key.startswith("verification") else b[key]
            a_wins = va > vb if better == "higher" else va < vb
            out.append(f"{key}: A {va:.4f} vs {v} ({label}) {vb:.4f} -> "
                       f"{'A better (as in the paper)' if a_wins else v + ' better or equal (paper: A better)'}")
    return out


def results_markdown(results: Dict) -> str:
    b = results["baselines"]
    fps = results["experiment_config"]["fp_counts"]
    lines = [f"# Uniface results: {results['experiment']}", "",
             f"Machine: {results['machine']['platform']}, {results['machine']['cpus']} CPUs, "
             f"TensorFlow {results['machine']['tensorflow']}. Total {results['timings_seconds']['total']:.0f}s."]
    if results.get("distribution"):
        lines.append(f"Trained with the {distribution_line(results['distribution'])}.")
    lines += ["", "| Metric | Split | Model | Strongest trivial baseline |", "|---|---|---|---|"]
    lines += [f"| {h['metric']} | {h['split']} | {h['model']:.4f} | {h['baseline_name']}: {h['baseline']:.4f} |"
              for h in results["headline"]]
    lines += ["",
              "## Table I" + (" on synthetic data" if not results["run"]["data"] else ""), "",
              "| Model | Params | AP@0.5 | " + " | ".join(f"TPR@{n}FP" for n in fps)
              + " | NME inter-ocular | NME box | Verification | Robust verification |",
              "|---|---|---|" + "---|" * len(fps) + "---|---|---|---|"]
    for v, r in results["variants"].items():
        tpr = " | ".join(f"{r['tpr_at_fp'][str(n)]:.3f}" for n in fps)
        ver = " | ".join(f"{r[k]['accuracy']:.3f} ± {r[k]['std']:.3f}" if k in r else "not measured"
                         for k in ("verification", "verification_robust"))
        lines.append(f"| {v} | {r['params']:,} | {r['ap']:.3f} | {tpr} | {r['nme']:.4f} | {r['nme_box']:.4f} | {ver} |")
    tpr = " | ".join(f"{b['fixed_prior_tpr_at_fp'][str(n)]:.3f}" for n in fps)
    lines.append(f"| fixed-prior / mean-shape / chance | - | {b['fixed_prior_ap']:.3f} | {tpr} | "
                 f"{b['mean_shape_nme']:.4f} | {b['mean_shape_nme_box']:.4f} | 0.500 | 0.500 |")
    lines += ["", "Mean-shape baseline placed in each model's own matched detections (NME inter-ocular / box): "
              + ", ".join(f"{v}: {r['mean_shape_in_detections_nme']:.4f} / {r['mean_shape_in_detections_nme_box']:.4f}"
                          for v, r in results["variants"].items())
              + ". The table's baseline row places it in the ground-truth boxes (an oracle box)."]
    t = b.get("teacher_on_aligned_crops")
    if t:
        lines += ["", f"Teacher on ground-truth-aligned crops (reference): verification {t['accuracy']:.3f} ± "
                      f"{t['std']:.3f}."]
    lines += ["", "## Comparisons (which way each ablation went)", ""]
    lines += [f"- {c}" for c in results["comparisons"]] or ["- (only one variant trained)"]
    return "\n".join(lines) + "\n"
