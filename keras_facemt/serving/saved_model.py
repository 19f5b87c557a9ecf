"""SavedModel for TF Serving: versioned layout, three signatures, checked by the graph loader.

Layout (what ``tensorflow_model_server --model_base_path`` expects)::

    <base>/<model_name>/<version>/saved_model.pb
    <base>/<model_name>/<version>/variables/...

Signatures are described in ``serving/signatures.py``. ``run_saved_model_cli``
runs one signature through ``saved_model_cli run``: the TF1 session/graph loader
(``loader.load`` + ``Session.run`` on the SignatureDef's tensor names) that TF
Serving itself uses, so a SavedModel that only works under
``tf.saved_model.load`` (object graph, eager functions) is caught.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, Optional, Sequence

import numpy as np

from keras_facemt.errors import ExportError
from keras_facemt.serving import signatures as sig

SAVED_MODEL_PB = "saved_model.pb"


def versioned_dir(base_dir: str, model_name: str, version: int) -> str:
    """``<base>/<model_name>/<version>``, validating the name and version.

    Raises:
        ExportError: for an empty/path-like model name or a version < 1.
    """
    if not model_name or "/" in model_name or model_name.startswith("."):
        raise ExportError(f"model_name must be a plain directory name. Received: model_name={model_name!r}")
    if int(version) < 1:
        raise ExportError(f"TF Serving versions are positive integers. Received: version={version}")
    return os.path.join(base_dir, model_name, str(int(version)))


def export_saved_model(
    model,
    export_dir: str,
    outputs: str = "final",
    frozen_domain: Optional[int] = None,
    signature_names: Sequence[str] = sig.SIGNATURES,
) -> Dict[str, str]:
    """Writes ``model`` as a SavedModel with the serving signatures.

    Args:
        model: functional keras-facemt model (dict inputs/outputs).
        export_dir: the version directory to create (``versioned_dir(...)``); must
            not exist yet.
        outputs: ``final`` or ``all`` (see ``signatures.output_name_map``).
        frozen_domain: feed this domain id to every example instead of exposing a
            ``domain`` input.
        signature_names: signatures to write (``serving_default`` is always
            written: converters read it).

    Returns:
        The output key -> signature output name map that was exported.

    Raises:
        ExportError: if ``export_dir`` exists or writing fails.
    """
    import keras

    if os.path.exists(export_dir):
        raise ExportError(f"{export_dir}: already exists; SavedModel versions are never overwritten in place.")
    names = sig.output_name_map(list(model.output.keys()), outputs)
    functions = sig.ServingFunctions(model, names, frozen_domain)
    archive = keras.export.ExportArchive()
    # No archive.track(model): the endpoints already capture every variable they read
    # (saved as `_all_variables`), and tracking the model saved each weight a second
    # time under `variables/` (Keras 3's wrappers are separate trackables): TFN's paper
    # SavedModel was 3.03 GB for 1.51 GB of weights.
    wanted = [sig.SERVING_DEFAULT] + [s for s in signature_names if s != sig.SERVING_DEFAULT]
    for name in wanted:
        archive.add_endpoint(name, functions.function(name), input_signature=functions.input_signature(name))
    os.makedirs(os.path.dirname(os.path.abspath(export_dir)), exist_ok=True)
    try:
        archive.write_out(export_dir, verbose=False)
    except Exception as e:
        shutil.rmtree(export_dir, ignore_errors=True)
        raise ExportError(f"{export_dir}: writing the SavedModel failed: {e}") from e
    if not os.path.exists(os.path.join(export_dir, SAVED_MODEL_PB)):
        raise ExportError(f"{export_dir}: the SavedModel writer exited without {SAVED_MODEL_PB}.")
    return names


def saved_model_cli_path() -> str:
    """The ``saved_model_cli`` installed beside this interpreter (tensorflow ships it)."""
    candidate = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if os.path.exists(candidate):
        return candidate
    found = shutil.which("saved_model_cli")
    if not found:
        raise ExportError(
            "saved_model_cli was not found beside the Python interpreter or on PATH (it is installed with tensorflow)."
        )
    return found


def run_saved_model_cli(
    export_dir: str, signature: str, inputs: Dict[str, np.ndarray], timeout: float = 300.0
) -> Dict[str, np.ndarray]:
    """Runs one signature through ``saved_model_cli run`` (the TF Serving graph loader).

    Args:
        export_dir: the version directory.
        signature: signature key.
        inputs: input name -> array (string inputs as an object array of bytes).

    Returns:
        Output name -> array, read back from the ``.npy`` files the tool writes.

    Raises:
        ExportError: with the tool's error line (e.g. the ``serve_image_bytes``
            "is not a JPEG or PNG image" message) when it fails.
    """
    work = tempfile.mkdtemp(prefix="facemt-smcli-")
    try:
        specs = []
        for name, value in inputs.items():
            path = os.path.join(work, f"in_{name}.npy")
            np.save(path, np.asarray(value), allow_pickle=True)
            specs.append(f"{name}={path}")
        out_dir = os.path.join(work, "out")
        cmd = [
            saved_model_cli_path(),
            "run",
            "--dir",
            export_dir,
            "--tag_set",
            "serve",
            "--signature_def",
            signature,
            "--inputs",
            ";".join(specs),
            "--outdir",
            out_dir,
            "--overwrite",
        ]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise ExportError(
                f"{export_dir}: saved_model_cli run --signature_def {signature} timed out after {timeout:.0f} s."
            ) from None
        if proc.returncode != 0:
            raise ExportError(
                f"{export_dir}: saved_model_cli run --signature_def {signature} failed: "
                f"{_error_line(proc.stderr + proc.stdout)}"
            )
        results = {}
        for fname in sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []:
            if fname.endswith(".npy"):
                results[fname[:-4]] = np.load(os.path.join(out_dir, fname), allow_pickle=False)
        if not results:
            raise ExportError(f"{export_dir}: saved_model_cli run --signature_def {signature} produced no outputs.")
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _error_line(text: str) -> str:
    """The most informative line of a TF error dump."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for marker in ("assertion failed", "Error:", "Error "):
        hits = [ln for ln in lines if marker in ln]
        if hits:
            idx = lines.index(hits[-1])
            detail = lines[idx + 1] if marker == "Error:" and idx + 1 < len(lines) else ""
            return (hits[-1] + (" " + detail if detail else "")).strip()
    return lines[-1] if lines else "(no output)"


