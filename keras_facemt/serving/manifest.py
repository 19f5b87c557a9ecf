"""``manifest.json``: what an export directory holds and how to use it.

Written last, atomically, beside the artifacts; a directory is a complete export
exactly when it holds ``manifest.json`` (the export itself is built in a temporary
directory and moved into place). Fields:

* ``system``, ``preset``, ``config``: how to rebuild the model.
* ``training``: data set names and the BN domain map (name -> id), frozen domain.
* ``versions``: keras-facemt, TensorFlow, Keras, tf2onnx, onnx, onnxruntime,
  ai-edge-litert, numpy, Python.
* ``inputs``: name, dtype, shape per signature; ``preprocessing``: resize,
  normalisation, channel order.
* ``outputs``: model key -> signature name, shape and meaning.
* ``artifacts``: per artifact its path, format, size and parity figures.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from typing import Dict, Optional

from keras_facemt.errors import ExportError
from keras_facemt.serving import signatures as sig

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def output_meaning(key: str, spec=None) -> str:
    """A one-line description of an output from its declaration (``configs.outputs.OutputSpec``).

    ``key`` may be a per-iteration output (``landmarks/iter_0``) whose base key is
    declared; an undeclared output is described by its key alone.
    """
    base, _, suffix = key.partition("/")
    it = f" (interaction iteration {suffix.split('_')[-1]})" if suffix.startswith("iter_") else ""
    if spec is None:
        return base + it
    names = ", ".join(spec.names)
    meaning = {
        "boxes": "face boxes (xmin, ymin, xmax, ymax) normalised to the image",
        "scores": "face detection scores in [0, 1]",
        "count": "number of valid detections per image (the rest is zero padding)",
        "landmarks": f"{spec.scheme} landmark points, normalised (x, y) in [0, 1] of the image",
        "parsing_logits": f"per-pixel parsing logits over ({names}); softmax -> probabilities",
        "class_logits": f"{spec.task} class logits over ({names}); softmax -> probabilities",
        "multilabel": f"attributes ({names}); {spec.activation} -> probabilities"
        if spec.activation != "identity" else f"attribute probabilities ({names})",
        "regression": f"{spec.task} in {spec.unit or 'its unit'}",
        "pose": "head pose (yaw, pitch, roll) in degrees",
        "visibility": "per-landmark visibility score (about 1 visible, 0 occluded or out of view)",
        "embedding": "identity embedding; compare two by cosine similarity",
    }[spec.kind]
    return meaning + (" per detection" if spec.per_face else "") + it


def library_versions() -> Dict[str, Optional[str]]:
    """Versions of the libraries an export depends on (None where not installed)."""
    import importlib.metadata as md

    import keras_facemt

    out: Dict[str, Optional[str]] = {"keras_facemt": keras_facemt.__version__, "python": platform.python_version()}
    for dist in ("tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


def input_spec(io: "sig.ModelIO", takes_domain: bool) -> Dict[str, list]:
    """Per signature, its inputs' name, dtype and shape (``-1`` = any batch)."""
    h, w = io.image_size
    spec = {
        sig.SERVING_DEFAULT: [{"name": sig.IMAGE, "dtype": "float32", "shape": [-1, h, w, 3]}],
        sig.SERVE_UINT8: [{"name": sig.IMAGE, "dtype": "uint8", "shape": [-1, h, w, 3]}],
        sig.SERVE_IMAGE_BYTES: [{"name": sig.IMAGE_BYTES, "dtype": "string", "shape": [-1]}],
    }
    if takes_domain:
        for inputs in spec.values():
            inputs.append({"name": sig.DOMAIN, "dtype": "int32", "shape": [-1]})
    return spec


def build_manifest(
    io: "sig.ModelIO",
    names: Dict[str, str],
    artifacts: Dict[str, Dict[str, object]],
    frozen_domain: Optional[int] = None,
    model_info: Optional[Dict[str, object]] = None,
    verification: Optional[Dict[str, object]] = None,
    spec=None,
) -> Dict[str, object]:
    """Assembles the manifest dictionary.

    Args:
        io: the model's input/output contract.
        names: exported output key -> signature output name.
        artifacts: artifact id -> path, format, size and figures.
        frozen_domain: domain id frozen at export, or None.
        model_info: ``system``, ``preset``, ``config``, ``datasets``, ``domains``
            (dataset name -> id), ``source`` (checkpoint or file).
        verification: data source, example count and the checks.
        spec: the model's ``ServingSpec``; its declarations of the exported outputs
            are recorded (``serving``), so runtimes and pipelines read what each
            output is and how to prepare an image.
    """
    info = dict(model_info or {})
    domains = info.get("domains") or {}
    frozen_name = None
    if frozen_domain is not None:
        frozen_name = next((n for n, i in domains.items() if int(i) == int(frozen_domain)), None)
    takes_domain = io.has_domain and frozen_domain is None
    return {
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "system": info.get("system"),
        "preset": info.get("preset"),
        "config": info.get("config"),
        "source": info.get("source"),
        "training": {
            "datasets": info.get("datasets") or sorted(domains),
            "domains": domains,
            "per_dataset_bn": io.has_domain,
            "frozen_domain": frozen_domain,
            "frozen_domain_name": frozen_name,
        },
        "versions": library_versions(),
        "inputs": input_spec(io, takes_domain),
        "preprocessing": dict(sig.PREPROCESSING, input_size=list(io.image_size),
                              **({"resize": spec.preprocessing.resize,
                                  "resize_details": sig.RESIZE_DESCRIPTIONS[spec.preprocessing.resize]}
                                 if spec is not None else {})),
        "serving": spec.select(names).to_json() if spec is not None else None,
        "outputs": {
            key: {
                "name": name,
                "shape": [-1] + list(io.output_shapes[key]),
                "dtype": "int32" if spec is not None and key in spec.outputs
                and spec.outputs[key].kind == "count" else "float32",
                "meaning": output_meaning(key, _declaration(spec, key)),
            }
            for key, name in sorted(names.items())
        },
        "output_name_map": dict(sorted(names.items())),
        "artifacts": artifacts,
        "verification": verification or {},
    }


def _declaration(spec, key: str):
    """The declaration of ``key`` or of its base key (``landmarks`` for ``landmarks/iter_0``)."""
    if spec is None:
        return None
    return spec.outputs.get(key) or spec.outputs.get(key.partition("/")[0])


def write_manifest(directory: str, manifest: Dict[str, object]) -> str:
    """Writes ``manifest.json`` atomically; returns its path."""
    from keras_facemt.io import write_json_atomic

    path = os.path.join(directory, MANIFEST)
    write_json_atomic(path, manifest)
    return path


def read_manifest(directory: str) -> Dict[str, object]:
    """Reads an export's manifest.

    Raises:
        ExportError: if ``directory`` holds no complete export.
    """
    path = os.path.join(directory, MANIFEST)
    if not os.path.isdir(directory):
        raise ExportError(f"{directory}: export directory does not exist.")
    if not os.path.exists(path):
        raise ExportError(f"{directory}: no {MANIFEST}; not a complete keras-facemt export.")
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        raise ExportError(f"{path}: not valid JSON ({e}).") from None
