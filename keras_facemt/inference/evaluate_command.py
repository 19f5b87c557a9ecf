"""``facemt evaluate``: score any trained model on any converted dataset.

The model (a run directory or a ``.keras`` file) says which system it is and what
its outputs are (``ModelInfo``); each ``--data`` directory is read through the input
pipeline exactly as evaluation during training reads it (no augmentation, every
example of ``--split``), in the BN domain its dataset was trained in, and every
declared output whose labels the dataset carries is scored with its paper's
metrics (``evaluation.declared_metrics``). Writes ``--out`` (JSON) and the same
name with ``.md`` (a Markdown table), atomically.
"""

from __future__ import annotations

import os
from typing import Dict, List

from keras_facemt.errors import DataError


def evaluate(model_path: str, data_dirs: List[str], split: str = "test", domain=None,
             max_examples: int = 1_000_000_000) -> Dict[str, object]:
    """Scores the model at ``model_path`` on each of ``data_dirs``.

    Returns:
        ``{"model": ..., "system": ..., "split": ..., "datasets": {dir: {task: metrics}}}``.

    Raises:
        DataError: a directory without the split, or without any label the model's
            outputs are scored against.
    """
    from keras_facemt.data import shards
    from keras_facemt.data.pairs import has_pairs
    from keras_facemt.evaluation.declared_metrics import evaluate_declared_outputs
    from keras_facemt.inference.stage import deployable_model
    from keras_facemt.models.model_info import resolve_domain
    from keras_facemt.serving.verification_data import load_verification_data, model_tasks
    from keras_facemt.serving.verify import keras_outputs

    model, info = deployable_model(model_path)
    frozen = resolve_domain(domain, info.domains)
    report: Dict[str, object] = {"model": os.path.abspath(model_path), "system": info.system,
                                 "preset": info.preset, "split": split, "datasets": {}}
    wanted = model_tasks(model) + (["detection"] if info.serving.detecting else [])
    for data_dir in data_dirs:
        manifest = shards.read_manifest(data_dir)
        counts = manifest.get("splits") or manifest.get("counts") or {}
        if split not in counts:
            raise DataError(f"{data_dir}: has no {split!r} split; its splits: {sorted(counts)}.")
        presence = (manifest.get("presence") or {}).get(split, {})
        labelled = [t for t in wanted if int(presence.get(t, 0)) > 0]
        if not labelled:
            raise DataError(f"{data_dir}: its {split!r} split carries no labels for this {info.system} model's "
                            f"tasks {sorted(set(wanted))} (it has {sorted(k for k, v in presence.items() if v)}).")
        data = load_verification_data(model, [data_dir], split, max_examples, dict(info.domains), frozen)
        outputs = keras_outputs(model, data.inputs, {k: k for k in info.serving.outputs},
                                batch_size=info.serving.preprocessing.batch_size(64))
        results = evaluate_declared_outputs(info.serving, outputs, data.labels)
        if info.serving.key_of("embedding", per_face=info.serving.detecting) and has_pairs(data_dir):
            results["verification"] = pair_verification(model, data_dir, split)
        report["datasets"][data_dir] = {"examples": data.num_examples, "tasks": results}
    return report


