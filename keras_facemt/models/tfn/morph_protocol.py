"""TFN on MORPH II's S1 / S2 / S3 protocol (Lin et al., IEEE TCYB 2019, Sec. V-C, Table V).

``facemt train tfn --experiment tfn_morph --data morph=DIR`` (or ``python
recipes/train_tfn.py ...``), where DIR is a ``tfrecords_tools/convert_morph.py
--protocol s123`` conversion (splits ``s1``, ``s2``, ``s3``), runs, through the shared
runner (run directory, ``--resume``, ``results.json`` with its ``headline``):

1. **Base** (``<run>/base``): stages 1-3 of Sec. IV-C on SynthFace scenes (or
   ``--data train=DIR``), standing in for Sec. V-C's detection net trained on WIDER
   FACE and landmark net on 300-W. Stage 1 trains the RPN, detection and landmark
   terms only: those datasets carry no attribute label, so the attribute subnet
   learns attributes from MORPH alone, as in the paper. Trained once for both
   folds (the folds then differ only in their MORPH data) and scored on held-out
   scenes (detection AP, NME: the detector the deployable reading below relies on).
2. **Folds** (``convert_morph.FOLDS``: train S1 test S2 + S3, train S2 test S1 + S3;
   ``<run>/fold_s1``, ``<run>/fold_s2``): from the base's weights, stage 4 (Sec.
   IV-C: only the attribute subnet and its block train) for ``stage_steps[3]``
   updates on the training subset's photos: "Finally, we optimize the attribute
   analysis net by exploiting MORPH II training set" (Sec. V-C). This is the cheap
   and honest option: a fold costs one stage, and nothing of a test subset (not its
   photos, not its subjects) reaches training; the converter keeps subjects apart
   and the run checks it (``DataError`` when one subject is in both).
3. **Avg.E** = ``metrics.regression_error.average_fold_error`` of the two folds' age
   MAE; gender and ethnicity accuracy are reported per fold and as their mean.

**A MORPH photo as a TFN example.** A record is a one-face scene (``data.pipeline``
scenes mode: the photo letterboxed into the square input) whose face box is the
record's box: ``convert_morph.py`` stores none, so the converter's default, the
whole photo, is the box (``tfrecords_tools.common.Face``: no box = the whole image).
A MORPH photo is a mugshot whose face fills most of it, so the attribute subnet
reads the head and some background, the same region in training and in the
record-box reading below. Training samples are that box shaken (``shake_shift``,
``shake_scale``) and its refinement by the detection subnet, as for any face
(``task.face_roi_stream``). Labels: age (whole years) -> ``age_class`` (101
classes), gender, and ethnicity where labelled (MORPH's W, B, A; H and O carry
none). The RPN and detection terms need exhaustive boxes (``has_boxes``, 0 here);
there are no points: neither trains in stage 4, and a face without a label adds
nothing to a term (the indicators ``I_k^c`` of Eq. 1).

**Scoring a test photo.** Every test photo is scored twice:

* *record box* (the headline, Table V's numbers): the attribute subnet on the
  photo's record box, through the training graph's ``face_rois`` input; every
  photo counts. Age = the expectation of the 101-way softmax (years).
* *deployable graph*: the full detector; a MORPH photo shows one person, so the top
  scoring detection is its face. A photo with no detection above the model's
  ``score_threshold`` is a miss: it is left out of that reading's MAE / accuracy
  and counted in its detection rate.

Ethnicity accuracy counts only photos with an ethnicity label. Baselines come from
the fold's training subset: its mean age, its majority gender and ethnicity.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Dict, List, Optional

import numpy as np

from keras_facemt.data import batch as batch_keys
from keras_facemt.errors import ConfigError, DataError
from keras_facemt.models.tfn import scheme, task

PROTOCOL = "s123"
ATTRIBUTES = ("age", "gender", "ethnicity")
# Stage 1 of the base: the terms WIDER FACE and 300-W label (no attributes).
BASE_JOINT_TERMS = ("rpn/*", "detection/*", "landmarks")
EVAL_BATCH = 64
# Table V: TFN and TFN+JFA per fold (train S1, train S2): age MAE, gender and ethnicity accuracy.
PAPER_TABLE5 = {
    "TFN": {"s1": (3.23, 0.9871, 0.9805), "s2": (3.18, 0.9866, 0.9813)},
    "TFN+JFA": {"s1": (3.15, 0.9907, 0.9835), "s2": (2.94, 0.9906, 0.9847)},
}


def folds():
    """``((training subset, test subsets), ...)`` of the protocol (``convert_morph.FOLDS``)."""
    from tfrecords_tools.convert_morph import FOLDS

    return FOLDS


def check_protocol_dir(data_dir: str) -> Dict[str, object]:
    """The ``dataset.json`` of a ``convert_morph.py --protocol s123`` conversion.

    Raises:
        DataError: a directory that is not a conversion, one of another protocol, a
            missing or empty split ``s1`` / ``s2`` / ``s3``, or a split without age labels.
    """
    from keras_facemt.data.shards import read_manifest

    manifest = read_manifest(data_dir)
    where = f"Received: --data morph={data_dir}"
    protocol = (manifest.get("options") or {}).get("protocol")
    if manifest.get("converter") != "morph" or protocol != PROTOCOL:
        raise DataError(f"{data_dir} is not a MORPH S1/S2/S3 conversion (converter "
                        f"{manifest.get('converter')!r}, protocol {protocol!r}); write one with "
                        f"`facemt convert morph ... --protocol s123`. {where}")
    counts = manifest.get("counts") or {}
    presence = manifest.get("presence") or {}
    for split in sorted({s for train, tests in folds() for s in (train, *tests)}):
        if not counts.get(split):
            raise DataError(f"{data_dir}: split {split!r} is missing or empty (splits: {sorted(counts)}); the "
                            f"S1/S2/S3 protocol needs s1, s2 and s3. {where}")
        if not (presence.get(split) or {}).get("age"):
            raise DataError(f"{data_dir}: split {split!r} has no age labels. {where}")
    return manifest


def _tasks(manifest, split: str) -> tuple:
    """The labels ``split`` carries: age always, gender / ethnicity / identity where present."""
    presence = (manifest.get("presence") or {}).get(split) or {}
    return tuple(t for t in ATTRIBUTES + ("identity",) if t == "age" or presence.get(t))


def photo_config(exp, data_dir: str, split: str, image_size: int, tasks, training: bool):
    """One subset's photos as one-face scenes (letterboxed), augmented as TFN's scenes when training."""
    from keras_facemt.configs.data import DataConfig

    return DataConfig(name=f"morph_{split}", data_dir=data_dir, split=split, mode="scenes",
                      image_size=(image_size, image_size),
                      global_batch_size=exp.batch_size if training else EVAL_BATCH, tasks=tuple(tasks), max_faces=1,
                      augment=task.train_augment(exp) if training else None, shuffle_buffer=512 if training else 0,
                      repeat=training, seed=exp.seed)


def age_classes(batch):
    """MORPH labels -> TFN's: ``age_class`` = the age rounded to whole years (0-100); a label the
    subset lacks becomes an absent one (flag 0)."""
    import tensorflow as tf

    out = dict(batch)
    faces = tf.shape(batch[batch_keys.FACE_MASK])
    age = batch[batch_keys.attr("age")]
    out[batch_keys.attr("age_class")] = tf.cast(tf.clip_by_value(tf.round(age), 0.0, 100.0), tf.int32)
    out[batch_keys.has_attr("age_class")] = batch[batch_keys.has_attr("age")]
    for name in ("gender", "ethnicity"):
        if batch_keys.attr(name) not in out:
            out[batch_keys.attr(name)] = tf.zeros(faces, tf.int32)
            out[batch_keys.has_attr(name)] = tf.zeros(faces, tf.float32)
    return out


def read_photos(exp, cfg, data_dir: str, split: str, tasks, model=None, served=None) -> Dict[str, np.ndarray]:
    """Labels of every photo of ``split`` and, when given, both readings' predictions.

    Returns:
        ``[N]`` arrays: ``<name>`` / ``has_<name>`` for age, gender, ethnicity and
        identity; with ``model``: ``box_age`` (years), ``box_gender``,
        ``box_ethnicity``; with ``served``: ``detected`` (0 / 1) and ``det_age``,
        ``det_gender``, ``det_ethnicity`` (0 where nothing was detected).
    """
    import tensorflow as tf

    from keras_facemt.data.pipeline import build_dataset
    from keras_facemt.models.tfn.losses import ATTRIBUTE_SLICES
    from keras_facemt.models.tfn.postprocess import AgeExpectation

    expectation = AgeExpectation()
    out: Dict[str, list] = {}

    def add(key, values):
        out.setdefault(key, []).append(np.asarray(values))

    for batch in build_dataset(photo_config(exp, data_dir, split, cfg.image_size, tasks, training=False)):
        n = int(batch[batch_keys.IMAGE].shape[0])
        for name in ATTRIBUTES + ("identity",):
            key = batch_keys.IDENTITY if name == "identity" else batch_keys.attr(name)
            flag = batch_keys.HAS_IDENTITY if name == "identity" else batch_keys.has_attr(name)
            present = key in batch
            add(name, batch[key].numpy()[:, 0] if present else np.zeros(n))
            add("has_" + name, batch[flag].numpy()[:, 0] if present else np.zeros(n))
        if model is not None:
            rows = model({"image": batch[batch_keys.IMAGE], "face_rois": batch[batch_keys.BBOX][:, :1]},
                         training=False)["attributes"][:, 0]
            logits = {name: rows[:, lo:hi] for name, (lo, hi) in ATTRIBUTE_SLICES.items()}
            add("box_age", expectation(logits["age_class"]).numpy())
            add("box_gender", tf.argmax(logits["gender"], -1).numpy())
            add("box_ethnicity", tf.argmax(logits["ethnicity"], -1).numpy())
        if served is not None:
            preds = task.predict(served, batch[batch_keys.IMAGE].numpy(), EVAL_BATCH)
            top = [int(np.argmax(p["scores"])) if len(p["scores"]) else -1 for p in preds]
            add("detected", [t >= 0 for t in top])
            add("det_age", [p["age"][t] if t >= 0 else 0.0 for p, t in zip(preds, top)])
            add("det_gender", [p["gender_logits"][t].argmax() if t >= 0 else 0 for p, t in zip(preds, top)])
            add("det_ethnicity", [p["ethnicity_logits"][t].argmax() if t >= 0 else 0 for p, t in zip(preds, top)])
    return {k: np.concatenate(v) for k, v in out.items()}


def _joined(parts: List[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _subjects(photos) -> set:
    return set(photos["identity"][photos["has_identity"] > 0].astype(np.int64).tolist())


def _reading(photos, prefix: str, keep, train) -> Dict[str, object]:
    """``task.attribute_scores`` of one reading's predictions on the photos ``keep`` selects."""
    pred = {name: photos[prefix + name][keep] for name in ATTRIBUTES}
    truth = {key: photos[key][keep] for name in ATTRIBUTES for key in (name, "has_" + name)}
    metrics, baselines = task.attribute_scores(pred, truth, train)
    return {"metrics": metrics, "baselines": baselines}


