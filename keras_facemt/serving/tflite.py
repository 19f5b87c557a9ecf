"""TFLite conversion from the SavedModel, builtin ops only.

``TFLiteConverter.from_keras_model`` does not accept Keras 3 models, so every
conversion starts from the exported SavedModel's ``serving_default`` signature
(float32 image in [0, 1], plus ``domain`` when not frozen). Quantizations:

* ``float32``: no optimisation.
* ``float16``: weights stored as float16 (dequantised at load; CPU kernels run in float32).
* ``dynamic``: dynamic-range: int8 weights, activations quantised on the fly.
* ``int8``: int8 weights and activations, calibrated on a representative
  dataset from the real input pipeline. Image input/outputs are ``float32``
  (quantise/dequantise ops at the edges) or ``uint8`` (``io_dtype="uint8"``: the
  image input then takes raw 0..255 pixels, since its calibrated range is [0, 1];
  outputs are uint8 with the scale and zero point recorded in the model).

  Every op int8 except the geometry a model marks with ``ops.precision.float32_scope``
  (ROI sampling coordinates and weights, whose int8 rounding would move the crops).
  The TFLite MLIR quantizer cannot always
  satisfy its "same scale" rule (concatenation, average pooling, ... must share
  one scale across inputs and output) when one tensor feeds several such ops, as
  in a DenseNet that concatenates all earlier maps afresh for every layer
  (tensorflow/tensorflow#51531, tensorflow/model-optimization#1053; the
  project's ``DenseBlock`` grows one chain instead and quantizes fully); it then
  fails naming the node. The
  quantize pass is re-run with exactly those nodes kept in float32 between
  builtin QUANTIZE/DEQUANTIZE ops (every other op stays int8), and
  ``op_summary`` reports which ops run in float, recorded in the manifest.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sys
import tempfile
from typing import Dict, Iterable, List, Optional

import numpy as np

from keras_facemt.errors import ExportError
from keras_facemt.serving import signatures as sig

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
IO_DTYPES = ("float32", "uint8")
# Ops whose outputs are bookkeeping, not computation, when counting float ops.
_BOOKKEEPING_OPS = {"QUANTIZE", "DEQUANTIZE", "SHAPE", "RESHAPE", "STRIDED_SLICE", "PACK", "CAST", "FILL"}
_MAX_DENYLIST_ROUNDS = 400


def check_quantization(name: str) -> str:
    """Returns ``name`` if it is a known quantization.

    Raises:
        ExportError: naming the unknown quantization and the known ones.
    """
    if name not in QUANTIZATIONS:
        raise ExportError(
            f"Unknown TFLite quantization; choose from {list(QUANTIZATIONS)}. Received: quantization={name!r}"
        )
    return name


def representative_samples(
    batches: Iterable[Dict[str, np.ndarray]], max_samples: int = 64, takes_domain: bool = True
) -> List[Dict[str, np.ndarray]]:
    """Splits input batches into single-example calibration samples.

    Args:
        batches: dicts with ``image`` float32 ``[batch, H, W, 3]`` and ``domain``
            int32 ``[batch]`` (the input pipeline's batches; label keys ignored).
        max_samples: stop after this many examples.
        takes_domain: include ``domain`` (the signature has a domain input).

    Returns:
        A list of ``{"image": [1, H, W, 3], "domain": [1]}`` dicts.

    Raises:
        ExportError: if the batches yield no example (an empty split, a wrong
            directory): calibrating on nothing would silently produce a model
            with meaningless ranges.
    """
    samples: List[Dict[str, np.ndarray]] = []
    for batch in batches:
        image = np.asarray(batch[sig.IMAGE], np.float32)
        domain = np.asarray(batch.get(sig.DOMAIN, np.zeros(len(image))), np.int32).reshape(-1)
        for i in range(image.shape[0]):
            sample = {sig.IMAGE: image[i : i + 1]}
            if takes_domain:
                sample[sig.DOMAIN] = domain[i : i + 1]
            samples.append(sample)
            if len(samples) >= max_samples:
                return samples
    if not samples:
        raise ExportError(
            "The representative dataset yielded no examples; int8 calibration needs real "
            "inputs from the input pipeline (check --data and --calibration-split)."
        )
    return samples


def convert_tflite(
    saved_model_dir: str,
    quantization: str = "float32",
    representative: Optional[List[Dict[str, np.ndarray]]] = None,
    io_dtype: str = "float32",
    signature: str = sig.SERVING_DEFAULT,
) -> bytes:
    """Converts one signature of a SavedModel to a TFLite flatbuffer.

    Args:
        saved_model_dir: the SavedModel version directory.
        quantization: one of ``QUANTIZATIONS``.
        representative: calibration samples (``representative_samples``); required
            for ``int8``.
        io_dtype: ``float32`` or ``uint8`` image input/outputs (``int8`` only).
        signature: the float signature to convert.

    Returns:
        The flatbuffer bytes.

    Raises:
        ExportError: for unknown options, missing calibration data, or a
            conversion the builtin op set cannot express.
    """
    import tensorflow as tf

    check_quantization(quantization)
    if io_dtype not in IO_DTYPES:
        raise ExportError(f"Unknown TFLite I/O dtype; choose from {list(IO_DTYPES)}. Received: io_dtype={io_dtype!r}")
    if io_dtype != "float32" and quantization != "int8":
        raise ExportError(
            f"uint8 I/O needs full-integer quantization. Received: quantization={quantization!r}, io_dtype={io_dtype!r}"
        )
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[signature])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization == "int8":
        if not representative:
            raise ExportError("int8 quantization needs a representative dataset; none was given (pass --data).")
        return _convert_int8(converter, list(representative), io_dtype, saved_model_dir)
    try:
        flatbuffer = converter.convert()
    except Exception as e:
        message = str(e).strip().splitlines()
        raise ExportError(
            f"{saved_model_dir}: TFLite {quantization} conversion with builtin ops failed: "
            f"{' '.join(itertools.islice((m for m in message if m.strip()), 3))}"
        ) from e
    if not flatbuffer:
        raise ExportError(f"{saved_model_dir}: TFLite {quantization} conversion returned an empty model.")
    return bytes(flatbuffer)


@contextlib.contextmanager
def _native_stderr(sink: List[str]):
    """Captures what native code writes to file descriptor 2 (the converter's errors)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as buffer:
        os.dup2(buffer.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            buffer.seek(0)
            sink.append(buffer.read().decode("utf-8", errors="replace"))


def _failing_nodes(log: str) -> List[str]:
    """Graph nodes the quantizer's errors name (``loc("model/block/concat_1"): error: ...``)."""
    return list(dict.fromkeys(re.findall(r'loc\("([^"]+)"\): error', log)))


def _failing_ops(log: str) -> List[str]:
    """TFLite op names (``AVERAGE_POOL_2D``) the quantizer's errors name ('tfl.average_pool_2d' op)."""
    return sorted({m.upper() for m in re.findall(r"'tfl\.([a-z0-9_]+)' op", log)})


def _first_error(log: str) -> str:
    for line in log.splitlines():
        if "error:" in line:
            return line.strip()[:400]
    lines = [ln for ln in log.splitlines() if ln.strip()]
    return lines[-1][:400] if lines else "(no converter message)"


def _convert_int8(converter, samples: List[Dict[str, np.ndarray]], io_dtype: str, source: str) -> bytes:
    """Calibrates once, then quantizes, keeping in float only the op types the quantizer cannot place."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tfl_convert

    def generator():
        for sample in samples:
            yield dict(sample)

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = generator
    # Calibration only: the float model annotated with activation ranges.
    converter._experimental_calibrate_only = True
    log: List[str] = []
    try:
        with _native_stderr(log):
            calibrated = converter.convert()
    except Exception as e:
        raise ExportError(f"{source}: int8 calibration failed: {_first_error(''.join(log)) or e}") from e
    io_type = tf.uint8 if io_dtype == "uint8" else tf.float32
    # Geometry the model marks (ops.precision.float32_scope) stays float from the start;
    # then keep in float only the nodes the quantizer cannot place, one round per failure
    # (each round re-runs only the quantize pass on the calibrated model); if a
    # failure names no node, fall back to keeping its whole op type in float.
    nodes: List[str] = _float32_scoped_nodes(calibrated)
    op_types: List[str] = []
    for _ in range(_MAX_DENYLIST_ROUNDS):
        log = []
        try:
            with _native_stderr(log):
                return bytes(
                    tfl_convert.mlir_quantize(
                        calibrated,
                        input_data_type=io_type,
                        output_data_type=io_type,
                        denylisted_nodes=nodes or None,
                        denylisted_ops=op_types or None,
                    )
                )
        except Exception as e:
            text = "".join(log) + str(e)
            new_nodes = [n for n in _failing_nodes(text) if n not in nodes]
            new_ops = [] if new_nodes else [op for op in _failing_ops(text) if op not in op_types]
            if not new_nodes and not new_ops:
                raise ExportError(f"{source}: int8 quantization failed: {_first_error(text)}") from e
            nodes += new_nodes
            op_types += new_ops
    raise ExportError(
        f"{source}: int8 quantization still fails after keeping {len(nodes)} node(s) and {op_types} in float."
    )


def _model_object(flatbuffer: bytes):
    """The flatbuffer as TFLite's mutable Python object model (``ModelT``)."""
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))


def _float32_scoped_nodes(flatbuffer: bytes) -> List[str]:
    """Names of the nodes built under ``ops.precision.float32_scope`` in a (calibrated) model."""
    from keras_facemt.ops.precision import FLOAT32_SCOPE

    fb = _model_object(flatbuffer)
    names = (t.name.decode() if isinstance(t.name, bytes) else str(t.name or "")
             for g in fb.subgraphs for t in g.tensors)
    return list(dict.fromkeys(n for n in names if FLOAT32_SCOPE in n))


def op_summary(flatbuffer: bytes, source: str = "<bytes>") -> Dict[str, object]:
    """Which builtin ops a TFLite model runs, split by the dtype they compute in.

    Returns:
        ``ops`` (op name -> count), ``int8_ops`` (count of compute ops with integer
        outputs), ``float_ops`` (op name -> count of compute ops with float outputs,
        bookkeeping ops such as QUANTIZE/RESHAPE excluded), ``full_integer``, and
        the file's ``size_breakdown`` (constant, name, quantization and structure
        bytes; tensor and op counts).

    Raises:
        ExportError: if the LiteRT runtime rejects the model.
    """
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_content=bytes(flatbuffer))
    except Exception as e:
        raise ExportError(f"{source}: the LiteRT runtime rejected the model: {e}") from e
    tensors = interpreter.get_tensor_details()
    ops: Dict[str, int] = {}
    float_ops: Dict[str, int] = {}
    int8_ops = 0
    for op in interpreter._get_ops_details():
        name = op["op_name"]
        ops[name] = ops.get(name, 0) + 1
        if name in _BOOKKEEPING_OPS or not len(op["outputs"]):
            continue
        dtype = np.dtype(tensors[op["outputs"][0]]["dtype"])
        if dtype in (np.float32, np.float16):
            float_ops[name] = float_ops.get(name, 0) + 1
        elif dtype in (np.int8, np.uint8, np.int16):
            int8_ops += 1
    return {
        "ops": dict(sorted(ops.items())),
        "int8_ops": int8_ops,
        "float_ops": dict(sorted(float_ops.items())),
        "full_integer": not float_ops,
        **size_breakdown(flatbuffer),
    }


