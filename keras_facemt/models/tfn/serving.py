"""What a deployed TFN model outputs, and how an image becomes its input.

The deployable graph (``model.build_serving_model``) detects faces in a whole
letterboxed image; per detection (padded to ``max_detections``, zeros in padding):

* ``boxes`` ``[batch, D, 4]``, ``scores`` ``[batch, D]``, ``num_detections``
  ``[batch]`` (Sec. IV-A: the detection subnet after the second NMS);
* ``landmarks`` ``[batch, D, 68, 2]``: the ibug 68 points (Eq. 5 decoded in the
  detection's refined box);
* ``age`` ``[batch, D]``: years, the expectation of the 101-way age softmax;
* ``gender_logits`` ``[batch, D, 2]`` (female, male) and ``ethnicity_logits``
  ``[batch, D, 3]`` (white, black, asian: MORPH II's W / B / A).
"""

from __future__ import annotations

from keras_facemt.configs.outputs import OutputSpec, Preprocessing, ServingSpec
from keras_facemt.data import schema
from keras_facemt.models.tfn.config import TFNConfig


def _names(attribute: str):
    return tuple(schema.ATTRIBUTES[attribute].class_names)


def serving_spec(config: TFNConfig) -> ServingSpec:
    """The output declaration of ``build_serving_model(model, config)``."""
    return ServingSpec({
        "boxes": OutputSpec("boxes", task="detection", per_face=True),
        "scores": OutputSpec("scores", task="detection", per_face=True),
        "num_detections": OutputSpec("count", task="detection"),
        "landmarks": OutputSpec("landmarks", task="landmarks", per_face=True, scheme="ibug68"),
        "age": OutputSpec("regression", task="age", per_face=True, unit="years", label="age_class"),
        "gender_logits": OutputSpec("class_logits", task="gender", per_face=True, names=_names("gender"),
                                    activation="softmax"),
        "ethnicity_logits": OutputSpec("class_logits", task="ethnicity", per_face=True, names=_names("ethnicity"),
                                       activation="softmax"),
    }, Preprocessing(resize="letterbox"))
