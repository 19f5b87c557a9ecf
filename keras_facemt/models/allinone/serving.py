"""What an All-in-One export serves (Ranjan et al., FG 2017, Sec. III-D).

The deployable graph is the per-crop network: one face-region crop (a proposal,
stretched to the input size) in, every task's prediction for it out. The
10,548-way identity classifier trains the descriptor and is dropped (Sec. III-D
uses the 512-D penultimate FC as the descriptor); so is the regressed visibility,
which has no declared output kind. Proposal generation, landmark-based NMS and
alignment stay outside the exported graph (``scene_pipeline.py`` runs them around
it): detection, landmarks and pose are read from a proposal crop (stage 1), smile,
gender, age and the descriptor from the face aligned by its points (stage 2) when
the model was trained with ``aligned_crops``.
"""

from __future__ import annotations

import keras

from keras_facemt.configs.outputs import OutputSpec, Preprocessing, ServingSpec
from keras_facemt.data import schema

SERVED = ("detection_logits", "landmarks", "pose", "smile_logits", "gender_logits", "age", "embedding")


def serving_spec(config) -> ServingSpec:
    """Declarations of the per-crop graph's outputs (``SERVED``)."""
    del config  # every preset serves the same outputs
    return ServingSpec(
        {
            "detection_logits": OutputSpec("class_logits", names=("background", "face"), activation="softmax"),
            "landmarks": OutputSpec("landmarks", task="landmarks", scheme="aflw21"),
            "pose": OutputSpec("pose", task="pose"),
            "smile_logits": OutputSpec("class_logits", task="smile", names=schema.attribute_spec("smile").class_names,
                                       activation="softmax"),
            "gender_logits": OutputSpec("class_logits", task="gender",
                                        names=schema.attribute_spec("gender").class_names, activation="softmax"),
            "age": OutputSpec("regression", task="age", unit="years"),
            "embedding": OutputSpec("embedding", task="identity"),
        },
        Preprocessing(resize="stretch"),
    )


def build_serving_graph(model: keras.Model, config) -> keras.Model:
    """``{"image": [B, S, S, 3]}`` (plus ``"domain": [B]`` with per-dataset BN) -> the ``SERVED`` outputs."""
    del config
    image = keras.Input(tuple(model.input["image"].shape[1:]) if isinstance(model.input, dict)
                        else tuple(model.inputs[0].shape[1:]), name="image")
    inputs = {"image": image}
    if isinstance(model.input, dict) and "domain" in model.input:  # per-dataset BN: the caller picks the domain
        inputs["domain"] = keras.Input((), dtype="int32", name="domain")
    out = model(inputs, training=False)
    served = {k: keras.layers.Identity(name=k)(out[k]) for k in SERVED}
    return keras.Model(inputs, served, name="allinone_serving")
