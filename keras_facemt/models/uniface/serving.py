"""What a deployed Uniface model outputs, and how an image becomes its input.

The deployable graph (``model.build_serving_model``) detects faces in a whole image
that was "padded with 0 to a square and resized" (Sec. IV-A): a letterbox. Its
outputs are padded to ``max_detections`` per image:

* ``boxes`` ``[batch, D, 4]``, ``scores`` ``[batch, D]``, ``num_detections``
  ``[batch]`` (the detection task);
* ``landmarks`` ``[batch, D, 5, 2]``: MTFL's 5 points per detection;
* ``embeddings`` ``[batch, D, E]``: the recognition embedding of each detection
  (mimicking the teacher, compared by cosine).
"""

from __future__ import annotations

from keras_facemt.configs.outputs import OutputSpec, Preprocessing, ServingSpec
from keras_facemt.models.uniface.config import UnifaceConfig


def serving_spec(config: UnifaceConfig) -> ServingSpec:
    """The output declaration of ``build_serving_model(model, config)``."""
    return ServingSpec({
        "boxes": OutputSpec("boxes", task="detection", per_face=True),
        "scores": OutputSpec("scores", task="detection", per_face=True),
        "num_detections": OutputSpec("count", task="detection"),
        "landmarks": OutputSpec("landmarks", task="landmarks", per_face=True, scheme="mtfl5"),
        "embeddings": OutputSpec("embedding", per_face=True),
    }, Preprocessing(resize="letterbox"))
