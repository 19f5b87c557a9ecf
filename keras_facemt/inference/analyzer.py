"""``FaceAnalyzer``: batch-first inference over any keras-facemt model.

What the model's outputs mean, and how an image becomes its input, come from the
system's declaration (``configs.outputs.ServingSpec``, carried by the model's
``ModelInfo``), never from output key names:

* a detecting model (``boxes`` / ``scores`` / ``count`` outputs) gives one ``Face``
  per detection, with every per-face output (landmarks, embedding, attributes, pose);
* a crop model gives one ``Face`` for the whole image, with its per-image outputs
  (landmarks, parsing, attributes, embedding). To run crop models on every face a
  detector finds in a photo, use ``inference.pipeline.FacePipeline``.

Images of any size, aspect ratio and channel layout are accepted; they are
stretched or letterboxed exactly as the model was trained (``data.letterbox``), and
results come back in the pixel coordinates of each original image.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from keras_facemt.configs.outputs import OutputSpec, ServingSpec
from keras_facemt.data.letterbox import Letterbox, resize_image
from keras_facemt.errors import ConfigError
from keras_facemt.inference.face import Face
from keras_facemt.inference.stage import load_stage


class FaceAnalyzer:
    """Runs a model over batches of images and returns ``Face`` objects per image.

    Args:
        model: a ``keras.Model`` built or loaded by keras-facemt, a path to a
            ``.keras`` file or a run directory, an export directory or an exported
            artifact (``.tflite``, ``.onnx``, SavedModel), or a ``ModelStage``
            (``inference.stage.load_stage`` says how each form is read).
        domain: BN domain fed to models with a ``domain`` input: an id, or the name of
            a dataset (or task) the model was trained on.
        batch_size: images per forward pass (at most the model's declared
            ``Preprocessing.max_batch``).
        artifact: with an export directory, the artifact to run (``tflite_int8``, ...).
        num_threads: TFLite / ONNX runtime threads.

    Example:
        >>> analyzer = FaceAnalyzer("runs/ifan_3t/model.keras", domain="synth_webcam")
        >>> faces_per_image = analyzer([img0, img1])
        >>> faces_per_image[0][0].label("emotion")
    """

    def __init__(self, model, domain: Union[int, str] = 0, batch_size: int = 32, artifact: Optional[str] = None,
                 num_threads: int = 1):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
        self.stage = load_stage(model, domain, artifact=artifact, num_threads=num_threads)
        self.model, self.info = self.stage.model, self.stage.info
        self.spec: ServingSpec = self.stage.spec
        # A graph that declares how many images one pass may carry gets at most that many.
        self.batch_size = self.spec.preprocessing.batch_size(batch_size)
        self.domain = self.stage.domain
        self.input_size = self.stage.input_size
        self.takes_domain = self.domain is not None
        self.letterbox = self.stage.letterbox

    @property
    def detecting(self) -> bool:
        return self.spec.detecting

    # -- public API ------------------------------------------------------------------
    def __call__(self, images: Sequence, landmarks: Optional[Sequence] = None) -> List[List[Face]]:
        """Analyses a batch (list, or array ``[batch, H, W, C]``) of images.

        Args:
            images: the images.
            landmarks: optional 5 points per image (``[5, 2]`` pixel (x, y), mtfl5
                order: eyes, nose, mouth corners) for crop models that declare 5-point
                alignment (MTFR): each face is then warped onto ``ops.align``'s
                template at the input size, as the model was trained, instead of the
                whole image being stretched.

        Returns:
            One list of ``Face`` per input image, in input order.
        """
        if isinstance(images, np.ndarray) and images.ndim != 4:
            raise ConfigError(
                "FaceAnalyzer is batch-first: pass a list of images or a [batch, H, W, C] array. "
                f"Received: shape={images.shape}"
            )
        images = list(images)
        results: List[List[Face]] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            if landmarks is not None and not self.detecting:
                if self.spec.preprocessing.align is None:
                    raise ConfigError(f"This {self.info.system} model reads whole crops, not 5-point aligned faces; "
                                      "call it without landmarks.")
                prepared = [_aligned(im, lm, self.input_size)
                            for im, lm in zip(chunk, landmarks[start:start + self.batch_size])]
            else:
                prepared = [resize_image(im, self.input_size, self.letterbox) for im in chunk]
            outputs = self.run_batch(np.stack([p[0] for p in prepared]))
            for i, (_, box) in enumerate(prepared):
                results.append(self._detections(outputs, i, box) if self.detecting
                               else [self._crop_face(outputs, i, box)])
        return results

    def run_batch(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        """The model's declared outputs on a prepared input batch ``[N, H, W, 3]``."""
        return self.stage(batch)

    # -- per-face results --------------------------------------------------------------
    def _fill(self, face: Face, key: str, spec: OutputSpec, value: np.ndarray, lb: Letterbox) -> None:
        fill_face(face, key, spec, value, lb.points_to_pixels, lambda logits: _parsing_to_original(logits, lb))

    def _crop_face(self, out, i, lb: Letterbox) -> Face:
        face = Face(box=np.array([0, 0, lb.orig_width, lb.orig_height], np.float32))
        for key, spec in self.spec.outputs.items():
            if not spec.per_face:
                self._fill(face, key, spec, out[key][i], lb)
        return face

    def _detections(self, out, i, lb: Letterbox) -> List[Face]:
        return detected_faces(self.spec, {k: v[i:i + 1] for k, v in out.items()}, [lb])[0]


