"""TFN: task-oriented feature-fused network for joint face analysis.

Lin et al., "Task-Oriented Feature-Fused Network with Multivariate Dataset for Joint
Face Analysis", IEEE TCYB 2019 (Fig. 3): a VGG-16-shaped stem (``stem.py``) -> the
multilayer assistant RPN on conv4_3 and conv5_3 (``rpn.py``, Sec. IV-A.2) ->
proposals (decode, top-N, NMS in the graph) -> three region subnets, each a
task-oriented feature-fused block over its stacks (``fused_block.py``, Sec. IV-A.3)
and two FCs with its decision layer (``heads.py``). Two-step refinement: the landmark
and attribute subnets read the detection subnet's refined boxes.

Two weight-sharing graphs:

* ``build_tfn`` (training graph, what ``build_model`` returns): inputs ``image``
  ``[batch, S, S, 3]`` in [0, 1] and ``face_rois`` ``[batch, Q, 4]`` -- shaken
  ground-truth boxes (``ops.box_jitter``; zeros pad), appended to the proposals as
  detection ROIs (Fast R-CNN adds the ground truth to the proposals) and used as the
  landmark / attribute samples ("all GT faces plus predicted faces with IoU > 0.7",
  Sec. IV-B; with ``two_step`` the detection subnet's refinement of them too).
  Outputs, each carrying its ROIs in the first 4 channels so a loss reads one output:

  - ``rpn_cls_logits`` ``[batch, A, 2]``, ``rpn_box_deltas`` ``[batch, A, 4]``;
  - ``detection`` ``[batch, P + Q, 4 + 2 + 4]``: ROI, face logits, box deltas;
  - ``landmarks`` ``[batch, Q', 4 + 136]``: ROI, Eq. 5 offsets (heat-map subnet:
    ``[batch, Q', 4 + H * W * 68]``, the maps' logits);
  - ``attributes`` ``[batch, Q', 4 + 101 + 2 + 3]``: ROI, age, gender, ethnicity
    logits (``Q' = 2Q`` with ``two_step``, else ``Q``).

* ``build_serving_model`` (the deployable graph): input ``image`` only; RPN,
  proposals, the detection subnet, the second NMS, then the landmark and attribute
  subnets on the detections; outputs ``boxes`` ``[batch, D, 4]``, ``scores``
  ``[batch, D]``, ``num_detections`` ``[batch]``, ``landmarks`` ``[batch, D, 68, 2]``,
  ``age`` ``[batch, D]`` (years, the expectation of the age softmax),
  ``gender_logits`` ``[batch, D, 2]``, ``ethnicity_logits`` ``[batch, D, 3]``; zeros
  in padded rows. ROI crops use gathers and NMS ``NON_MAX_SUPPRESSION_V4``, so the
  whole graph converts to TFLite with builtin ops only.

Images are standardised inside the model ((x - 0.5) / 0.25).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import keras

from keras_facemt.errors import ConfigError
from keras_facemt.models.tfn import heads
from keras_facemt.models.tfn.config import TFNConfig
from keras_facemt.models.tfn.fused_block import FeatureFusedBlock
from keras_facemt.layers.mask_rows import MaskRows
from keras_facemt.models.tfn.postprocess import (AgeExpectation, DetectionPostprocess, HeatmapLandmarkDecode,
                                                 LandmarkDecode, RefineBoxes)
from keras_facemt.models.tfn.rpn import ProposalLayer, build_rpn_head, model_anchors
from keras_facemt.models.tfn.serving import serving_spec  # noqa: F401  (registry entry)
from keras_facemt.models.tfn.stem import STEM_NAME, build_stem

BLOCK_NAMES = {"detection": "detection_block", "landmarks": "landmark_block", "attributes": "attribute_block"}
# fc_sharing -> (the shared head's name prefix, the tasks behind its FCs).
SHARED_HEADS = {"face": "face", "all": "region"}
FC_SHARED_TASKS = {"face": ("landmarks", "attributes"), "all": ("detection", "landmarks", "attributes")}
OUTPUT_KEYS = ("rpn_cls_logits", "rpn_box_deltas", "detection", "landmarks", "attributes")
SERVING_KEYS = ("boxes", "scores", "num_detections", "landmarks", "age", "gender_logits", "ethnicity_logits")


def _taps(tops, levels: Sequence[int]):
    return [tops[l - 1] for l in levels]


def build_tfn(image_size: int = 512, stack_widths: Sequence[int] = (64, 128, 256, 512, 512),
              stack_convs: Sequence[int] = (2, 2, 3, 3, 3), backbone_weights: Optional[str] = None,
              rpn_levels: Sequence[int] = (4, 5),
              rpn_scales: Sequence[Sequence[float]] = ((16, 32, 64), (128, 256, 512)),
              rpn_ratios: Sequence[float] = (0.5, 1.0, 2.0), rpn_channels: int = 256,
              pre_nms_proposals: int = 2000, proposals: int = 300, proposal_iou: float = 0.7,
              roi_size: int = 7, fused_channels: int = 512,
              task_levels: Tuple[Sequence[int], Sequence[int], Sequence[int]] = ((3, 4, 5), (4, 5), (3, 4, 5)),
              fc_units: Sequence[int] = (4096, 4096), l2_scale: float = 20.0, fused_block: bool = True,
              shared_block: bool = False, fc_sharing: str = "none", channel_gate: bool = False,
              two_step: bool = True,
              heatmap_landmarks: bool = False, heatmap_upsample: int = 16, heatmap_channels: int = 512,
              name: str = "tfn") -> keras.Model:
    """Builds the TFN training graph (see the module docstring for inputs / outputs).

    Args:
        task_levels: stacks fused by the detection, landmark and attribute blocks.
        channel_gate: the TAFN squeeze-excitation re-weighting in every block.
        fc_sharing: ``"none"``, ``"face"`` (TRMM) or ``"all"`` (ORMM): which subnets share
            one pair of FCs (``heads.build_shared_head``); needs ``shared_block``.
        Others: as ``TFNConfig``.
    """
    image = keras.Input((image_size, image_size, 3), name="image")
    face_rois = keras.Input((None, 4), name="face_rois")
    x = keras.layers.Rescaling(4.0, offset=-2.0, name="standardize")(image)
    stem = build_stem(image_size, stack_widths, stack_convs, backbone_weights)
    tops = stem(x)
    strides = [2 ** (l - 1) for l in rpn_levels]
    sizes = [(image_size // s, image_size // s) for s in strides]
    per_cell = len(rpn_scales[0]) * len(rpn_ratios)
    rpn = build_rpn_head([(h, w, stack_widths[l - 1]) for (h, w), l in zip(sizes, rpn_levels)], per_cell,
                         rpn_channels)
    rpn_out = rpn(_taps(tops, rpn_levels))
    proposal_boxes, _ = ProposalLayer(image_size, sizes, strides, rpn_scales, rpn_ratios, pre_nms_proposals,
                                      proposals, proposal_iou, name="proposals")(
        rpn_out["cls_logits"], rpn_out["box_deltas"])

    fuse = fused_block or channel_gate
    blocks = {}
    for task, levels in zip(("detection", "landmarks", "attributes"), task_levels):
        if shared_block and task != "detection":
            blocks[task] = blocks["detection"]
            continue
        blocks[task] = (FeatureFusedBlock(roi_size, fused_channels, fuse, channel_gate, l2_scale,
                                          name=BLOCK_NAMES[task]), list(levels))
    width = {t: (fused_channels if fuse else stack_widths[lv[-1] - 1]) for t, (_, lv) in blocks.items()}

    if fc_sharing != "none" and (not shared_block or heatmap_landmarks):
        raise ConfigError("fc_sharing needs shared_block=True and regression landmarks. Received: "
                          f"fc_sharing={fc_sharing!r}, shared_block={shared_block}, "
                          f"heatmap_landmarks={heatmap_landmarks}")
    shared = None
    if fc_sharing != "none":
        tasks = FC_SHARED_TASKS[fc_sharing]
        shared = heads.build_shared_head(roi_size, width["detection"], fc_units, tasks, SHARED_HEADS[fc_sharing],
                                         name=SHARED_HEADS[fc_sharing] + "_head")

    det_rois = keras.layers.Concatenate(axis=1, name="detection_rois")([proposal_boxes, face_rois])
    block, levels = blocks["detection"]
    det_head = shared if fc_sharing == "all" else heads.build_detection_head(roi_size, width["detection"], fc_units)
    det = det_head(block(det_rois, _taps(tops, levels)))
    if two_step:
        refined = RefineBoxes(start=proposals, name="refine_boxes")(det_rois, det["box_deltas"])
        face_samples = keras.layers.Concatenate(axis=1, name="face_samples")([face_rois, refined])
    else:
        face_samples = face_rois

    block, levels = blocks["landmarks"]
    lm_feats = block(face_samples, _taps(tops, levels))
    if shared is not None:
        # One block feeds the shared FCs: the landmark and attribute decisions read one call.
        face_out = shared(lm_feats)
        lm_flat = keras.layers.Reshape((-1, 136), name="landmark_flat")(face_out["landmarks"])
        attr = face_out
    else:
        if heatmap_landmarks:
            lm_head = heads.build_heatmap_head(roi_size, width["landmarks"], heatmap_channels, heatmap_upsample)
            size = roi_size * heatmap_upsample
            lm_flat = keras.layers.Reshape((-1, size * size * 68), name="landmark_flat")(lm_head(lm_feats))
        else:
            lm_head = heads.build_landmark_head(roi_size, width["landmarks"], fc_units)
            lm_flat = keras.layers.Reshape((-1, 136), name="landmark_flat")(lm_head(lm_feats))
        block, levels = blocks["attributes"]
        attr = heads.build_attribute_head(roi_size, width["attributes"], fc_units)(
            block(face_samples, _taps(tops, levels)))

    outputs = {
        "rpn_cls_logits": keras.layers.Identity(name="rpn_cls_logits")(rpn_out["cls_logits"]),
        "rpn_box_deltas": keras.layers.Identity(name="rpn_box_deltas")(rpn_out["box_deltas"]),
        "detection": keras.layers.Concatenate(axis=-1, name="detection")(
            [det_rois, det["cls_logits"], det["box_deltas"]]),
        "landmarks": keras.layers.Concatenate(axis=-1, name="landmarks")([face_samples, lm_flat]),
        "attributes": keras.layers.Concatenate(axis=-1, name="attributes")(
            [face_samples, attr["age_logits"], attr["gender_logits"], attr["ethnicity_logits"]]),
    }
    return keras.Model({"image": image, "face_rois": face_rois}, outputs, name=name)


def anchors_of(config: TFNConfig):
    """``[A, 4]`` anchors of the rows of ``rpn_cls_logits`` / ``rpn_box_deltas``."""
    strides = [2 ** (l - 1) for l in config.rpn_levels]
    sizes = [(config.image_size // s, config.image_size // s) for s in strides]
    return model_anchors(config.image_size, sizes, strides, config.rpn_scales, config.rpn_ratios)


def model_args(config: TFNConfig) -> dict:
    """The plain ``build_tfn`` arguments of a config."""
    return dict(
        image_size=config.image_size, stack_widths=config.stack_widths, stack_convs=config.stack_convs,
        backbone_weights=config.backbone_weights, rpn_levels=config.rpn_levels, rpn_scales=config.rpn_scales,
        rpn_ratios=config.rpn_ratios, rpn_channels=config.rpn_channels,
        pre_nms_proposals=config.pre_nms_proposals, proposals=config.proposals, proposal_iou=config.proposal_iou,
        roi_size=config.roi_size, fused_channels=config.fused_channels,
        task_levels=tuple(config.levels_of(t) for t in ("detection", "landmarks", "attributes")),
        fc_units=config.fc_units, l2_scale=config.l2_scale, fused_block=config.fused_block,
        shared_block=config.shared_block, fc_sharing=config.fc_sharing, channel_gate=config.tafn, two_step=config.two_step,
        heatmap_landmarks=config.heatmap_landmarks, heatmap_upsample=config.heatmap_upsample,
        heatmap_channels=config.heatmap_channels,
    )


def build_model(config: TFNConfig) -> keras.Model:
    """Registry entry: config -> TFN training graph."""
    return build_tfn(**model_args(config))


def build_serving_model(model: keras.Model, config: TFNConfig, name: str = "tfn_serving") -> keras.Model:
    """Registry entry: the trained graph -> the deployable one (see the module docstring).

    Every layer is ``model``'s own (shared weights).
    """
    size = config.image_size
    image = keras.Input((size, size, 3), name="image")
    tops = model.get_layer(STEM_NAME)(model.get_layer("standardize")(image))
    rpn_out = model.get_layer("rpn_head")(_taps(tops, config.rpn_levels))
    proposal_boxes, _ = model.get_layer("proposals")(rpn_out["cls_logits"], rpn_out["box_deltas"])

    def block(task):
        name = BLOCK_NAMES["detection" if config.shared_block else task]
        return model.get_layer(name), config.levels_of(task)

    shared = model.get_layer(SHARED_HEADS[config.fc_sharing] + "_head") if config.fc_sharing != "none" else None
    b, levels = block("detection")
    det_head = shared if config.fc_sharing == "all" else model.get_layer("detection_head")
    det = det_head(b(proposal_boxes, _taps(tops, levels)))
    boxes, scores, count, valid, kept_rois = DetectionPostprocess(
        config.max_detections, config.score_threshold, config.nms_iou, name="detections")(
        proposal_boxes, det["cls_logits"], det["box_deltas"])
    faces = boxes if config.two_step else kept_rois
    b, levels = block("landmarks")
    lm_feats = b(faces, _taps(tops, levels))
    if shared is not None:
        attr = shared(lm_feats)
        points = LandmarkDecode(name="landmark_points")(attr["landmarks"], faces)
    else:
        if config.heatmap_landmarks:
            points = HeatmapLandmarkDecode(name="heatmap_points")(
                model.get_layer("landmark_heatmap_head")(lm_feats), faces)
        else:
            points = LandmarkDecode(name="landmark_points")(model.get_layer("landmark_head")(lm_feats), faces)
        b, levels = block("attributes")
        attr = model.get_layer("attribute_head")(b(faces, _taps(tops, levels)))
    outputs = {
        "boxes": keras.layers.Identity(name="boxes")(boxes),
        "scores": keras.layers.Identity(name="scores")(scores),
        "num_detections": keras.layers.Identity(name="num_detections")(count),
        "landmarks": MaskRows(name="landmarks")(points, valid),
        "age": MaskRows(name="age")(AgeExpectation(name="age_years")(attr["age_logits"]), valid),
        "gender_logits": MaskRows(name="gender_logits")(attr["gender_logits"], valid),
        "ethnicity_logits": MaskRows(name="ethnicity_logits")(attr["ethnicity_logits"], valid),
    }
    return keras.Model({"image": image}, outputs, name=name)


def _paper() -> TFNConfig:
    return TFNConfig()


def _small() -> TFNConfig:
    # 192x192 SynthFace scenes: faces 5-45% of the width (about 10-86 px); anchors
    # re-chosen for that range on stacks 4 (stride 8) and 5 (stride 16).
    return TFNConfig(
        image_size=192, stack_widths=(16, 32, 64, 96, 128), stack_convs=(1, 1, 2, 2, 2),
        rpn_scales=((12.0, 20.0, 32.0), (48.0, 72.0, 104.0)), rpn_channels=64, pre_nms_proposals=300,
        proposals=32, roi_size=7, fused_channels=128, fc_units=(256, 256), l2_scale=10.0, heatmap_channels=64,
        heatmap_upsample=4, max_detections=20,
    )


def _tiny() -> TFNConfig:
    return TFNConfig(
        image_size=96, stack_widths=(8, 16, 32, 48, 64), stack_convs=(1, 1, 1, 1, 1),
        rpn_scales=((8.0, 12.0, 18.0), (26.0, 36.0, 50.0)), rpn_channels=32, pre_nms_proposals=150,
        proposals=16, roi_size=5, fused_channels=64, fc_units=(128, 128), l2_scale=10.0, heatmap_channels=32,
        heatmap_upsample=4, max_detections=10,
    )


CONFIG_CLASS = TFNConfig
PRESETS = {"paper": _paper, "small": _small, "tiny": _tiny}


# Variable-path patterns of each part (``Phase.trainable``), for the alternating scheme.
PART_VARIABLES = {
    "stem": ("block*",),
    "rpn": ("rpn_*",),
    "detection": ("detection_block/*", "det_*", "region_fc*"),
    "landmarks": ("landmark_block/*", "landmark_*", "heatmap_*", "face_fc*"),
    "attributes": ("attribute_block/*", "attribute_*", "age/*", "gender/*", "ethnicity/*", "face_fc*"),
}