def score_fold(train: Dict[str, np.ndarray], tests: Dict[str, Dict[str, np.ndarray]]) -> Dict[str, object]:
    """Both readings of one fold, with the training subset's baselines, and its subject counts.

    Raises:
        DataError: when a subject is in the training and a test subset.
    """
    every = _joined(list(tests.values()))
    photos = len(every["age"])
    shared = _subjects(train) & _subjects(every)
    if shared:
        raise DataError(f"{len(shared)} subject(s) are in the training and the test subsets (e.g. identity "
                        f"{min(shared)}); the S1/S2/S3 protocol keeps every person in one subset. Convert again "
                        f"with `--protocol s123`. Received: shared identities={sorted(shared)[:5]}")
    detected = every["detected"] > 0
    return {
        "train_photos": len(train["age"]), "test_photos": {s: len(p["age"]) for s, p in tests.items()},
        "subjects": {"train": len(_subjects(train)), "test": len(_subjects(every)), "in_both": 0},
        "record_box": _reading(every, "box_", np.ones(photos, bool), train),
        "deployable": dict(_reading(every, "det_", detected, train), detected_photos=int(detected.sum()),
                           detection_rate=float(detected.mean()) if photos else float("nan")),
    }


def run(exp, ctx) -> Dict[str, object]:
    """The protocol (module docstring) into ``ctx.model_dir``; returns TFN's results with ``morph``.

    Raises:
        ConfigError: ``stage_steps[3]`` of 0 (the folds train stage 4).
        DataError: ``ctx.data["morph"]`` is not an S1/S2/S3 conversion, or a subject
            is in a training and a test subset.
    """
    from keras_facemt.metrics.regression_error import average_fold_error
    from keras_facemt.models.registry import get_system
    from keras_facemt.models.tfn import model as tfn_model
    from keras_facemt.serving.keras_format import save_model

    data_dir = ctx.data["morph"]
    manifest = check_protocol_dir(data_dir)
    if exp.stage_steps[3] < 1:
        raise ConfigError(f"The MORPH protocol trains stage 4 on each training subset: stage_steps[3] must be >= 1. "
                          f"Received: stage_steps={exp.stage_steps}")
    t0 = time.time()
    timings: Dict[str, float] = {}
    cfg = scheme.model_config(exp)
    system = get_system("tfn")
    scenes = scheme.render_scenes(exp, cfg.image_size, ctx.cache_dir or ctx.path("data"), ctx.log)
    base_data = ctx.data.get("train") or scenes
    timings["data"] = time.time() - t0
    stages = scheme.phases(exp, attribute_stream="morph", joint_terms=BASE_JOINT_TERMS)
    base, history, seconds = scheme.train(exp, cfg, base_data, ctx.path("base"), ctx.strategy, ctx.deterministic,
                                       ctx.log, schedule=[p for p in stages if p.name != "stage4_attributes"])
    timings["train_base"] = seconds
    t = time.time()
    base_eval = scheme.evaluate_scenes(exp, cfg, base, scenes, base_data)
    timings["evaluate_base"] = time.time() - t
    weights = base.get_weights()
    issues = {"base": history.get("data_issues", {})}
    fold_results, paths = [], {"base_checkpoints": ctx.path("base")}
    for train_split, test_splits in folds():
        name = f"fold_{train_split}"
        ctx.log(f"=== {name}: stage 4 on {train_split}, test on {'+'.join(test_splits)}")

        def model_fn():
            model = tfn_model.build_model(cfg)
            model.set_weights(weights)
            return model

        stream = task.face_roi_stream(exp, photo_config(exp, data_dir, train_split, cfg.image_size,
                                                        _tasks(manifest, train_split), training=True),
                                      prepare=age_classes)
        model, fold_history, seconds = scheme.train(
            exp, cfg, data_dir, ctx.path(name), ctx.strategy, ctx.deterministic, ctx.log, streams={"morph": stream},
            schedule=[p for p in stages if p.name == "stage4_attributes"], model_fn=model_fn,
            datasets={"morph": data_dir})
        timings[f"train_{name}"] = seconds
        t = time.time()
        # The deployable graph's own score threshold decides what counts as detected.
        served = system.serving_model(model, cfg, exp.preset)
        train = read_photos(exp, cfg, data_dir, train_split, _tasks(manifest, train_split))
        tests = {s: read_photos(exp, cfg, data_dir, s, _tasks(manifest, s), model, served) for s in test_splits}
        fold = {"train": train_split, "test": list(test_splits), **score_fold(train, tests),
                "final_losses": scheme.final_losses(fold_history)}
        timings[f"evaluate_{name}"] = time.time() - t
        issues[name] = fold_history.get("data_issues", {})
        fold_results.append(fold)
        paths[f"{name}_model_keras"] = save_model(model, ctx.path(name, "model.keras"),
                                                  info=system.model_info(cfg, exp.preset))
        m = fold["record_box"]["metrics"]
        ctx.log(f"[{name}] age MAE {m['age_mae']:.2f} gender {m['gender_accuracy']:.4f} "
                f"ethnicity {m['ethnicity_accuracy']:.4f} on {sum(fold['test_photos'].values())} photos")
    morph = {"data_dir": data_dir, "protocol": PROTOCOL, "folds": fold_results,
             "subset_counts": manifest.get("counts"), "face_box": "the record's box (convert_morph: the whole photo)"}
    for reading in ("record_box", "deployable"):
        maes = [f[reading]["metrics"]["age_mae"] for f in fold_results]
        trivial = [f[reading]["baselines"]["training_mean_age_mae"] for f in fold_results]
        morph[reading] = {
            "avg_e": average_fold_error(maes) if all(np.isfinite(maes)) else float("nan"),
            "avg_e_training_mean_age": average_fold_error(trivial) if all(np.isfinite(trivial)) else float("nan"),
            **{f"mean_{k}": float(np.mean([f[reading][group][k] for f in fold_results]))
               for group, keys in (("metrics", ("gender_accuracy", "ethnicity_accuracy")),
                                   ("baselines", ("gender_majority", "ethnicity_majority"))) for k in keys},
        }
    results = {
        "config": dataclasses.asdict(cfg), "params": int(base.count_params()), "morph": morph,
        "base": {**base_eval, "final_losses": scheme.final_losses(history)},
        "nonfinite_steps": int(history.get("nonfinite_steps", 0)), "data_issues": issues,
        "timings_seconds": timings,
    }
    results["headline"] = headline(results)
    paths["base_model_keras"] = save_model(base, ctx.path("base", "model.keras"),
                                           info=system.model_info(cfg, exp.preset))
    results["paths"] = {**paths, "scenes": scenes}
    return results


