"""ONNX export with tf2onnx from the SavedModel's ``serving_default`` signature.

The graph is converted from the signature's concrete function (so ONNX computes
exactly what TF Serving serves), with a dynamic batch dimension named ``batch``
on every input and output and opset >= 17. Output names are the signature's
output names (``landmarks``, ``landmarks__iter_0``, ...).

Large models (``lift_weights``): tf2onnx freezes the variables into graph constants
and then rewrites the graph several times, each pass copying every constant; for
TFN's ``paper`` preset (1.5 GB of weights) that went past 24 GB. Above
``LIFT_MODEL_BYTES`` the weights are lifted out first: the frozen graph's large
constants become placeholders, tf2onnx converts the light graph, and the values are
written back as ONNX initializers under the same names. The math is unchanged
(layout changes tf2onnx would have folded into constants, e.g. a convolution
kernel's HWIO -> OIHW transpose, stay as nodes that onnxruntime folds at load).
A file over protobuf's 2 GiB limit is refused with an ``ExportError``.
"""

from __future__ import annotations

import os
from typing import Dict, Optional

import numpy as np

from keras_facemt.errors import ExportError
from keras_facemt.io import atomic_path
from keras_facemt.serving import signatures as sig

DEFAULT_OPSET = 17
MIN_OPSET = 17
BATCH_DIM = "batch"
LIFT_MODEL_BYTES = 512 * 2 ** 20  # variables above this are lifted out before tf2onnx runs
LIFT_CONST_BYTES = 2 ** 20  # the frozen constants that are lifted: the weights, not shapes or anchors
PROTOBUF_LIMIT_BYTES = 2 ** 31 - 1


def export_onnx(
    saved_model_dir: str, output_path: str, opset: int = DEFAULT_OPSET, signature: str = sig.SERVING_DEFAULT,
    lift_weights: Optional[bool] = None,
) -> str:
    """Converts a SavedModel signature to an ONNX file (written atomically).

    Args:
        saved_model_dir: the SavedModel version directory.
        output_path: destination ``.onnx`` file.
        opset: ONNX opset, at least ``MIN_OPSET``.
        signature: the signature to convert.
        lift_weights: convert with the weights lifted out of the graph (module
            docstring); ``None``: when the signature's variables exceed
            ``LIFT_MODEL_BYTES``.

    Returns:
        The absolute path written.

    Raises:
        ExportError: for an opset below 17, an unknown signature, a failed
            conversion, or a model over protobuf's 2 GiB limit.
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

    if lift_weights is None:
        lift_weights = sum(int(np.prod(v.shape)) * v.dtype.size for v in concrete.variables) > LIFT_MODEL_BYTES
    try:
        if lift_weights:
            model_proto = _convert_lifted(serving.get_concrete_function(*specs), int(opset))
        else:
            model_proto, _ = tf2onnx.convert.from_function(serving, input_signature=specs, opset=int(opset))
    except Exception as e:
        raise ExportError(f"{saved_model_dir}: tf2onnx conversion of {signature!r} failed: {e}") from e
    weight_bytes = sum(len(t.raw_data) for t in model_proto.graph.initializer)
    if weight_bytes > PROTOBUF_LIMIT_BYTES:
        raise ExportError(f"{saved_model_dir}: the ONNX model's initializers take {weight_bytes:,} bytes, over "
                          f"protobuf's 2 GiB limit ({PROTOBUF_LIMIT_BYTES:,}) for a single .onnx file.")
    _name_batch_dimension(model_proto)
    output_path = os.path.abspath(output_path)
    try:
        with atomic_path(output_path, suffix=".onnx") as tmp:
            onnx.save(model_proto, tmp)
            onnx.checker.check_model(tmp)
    except Exception as e:
        raise ExportError(f"{output_path}: the converted ONNX model is invalid: {e}") from e
    return output_path


def _convert_lifted(concrete, opset: int):
    """tf2onnx on the frozen graph with its large constants as placeholders, then re-attached.

    Args:
        concrete: the serving concrete function (variables captured).
        opset: ONNX opset.

    Returns:
        The ONNX ``ModelProto`` with every lifted weight as an initializer.
    """
    import tensorflow as tf
    from onnx import numpy_helper
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from tf2onnx import convert as tf2onnx_convert

    input_names = [t.name for t in concrete.inputs if t.dtype != tf.resource]
    output_names = [t.name for t in concrete.outputs if t.dtype != tf.resource]
    renames = tf2onnx_convert.tensor_names_from_structed(concrete, input_names, output_names)
    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False, aggressive_inlining=True)
    graph_def = frozen.graph.as_graph_def(add_shapes=True)
    del frozen
    lifted = {}
    for node in graph_def.node:
        tensor = node.attr["value"].tensor if node.op == "Const" else None
        if tensor is None or not tf.as_dtype(tensor.dtype).is_floating or len(tensor.tensor_content) < LIFT_CONST_BYTES:
            continue
        lifted[node.name + ":0"] = tf.make_ndarray(tensor)
        node.op = "Placeholder"
        node.attr["shape"].shape.CopyFrom(tensor.tensor_shape)
        del node.attr["value"]
    model_proto, _ = tf2onnx_convert.from_graph_def(
        graph_def, name=concrete.name, input_names=input_names + sorted(lifted), output_names=output_names,
        opset=opset, tensors_to_rename=renames)
    del graph_def
    graph = model_proto.graph
    missing = sorted(set(lifted) - {i.name for i in graph.input})
    if missing:
        raise ExportError(f"lifted weights {missing[:3]} are not inputs of the converted graph.")
    kept = [i for i in graph.input if i.name not in lifted]
    del graph.input[:]
    graph.input.extend(kept)
    for name in sorted(lifted):
        graph.initializer.append(numpy_helper.from_array(lifted.pop(name), name))
    return model_proto


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
