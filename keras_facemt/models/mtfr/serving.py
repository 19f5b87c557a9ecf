"""What an MTFR export serves (Wang et al., ICMR 2017, Sec. 4.7-4.8).

The deployable graph drops the P-way identity classifier (training-only) and
outputs the L2-normalised face feature ``f(I)`` for cosine verification and the
attribute scores, clipped to [0, 1] (the MSE regression onto 0/1 labels, read as a
probability-like score; 0.5 is the decision threshold).
"""

from __future__ import annotations

import keras

from keras_facemt.configs.outputs import OutputSpec, Preprocessing, ServingSpec
from keras_facemt.models.mtfr.config import MTFRConfig

EMBEDDING = "embedding"
ATTRIBUTES_KEY = "attributes"


def attribute_keys(config: MTFRConfig):
    """Schema names (``celeba/<name>``) of the attribute outputs, in output order."""
    return tuple(f"celeba/{a}" for a in config.attributes)


def serving_spec(config: MTFRConfig) -> ServingSpec:
    """The deployable graph's declaration: the unit-norm face feature ``f(I)`` and the
    attribute scores in [0, 1] (named by their schema attributes), read from a face
    aligned by its 5 points to the 112x96 template (``ops.align``)."""
    outputs = {EMBEDDING: OutputSpec("embedding", task="identity")}
    if config.attributes:
        outputs[ATTRIBUTES_KEY] = OutputSpec("multilabel", names=attribute_keys(config), activation="identity")
    return ServingSpec(outputs, Preprocessing(resize="stretch", align="mtfl5"))


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


def serving_spec_names(model):
    """The attribute names (``celeba/<name>``) a deployable MTFR model declares."""
    from keras_facemt.models.model_info import serving_spec_of

    spec = serving_spec_of(model)
    return spec.outputs[ATTRIBUTES_KEY].names if ATTRIBUTES_KEY in spec.outputs else ()