def headline(results: Dict) -> List[Dict[str, object]]:
    """Table V's three figures (record-box reading, means over the folds) next to their baselines, and
    the base detector's AP and NME on held-out scenes."""
    from keras_facemt.metrics.headline import headline_entry

    r = results["morph"]["record_box"]
    split = "MORPH S1/S2/S3 test photos, mean of the 2 folds (attribute subnet on the record's face box)"
    out = [
        headline_entry("morph_age_avg_e_years", split, r["avg_e"], [("training-mean age", r["avg_e_training_mean_age"])],
                       higher_is_better=False),
        headline_entry("morph_gender_accuracy", split, r["mean_gender_accuracy"],
                       [("training-majority gender", r["mean_gender_majority"])]),
    ]
    if np.isfinite(r["mean_ethnicity_accuracy"]):
        out.append(headline_entry("morph_ethnicity_accuracy", split + ", ethnicity-labelled photos",
                                  r["mean_ethnicity_accuracy"],
                                  [("training-majority ethnicity", r["mean_ethnicity_majority"])]))
    # The base detector's figures, when measurable (a base too short to detect anything has no NME).
    for metric, where, value, baselines, higher in task.headline_specs(results["base"]):
        if metric in ("detection_ap@0.5", "landmark_nme_inter_ocular") and np.isfinite(value) and all(
                np.isfinite(v) for _, v in baselines):
            out.append(headline_entry("base_" + metric, where + " (base: stages 1-3)", value, baselines,
                                      higher_is_better=higher))
    return out


