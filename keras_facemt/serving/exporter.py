"""One export: every requested format, verified, with a manifest, moved into place atomically.

Export directory layout::

    <output>/manifest.json
    <output>/model.keras                             (always: the reference for --verify-only)
    <output>/saved_model/<model_name>/<version>/     (TF Serving --model_base_path=<output>/saved_model/<model_name>)
    <output>/tflite/model_<quantization>.tflite      (float32, float16, dynamic, int8)
    <output>/onnx/model.onnx

Everything is written into a hidden temporary directory beside ``<output>``,
verified there, and only then renamed into place; an existing export is replaced
only with ``overwrite=True``. A failed conversion or verification leaves nothing
at ``<output>``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from typing import Dict, Optional, Sequence, Tuple

from keras_facemt.errors import ExportError
from keras_facemt.io import swap_directory
from keras_facemt.serving import signatures as sig
from keras_facemt.serving.manifest import MANIFEST, build_manifest, write_manifest
from keras_facemt.serving.tflite import IO_DTYPES, QUANTIZATIONS, check_quantization
from keras_facemt.serving.verify import VerificationData, verify_artifacts

FORMATS = ("keras", "saved_model", "tflite", "onnx")
KERAS_FILE = "model.keras"


def check_formats(formats: Sequence[str]) -> Tuple[str, ...]:
    """Validates format names.

    Raises:
        ExportError: naming the unknown format and the known ones.
    """
    for f in formats:
        if f not in FORMATS:
            raise ExportError(f"Unknown export format; choose from {list(FORMATS)}. Received: format={f!r}")
    return tuple(formats)


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """What to export.

    Attributes:
        formats: subset of ``FORMATS`` (``keras`` is always written).
        quantizations: TFLite variants, subset of ``tflite.QUANTIZATIONS``.
        model_name: TF Serving model name (directory under ``saved_model/``).
        version: TF Serving version directory (positive int).
        outputs: ``final`` (keys without ``/``) or ``all`` (per-iteration too).
        frozen_domain: BN domain id to freeze, or None to keep a ``domain`` input.
        int8_io: ``float32`` or ``uint8`` image input/outputs of the int8 model.
        opset: ONNX opset (>= 17).
        calibration_samples: examples used to calibrate int8.
        overwrite: replace an existing export.
        saved_model_cli: verify each signature through ``saved_model_cli run``.
    """

    formats: Tuple[str, ...] = FORMATS
    quantizations: Tuple[str, ...] = QUANTIZATIONS
    model_name: str = "facemt"
    version: int = 1
    outputs: str = "final"
    frozen_domain: Optional[int] = None
    int8_io: str = "float32"
    opset: int = 17
    calibration_samples: int = 64
    overwrite: bool = False
    saved_model_cli: bool = True

    def __post_init__(self):
        check_formats(self.formats)
        for q in self.quantizations:
            check_quantization(q)
        if self.int8_io not in IO_DTYPES:
            raise ExportError(
                f"Unknown int8 I/O dtype; choose from {list(IO_DTYPES)}. Received: int8_io={self.int8_io!r}"
            )
        if self.outputs not in sig.OUTPUT_SELECTIONS:
            raise ExportError(
                f"Unknown output selection; choose from {sig.OUTPUT_SELECTIONS}. Received: outputs={self.outputs!r}"
            )
        if int(self.version) < 1:
            raise ExportError(f"version must be >= 1. Received: version={self.version}")
        if int(self.opset) < 17:
            raise ExportError(f"ONNX export needs opset >= 17. Received: opset={self.opset}")
        if self.calibration_samples < 1:
            raise ExportError(
                f"calibration_samples must be >= 1. Received: calibration_samples={self.calibration_samples}"
            )


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def _claim_output(output_dir: str, overwrite: bool) -> str:
    output_dir = os.path.abspath(output_dir)
    if os.path.exists(output_dir):
        complete = os.path.exists(os.path.join(output_dir, MANIFEST))
        if not overwrite:
            what = (
                "an export"
                if complete
                else "a non-empty path"
                if os.listdir(output_dir) or os.path.isfile(output_dir)
                else None
            )
            if what:
                raise ExportError(f"{output_dir}: {what} already exists here; pass --overwrite to replace it.")
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    return output_dir


def export_model(
    model,
    output_dir: str,
    data: VerificationData,
    options: ExportOptions = ExportOptions(),
    calibration: Optional[VerificationData] = None,
    heldout: Optional[VerificationData] = None,
    model_info: Optional[Dict[str, object]] = None,
    log=print,
) -> Dict[str, object]:
    """Exports ``model`` to every requested format, verifies each in its runtime, writes the manifest.

    Args:
        model: the trained functional keras-facemt model.
        output_dir: the export directory to create.
        data: real examples for parity checks (from the input pipeline).
        options: formats, quantizations, naming, frozen domain.
        calibration: int8 calibration examples (default ``data``).
        heldout: labelled held-out examples for the quantized checks (default ``data``).
        model_info: system/preset/config/domains recorded in the manifest.
        log: progress printer (``None`` for silence).

    Returns:
        The manifest (also written to ``<output_dir>/manifest.json``).

    Raises:
        ExportError: when a conversion or verification fails (nothing is left at
            ``output_dir``), or the export exists and ``overwrite`` is False.
    """
    from keras_facemt.serving.keras_format import save_model
    from keras_facemt.serving.onnx_export import export_onnx
    from keras_facemt.serving.saved_model import export_saved_model, versioned_dir
    from keras_facemt.serving.tflite import convert_tflite, op_summary, representative_samples

    from keras_facemt.models.model_info import serving_spec_of

    log = log or (lambda *a, **k: None)
    spec = serving_spec_of(model)
    output_dir = _claim_output(output_dir, options.overwrite)
    io = sig.ModelIO.from_model(model)
    if options.frozen_domain is not None and not io.has_domain:
        raise ExportError(
            f"The model has no 'domain' input (shared BN); a frozen domain does not apply. "
            f"Received: domain={options.frozen_domain}"
        )
    takes_domain = io.has_domain and options.frozen_domain is None
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.tmp-", dir=os.path.dirname(output_dir))
    try:
        artifacts: Dict[str, Dict[str, object]] = {}
        save_model(model, os.path.join(tmp, KERAS_FILE))
        artifacts["keras"] = {"format": "keras", "path": KERAS_FILE}
        log(f"  keras        {KERAS_FILE}")

        needs_sm = any(f in options.formats for f in ("saved_model", "tflite", "onnx"))
        sm_rel = os.path.relpath(
            versioned_dir(os.path.join(tmp, "saved_model"), options.model_name, options.version), tmp
        )
        sm_dir = os.path.join(tmp, sm_rel)
        names = sig.output_name_map(list(model.output.keys()), options.outputs)
        if needs_sm:
            export_saved_model(model, sm_dir, options.outputs, options.frozen_domain)
            log(f"  saved_model  {sm_rel}")
        if "saved_model" in options.formats:
            artifacts["saved_model"] = {
                "format": "saved_model",
                "path": sm_rel,
                "signatures": list(sig.SIGNATURES),
                "model_name": options.model_name,
                "version": int(options.version),
                "model_base_path": os.path.join("saved_model", options.model_name),
            }
        if "tflite" in options.formats:
            samples = None
            if "int8" in options.quantizations:
                calib = calibration or data
                samples = representative_samples([{**calib.inputs}], options.calibration_samples, takes_domain)
            for q in options.quantizations:
                io_dtype = options.int8_io if q == "int8" else "float32"
                flat = convert_tflite(sm_dir, q, samples, io_dtype=io_dtype)
                rel = os.path.join("tflite", f"model_{q}.tflite")
                os.makedirs(os.path.join(tmp, "tflite"), exist_ok=True)
                with open(os.path.join(tmp, rel), "wb") as f:
                    f.write(flat)
                artifacts[f"tflite_{q}"] = {
                    "format": "tflite",
                    "path": rel,
                    "quantization": q,
                    "io_dtype": io_dtype,
                    "signature": sig.SERVING_DEFAULT,
                }
                summary = op_summary(flat, source=rel)
                artifacts[f"tflite_{q}"].update(
                    {k: summary[k] for k in ("constant_bytes", "name_bytes", "quantization_bytes",
                                             "structure_bytes", "num_tensors", "num_ops")}
                )
                if q == "int8":
                    artifacts[f"tflite_{q}"].update(
                        calibration_examples=len(samples),
                        full_integer=summary["full_integer"],
                        float_ops=summary["float_ops"],
                        int8_ops=summary["int8_ops"],
                    )
                log(f"  tflite       {rel}")
        if "onnx" in options.formats:
            rel = os.path.join("onnx", "model.onnx")
            export_onnx(sm_dir, os.path.join(tmp, rel), opset=options.opset)
            artifacts["onnx"] = {
                "format": "onnx",
                "path": rel,
                "opset": int(options.opset),
                "signature": sig.SERVING_DEFAULT,
            }
            log(f"  onnx         {rel}")
        if needs_sm and "saved_model" not in options.formats:
            shutil.rmtree(os.path.join(tmp, "saved_model"))
        for art in artifacts.values():
            art["size_bytes"] = _size(os.path.join(tmp, str(art["path"])))

        log(f"  verifying {len(artifacts)} artifact(s) on {data.num_examples} examples from {data.source}")
        report = verify_artifacts(
            tmp, artifacts, model, names, data, options.frozen_domain, heldout, saved_model_cli=options.saved_model_cli
        )
        log(report.table())
        report.raise_if_failed()
        _attach_figures(artifacts, report)
        verification = {
            "data": data.source,
            "examples": data.num_examples,
            "heldout": (heldout or data).source,
            "heldout_examples": (heldout or data).num_examples,
            "passed": report.passed,
            "checks": report.to_json(),
        }
        record = {k: v for k, v in (model_info or _record_of(model)).items() if k != "serving"}
        manifest = build_manifest(io, names, artifacts, options.frozen_domain, record, verification, spec)
        write_manifest(tmp, manifest)
        swap_directory(tmp, output_dir)
        return manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _record_of(model) -> Dict[str, object]:
    """The manifest's model record from the model's own ``ModelInfo``."""
    from keras_facemt.models.model_info import info_of

    info = info_of(model)
    return {"system": info.system, "preset": info.preset, "config": dict(info.config),
            "domains": dict(info.domains)}


def _attach_figures(artifacts: Dict[str, Dict[str, object]], report) -> None:
    """Puts each artifact's parity/metric figures and the int8/float32 size ratio beside it."""
    for art in artifacts.values():
        rel = str(art["path"])
        figures = {}
        for check in report.checks:
            if check.artifact == rel or check.artifact.startswith(rel + ":"):
                worst = max((e["relative_error"] for e in check.errors.values()), default=0.0)
                figures[f"{check.artifact} [{check.runtime}]"] = {
                    "passed": check.passed,
                    "max_relative_error": worst,
                    "metrics": check.metrics,
                }
        art["verification"] = figures
    if "tflite_int8" in artifacts and "tflite_float32" in artifacts:
        int8, f32 = artifacts["tflite_int8"], artifacts["tflite_float32"]
        int8["size_ratio_to_float32"] = int8["size_bytes"] / max(1, f32["size_bytes"])
        int8["constant_bytes_ratio_to_float32"] = int8["constant_bytes"] / max(1, f32["constant_bytes"])
