"""ONNX export with tf2onnx from the SavedModel's ``serving_default`` signature.

The graph is converted from the signature's concrete function (so ONNX computes
exactly what TF Serving serves), with a dynamic batch dimension named ``batch``
on every input and output and opset >= 17. Output names are the signature's
output names (``landmarks``, ``landmarks__iter_0``, ...).
"""

from __future__ import annotations

import os
from typing import Dict

import numpy as np

from keras_facemt.errors import ExportError
from keras_facemt.io import atomic_path
from keras_facemt.serving import signatures as sig

DEFAULT_OPSET = 17
MIN_OPSET = 17
BATCH_DIM = "batch"


def export_onnx(
    saved_model_dir: str, output_path: str, opset: int = DEFAULT_OPSET, signature: str = sig.SERVING_DEFAULT
) -> str:
    """Converts a SavedModel signature to an ONNX file (written atomically).

    Args:
        saved_model_dir: the SavedModel version directory.
        output_path: destination ``.onnx`` file.
        opset: ONNX opset, at least ``MIN_OPSET``.
        signature: the signature to convert.

    Returns:
        The absolute path written.

    Raises:
        ExportError: for an opset below 17, an unknown signature, or a failed
            conversion.
    """
    import onnx
    import tensorflow as tf
    import tf2onnx

    if int(opset) < MIN_OPSET:
        raise ExportError(f"ONNX export needs opset >= {MIN_OPSET}. Received: opset={opset}")
    loaded = tf.saved_model.load(saved_model_dir)
    if signature not in loaded.signatures:
        raise ExportError(f"{saved_model_dir}: no signature {signature!r}; found {sorted(loaded.signatures)}.")
    concrete = loaded.signatures[signature]
    _, kwargs_spec = concrete.structured_input_signature
    names = sorted(kwargs_spec)
    specs = [tf.TensorSpec(kwargs_spec[n].shape, kwargs_spec[n].dtype, name=n) for n in names]

    # tf2onnx traces a tf.function; positional arguments keep the input names.
    @tf.function(input_signature=specs)
    def serving(*args):
        return concrete(**dict(zip(names, args)))

    try:
        model_proto, _ = tf2onnx.convert.from_function(serving, input_signature=specs, opset=int(opset))
    except Exception as e:
        raise ExportError(f"{saved_model_dir}: tf2onnx conversion of {signature!r} failed: {e}") from e
    _name_batch_dimension(model_proto)
    output_path = os.path.abspath(output_path)
    try:
        with atomic_path(output_path, suffix=".onnx") as tmp:
            onnx.save(model_proto, tmp)
            onnx.checker.check_model(tmp)
    except Exception as e:
        raise ExportError(f"{output_path}: the converted ONNX model is invalid: {e}") from e
    return output_path


def _name_batch_dimension(model_proto) -> None:
    """Names the leading dynamic dimension of every graph input/output ``batch``."""
    for value in list(model_proto.graph.input) + list(model_proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM


class OnnxRunner:
    """Runs an ONNX model with onnxruntime on CPU.

    Args:
        path: the ``.onnx`` file.
        num_threads: intra-op threads (0: onnxruntime's default).

    Raises:
        ExportError: if onnxruntime rejects the model.
    """

    def __init__(self, path: str, num_threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ExportError(f"{path}: onnxruntime rejected the model: {e}") from e
        self.path = str(path)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise ExportError(f"{self.path}: inputs {missing} missing. Received: inputs={sorted(inputs)}")
        feed = {n: np.asarray(inputs[n]) for n in self.input_names}
        try:
            values = self.session.run(self.output_names, feed)
        except Exception as e:
            raise ExportError(f"{self.path}: onnxruntime inference failed: {e}") from e
        return dict(zip(self.output_names, values))
