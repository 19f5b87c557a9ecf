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

import numpy as np

from keras_facemt.errors import DataError


def _predict(model, inputs: Dict[str, np.ndarray], spec, batch_size: int = 64) -> Dict[str, np.ndarray]:
    chunks: Dict[str, List[np.ndarray]] = {k: [] for k in spec.outputs}
    takes_domain = "domain" in model.input
    for start in range(0, len(inputs["image"]), batch_size):
        feed = {"image": inputs["image"][start:start + batch_size]}
        if takes_domain:
            feed["domain"] = inputs["domain"][start:start + batch_size]
        out = model(feed, training=False)
        for k in chunks:
            chunks[k].append(np.asarray(out[k]))
    return {k: np.concatenate(v, axis=0) for k, v in chunks.items()}


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
    from keras_facemt.evaluation.declared_metrics import evaluate_declared_outputs
    from keras_facemt.inference.stage import deployable_model
    from keras_facemt.models.model_info import resolve_domain
    from keras_facemt.serving.verification_data import load_verification_data, model_tasks

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
        outputs = _predict(model, data.inputs, info.serving)
        results = evaluate_declared_outputs(info.serving, outputs, data.labels)
        report["datasets"][data_dir] = {"examples": data.num_examples, "tasks": results}
    return report


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
