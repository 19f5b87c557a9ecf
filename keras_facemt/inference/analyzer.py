"""``FaceAnalyzer``: batch-first inference over any keras-facemt model.

Two model families are served by output keys, not by system names:

* crop models (iFAN): one face per input image; outputs ``landmarks``
  ``[batch, K, 2]``, ``parsing_logits`` ``[batch, S, S, C]``, ``<attr>_logits``
  ``[batch, C]``; crop recognition models (MTFR) ``embedding`` ``[batch, D]``
  and multi-label ``attributes`` ``[batch, M]`` scores in [0, 1] (their names
  from ``attribute_names``, e.g. an export manifest's).
* detecting models (Uniface, ...): outputs ``boxes`` ``[batch, N, 4]``, ``scores``
  ``[batch, N]``, ``num_detections`` ``[batch]`` and optional ``landmarks``
  ``[batch, N, K, 2]``, ``embeddings`` ``[batch, N, D]`` (already after NMS).

Images of any size, aspect ratio and channel layout are accepted; results come
back in the pixel coordinates of each original image.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from keras_facemt.errors import ConfigError
from keras_facemt.inference.face import Face
from keras_facemt.inference.preprocess import Letterbox, resize_image

_ATTR_SUFFIX = "_logits"


class FaceAnalyzer:
    """Runs a model over batches of images and returns ``Face`` objects per image.

    Args:
        model: a ``keras.Model`` with dict inputs ``image`` (and optionally
            ``domain``), or a path to a ``.keras`` file.
        domain: BN domain id fed to models with a ``domain`` input.
        batch_size: images per forward pass.
        keep_aspect: letterbox (pad to square) instead of stretching; detecting
            models always letterbox.
        attribute_names: names of the columns of a multi-label ``attributes``
            output (default ``attribute_0``, ...).

    Example:
        >>> analyzer = FaceAnalyzer("runs/ifan_3t/model.keras")
        >>> faces_per_image = analyzer([img0, img1])
        >>> faces_per_image[0][0].label("emotion")
    """

    def __init__(self, model, domain: int = 0, batch_size: int = 32, keep_aspect: bool = False,
                 attribute_names: Optional[Sequence[str]] = None):
        if isinstance(model, str):
            from keras_facemt.serving.keras_format import load_model

            model = load_model(model)
        self.model = model
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
        self.batch_size = int(batch_size)
        self.domain = int(domain)
        names = self._input_names()
        if "image" not in names:
            raise ConfigError(f"The model has no 'image' input. Received: inputs={names}")
        shape = self._input_shape("image")
        if shape[1] is None or shape[2] is None:
            raise ConfigError(f"The model's image input needs a static size. Received: shape={shape}")
        self.input_size = (int(shape[1]), int(shape[2]))
        self.detecting = "boxes" in self._output_names()
        self.attribute_names = None if attribute_names is None else [str(n) for n in attribute_names]
        self.keep_aspect = keep_aspect or self.detecting

    # -- model introspection ---------------------------------------------------------
    def _input_names(self) -> List[str]:
        inputs = self.model.inputs
        return list(inputs.keys()) if isinstance(inputs, dict) else [t.name.split(":")[0] for t in inputs]

    def _input_shape(self, name):
        inputs = self.model.inputs
        if isinstance(inputs, dict):
            return tuple(inputs[name].shape)
        for t in inputs:
            if t.name.split(":")[0] == name:
                return tuple(t.shape)
        raise ConfigError(f"No input {name!r}")

    def _output_names(self) -> List[str]:
        out = self.model.output
        return list(out.keys()) if isinstance(out, dict) else []

    # -- public API ------------------------------------------------------------------
    def __call__(self, images: Sequence, landmarks: Optional[Sequence] = None) -> List[List[Face]]:
        """Analyses a batch (list, or array ``[batch, H, W, C]``) of images.

        Args:
            images: the images.
            landmarks: optional 5 points per image (``[5, 2]`` pixel (x, y), mtfl5
                order: eyes, nose, mouth corners). Crop models then see the face
                warped onto ``ops.align``'s template at their input size (as
                aligned-face models such as MTFR are trained) instead of the
                stretched image; geometry outputs stay in the crop's frame.

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
                prepared = [_aligned(im, lm, self.input_size)
                            for im, lm in zip(chunk, landmarks[start:start + self.batch_size])]
            else:
                prepared = [resize_image(im, self.input_size, self.keep_aspect) for im in chunk]
            batch = np.stack([p[0] for p in prepared])
            feed = {"image": batch}
            if "domain" in self._input_names():
                feed["domain"] = np.full((len(chunk),), self.domain, np.int32)
            outputs = self.model(feed, training=False)
            outputs = {k: np.asarray(v) for k, v in outputs.items()}
            for i, (_, box) in enumerate(prepared):
                if self.detecting:
                    results.append(self._detections(outputs, i, box))
                else:
                    results.append([self._crop_face(outputs, i, box)])
        return results

    def _crop_face(self, out, i, lb: Letterbox) -> Face:
        face = Face(box=np.array([0, 0, lb.orig_width, lb.orig_height], np.float32))
        if "landmarks" in out:
            face.landmarks = lb.points_to_pixels(out["landmarks"][i])
        if "parsing_logits" in out:
            face.parsing = _parsing_to_original(out["parsing_logits"][i], lb)
        for key, value in out.items():
            if key.endswith(_ATTR_SUFFIX) and "/" not in key and key != "parsing_logits":
                face.attributes[key[: -len(_ATTR_SUFFIX)]] = _softmax(value[i])
        if "embedding" in out and np.ndim(out["embedding"]) == 2:
            e = out["embedding"][i].astype(np.float32)
            face.embedding = e / max(float(np.linalg.norm(e)), 1e-12)
        if "attributes" in out and np.ndim(out["attributes"]) == 2:
            scores = out["attributes"][i]
            names = self.attribute_names or [f"attribute_{j}" for j in range(len(scores))]
            if len(names) != len(scores):
                raise ConfigError(f"attribute_names has {len(names)} names but the model outputs {len(scores)} "
                                  f"attributes. Received: attribute_names={names}")
            for name, p in zip(names, scores):
                face.attributes[name] = float(np.clip(p, 0.0, 1.0))
        return face

    def _detections(self, out, i, lb: Letterbox) -> List[Face]:
        n = int(out["num_detections"][i]) if "num_detections" in out else len(out["boxes"][i])
        faces = []
        for j in range(n):
            face = Face(box=lb.boxes_to_pixels(out["boxes"][i, j]), score=float(out["scores"][i, j]))
            if "landmarks" in out:
                face.landmarks = lb.points_to_pixels(out["landmarks"][i, j])
            if "embeddings" in out:
                e = out["embeddings"][i, j].astype(np.float32)
                face.embedding = e / max(float(np.linalg.norm(e)), 1e-12)
            faces.append(face)
        return faces


def _aligned(image, points, size):
    """5-point aligned crop of ``image`` at ``size`` (height, width) and the whole-image box."""
    import tensorflow as tf

    from keras_facemt.inference.preprocess import to_rgb_float
    from keras_facemt.ops.align import align_faces

    rgb = to_rgb_float(image)
    h, w = rgb.shape[:2]
    pts = np.asarray(points, np.float32).reshape(5, 2)
    norm = (pts + 0.5) / np.array([w, h], np.float32)
    crop = align_faces(tf.constant(rgb[None]), norm[None, None], size).numpy()[0, 0]
    return crop, Letterbox(1.0, 1.0, 0.0, 0.0, w, h, w, h)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(-1, keepdims=True))
    return (z / z.sum(-1, keepdims=True)).astype(np.float32)


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
