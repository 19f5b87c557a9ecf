"""Graph regions that quantized exports keep in float32.

Some computations inside a model are geometry, not features: the sampling coordinates
and bilinear weights of ROI crops. With int8 activations such a tensor gets one scale
for its whole range, so a coordinate spanning a feature map keeps no sub-pixel part and
the weights collapse to a few levels; the crops, and everything computed from them
(Uniface's embedding), drift far more than the features themselves would. Ops built
under ``float32_scope()`` carry ``FLOAT32_SCOPE`` in their names, and the int8 TFLite
export keeps every such node in float32 between builtin QUANTIZE/DEQUANTIZE ops.
"""

from __future__ import annotations

import tensorflow as tf

FLOAT32_SCOPE = "keep_float32"


def float32_scope():
    """A name scope whose ops int8 exports leave in float32."""
    return tf.name_scope(FLOAT32_SCOPE)
