"""What an All-in-One export serves (Ranjan et al., FG 2017, Sec. III-D).

The deployable graph (``scene_graph.build_scene_graph``) runs both test stages on a
whole letterboxed image: dense windows, stage 1, IRP, landmark-based NMS, alignment
by the predicted points and stage 2 on each face and its mirror. Per detection
(padded to ``detector.max_detections``):

* ``boxes`` ``[batch, D, 4]``, ``scores`` ``[batch, D]``, ``num_detections`` ``[batch]``;
* ``landmarks`` ``[batch, D, 21, 2]`` (AFLW's 21 points) and ``visibility``
  ``[batch, D, 21]``; ``pose`` ``[batch, D, 3]`` (yaw, pitch, roll, degrees);
* ``smile_logits`` and ``gender_logits`` ``[batch, D, 2]``, ``age`` ``[batch, D]``
  years and the 512-D descriptor ``embedding`` ``[batch, D, E]`` from stage 2.

The identity classifier trains the descriptor and is not served (Sec. III-D uses
the penultimate FC as the descriptor).
"""

from __future__ import annotations

from keras_facemt.configs.outputs import OutputSpec, Preprocessing, ServingSpec
from keras_facemt.data import schema


# Images per forward pass of the deployable graph (its memory grows with windows x images).
MAX_BATCH = 4


def _names(attribute: str):
    return tuple(schema.attribute_spec(attribute).class_names)


def serving_spec(config) -> ServingSpec:
    """Declarations of the deployable graph's outputs."""
    del config  # every preset serves the same outputs
    return ServingSpec(
        {
            "boxes": OutputSpec("boxes", task="detection", per_face=True),
            "scores": OutputSpec("scores", task="detection", per_face=True),
            "num_detections": OutputSpec("count", task="detection"),
            "landmarks": OutputSpec("landmarks", task="landmarks", per_face=True, scheme="aflw21"),
            "visibility": OutputSpec("visibility", per_face=True),
            "pose": OutputSpec("pose", task="pose", per_face=True),
            "smile_logits": OutputSpec("class_logits", task="smile", per_face=True, names=_names("smile"),
                                       activation="softmax"),
            "gender_logits": OutputSpec("class_logits", task="gender", per_face=True, names=_names("gender"),
                                        activation="softmax"),
            "age": OutputSpec("regression", task="age", per_face=True, unit="years"),
            "embedding": OutputSpec("embedding", task="identity", per_face=True),
        },
        # The network runs on every window of every image: ~1,400 crops an image.
        Preprocessing(resize="letterbox", max_batch=MAX_BATCH),
    )
