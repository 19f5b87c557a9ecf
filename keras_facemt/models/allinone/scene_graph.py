"""All-in-One's deployable graph: both test stages on whole images, builtin ops only (Sec. III-D).

The Python pipeline (``scene_pipeline``) and this graph run the same procedure with
the same settings (``config.SceneDetectorConfig``); this one has fixed shapes, so it
exports to SavedModel, TFLite (builtin ops) and ONNX:

    image [B, S, S, 3] (letterboxed, 0..1) [+ domain [B]]
      -> WindowBoxes: the dense multi-scale grid of square windows (Selective
         Search's replacement), rounded to pixels as ``proposals.crop_box`` cuts them
      -> BoxCrops: every window resized to the network's input (``ops.roi``'s
         builtin-op bilinear sampler on cv2.resize's sample grid; ``supersample`` x
         ``supersample`` samples per output pixel stand in for cv2's area
         interpolation when shrinking)
      -> network: face probability, 21 points, visibility, pose per window
      -> TopCandidates: the ``candidates`` most face-like windows, valid above
         ``score_threshold``
      -> IRP, ``iterations`` times: BoxFromPoints -> BoxCrops -> network; a candidate
         stays valid while its probability stays above the threshold
      -> LandmarkNMS: NMS over the landmark-implied boxes (``ops.nms``), each kept
         face's points, visibility and pose averaged over the valid candidates
         overlapping it by IoU > ``average_iou`` (the per-face averaging of Sec. IV-B)
      -> stage 2: each face aligned by a similarity warp from its predicted points
         (aflw21 -> mtfl5 -> ``ops.align``'s template) or cut by its box, plus its
         mirror image -> network -> PairMean: softmax probabilities, ages and
         descriptors of the two passes averaged

Per detection (padded to ``max_detections``, zeros in padding): ``boxes`` ``[B, D, 4]``
and ``landmarks`` ``[B, D, 21, 2]`` normalised to the input image, ``scores``
``[B, D]``, ``num_detections`` ``[B]``, ``visibility`` ``[B, D, 21]`` (the regressed
0/1 score), ``pose`` ``[B, D, 3]`` degrees, ``smile_logits`` / ``gender_logits``
``[B, D, 2]`` (log of the averaged probabilities), ``age`` ``[B, D]`` years,
``embedding`` ``[B, D, E]``. The identity classifier is not served (the descriptor
is, Sec. III-D).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_facemt.data.landmarks import subset_matrix
from keras_facemt.layers.mask_rows import MaskRows
from keras_facemt.models.allinone.scene_geometry import candidate_windows, defined_points
from keras_facemt.ops import boxes as box_ops
from keras_facemt.ops.align import align_faces
from keras_facemt.ops.nms import batched_nms
from keras_facemt.ops.precision import float32_scope
from keras_facemt.ops.roi import bilinear_sample

_register = keras.saving.register_keras_serializable(package="keras_facemt")


def rounded_boxes(boxes):
    """Pixel boxes ``[..., 4]`` rounded as ``proposals.rounded`` (at least one pixel wide)."""
    r = tf.round(tf.convert_to_tensor(boxes, tf.float32))
    x0, y0, x1, y1 = tf.unstack(r, axis=-1)
    return tf.stack([x0, y0, tf.maximum(x1, x0 + 1.0), tf.maximum(y1, y0 + 1.0)], axis=-1)


def crop_coordinates(boxes, side: int):
    """Pixel-index sample points ``[..., side, side, 2]`` (x, y) of cv2.resize on each box's patch.

    cv2 resizes the patch ``[x0, x1) x [y0, y1)`` by sampling output pixel ``i`` at
    ``x0 + (i + 0.5) * (x1 - x0) / side - 0.5``, clamped to the patch (it replicates
    the patch's own border, not the pixels beyond it).

    Args:
        boxes: ``[..., 4]`` rounded pixel boxes.
        side: samples per axis.
    """
    x0, y0, x1, y1 = [tf.expand_dims(v, -1) for v in tf.unstack(boxes, axis=-1)]
    t = (tf.range(side, dtype=tf.float32) + 0.5) / float(side)
    xs = tf.clip_by_value(x0 + t * (x1 - x0) - 0.5, x0, x1 - 1.0)  # [..., side]
    ys = tf.clip_by_value(y0 + t * (y1 - y0) - 0.5, y0, y1 - 1.0)
    shape = tf.concat([tf.shape(xs)[:-1], [side, side]], 0)
    gx = tf.broadcast_to(tf.expand_dims(xs, -2), shape)
    gy = tf.broadcast_to(tf.expand_dims(ys, -1), shape)
    return tf.stack([gx, gy], axis=-1)


def box_from_points(points, prior, indices):
    """Face boxes ``[..., 4]`` implied by points ``[..., K, 2]`` (``scene_pipeline.box_from_points``)."""
    pts = tf.gather(points, list(indices), axis=-2)
    lo, hi = tf.reduce_min(pts, axis=-2), tf.reduce_max(pts, axis=-2)
    wh = tf.maximum(hi - lo, 1e-6)
    p = tf.constant(np.asarray(prior, np.float32))
    return tf.concat([lo + p[:2] * wh, lo + p[2:] * wh], axis=-1)


@_register
class WindowBoxes(keras.layers.Layer):
    """The stage-1 windows ``[batch, N, 4]`` (rounded pixels) of a ``size`` x ``size`` input.

    Args:
        windows: ``[N, 4]`` pixel windows (``scene_pipeline.candidate_windows``), rounded
            here once, in float64, exactly as ``proposals.rounded`` rounds them for the
            Python pipeline.
    """

    def __init__(self, windows, **kwargs):
        super().__init__(**kwargs)
        w = np.round(np.asarray(windows, np.float64).reshape(-1, 4))
        w[:, 2:] = np.maximum(w[:, 2:], w[:, :2] + 1.0)
        self.windows = w.astype(np.float32)  # whole pixels: exact in float32

    def call(self, image):
        return tf.tile(tf.expand_dims(tf.constant(self.windows), 0), tf.stack([tf.shape(image)[0], 1, 1]))

    def get_config(self):
        return {**super().get_config(), "windows": self.windows.tolist()}


@_register
class BoxCrops(keras.layers.Layer):
    """Image ``[B, H, W, C]`` + pixel boxes ``[B, N, 4]`` -> crops ``[B * N, s, s, C]``.

    Boxes are rounded first (``rounded_boxes``); pixels outside the image read 0, as
    ``proposals.crop_box``'s zero padding. Crops are not rounded to the 1/255 steps of
    the uint8 crops the network trained on: a rounding step is where runtimes' float
    differences would flip a pixel. ``mirror`` appends each crop's mirror image
    right after it (``[B * N * 2, ...]``).
    """

    def __init__(self, crop_size: int, supersample: int = 2, mirror: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.crop_size, self.supersample, self.mirror = int(crop_size), int(supersample), bool(mirror)

    def _sample(self, image, boxes, side: int):
        shape = tf.shape(image)
        with float32_scope():  # sample positions and bilinear weights: int8 would round them to a few levels
            coords = tf.reshape(crop_coordinates(boxes, side), tf.stack([shape[0], -1, 2]))
            return tf.reshape(bilinear_sample(image, coords), tf.stack([-1, side, side, shape[3]]))

    def call(self, image, boxes):
        boxes = rounded_boxes(boxes)
        crops = self._sample(image, boxes, self.crop_size)
        if self.supersample > 1:  # cv2 shrinks a taller patch by area: average k x k samples per pixel there
            k = self.supersample
            fine = tf.nn.avg_pool2d(self._sample(image, boxes, self.crop_size * k), k, k, "VALID")
            taller = tf.reshape(boxes[..., 3] - boxes[..., 1] > float(self.crop_size), [-1, 1, 1, 1])
            crops = tf.where(taller, fine, crops)
        return with_mirror(crops) if self.mirror else crops

    def get_config(self):
        return {**super().get_config(), "crop_size": self.crop_size, "supersample": self.supersample,
                "mirror": self.mirror}


def with_mirror(crops):
    """``[N, s, s, C]`` -> ``[N * 2, s, s, C]``: each crop followed by its mirror image."""
    pair = tf.stack([crops, tf.reverse(crops, axis=[2])], axis=1)
    shape = tf.shape(crops)
    return tf.reshape(pair, tf.concat([[-1], shape[1:]], 0))


@_register
class AlignedCrops(keras.layers.Layer):
    """Image ``[B, H, W, C]`` + aflw21 points ``[B, D, 21, 2]`` (pixels) -> aligned faces
    and their mirrors ``[B * D * 2, s, s, C]`` (``scene_pipeline.stage2``'s alignment)."""

    def __init__(self, crop_size: int, scheme: str = "aflw21", **kwargs):
        super().__init__(**kwargs)
        self.crop_size, self.scheme = int(crop_size), scheme
        self._five = subset_matrix(scheme, "mtfl5")[0]  # [5, K]

    def call(self, image, points):
        shape = tf.shape(image)
        with float32_scope():
            points = tf.convert_to_tensor(points, tf.float32)  # [B, D, K, 2]
            k, d = int(points.shape[2]), int(points.shape[1])
            # A plain 2-D matmul: TFLite's einsum lowering left a tensor with an unknown static dimension.
            rows = tf.reshape(tf.transpose(points, [0, 1, 3, 2]), [-1, k])  # [B * D * 2, K]
            five = tf.matmul(rows, tf.constant(self._five.T))  # [B * D * 2, 5]
            five = tf.transpose(tf.reshape(five, [-1, d, 2, 5]), [0, 1, 3, 2])  # [B, D, 5, 2]
            size = tf.cast(tf.stack([shape[2], shape[1]]), tf.float32)
            five = five / size  # scene_pipeline.stage2 normalises pixel points by the image size
            crops = align_faces(image, five, self.crop_size)  # the warp's geometry, as BoxCrops
        crops = tf.reshape(crops, tf.stack([-1, self.crop_size, self.crop_size, shape[3]]))
        return with_mirror(crops)

    def get_config(self):
        return {**super().get_config(), "crop_size": self.crop_size, "scheme": self.scheme}


@_register
class Regroup(keras.layers.Layer):
    """``[B * n, ...]`` -> ``[B, n, ...]``; with ``pairs``, ``[B * n * 2, ...]`` -> the mean
    over each (crop, mirror) pair ``[B, n, ...]``, of softmax probabilities (returned as
    their log, so a softmax gives them back) when ``probabilities``."""

    def __init__(self, n: int, pairs: bool = False, probabilities: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.n, self.pairs, self.probabilities = int(n), bool(pairs), bool(probabilities)

    def call(self, x):
        x = tf.convert_to_tensor(x, tf.float32)
        rest = tf.shape(x)[1:]
        if not self.pairs:
            return tf.reshape(x, tf.concat([[-1, self.n], rest], 0))
        x = tf.reshape(x, tf.concat([[-1, self.n, 2], rest], 0))
        if self.probabilities:
            return tf.math.log(tf.maximum(tf.reduce_mean(tf.nn.softmax(x, axis=-1), axis=2), 1e-12))
        return tf.reduce_mean(x, axis=2)

    def get_config(self):
        return {**super().get_config(), "n": self.n, "pairs": self.pairs, "probabilities": self.probabilities}


@_register
class RepeatDomain(keras.layers.Layer):
    """Domain ids ``[B]`` -> ``[B * n]``: each image's BN domain for each of its crops."""

    def __init__(self, n: int, **kwargs):
        super().__init__(**kwargs)
        self.n = int(n)

    def call(self, domain):
        d = tf.reshape(tf.cast(domain, tf.int32), [-1, 1])
        return tf.reshape(tf.tile(d, [1, self.n]), [-1])

    def get_config(self):
        return {**super().get_config(), "n": self.n}


@_register
class FaceProbability(keras.layers.Layer):
    """Detection logits ``[B, N, 2]`` -> face probability ``[B, N]``."""

    def call(self, logits):
        with float32_scope():  # int8 probabilities would tie many windows at the top-k cut
            return tf.nn.softmax(tf.convert_to_tensor(logits, tf.float32), axis=-1)[..., 1]


@_register
class CropPointsToImage(keras.layers.Layer):
    """Points ``[B, N, K, 2]`` in [0, 1] of their crop + the crops' pixel boxes ``[B, N, 4]``
    (rounded as cut) -> image pixels."""

    def call(self, points, boxes):
        with float32_scope():
            b = rounded_boxes(boxes)
            wh = tf.expand_dims(b[..., 2:] - b[..., :2], -2)
            return tf.convert_to_tensor(points, tf.float32) * wh + tf.expand_dims(b[..., :2], -2)


@_register
class PointsToBoxes(keras.layers.Layer):
    """Points ``[B, N, K, 2]`` (pixels) -> the face boxes they imply ``[B, N, 4]`` (IRP)."""

    def __init__(self, prior, indices, **kwargs):
        super().__init__(**kwargs)
        self.prior = [float(v) for v in prior]
        self.indices = [int(i) for i in indices]

    def call(self, points):
        with float32_scope():
            return box_from_points(points, self.prior, self.indices)

    def get_config(self):
        return {**super().get_config(), "prior": self.prior, "indices": self.indices}


@_register
class TopCandidates(keras.layers.Layer):
    """The ``candidates`` highest-scoring rows: ``(scores [B, N], *values [B, N, ...])`` ->
    ``(scores [B, K], valid [B, K] (1.0 above ``threshold``), *values [B, K, ...])``."""

    def __init__(self, candidates: int, threshold: float, **kwargs):
        super().__init__(**kwargs)
        self.candidates, self.threshold = int(candidates), float(threshold)

    def call(self, scores, values):
        k = min(self.candidates, int(scores.shape[-1])) if scores.shape[-1] is not None else self.candidates
        with float32_scope():
            top, idx = tf.math.top_k(scores, k=k)
            valid = tf.cast(top > self.threshold, tf.float32)
            return [top, valid] + [tf.gather(v, idx, axis=1, batch_dims=1) for v in values]

    def get_config(self):
        return {**super().get_config(), "candidates": self.candidates, "threshold": self.threshold}


@_register
class StillFace(keras.layers.Layer):
    """``valid [B, K] * (scores [B, K] > threshold)``: IRP keeps a candidate while its
    refined box still scores as a face."""

    def __init__(self, threshold: float, **kwargs):
        super().__init__(**kwargs)
        self.threshold = float(threshold)

    def call(self, valid, scores):
        with float32_scope():
            return valid * tf.cast(scores > self.threshold, tf.float32)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


@_register
class LandmarkNMS(keras.layers.Layer):
    """L-NMS [36] and the per-face averaging over candidates.

    Inputs: points ``[B, K, 21, 2]`` pixels, scores ``[B, K]``, valid ``[B, K]`` and the
    per-candidate values averaged with the points (visibility ``[B, K, 21]``, pose
    ``[B, K, 3]``). Outputs: boxes ``[B, D, 4]`` and points ``[B, D, 21, 2]``
    normalised by ``image_size``, the points in pixels, scores ``[B, D]``, count
    ``[B]``, valid ``[B, D]`` and each averaged value ``[B, D, ...]``.
    """

    def __init__(self, max_detections: int, nms_iou: float, average_iou: float, prior, indices, image_size: int,
                 **kwargs):
        super().__init__(**kwargs)
        self.max_detections, self.nms_iou, self.average_iou = int(max_detections), float(nms_iou), float(average_iou)
        self.prior, self.indices = [float(v) for v in prior], [int(i) for i in indices]
        self.image_size = int(image_size)

    def call(self, points, scores, valid, values):
        with float32_scope():
            points = tf.convert_to_tensor(points, tf.float32)
            valid = tf.convert_to_tensor(valid, tf.float32)
            boxes = box_from_points(points, self.prior, self.indices) / float(self.image_size)
            det = batched_nms(boxes, scores * valid, max_detections=self.max_detections,
                              iou_threshold=self.nms_iou, score_threshold=0.0)
            kept = tf.gather(boxes, det.indices, axis=1, batch_dims=1)  # [B, D, 4]
            members = tf.cast(box_ops.iou(kept, boxes) > self.average_iou, tf.float32) * tf.expand_dims(valid, 1)
            weights = members / tf.maximum(tf.reduce_sum(members, -1, keepdims=True), 1.0)  # [B, D, K]
            flat = tf.reshape(points, tf.concat([tf.shape(points)[:2], [-1]], 0))
            mean_points = tf.reshape(tf.matmul(weights, flat), tf.concat([tf.shape(weights)[:2], tf.shape(points)[2:]],
                                                                           0))
            means = [tf.matmul(weights, tf.convert_to_tensor(v, tf.float32)) for v in values]
            mask = tf.cast(det.valid, tf.float32)
            out_boxes = box_from_points(mean_points, self.prior, self.indices) / float(self.image_size)
            out_boxes = out_boxes * tf.expand_dims(mask, -1)
        return [out_boxes, mean_points / float(self.image_size), mean_points, det.scores, det.num_detections, mask] + means

    def get_config(self):
        return {**super().get_config(), "max_detections": self.max_detections, "nms_iou": self.nms_iou,
                "average_iou": self.average_iou, "prior": self.prior, "indices": self.indices,
                "image_size": self.image_size}


@_register
class FillPadding(keras.layers.Layer):
    """``x [B, D, ...]`` with the padded rows (``valid [B, D]`` 0) replaced by row 0.

    Stage 2 runs on every row; a padded row's zero points would warp a degenerate
    crop whose extreme outputs (ages of hundreds of years) set the int8 ranges of the
    stage-2 heads. Repeating the first face keeps every row a face; ``MaskRows``
    zeroes the padded rows' outputs afterwards.
    """

    def call(self, x, valid):
        with float32_scope():
            x = tf.convert_to_tensor(x, tf.float32)
            keep = tf.convert_to_tensor(valid, tf.float32)
            for _ in range(len(x.shape) - 2):
                keep = tf.expand_dims(keep, -1)
            first = tf.gather(x, tf.zeros([int(x.shape[1])], tf.int32), axis=1)  # row 0, D times
            return x * keep + first * (1.0 - keep)


def _run(net, crops, n: int, domain, pairs: bool = False):
    """The per-crop network on ``crops`` ``[B * n (* 2), s, s, 3]`` -> its outputs ``[B, n, ...]``."""
    inputs = {"image": crops}
    if domain is not None:
        inputs["domain"] = RepeatDomain(n * (2 if pairs else 1))(domain)
    out = net(inputs)
    group = {k: Regroup(n, pairs=pairs, probabilities=pairs and k.endswith("_logits"))(v) for k, v in out.items()}
    return group


def build_scene_graph(model: keras.Model, config, name: str = "allinone_scene") -> keras.Model:
    """The deployable graph around the trained per-crop network ``model`` (module docstring).

    Args:
        model: the All-in-One training graph (its weights are shared, not copied).
        config: its ``AllInOneConfig`` (``scene_size``, ``detector``, ``stage2_aligned``).
    """
    det, size, crop = config.detector, int(config.scene_size), int(config.image_size)
    prior, idx = det.box_prior, [int(i) for i in defined_points()]
    windows = candidate_windows(size, size, det)
    image = keras.Input((size, size, 3), name="image")
    inputs = {"image": image}
    domain = None
    if isinstance(model.input, dict) and "domain" in model.input:  # per-dataset BN: the caller picks the domain
        domain = inputs["domain"] = keras.Input((), dtype="int32", name="domain")

    boxes = WindowBoxes(windows, name="windows")(image)
    out = _run(model, BoxCrops(crop, name="window_crops")(image, boxes), len(windows), domain)
    k = min(det.candidates, len(windows))
    scores, valid, boxes, points, vis, pose = TopCandidates(det.candidates, det.score_threshold, name="candidates")(
        FaceProbability()(out["detection_logits"]), [boxes, out["landmarks"], out["visibility"], out["pose"]])
    points = CropPointsToImage()(points, boxes)
    for i in range(det.iterations):  # IRP [36]
        boxes = PointsToBoxes(prior, idx, name=f"irp{i + 1}_boxes")(points)
        out = _run(model, BoxCrops(crop, name=f"irp{i + 1}_crops")(image, boxes), k, domain)
        scores = FaceProbability()(out["detection_logits"])
        valid = StillFace(det.score_threshold)(valid, scores)
        points, vis, pose = CropPointsToImage()(out["landmarks"], boxes), out["visibility"], out["pose"]
    d = int(det.max_detections)
    faces, lms, lms_px, scores, count, valid, vis, pose = LandmarkNMS(
        d, det.nms_iou, det.average_iou, prior, idx, size, name="landmark_nms")(points, scores, valid, [vis, pose])
    if config.stage2_aligned:
        crops = AlignedCrops(crop, name="aligned_faces")(image, FillPadding()(lms_px, valid))
    else:
        crops = BoxCrops(crop, mirror=True, name="face_crops")(
            image, FillPadding()(keras.layers.Rescaling(float(size))(faces), valid))
    second = _run(model, crops, d, domain, pairs=True)
    outputs = {"boxes": faces, "scores": scores, "num_detections": count, "landmarks": lms, "visibility": vis,
               "pose": pose, "smile_logits": second["smile_logits"], "gender_logits": second["gender_logits"],
               "age": keras.layers.Reshape((d,))(second["age"]), "embedding": second["embedding"]}
    outputs = {key: (keras.layers.Identity(name=key)(v) if key in ("boxes", "scores", "num_detections")
                     else MaskRows(name=key)(v, valid)) for key, v in outputs.items()}
    return keras.Model(inputs, outputs, name=name)
