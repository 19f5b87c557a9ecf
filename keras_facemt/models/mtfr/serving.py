"""What an MTFR export serves (Wang et al., ICMR 2017, Sec. 4.7-4.8).

The deployable graph drops the P-way identity classifier (training-only) and
outputs the L2-normalised face feature ``f(I)`` for cosine verification and the
attribute scores, clipped to [0, 1] (the MSE regression onto 0/1 labels, read as a
probability-like score; 0.5 is the decision threshold).
"""

from __future__ import annotations

from typing import Dict

import keras

from keras_facemt.models.mtfr.config import MTFRConfig

# Output declarations: kind and, for multi-label attributes, their names.
EMBEDDING = "embedding"
ATTRIBUTES_KEY = "attributes"


def output_declarations(config: MTFRConfig) -> Dict[str, Dict[str, object]]:
    """``{output key: {"kind": ..., ...}}`` of the deployable graph."""
    out = {EMBEDDING: {"kind": "embedding", "dim": int(config.feature_dim), "normalised": True}}
    if config.attributes:
        out[ATTRIBUTES_KEY] = {"kind": "multilabel_attributes", "names": list(config.attributes), "threshold": 0.5}
    return out


def preprocessing(config: MTFRConfig) -> Dict[str, object]:
    """How an image becomes the model input: a 5-point aligned crop (``ops.align``)."""
    return {"resize": "align_5pt", "size": list(config.image_size), "range": [0.0, 1.0]}


def build_serving_graph(model: keras.Model, config: MTFRConfig) -> keras.Model:
    """``{"image"} -> {"embedding": [B, D] unit-norm, "attributes": [B, M] in [0, 1]}``."""
    image = keras.Input(tuple(model.inputs[0].shape[1:]) if not isinstance(model.input, dict)
                        else tuple(model.input["image"].shape[1:]), name="image")
    out = model({"image": image}, training=False)
    outputs = {EMBEDDING: keras.layers.UnitNormalization(name=EMBEDDING)(out["embedding"])}
    if "attributes" in out:
        clip = keras.layers.ReLU(max_value=1.0, name=ATTRIBUTES_KEY)
        outputs[ATTRIBUTES_KEY] = clip(out["attributes"])
    return keras.Model({"image": image}, outputs, name="mtfr_serving")