def pair_verification(model, data_dir: str, split: str, batch_size: int = 64) -> Dict[str, object]:
    """10-fold verification of an embedding model on ``data_dir``'s ``pairs.json`` (the LFW protocol),
    and the true-accept rate at FAR 1e-2 / 1e-3 where the impostor pairs can measure it.

    Each image of the split goes through ``FaceAnalyzer`` (its declared
    preprocessing; 5-point alignment from the record's landmarks where the model
    aligns and the record has them); a pair's score is the cosine of the two
    images' embeddings (the most confident face of a detector's output).

    Raises:
        DataError: a pair naming an image the split does not hold.
    """
    import numpy as np

    from keras_facemt.data import shards
    from keras_facemt.data.codec import decode_image
    from keras_facemt.data.landmarks import convert_points
    from keras_facemt.data.pairs import read_pairs
    from keras_facemt.inference.analyzer import FaceAnalyzer
    from keras_facemt.metrics.tar_far import measurable_fars, tar_at_far
    from keras_facemt.metrics.verification import verification_accuracy

    a, b, same, folds = read_pairs(data_dir)
    wanted = set(a) | set(b)
    analyzer = FaceAnalyzer(model, batch_size=batch_size)
    align = analyzer.spec.preprocessing.align
    images, points, ids = [], [], []
    for path in shards.list_shards(data_dir, split):
        for rec in shards.iter_records(path):
            if rec.source_id not in wanted:
                continue
            image = decode_image(rec.image, rec.source_id)
            lm = None
            if align and rec.landmarks is not None and len(rec.landmarks):
                five, _ = convert_points(rec.landmarks[0], None, rec.landmark_scheme, align)
                lm = np.asarray(five, np.float32) * [image.shape[1], image.shape[0]]
            images.append(image)
            points.append(lm)
            ids.append(rec.source_id)
    missing = sorted(wanted - set(ids))
    if missing:
        raise DataError(f"{data_dir}: pairs.json names {len(missing)} image(s) its {split!r} split lacks, e.g. "
                        f"{missing[:3]}.")
    embeddings = {}
    for start in range(0, len(images), batch_size):
        chunk = slice(start, start + batch_size)
        lms = points[chunk] if align and all(p is not None for p in points[chunk]) else None
        for sid, faces in zip(ids[chunk], analyzer(images[chunk], landmarks=lms)):
            best = max(faces, key=lambda f: f.score, default=None)
            embeddings[sid] = None if best is None or best.embedding is None else np.asarray(best.embedding)
    no_face = sum(e is None for e in embeddings.values())
    dim = next((len(e) for e in embeddings.values() if e is not None), 1)
    vec = {k: (np.zeros(dim) if e is None else e / max(np.linalg.norm(e), 1e-12)) for k, e in embeddings.items()}
    scores = np.array([float(np.dot(vec[x], vec[y])) for x, y in zip(a, b)])
    result = verification_accuracy(scores, same, folds=folds)
    impostors = int(np.sum(~np.asarray(same, bool)))
    fars = measurable_fars((1e-2, 1e-3), impostors)
    tar = tar_at_far(scores, same, fars) if fars and np.any(same) else {}
    return {"accuracy": float(result["accuracy"]), "std": float(result["std"]), "pairs": int(len(scores)),
            **{f"tar@far={f:g}": float(tar[str(f)]) for f in fars if str(f) in tar},
            "folds": int(len(np.unique(folds))), "images_without_face": int(no_face),
            "baseline": 0.5, "baseline_name": "chance", "examples": int(len(embeddings))}


def run(args) -> int:
    from keras_facemt.evaluation.declared_metrics import markdown_table
    from keras_facemt.io import write_json_atomic, write_text_atomic
    from keras_facemt.output_paths import check_output_file

    if args.out:  # before any work: an unwritable --out fails now, not after scoring
        check_output_file(args.out, "--out")
        check_output_file(os.path.splitext(args.out)[0] + ".md", "--out")
    report = evaluate(args.model, args.data, args.split, args.domain)
    text = "".join(markdown_table(r["tasks"], f"{report['system']} on {d} ({args.split}, {r['examples']} examples)")
                   + "\n" for d, r in report["datasets"].items())
    print(text, end="")
    if args.out:
        # The table first: a report JSON is only there once everything it refers to is.
        md = os.path.splitext(args.out)[0] + ".md"
        write_text_atomic(md, text)
        try:
            write_json_atomic(args.out, report)
        except OSError:
            os.remove(md)
            raise
        print(f"wrote {args.out} and {md}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="score a trained model on converted datasets with its paper's metrics")
    p.add_argument("--model", required=True, help="a training run directory or a .keras file")
    p.add_argument("--data", action="append", required=True, help="a converted dataset directory (repeatable)")
    p.add_argument("--split", default="test", help="split to score (default: test)")
    p.add_argument("--domain", default=None,
                   help="evaluate every directory in this BN domain (id or training dataset name); "
                        "default: each directory's own training domain")
    p.add_argument("--out", help="write the report as JSON here (and a .md table beside it)")
    p.set_defaults(func=run)
