"""The integrated Face Analytics Network, iFAN (Li et al., MM'17).

``build_model(config)`` returns the functional Keras model of Fig. 2: a stem and a
fully convolutional DenseNet backbone shared by all tasks, one decoder per task, and
(for ITER > 0) one re-encoder per task plus the task integrator whose output is fed
back into the backbone at every resolution. The interaction is unrolled ITER times
(Eq. 4) with the same layer objects, so all iterations share weights, and the model
outputs every iteration's predictions so the loss can sum over them (Eq. 5).

Inputs (dict):
    ``image``  float32 ``[batch, S, S, 3]`` RGB in [0, 1].
    ``domain`` int32 ``[batch]`` per-dataset BN domain (ignored under ``shared_bn``).

Outputs (dict), only for the configured tasks, for every iteration i = 0..ITER:
    ``landmarks/iter_{i}``            float32 ``[batch, K, 2]`` normalised (x, y);
    ``parsing_logits/iter_{i}``       float32 ``[batch, S, S, num_parsing_classes]``;
    ``<attribute>_logits/iter_{i}``   float32 ``[batch, num_classes]`` (``emotion``: 7);
    and the same keys without the suffix, equal to the last iteration.

Layer names start with their component (``backbone_``, ``decoder_<task>_``,
``reencoder_<task>_``, ``integrator_``), so training phases select variables by
prefix of ``variable.path`` (see ``component_prefix``).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Sequence

import keras

from keras_facemt.errors import ConfigError
from keras_facemt.layers.conv_bn_act import ConvBnAct
from keras_facemt.models.ifan.backbone import FCDenseNetBackbone
from keras_facemt.models.ifan.config import IFANConfig, attribute_num_classes
from keras_facemt.models.ifan.decoders import AttributeDecoder, LandmarkDecoder, ParsingDecoder
from keras_facemt.models.ifan.integrator import TaskIntegrator
from keras_facemt.models.ifan.reencoders import AttributeReencoder, LandmarkReencoder, ParsingReencoder
from keras_facemt.models.ifan.serving import serving_spec  # noqa: F401  (registry entry)

CONFIG_CLASS = IFANConfig

COMPONENTS = ("backbone", "decoder", "reencoder", "integrator")


def _paper() -> IFANConfig:
    """Sec. 4.1.2: 128x128 input, 5 dense blocks down and up, 3 layers, growth 12."""
    return IFANConfig()


def _small() -> IFANConfig:
    """64x64 input, 4 levels (landmarks still read 8x8, attributes 4x4); trains on 2 CPU cores."""
    return IFANConfig(image_size=64, num_levels=4, layers_per_block=3, growth_rate=8, stem_filters=24,
                      stem_kernel=7, heatmap_radius=None, reencoder_filters=8, integrator_filters=8,
                      attribute_hidden=32, decoder_filters=16, decoder_hidden=64, dropout=0.1)


def _tiny() -> IFANConfig:
    """32x32 input, 3 levels, growth 4: for unit tests."""
    return IFANConfig(image_size=32, num_levels=3, layers_per_block=2, growth_rate=4, stem_filters=8,
                      stem_kernel=3, heatmap_radius=None, reencoder_filters=4, integrator_filters=4,
                      attribute_hidden=8, decoder_filters=4, decoder_hidden=16, dropout=0.0)


PRESETS = {"paper": _paper, "small": _small, "tiny": _tiny}


def task_scope(task: str) -> str:
    """The layer-name form of a task (``celeba/Smiling`` -> ``celeba_Smiling``)."""
    return task.replace("/", "_")


def component_prefix(component: str, task: str = None) -> str:
    """Prefix of the layer names (and ``variable.path``) of one model component.

    Args:
        component: ``"backbone"``, ``"integrator"``, ``"decoder"`` or ``"reencoder"``.
        task: the task, required for decoders and re-encoders.

    Returns:
        e.g. ``"backbone_"``, ``"decoder_landmarks_"``, ``"reencoder_emotion_"``.

    Raises:
        ConfigError: for an unknown component or a missing / superfluous task.
    """
    if component not in COMPONENTS:
        raise ConfigError(f"Unknown component {component!r}; components: {list(COMPONENTS)}. "
                          f"Received: component={component!r}")
    per_task = component in ("decoder", "reencoder")
    if per_task != (task is not None):
        raise ConfigError(f"A task is required for decoders and re-encoders and only for them. "
                          f"Received: task={task!r}")
    return f"{component}_{task_scope(task)}_" if per_task else f"{component}_"


def output_key(task: str, iteration: int = None) -> str:
    """Output key of a task's prediction (``None`` iteration: the final alias)."""
    base = "landmarks" if task == "landmarks" else f"{task}_logits"
    return base if iteration is None else f"{base}/iter_{iteration}"


@dataclasses.dataclass(frozen=True)
class TaskHead:
    """How one task plugs into iFAN: the interface every task implements.

    Attributes:
        features: the backbone map the decoder reads: ``"pixel"`` (S x S, end of the
            up path), ``"point"`` (S / 2**(L-1), last down block) or ``"global"``
            (S / 2**L, coarsest block).
        decoder: layer mapping those features to the task's prediction.
        reencoder: layer mapping the prediction to a list of L + 1 maps, level l of
            shape ``[batch, S / 2**l, S / 2**l, C]``.
    """

    features: str
    decoder: keras.layers.Layer
    reencoder: keras.layers.Layer


