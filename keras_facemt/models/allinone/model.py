"""All-in-One network (Ranjan et al., FG 2017, Sec. III-B and Fig. 3): ``build_allinone``.

One network reads a face-region crop (a region proposal, or an aligned face) and
predicts seven tasks. The layer order is this reading of the text (``config.py``
and README, All-in-One departures):

    image -> conv1 [pool] -> conv2 [pool] -> conv3 -> conv4 [pool] -> conv5 -> conv6
             (conv1-conv6 shared, each Conv -> [BN] -> PReLU)

    subject-independent group (hyper-features, as HyperFace [36]):
      conv1 -> conv (kernel = stride, to F x F) \
      conv3 -> conv (to F x F)                   > concat -> 1x1 conv to 256 maps
      conv5 -> max-pool (to F x F)              /  -> flatten -> FC 2048 (shared)
      -> FC 512 per task -> detection_logits [2] | landmarks [21, 2] and
         visibility [21] (one branch) | pose [3] | smile_logits [2]

    subject-dependent group:
      conv6 -> max-pool -> flatten -> FC -> FC -> gender_logits [2]
                                  \-> FC -> FC -> age [1]
      conv6 -> conv7 (unshared) -> max-pool -> flatten -> FC -> FC 512 = embedding
                                                           -> FC N = identity_logits

Landmarks and visibility share one FC 512 (HyperFace trains them as one task, and
Eq. 8 counts 8 terms for 7 tasks); landmarks are (x, y) in [0, 1] of the input crop.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import keras

from keras_facemt.layers.domain_batch_norm import DomainBatchNorm
from keras_facemt.models.allinone.config import PRESETS, AllInOneConfig, fusion_window  # noqa: F401 (registry)
from keras_facemt.models.allinone.serving import serving_spec  # noqa: F401  (registry entry)

CONFIG_CLASS = AllInOneConfig
NUM_POSE = 3  # yaw, pitch, roll (schema order), degrees


def _conv(x, filters: int, kernel: int, stride: int, padding: str, batch_norm: bool, name: str, domain=None,
          bn_domains: int = 1):
    """Conv -> [BN, per dataset when ``domain`` is given] -> channel-wise PReLU (Sec. III-B: PReLU activations)."""
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=not batch_norm,
                            kernel_initializer="he_normal", name=f"{name}_conv")(x)
    if batch_norm and domain is not None:
        x = DomainBatchNorm(bn_domains, name=f"{name}_bn")(x, domain)
    elif batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(x)


def _fc(x, units: int, dropout: float, name: str):
    """FC -> PReLU [-> dropout]."""
    x = keras.layers.Dense(units, name=f"{name}_fc")(x)
    x = keras.layers.PReLU(name=f"{name}_prelu")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def _pool(x, pool: int, stride: int, name: str):
    size = int(x.shape[1])
    if size < pool:  # a map smaller than the window is pooled whole
        pool = stride = size
    return keras.layers.MaxPooling2D(pool, stride, padding="valid", name=name)(x)


def build_allinone(*, image_size: int = 48, convs: Sequence[Tuple] = (), pool_size: int = 2, pool_stride: int = 2,
                   fused_size: int = 6, fused_channels: int = 32, reduced_channels: int = 64, shared_fc: int = 256,
                   task_fc: int = 64, subject_fc: Tuple[int, int] = (128, 64), identity_fc: int = 256,
                   descriptor_dim: int = 128, num_identities: int = 300, num_landmarks: int = 21,
                   batch_norm: bool = True, dropout: float = 0.0, age_offset: float = 40.0, age_scale: float = 20.0,
                   pose_scale: float = 90.0, bn_domains: int = 1, name: str = "allinone") -> keras.Model:
    """Builds the All-in-One training graph.

    Args:
        image_size: side of the square RGB crop.
        convs: 7 ``(filters, kernel, stride, padding, pool_after)`` backbone layers.
        pool_size, pool_stride: backbone max-pooling.
        fused_size: side F of the fused hyper-feature map (paper 6).
        fused_channels: channels of the conv1 / conv3 fusion convolutions.
        reduced_channels: maps after the 1x1 reduction (paper 256).
        shared_fc: the shared subject-independent FC (paper 2048).
        task_fc: each subject-independent task's FC (paper 512).
        subject_fc: the two hidden FCs of the age and gender heads.
        identity_fc: the identity branch's first FC.
        descriptor_dim: identity descriptor size (paper 512).
        num_identities: identity classes (paper 10,548).
        num_landmarks: points (21 of ``aflw21``).
        batch_norm: BN after each convolution.
        dropout: dropout after the hidden FCs.
        age_offset, age_scale: ``age = age_offset + age_scale * raw`` in years.
        pose_scale: ``pose = pose_scale * raw`` in degrees.
        bn_domains: above 1, every BN keeps one set of statistics per training
            dataset, selected by the ``domain`` input (int32 ``[B]``).
        name: model name.

    Returns:
        ``keras.Model``: ``{"image": float32 [B, S, S, 3] in [0, 1]}`` ->
        ``{"detection_logits": [B, 2]`` (index 1 = face), ``"landmarks": [B, 21, 2]``,
        ``"visibility": [B, 21]`` (regressed 0/1), ``"pose": [B, 3]`` (yaw, pitch,
        roll degrees), ``"smile_logits": [B, 2]``, ``"gender_logits": [B, 2]``
        (schema order female, male), ``"age": [B, 1]`` (years), ``"embedding":
        [B, descriptor_dim]`` and ``"identity_logits": [B, num_identities]}``.
    """
    image = keras.Input((int(image_size), int(image_size), 3), name="image")
    inputs = {"image": image}
    bn = {}
    if int(bn_domains) > 1:
        inputs["domain"] = keras.Input((), dtype="int32", name="domain")
        bn = {"domain": inputs["domain"], "bn_domains": int(bn_domains)}
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="standardize")(image)
    maps = {}
    for k, (filters, kernel, stride, padding, pool) in enumerate(convs[:6], start=1):
        x = _conv(x, filters, kernel, stride, padding, batch_norm, f"conv{k}", **bn)
        if pool:
            x = _pool(x, pool_size, pool_stride, f"pool{k}")
        maps[k] = x

    # Subject-independent group: hyper-feature fusion of conv1, conv3, conv5 (Sec. III-B).
    fused = []
    for k in (1, 3):
        kern, stride = fusion_window(int(maps[k].shape[1]), fused_size)
        fused.append(_conv(maps[k], fused_channels, kern, stride, "valid", batch_norm, f"fuse{k}", **bn))
    kern, stride = fusion_window(int(maps[5].shape[1]), fused_size)
    fused.append(keras.layers.MaxPooling2D(kern, stride, padding="valid", name="fuse5_pool")(maps[5]))
    h = keras.layers.Concatenate(name="fuse_concat")(fused)
    h = _conv(h, reduced_channels, 1, 1, "valid", batch_norm, "fuse_reduce", **bn)
    h = keras.layers.Flatten(name="fuse_flatten")(h)
    h = _fc(h, shared_fc, dropout, "shared")

    outputs = {}
    det = _fc(h, task_fc, dropout, "detection")
    outputs["detection_logits"] = keras.layers.Dense(2, name="detection_logits")(det)
    lm = _fc(h, task_fc, dropout, "landmarks")
    points = keras.layers.Dense(2 * num_landmarks, name="landmarks_out")(lm)
    outputs["landmarks"] = keras.layers.Reshape((num_landmarks, 2), name="landmarks")(points)
    outputs["visibility"] = keras.layers.Dense(num_landmarks, name="visibility")(lm)
    pose = keras.layers.Dense(NUM_POSE, name="pose_out")(_fc(h, task_fc, dropout, "pose"))
    outputs["pose"] = keras.layers.Rescaling(float(pose_scale), name="pose")(pose)
    outputs["smile_logits"] = keras.layers.Dense(2, name="smile_logits")(_fc(h, task_fc, dropout, "smile"))

    # Subject-dependent group: age and gender from pooled conv6; identity through conv7.
    g = keras.layers.Flatten(name="conv6_flatten")(_pool(maps[6], pool_size, pool_stride, "pool6"))
    for task in ("gender", "age"):
        t = g
        for i, units in enumerate(subject_fc, start=1):
            t = _fc(t, units, dropout, f"{task}{i}")
        if task == "gender":
            outputs["gender_logits"] = keras.layers.Dense(2, name="gender_logits")(t)
        else:
            raw = keras.layers.Dense(1, name="age_out")(t)
            outputs["age"] = keras.layers.Rescaling(float(age_scale), offset=float(age_offset), name="age")(raw)
    filters, kernel, stride, padding, pool = convs[6]
    z = _conv(maps[6], filters, kernel, stride, padding, batch_norm, "conv7", **bn)
    z = keras.layers.Flatten(name="conv7_flatten")(_pool(z, pool_size, pool_stride, "pool7"))
    z = _fc(z, identity_fc, dropout, "identity1")
    descriptor = keras.layers.Dense(descriptor_dim, name="embedding")(z)
    outputs["embedding"] = descriptor
    outputs["identity_logits"] = keras.layers.Dense(num_identities, name="identity_logits")(
        keras.layers.PReLU(name="identity2_prelu")(descriptor))
    return keras.Model(inputs, outputs, name=name)


# Fields that configure the deployable two-stage graph, not the trained network.
DEPLOYMENT_FIELDS = ("scene_size", "detector", "stage2_aligned")


def model_args(config: AllInOneConfig) -> dict:
    """The plain ``build_allinone`` arguments of a config."""
    import dataclasses

    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in DEPLOYMENT_FIELDS}


def build_model(config: AllInOneConfig) -> keras.Model:
    """Registry entry: config -> All-in-One training graph."""
    return build_allinone(**model_args(config))


def build_serving_model(model: keras.Model, config: AllInOneConfig) -> keras.Model:
    """Registry entry: the deployable two-stage graph on whole images (``scene_graph.py``)."""
    from keras_facemt.models.allinone.scene_graph import build_scene_graph

    return build_scene_graph(model, config)
