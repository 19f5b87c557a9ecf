"""What a deployed iFAN model outputs, and how an image becomes its input.

iFAN reads one aligned face crop, stretched to the square input (Sec. 4.1.1: faces
cropped and resized to 128x128). Its final outputs (the last interaction iteration;
the per-iteration ``<key>/iter_<i>`` outputs are training aids and not declared):

* ``landmarks`` ``[batch, K, 2]``: the scheme with K points (MTFL's 5);
* ``parsing_logits`` ``[batch, S, S, 11]``: Helen classes (``schema.PARSING_CLASSES``);
* ``<attribute>_logits`` ``[batch, C]``: each categorical attribute task (emotion).
"""

from __future__ import annotations

from keras_facemt.configs.outputs import OutputSpec, Preprocessing, ServingSpec
from keras_facemt.data import schema
from keras_facemt.data.landmarks import scheme_for_num_points
from keras_facemt.models.ifan.config import IFANConfig


def serving_spec(config: IFANConfig) -> ServingSpec:
    """The output declaration of ``build_model(config)``'s final outputs."""
    outputs = {}
    for task in config.tasks:
        if task == "landmarks":
            outputs["landmarks"] = OutputSpec("landmarks", task="landmarks",
                                              scheme=scheme_for_num_points(config.num_landmarks))
        elif task == "parsing":
            outputs["parsing_logits"] = OutputSpec("parsing_logits", task="parsing",
                                                   names=schema.PARSING_CLASSES, activation="softmax")
        else:
            spec = schema.attribute_spec(task)
            names = spec.class_names or tuple(str(i) for i in range(spec.num_classes))
            outputs[f"{task}_logits"] = OutputSpec("class_logits", task=task, names=names, activation="softmax")
    return ServingSpec(outputs, Preprocessing(resize="stretch", template_scale=0.66))  # crops: face box + margin