def _pct(v: Optional[float]) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{100 * v:.2f}%"


def _num(v: Optional[float], digits: int = 2) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def results_markdown(results: Dict) -> str:
    """``results.md``: Table V's layout (measured rows beside the paper's), the deployable reading,
    baselines, the base detector and the run's settings."""
    exp, morph = results["experiment_config"], results["morph"]
    folds_ = morph["folds"]
    lines = [f"# TFN on MORPH II S1/S2/S3: {exp['name']}", "",
             f"Data `{morph['data_dir']}` (subsets {morph.get('subset_counts')}); preset `{exp['preset']}`. Base: "
             f"stages 1-3 ({'+'.join(str(s) for s in exp['stage_steps'][:3])} updates, batch {exp['batch_size']}) "
             f"on {results['run']['data'].get('train') or 'SynthFace scenes'}; each fold: stage 4 "
             f"({exp['stage_steps'][3]} updates) on its training subset. Face box: {morph['face_box']}.", "",
             "## Table V layout", "",
             "| Method | Training set | Testing set | Age MAE | Avg.E | Gender acc. | Ethnicity acc. |",
             "|---|---|---|---|---|---|---|"]
    for method, folds_paper in PAPER_TABLE5.items():
        avg = np.mean([v[0] for v in folds_paper.values()])
        for (train, tests), (mae, gender, eth) in zip(((f["train"], f["test"]) for f in folds_), folds_paper.values()):
            lines.append(f"| Paper {method} (MORPH II) | {train.upper()} | {'+'.join(t.upper() for t in tests)} | "
                         f"{mae:.2f} | {avg:.3f} | {100 * gender:.2f}% | {100 * eth:.2f}% |")
    rows = (("Measured TFN, record box", "record_box", "metrics", "age_mae", "gender_accuracy", "ethnicity_accuracy"),
            ("Measured TFN, deployable graph (detected photos)", "deployable", "metrics", "age_mae",
             "gender_accuracy", "ethnicity_accuracy"),
            ("Trivial: training mean age / majority class", "record_box", "baselines", "training_mean_age_mae",
             "gender_majority", "ethnicity_majority"))
    for label, reading, group, mae, gender, eth in rows:
        avg = morph[reading]["avg_e" if group == "metrics" else "avg_e_training_mean_age"]
        for f in folds_:
            v = f[reading][group]
            lines.append(f"| {label} | {f['train'].upper()} | {'+'.join(t.upper() for t in f['test'])} | "
                         f"{_num(v[mae])} | {_num(avg)} | {_pct(v[gender])} | {_pct(v[eth])} |")
    lines += ["", "## Per fold", "",
              "| Fold | Train photos | Test photos | Subjects train / test / both | Age faces | Ethnicity-labelled "
              "| Detected (deployable) |", "|---|---|---|---|---|---|---|"]
    for f in folds_:
        m, d = f["record_box"]["metrics"], f["deployable"]
        lines.append(f"| train {f['train']} | {f['train_photos']} | {sum(f['test_photos'].values())} "
                     f"({', '.join(f'{k} {v}' for k, v in f['test_photos'].items())}) | {f['subjects']['train']} / "
                     f"{f['subjects']['test']} / {f['subjects']['in_both']} | {m['age_faces']} "
                     f"(MAE s.e. {_num(m['age_mae_se'])}) | {m['ethnicity_faces']} | {d['detected_photos']} "
                     f"({_pct(d['detection_rate'])}) |")
    b = results["base"]["metrics"]
    lines += ["", f"Base detector on held-out SynthFace scenes: AP@0.5 {_num(b['ap'], 4)} "
              f"(fixed-prior baseline {_num(results['base']['baselines']['fixed_prior_ap'], 4)}), "
              f"NME {_num(b['nme'], 4)}.",
              "", "Record box: the attribute subnet on the photo's record box (every photo counts). Deployable "
              "graph: the top-scoring detection of the full model is the photo's face; photos without a detection "
              "are left out of its figures and counted in the detection rate.", ""]
    m = results.get("machine") or {}
    lines.append(f"Machine: {m.get('cpu', '?')}, {m.get('usable_cores', '?')} usable cores, Python "
                 f"{m.get('python', '?')}, TensorFlow {m.get('tensorflow', '?')}.")
    lines.append("Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in results["timings_seconds"].items()))
    return "\n".join(lines) + "\n"