def size_breakdown(flatbuffer: bytes) -> Dict[str, int]:
    """Where the bytes of a TFLite file go.

    Quantization shrinks only the constant buffers (weights 4x for int8); the rest
    of the flatbuffer is graph structure that every format of the same graph pays:
    one table per tensor (name, shape, type, buffer index, quantization parameters:
    a float32 scale and an int64 zero point per tensor or per output channel) and
    one per operator (inputs, outputs, options). A small model unrolled several
    times (iFAN's ITER iterations share weights but not ops) is therefore far from
    the 4x of its weights as a whole file.

    Returns:
        ``total_bytes``; ``constant_bytes`` (the buffers: weights and other
        constants); ``name_bytes`` (tensor names); ``quantization_bytes`` (scale,
        zero point, min and max arrays); ``structure_bytes`` (the rest: tensor and
        operator tables, signatures, metadata, alignment); ``num_tensors``;
        ``num_ops``.
    """
    fb = _model_object(flatbuffer)
    tensors = [t for g in fb.subgraphs for t in g.tensors]
    constant_bytes = sum(len(b.data) for b in fb.buffers if b.data is not None)
    name_bytes = sum(len(t.name or b"") for t in tensors)
    quantization_bytes = 0
    for t in tensors:
        q = t.quantization
        if q is not None:
            for field in (q.scale, q.zeroPoint, q.min, q.max):
                if field is not None:
                    quantization_bytes += np.asarray(field).nbytes
    total = len(flatbuffer)
    return {
        "total_bytes": int(total),
        "constant_bytes": int(constant_bytes),
        "name_bytes": int(name_bytes),
        "quantization_bytes": int(quantization_bytes),
        "structure_bytes": int(total - constant_bytes - name_bytes - quantization_bytes),
        "num_tensors": len(tensors),
        "num_ops": int(sum(len(g.operators) for g in fb.subgraphs)),
    }


