"""MTFR's export and deployment helpers (Wang et al., ICMR 2017, Sec. 4.7-4.8).

* ``export_mtfr``: the deployable graph (``serving.build_serving_graph``) to every
  format, each TFLite variant checked on held-out faces by embedding agreement,
  verification and attribute accuracy (``recognition_checks``), with the deployed
  verification threshold in the manifest;
* ``load_deployable``: the deployable model, attribute names and threshold of an MTFR
  run or export directory.
"""

from __future__ import annotations

from typing import Dict

import keras

from keras_facemt.models.mtfr.config import MTFRConfig
from keras_facemt.models.mtfr.serving import ATTRIBUTES_KEY, EMBEDDING, attribute_keys, serving_spec_names


# Quantised TFLite variants: the minimum cosine to the Keras embedding, and the most
# verification / attribute accuracy they may lose, relative to Keras.
MIN_EMBEDDING_COSINE = {"float16": 0.99, "dynamic": 0.95, "int8": 0.95}
MAX_RELATIVE_LOSS = 0.10


def recognition_checks(export_dir: str, serving_model: keras.Model, faces: Dict, config: MTFRConfig,
                       pairs_seed: int = 0, max_images: int = 400) -> Dict[str, Dict[str, float]]:
    """Scores every TFLite artifact of an export on held-out faces, next to the Keras model.

    For each artifact: mean cosine of its embedding to the Keras one, 10-fold
    verification accuracy on balanced pairs, and mean attribute accuracy, with pass
    flags against ``MIN_EMBEDDING_COSINE`` and ``MAX_RELATIVE_LOSS``.

    Args:
        faces: ``images`` uint8 ``[N, H, W, 3]``, ``identity`` ``[N]``, ``attributes`` ``[N, 7]``.
    """
    import os

    import numpy as np

    from keras_facemt.metrics.multilabel import attribute_accuracy
    from keras_facemt.metrics.verification import verification_accuracy
    from keras_facemt.models.mtfr.config import ATTRIBUTES
    from keras_facemt.models.mtfr.task import balanced_pairs, pair_scores
    from keras_facemt.serving.manifest import read_manifest
    from keras_facemt.serving.tflite import TFLiteRunner

    n = min(len(faces["images"]), max_images)
    images = faces["images"][:n].astype(np.float32) / 255.0
    ids = faces["identity"][:n]
    pairs, same, folds = balanced_pairs(ids, max(20, (n * 2) // 20 * 20), pairs_seed)
    cols = [ATTRIBUTES.index(a) for a in config.attributes]
    labels = faces["attributes"][:n][:, cols]

    def score(out):
        e = np.asarray(out[EMBEDDING], np.float64)
        e = e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)
        res = {"verification": verification_accuracy(pair_scores(e, pairs), same, folds=folds)["accuracy"]}
        if cols:
            res["attributes"] = float(np.nanmean(attribute_accuracy(np.asarray(out[ATTRIBUTES_KEY]), labels)))
        return res, e

    ref = {k: np.concatenate([np.asarray(serving_model({"image": images[s:s + 64]}, training=False)[k])
                              for s in range(0, n, 64)]) for k in serving_model.output}
    keras_scores, ref_e = score(ref)
    report = {"keras": keras_scores}
    for art_id, art in sorted(read_manifest(export_dir)["artifacts"].items()):
        if art.get("format") != "tflite":
            continue
        runner = TFLiteRunner(os.path.join(export_dir, str(art["path"])))
        chunks = [runner({"image": images[s:s + 64]}) for s in range(0, n, 64)]
        out = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        s, e = score(out)
        quant = art.get("quantization", "float32")
        s["cosine"] = float(np.mean(np.sum(e * ref_e, -1)))
        floor = MIN_EMBEDDING_COSINE.get(quant, 0.9999)
        losses = [(keras_scores[k] - s[k]) / max(keras_scores[k], 1e-12) for k in keras_scores]
        s["passed"] = bool(s["cosine"] >= floor and all(v <= MAX_RELATIVE_LOSS for v in losses))
        s["min_cosine"] = floor
        report[art_id] = s
    return report


def export_mtfr(model: keras.Model, config: MTFRConfig, output_dir: str, faces: Dict, threshold: float,
                formats=None, quantizations=None, overwrite: bool = True, log=print) -> Dict[str, object]:
    """Exports MTFR's deployable graph in every format, verified, with its threshold and names.

    The shared exporter checks parity (float formats) and the generic multi-label /
    embedding rules (quantised); ``recognition_checks`` then scores verification and
    attribute accuracy of each TFLite variant; a failure raises ``ExportError``.
    The manifest records ``outputs`` (kinds, attribute names), ``preprocessing``
    and ``verification_threshold``.
    """
    import dataclasses

    import numpy as np

    from keras_facemt.errors import ExportError
    from keras_facemt.models.mtfr.config import ATTRIBUTES
    from keras_facemt.serving.exporter import FORMATS, ExportOptions, export_model
    from keras_facemt.serving.manifest import write_manifest
    from keras_facemt.serving.tflite import QUANTIZATIONS
    from keras_facemt.serving.verify import VerificationData

    from keras_facemt.models.registry import get_system

    serving = get_system("mtfr").serving_model(model, config)  # the graph with its ModelInfo
    cols = [ATTRIBUTES.index(a) for a in config.attributes]
    k = min(64, len(faces["images"]))
    labels = {}
    for j, key in zip(cols, attribute_keys(config)):
        labels[f"attr/{key}"] = faces["attributes"][:k][:, j]
        labels[f"has_attr/{key}"] = np.ones((k,), np.int64)
    data = VerificationData({"image": faces["images"][:k].astype(np.float32) / 255.0,
                             "domain": np.zeros(k, np.int32)}, labels,
                            source="MTFR held-out aligned faces")
    options = ExportOptions(formats=tuple(formats or FORMATS), quantizations=tuple(quantizations or QUANTIZATIONS),
                            model_name="mtfr", overwrite=overwrite)
    info = {"system": "mtfr", "config": dataclasses.asdict(config)}
    manifest = export_model(serving, output_dir, data, options, model_info=info, log=log)
    checks = recognition_checks(output_dir, serving, faces, config)
    manifest["recognition_checks"] = checks
    manifest["verification_threshold"] = float(threshold)
    write_manifest(output_dir, manifest)
    bad = [a for a, c in checks.items() if a != "keras" and not c["passed"]]
    if bad:
        raise ExportError(f"{output_dir}: {bad} lose more than allowed against Keras: "
                          + "; ".join(f"{a}: {checks[a]}" for a in bad))
    return manifest


def load_deployable(path: str):
    """The deployable graph of a run directory or an export, its attribute names and threshold.

    Args:
        path: an MTFR run directory (``model.keras`` + ``run_config.json`` +
            ``results.json``) or an export directory (``manifest.json``).

    Returns:
        ``(keras.Model, attribute names, verification_threshold)``, ready for
        ``FaceAnalyzer(model)`` and ``compare_faces(a, b, threshold)``.

    Raises:
        CheckpointError: when ``path`` is neither.
    """
    import json
    import os

    from keras_facemt.errors import CheckpointError
    from keras_facemt.serving.keras_format import load_model

    manifest = os.path.join(path, "manifest.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            info = json.load(f)
        exported = load_model(os.path.join(path, "model.keras"))
        return exported, list(serving_spec_names(exported)), float(info["verification_threshold"])
    results = os.path.join(path, "results.json")
    if not (os.path.exists(results) and os.path.exists(os.path.join(path, "model.keras"))):
        raise CheckpointError(f"{path}: neither an MTFR export (manifest.json) nor a finished run "
                              f"(model.keras + results.json). Received: path={path!r}")
    from keras_facemt.serving.model_source import config_from_dict, read_run_config

    cfg = config_from_dict(MTFRConfig, read_run_config(path)["config"])
    with open(results) as f:
        threshold = float(json.load(f)["metrics"]["threshold"])
    from keras_facemt.models.registry import get_system

    served = get_system("mtfr").serving_model(load_model(os.path.join(path, "model.keras")), cfg)
    return served, list(attribute_keys(cfg)), threshold
