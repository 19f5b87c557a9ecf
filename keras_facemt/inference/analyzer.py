"""``FaceAnalyzer``: batch-first inference over any keras-facemt model.

What the model's outputs mean, and how an image becomes its input, come from the
system's declaration (``configs.outputs.ServingSpec``, carried by the model's
``ModelInfo``), never from output key names:

* a detecting model (``boxes`` / ``scores`` / ``count`` outputs) gives one ``Face``
  per detection, with every per-face output (landmarks, embedding, attributes, pose);
* a crop model gives one ``Face`` for the whole image, with its per-image outputs
  (landmarks, parsing, attributes, embedding).

Images of any size, aspect ratio and channel layout are accepted; they are
stretched or letterboxed exactly as the model was trained (``data.letterbox``), and
results come back in the pixel coordinates of each original image.
"""

from __future__ import annotations

import os
from typing import Dict, List, Sequence, Union

import numpy as np

from keras_facemt.configs.outputs import OutputSpec, ServingSpec
from keras_facemt.data.letterbox import Letterbox, resize_image
from keras_facemt.errors import ConfigError
from keras_facemt.inference.face import Face
from keras_facemt.models.model_info import resolve_domain


def deployable_model(model):
    """``model`` as the graph it deploys, with its ``ModelInfo``.

    Args:
        model: a ``keras.Model`` (built or loaded by keras-facemt), or a path to a
            ``.keras`` file, a run directory or a directory holding ``model.keras``.

    Returns:
        ``(model, info)``.

    Raises:
        ConfigError: when the model carries no ``ModelInfo`` (a plain Keras model,
            or a file saved by ``model.save`` outside a run directory).
    """
    from keras_facemt.models.model_info import info_of

    if isinstance(model, (str, os.PathLike)):
        from keras_facemt.serving.model_source import load_model_source

        model, _ = load_model_source(os.fspath(model))
    info = info_of(model)
    if info is None:
        raise ConfigError(
            "The model does not say which keras-facemt system it is: build it with keras_facemt.build_model, "
            "load it with keras_facemt.load_model, or pass a file saved by keras_facemt.save_model. "
            f"Received: model={getattr(model, 'name', type(model).__name__)!r}"
        )
    if not info.deployable:
        from keras_facemt.models.registry import get_system

        model = get_system(info.system).deployable(model, info)
        info = info_of(model)
    return model, info


class FaceAnalyzer:
    """Runs a model over batches of images and returns ``Face`` objects per image.

    Args:
        model: a ``keras.Model`` built or loaded by keras-facemt, or a path to a
            ``.keras`` file or a run directory.
        domain: BN domain fed to models with a ``domain`` input: an id, or the name of
            a dataset (or task) the model was trained on.
        batch_size: images per forward pass.

    Example:
        >>> analyzer = FaceAnalyzer("runs/ifan_3t/model.keras", domain="synth_webcam")
        >>> faces_per_image = analyzer([img0, img1])
        >>> faces_per_image[0][0].label("emotion")
    """

    def __init__(self, model, domain: Union[int, str] = 0, batch_size: int = 32):
        self.model, self.info = deployable_model(model)
        self.spec: ServingSpec = self.info.serving
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
        self.batch_size = int(batch_size)
        self.domain = resolve_domain(domain, dict(self.info.domains))
        if self.domain is None:
            raise ConfigError("domain must be an id or a training dataset name. Received: domain=None")
        inputs = self.model.input
        if not isinstance(inputs, dict) or "image" not in inputs:
            raise ConfigError(f"The model has no 'image' input. Received: inputs={inputs}")
        shape = tuple(inputs["image"].shape)
        if shape[1] is None or shape[2] is None:
            raise ConfigError(f"The model's image input needs a static size. Received: shape={shape}")
        self.input_size = (int(shape[1]), int(shape[2]))
        self.takes_domain = "domain" in inputs
        self.letterbox = self.spec.preprocessing.resize == "letterbox"

    @property
    def detecting(self) -> bool:
        return self.spec.detecting

    # -- public API ------------------------------------------------------------------
    def __call__(self, images: Sequence) -> List[List[Face]]:
        """Analyses a batch (list, or array ``[batch, H, W, C]``) of images.

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
            prepared = [resize_image(im, self.input_size, self.letterbox) for im in chunk]
            outputs = self.run_batch(np.stack([p[0] for p in prepared]))
            for i, (_, box) in enumerate(prepared):
                results.append(self._detections(outputs, i, box) if self.detecting
                               else [self._crop_face(outputs, i, box)])
        return results

    def run_batch(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        """The model's declared outputs on a prepared input batch ``[N, H, W, 3]``."""
        feed = {"image": batch}
        if self.takes_domain:
            feed["domain"] = np.full((len(batch),), self.domain, np.int32)
        outputs = self.model(feed, training=False)
        return {k: np.asarray(outputs[k]) for k in self.spec.outputs}

    # -- per-face results --------------------------------------------------------------
    def _fill(self, face: Face, key: str, spec: OutputSpec, value: np.ndarray, lb: Letterbox) -> None:
        if spec.kind == "landmarks":
            face.landmarks = lb.points_to_pixels(value)
        elif spec.kind == "parsing_logits":
            face.parsing = _parsing_to_original(value, lb)
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

    def _crop_face(self, out, i, lb: Letterbox) -> Face:
        face = Face(box=np.array([0, 0, lb.orig_width, lb.orig_height], np.float32))
        for key, spec in self.spec.outputs.items():
            if not spec.per_face:
                self._fill(face, key, spec, out[key][i], lb)
        return face

    def _detections(self, out, i, lb: Letterbox) -> List[Face]:
        boxes, scores = self.spec.key_of("boxes"), self.spec.key_of("scores")
        n = int(np.asarray(out[self.spec.key_of("count")][i]).reshape(-1)[0])
        faces = []
        for j in range(n):
            face = Face(box=lb.boxes_to_pixels(out[boxes][i, j]), score=float(out[scores][i, j]))
            for key, spec in self.spec.outputs.items():
                if spec.per_face and spec.kind not in ("boxes", "scores"):
                    self._fill(face, key, spec, out[key][i, j], lb)
            faces.append(face)
        return faces


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
