"""``facemt export``: export a trained model to every deployment format, verified.

Examples::

    facemt export --model-dir runs/ifan_3t --data DATA/landmarks --data DATA/parsing --output exports/ifan
    facemt export --model-dir runs/ifan_3t --domain synth_studio --formats saved_model,tflite \\
        --output exports/ifan_studio
    facemt export --verify-only --output exports/ifan --data DATA/landmarks
"""

from __future__ import annotations

import argparse
import os

from keras_facemt.errors import ExportError


def _csv(value: str):
    return tuple(v.strip() for v in value.split(",") if v.strip())


def register(subparsers) -> None:
    """Adds the ``export`` subcommand."""
    from keras_facemt.serving.exporter import FORMATS
    from keras_facemt.serving.tflite import QUANTIZATIONS

    p = subparsers.add_parser(
        "export",
        help="export a model to .keras, SavedModel (TF Serving), TFLite and ONNX, verified in each runtime",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model-dir", help="training run directory (checkpoints/ + run_config.json) or a .keras file")
    p.add_argument("--output", required=True, help="export directory to create (or to verify with --verify-only)")
    p.add_argument("--formats", type=_csv, default=FORMATS, help=f"comma list from {','.join(FORMATS)} (default: all)")
    p.add_argument(
        "--quantizations",
        type=_csv,
        default=QUANTIZATIONS,
        help=f"TFLite variants, comma list from {','.join(QUANTIZATIONS)} (default: all)",
    )
    p.add_argument(
        "--data",
        action="append",
        default=[],
        help="dataset directory of real examples for verification and int8 calibration (repeatable)",
    )
    p.add_argument("--split", default="test", help="held-out split used for verification (default: test)")
    p.add_argument("--calibration-split", default="train", help="split used for int8 calibration (default: train)")
    p.add_argument("--examples", type=int, default=32, help="verification examples (default: 32)")
    p.add_argument("--calibration-samples", type=int, default=64, help="int8 calibration examples (default: 64)")
    p.add_argument(
        "--domain", help="freeze per-dataset BN to this training dataset (name or id); default: keep a 'domain' input"
    )
    p.add_argument(
        "--outputs",
        default="final",
        choices=("final", "all"),
        help="export the final outputs only or the per-iteration outputs too",
    )
    p.add_argument("--int8-io", default="float32", choices=("float32", "uint8"), help="int8 model image I/O type")
    p.add_argument("--model-name", default=None, help="TF Serving model name (default: the system name or 'facemt')")
    p.add_argument("--version", type=int, default=1, help="TF Serving version directory (default: 1)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export")
    p.add_argument("--verify-only", action="store_true", help="re-verify an existing export and exit")
    p.add_argument(
        "--skip-saved-model-cli",
        action="store_true",
        help="do not run each signature through saved_model_cli (faster; not what TF Serving loads)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    if args.verify_only:
        return _verify_only(args)
    from keras_facemt.models.model_info import resolve_domain
    from keras_facemt.serving.exporter import ExportOptions, export_model
    from keras_facemt.serving.model_source import load_model_source
    from keras_facemt.serving.verification_data import load_verification_data

    if not args.model_dir:
        raise ExportError("--model-dir is required (a training run directory or a .keras file).")
    # Validate the cheap options before loading anything.
    options = ExportOptions(
        formats=tuple(args.formats),
        quantizations=tuple(args.quantizations),
        model_name=args.model_name or "facemt",
        version=args.version,
        outputs=args.outputs,
        int8_io=args.int8_io,
        opset=args.opset,
        calibration_samples=args.calibration_samples,
        overwrite=args.overwrite,
        saved_model_cli=not args.skip_saved_model_cli,
    )
    model, info = load_model_source(args.model_dir)
    frozen = resolve_domain(args.domain, info.get("domains"))
    import dataclasses

    options = dataclasses.replace(
        options, frozen_domain=frozen, model_name=args.model_name or info.get("system") or "facemt"
    )
    domains = info.get("domains") or {}
    data = load_verification_data(model, args.data, args.split, args.examples, domains, frozen)
    calibration = None
    if "tflite" in options.formats and "int8" in options.quantizations:
        calibration = load_verification_data(
            model, args.data, args.calibration_split, options.calibration_samples, domains, frozen
        )
    print(f"facemt export: {args.model_dir} -> {args.output}")
    manifest = export_model(model, args.output, data, options, calibration=calibration, model_info=info)
    print(
        f"facemt export: wrote {len(manifest['artifacts'])} verified artifact(s) and "
        f"{os.path.join(args.output, 'manifest.json')}"
    )
    return 0


def _verify_only(args) -> int:
    from keras_facemt.serving.exporter import KERAS_FILE
    from keras_facemt.serving.keras_format import load_model
    from keras_facemt.serving.manifest import read_manifest
    from keras_facemt.serving.verification_data import load_verification_data
    from keras_facemt.serving.verify import verify_artifacts

    manifest = read_manifest(args.output)
    model = load_model(os.path.join(args.output, KERAS_FILE))
    training = manifest.get("training") or {}
    frozen = training.get("frozen_domain")
    data = load_verification_data(model, args.data, args.split, args.examples, training.get("domains") or {}, frozen)
    names = dict(manifest["output_name_map"])
    report = verify_artifacts(
        args.output, manifest["artifacts"], model, names, data, frozen, saved_model_cli=not args.skip_saved_model_cli
    )
    print(report.table())
    if not report.passed:
        report.raise_if_failed()
    print(f"facemt export: all {len(report.checks)} checks passed for {args.output}")
    return 0