def detected_faces(spec: ServingSpec, out: Dict[str, np.ndarray], letterboxes: Sequence[Letterbox]
                   ) -> List[List[Face]]:
    """One list of ``Face`` per image of a detector's output batch ``out``, in the
    detector's (score) order, geometry mapped back through each image's letterbox.

    Args:
        spec: the detector's declaration.
        out: its outputs, ``[batch, D, ...]`` per face, ``[batch]`` count.
        letterboxes: each image's ``data.letterbox.Letterbox``.
    """
    boxes, scores = spec.key_of("boxes"), spec.key_of("scores")
    results = []
    for i, lb in enumerate(letterboxes):
        n = int(np.asarray(out[spec.key_of("count")][i]).reshape(-1)[0])
        faces = []
        for j in range(n):
            face = Face(box=lb.boxes_to_pixels(out[boxes][i, j]), score=float(out[scores][i, j]))
            for key, s in spec.outputs.items():
                if s.per_face and s.kind not in ("boxes", "scores"):
                    fill_face(face, key, s, out[key][i, j], lb.points_to_pixels,
                              lambda logits: _parsing_to_original(logits, lb))
            faces.append(face)
        results.append(faces)
    return results


def fill_face(face: Face, key: str, spec: OutputSpec, value: np.ndarray,
              points_to_pixels: Callable[[np.ndarray], np.ndarray],
              parsing_to_pixels: Callable[[np.ndarray], np.ndarray]) -> None:
    """Sets the field of ``face`` that one declared output (one image's, or one
    detection's, slice ``value``) predicts.

    Args:
        face: the face to fill.
        key: the output key (names an attribute when the declaration has no task).
        spec: the output's declaration.
        value: the output for this face (no batch or detection axis).
        points_to_pixels: normalised model-input ``[..., 2]`` (x, y) -> pixels of the
            original image.
        parsing_to_pixels: parsing logits ``[h, w, C]`` -> uint8 class ids over the
            original image.
    """
    if spec.kind == "landmarks":
        face.landmarks = np.asarray(points_to_pixels(value), np.float32)
    elif spec.kind == "parsing_logits":
        face.parsing = parsing_to_pixels(value)
    elif spec.kind == "embedding":
        e = np.asarray(value, np.float32).reshape(-1)
        face.embedding = e / max(float(np.linalg.norm(e)), 1e-12)
    elif spec.kind == "class_logits":
        face.attributes[spec.task or key] = _activate(value, spec.activation)
    elif spec.kind == "multilabel":
        probs = _activate(value, spec.activation)
        for name, p in zip(spec.names, np.asarray(probs).reshape(-1)):
            face.attributes[name] = float(p)
    elif spec.kind == "regression":
        face.attributes[spec.task or key] = float(np.asarray(value).reshape(-1)[0])
    elif spec.kind == "pose":
        face.pose = np.asarray(value, np.float32).reshape(3)
    elif spec.kind == "visibility":
        face.visibility = np.asarray(value, np.float32).reshape(-1)


def _aligned(image, points, size):
    """5-point aligned crop of ``image`` at ``size`` (height, width); geometry outputs
    of the crop are reported in the crop's frame (the whole-image box)."""
    import tensorflow as tf

    from keras_facemt.data.letterbox import to_rgb_float
    from keras_facemt.ops.align import align_faces

    rgb = to_rgb_float(image)
    h, w = rgb.shape[:2]
    pts = np.asarray(points, np.float32).reshape(5, 2)
    norm = (pts + 0.5) / np.array([w, h], np.float32)
    crop = align_faces(tf.constant(rgb[None]), norm[None, None], size).numpy()[0, 0]
    return crop, Letterbox(1.0, 1.0, 0.0, 0.0, w, h, w, h)


def _activate(values: np.ndarray, activation: str) -> np.ndarray:
    z = np.asarray(values, np.float64)
    if activation == "softmax":
        z = np.exp(z - z.max(-1, keepdims=True))
        return (z / z.sum(-1, keepdims=True)).astype(np.float32)
    if activation == "sigmoid":
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    return z.astype(np.float32)


def _parsing_to_original(logits: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Bilinear resize of class scores to the original size, then argmax (iFAN Sec. 4.1.3)."""
    import cv2

    h, w = logits.shape[:2]
    x0, y0 = int(round(lb.pad_x)), int(round(lb.pad_y))
    x1 = int(round(lb.pad_x + lb.orig_width * lb.scale_x))
    y1 = int(round(lb.pad_y + lb.orig_height * lb.scale_y))
    region = logits[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)]
    channels = [cv2.resize(np.ascontiguousarray(region[..., c]), (lb.orig_width, lb.orig_height),
                           interpolation=cv2.INTER_LINEAR) for c in range(region.shape[-1])]
    return np.argmax(np.stack(channels, -1), -1).astype(np.uint8)