def task_head(task: str, *, image_size: int, num_levels: int, num_landmarks: int, num_parsing_classes: int,
              heatmap_radius: float, reencoder_filters: int, attribute_hidden: int, decoder_filters: int,
              decoder_hidden: int, dropout: float, learnable_reencoders: bool) -> TaskHead:
    """The decoder and re-encoder of ``task`` (Sec. 4.1.2); a new task adds a branch here.

    Layers are named ``decoder_<task>_head`` and ``reencoder_<task>_pyramid``.
    """
    scope = task_scope(task)
    dec, enc = f"decoder_{scope}_head", f"reencoder_{scope}_pyramid"
    if task == "landmarks":
        return TaskHead(
            "point",
            LandmarkDecoder(num_landmarks, decoder_filters, decoder_hidden, dropout, name=dec),
            LandmarkReencoder(image_size, num_levels, reencoder_filters, heatmap_radius,
                              learnable=learnable_reencoders, name=enc),
        )
    if task == "parsing":
        return TaskHead(
            "pixel",
            ParsingDecoder(num_parsing_classes, name=dec),
            ParsingReencoder(num_levels, reencoder_filters, learnable=learnable_reencoders, name=enc),
        )
    return TaskHead(
        "global",
        AttributeDecoder(attribute_num_classes(task), decoder_filters, decoder_hidden, dropout, name=dec),
        AttributeReencoder(image_size, num_levels, reencoder_filters, attribute_hidden,
                           learnable=learnable_reencoders, name=enc),
    )


def build_ifan(*, image_size: int, tasks: Sequence[str], iterations: int, num_domains: int,
               frozen_domain=None, reencoders: bool = True, num_landmarks: int = 5,
               num_parsing_classes: int = 11, num_levels: int = 5, layers_per_block: int = 3,
               growth_rate: int = 12, stem_filters: int = 48, stem_kernel: int = 7,
               heatmap_radius: float = 5.0, reencoder_filters: int = 16, integrator_filters: int = 16,
               attribute_hidden: int = 64, decoder_filters: int = 32, decoder_hidden: int = 256,
               dropout: float = 0.0, feedback_to: str = "first_conv", iteration_bn: bool = False,
               name: str = "ifan") -> Dict[str, keras.Model]:
    """Builds iFAN from plain arguments (see ``IFANConfig`` for their meaning).

    Returns:
        ``{"main": model, "iter0": model}``: the full unrolled model and a
        weight-sharing model with only the iteration-0 outputs (no re-encoders, no
        integrator), for task-wise pre-training (Algorithm 1, lines 1-8).
    """
    tasks = tuple(tasks)
    image = keras.Input((image_size, image_size, 3), dtype="float32", name="image")
    domain = keras.Input((), dtype="int32", name="domain")
    bn = dict(num_domains=num_domains, frozen_domain=frozen_domain)

    stem = ConvBnAct(stem_filters, stem_kernel, **bn, name="backbone_stem")
    backbone = FCDenseNetBackbone(num_levels, layers_per_block, growth_rate,
                                  feedback_filters=integrator_filters if iterations > 0 else 0,
                                  feedback_to=feedback_to,
                                  iteration_bn_sets=iterations + 1 if iteration_bn else 1,
                                  **bn, name="backbone_fcdensenet")
    sizes = dict(image_size=image_size, num_levels=num_levels, num_landmarks=num_landmarks,
                 num_parsing_classes=num_parsing_classes, heatmap_radius=heatmap_radius,
                 reencoder_filters=reencoder_filters, attribute_hidden=attribute_hidden,
                 decoder_filters=decoder_filters, decoder_hidden=decoder_hidden, dropout=dropout,
                 learnable_reencoders=reencoders)
    heads = {task: task_head(task, **sizes) for task in tasks}
    integrator = TaskIntegrator(num_levels, integrator_filters, name="integrator_fuse")

    # The stem only sees the image, so it is computed once for all iterations.
    stem_features = stem(image, domain=domain)
    outputs = {}
    feedback = None
    for i in range(iterations + 1):
        features = backbone(stem_features, domain=domain, feedback=feedback, iteration=i)
        predictions = {}
        for task, head in heads.items():
            predictions[task] = head.decoder(features[head.features])
            outputs[output_key(task, i)] = predictions[task]
        if i < iterations:
            feedback = integrator([head.reencoder(predictions[task]) for task, head in heads.items()])

    iter0_outputs = {output_key(t, 0): outputs[output_key(t, 0)] for t in tasks}
    for task in tasks:
        # A distinct tensor per alias keeps every output a separate graph node (export).
        alias = keras.layers.Identity(dtype="float32", name=f"decoder_{task_scope(task)}_final")
        outputs[output_key(task)] = alias(outputs[output_key(task, iterations)])
    inputs = {"image": image, "domain": domain}
    main = keras.Model(inputs, outputs, name=name)
    iter0 = keras.Model(inputs, iter0_outputs, name=f"{name}_iter0")
    return {"main": main, "iter0": iter0}


def _args(config: IFANConfig) -> dict:
    if not isinstance(config, IFANConfig):
        raise ConfigError(f"Expected an IFANConfig. Received: config={type(config).__name__}")
    args = dataclasses.asdict(config)
    args["tasks"] = tuple(config.tasks)
    args["num_domains"] = config.bn_domains
    args["heatmap_radius"] = config.heatmap_radius_px
    del args["shared_bn"]
    return args


def build_models(config: IFANConfig) -> Dict[str, keras.Model]:
    """``{"main": model, "iter0": weight-sharing iteration-0 model}`` from a config."""
    return build_ifan(**_args(config))


def build_model(config: IFANConfig) -> keras.Model:
    """The full iFAN model (all iterations' outputs and the final aliases) from a config."""
    return build_models(config)["main"]