def strip_tensor_names(flatbuffer: bytes) -> bytes:
    """The same model with every tensor name emptied (signatures keep their keys).

    Signature inputs and outputs refer to tensors by index, so a stripped model runs
    through ``get_signature_runner`` unchanged; only debugging tools that show
    tensor names (Netron, the interpreter's tensor details) lose them.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    fb = _model_object(flatbuffer)
    for g in fb.subgraphs:
        for t in g.tensors:
            t.name = b""
    return bytes(flatbuffer_utils.convert_object_to_bytearray(fb))


class TFLiteRunner:
    """Runs a TFLite model's signature with ``ai_edge_litert``.

    Resizes the batch dimension to the batch given, quantises uint8/int8 inputs
    (an input already given as uint8 passes through unchanged) and dequantises
    integer outputs with their recorded scale and zero point.

    Args:
        model: path to a ``.tflite`` file or its bytes.
        num_threads: interpreter threads.
        signature: the signature key.

    Raises:
        ExportError: if the runtime rejects the model.
    """

    def __init__(self, model, num_threads: int = 1, signature: str = sig.SERVING_DEFAULT):
        from ai_edge_litert.interpreter import Interpreter

        source = "<bytes>" if isinstance(model, (bytes, bytearray)) else str(model)
        try:
            if isinstance(model, (bytes, bytearray)):
                self.interpreter = Interpreter(model_content=bytes(model), num_threads=num_threads)
            else:
                self.interpreter = Interpreter(model_path=str(model), num_threads=num_threads)
            self.runner = self.interpreter.get_signature_runner(signature)
        except Exception as e:
            raise ExportError(f"{source}: the LiteRT runtime rejected the model: {e}") from e
        self.source = source
        self.input_details = self.runner.get_input_details()
        self.output_details = self.runner.get_output_details()

    @property
    def input_names(self):
        return sorted(self.input_details)

    def __call__(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        feed = {}
        for name, detail in self.input_details.items():
            if name not in inputs:
                raise ExportError(f"{self.source}: input {name!r} missing. Received: inputs={sorted(inputs)}")
            x = np.asarray(inputs[name])
            dtype = detail["dtype"]
            scale, zero = detail["quantization"]
            if dtype in (np.uint8, np.int8) and x.dtype != dtype:
                info = np.iinfo(dtype)
                x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
            feed[name] = x.astype(dtype)
        batch = len(next(iter(feed.values())))
        try:
            # The signature runner resizes its inputs to the given batch itself.
            out = self.runner(**feed)
        except Exception as e:
            raise ExportError(f"{self.source}: LiteRT inference failed at batch {batch}: {e}") from e
        result = {}
        for name, value in out.items():
            scale, zero = self.output_details[name]["quantization"]
            value = np.asarray(value)
            if value.dtype in (np.uint8, np.int8) and scale:
                value = (value.astype(np.float32) - zero) * scale
            result[name] = value
        return result