def rest_request(image_bytes: Sequence[bytes], domains: Optional[Sequence[int]] = None) -> str:
    """The JSON body of a TF Serving REST ``:predict`` call on ``serve_image_bytes``.

    Row format: ``{"signature_name": ..., "instances": [{"b64": ...}]}`` for a
    frozen-domain export (one input), ``[{"image_bytes": {"b64": ...}, "domain": d}]``
    when the signature takes a domain.
    """
    instances = []
    for i, data in enumerate(image_bytes):
        b64 = {"b64": base64.b64encode(bytes(data)).decode("ascii")}
        if domains is None:
            instances.append(b64)
        else:
            instances.append({sig.IMAGE_BYTES: b64, sig.DOMAIN: int(domains[i])})
    return json.dumps({"signature_name": sig.SERVE_IMAGE_BYTES, "instances": instances})


def rest_request_to_inputs(body: str, input_names: Sequence[str]) -> Dict[str, np.ndarray]:
    """Decodes a REST row-format request into signature inputs, as TF Serving does.

    ``{"b64": s}`` values become bytes; a bare instance feeds the signature's single
    input; dict instances are keyed by input name.

    Raises:
        ExportError: for a malformed body or missing input names.
    """
    try:
        request = json.loads(body)
        instances = request["instances"]
    except (ValueError, KeyError, TypeError) as e:
        raise ExportError(f"REST request must be JSON with an 'instances' list ({e}).") from None

    def value(v):
        if isinstance(v, dict) and set(v) == {"b64"}:
            return base64.b64decode(v["b64"])
        return v

    columns: Dict[str, list] = {name: [] for name in input_names}
    for i, inst in enumerate(instances):
        if isinstance(inst, dict) and set(inst) != {"b64"}:
            missing = [n for n in input_names if n not in inst]
            if missing:
                raise ExportError(f"REST instance {i} lacks inputs {missing}. Received: keys={sorted(inst)}")
            for name in input_names:
                columns[name].append(value(inst[name]))
        elif len(input_names) == 1:
            columns[input_names[0]].append(value(inst))
        else:
            raise ExportError(f"REST instance {i} must be an object with inputs {list(input_names)}.")
    out = {}
    for name, vals in columns.items():
        out[name] = np.array(vals, dtype=object) if vals and isinstance(vals[0], bytes) else np.asarray(vals)
        if name == sig.DOMAIN:
            out[name] = out[name].astype(np.int32)
    return out


class SavedModelRunner:
    """Runs one signature of a SavedModel with ``tf.saved_model.load`` (object graph).

    Raises:
        ExportError: if the SavedModel cannot be loaded or lacks the signature.
    """

    def __init__(self, export_dir: str, signature: str = sig.SERVING_DEFAULT):
        import tensorflow as tf

        try:
            self.loaded = tf.saved_model.load(export_dir)
        except Exception as e:
            raise ExportError(f"{export_dir}: tf.saved_model.load failed: {e}") from e
        if signature not in self.loaded.signatures:
            raise ExportError(f"{export_dir}: no signature {signature!r}; found {sorted(self.loaded.signatures)}.")
        self.function = self.loaded.signatures[signature]
        self.input_names = sorted(self.function.structured_input_signature[1])
        self.export_dir = export_dir

    def __call__(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        import tensorflow as tf

        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise ExportError(f"{self.export_dir}: inputs {missing} missing. Received: inputs={sorted(inputs)}")
        try:
            out = self.function(**{n: tf.constant(inputs[n]) for n in self.input_names})
        except tf.errors.InvalidArgumentError as e:
            raise ExportError(f"{self.export_dir}: {_error_line(e.message)}") from None
        return {k: v.numpy() for k, v in out.items()}


class SavedModelCliRunner:
    """Runs one signature through ``saved_model_cli run`` (see ``run_saved_model_cli``)."""

    def __init__(self, export_dir: str, signature: str = sig.SERVING_DEFAULT):
        self.export_dir = export_dir
        self.signature = signature

    def __call__(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        return run_saved_model_cli(self.export_dir, self.signature, inputs)
