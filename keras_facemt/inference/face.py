"""``Face``: one analysed face, in the pixel coordinates of the image it came from."""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional

import numpy as np


@dataclasses.dataclass
class Face:
    """Everything a model predicted for one face.

    Geometry is in pixels of the original (un-resized) image: boxes
    ``(xmin, ymin, xmax, ymax)``, points ``(x, y)``.

    Attributes:
        box: float32 ``[4]`` face box (the whole crop for crop models).
        score: detection confidence in [0, 1] (1.0 for crop models).
        landmarks: float32 ``[K, 2]`` or None.
        parsing: uint8 ``[H, W]`` class ids over the whole input image, or None.
        embedding: float32 ``[D]`` L2-normalised identity embedding, or None.
        pose: float32 ``[3]`` yaw, pitch, roll in degrees, or None.
        visibility: float32 ``[K]`` per-landmark visibility score (about 1 visible,
            0 occluded or out of view), or None.
        attributes: attribute name -> class probabilities ``[C]``, or a float: the
            probability of a multi-label attribute (``celeba/Male``) or the value of a
            regression attribute (``age`` in years).
        sources: field (``box``, ``landmarks``, ``parsing``, ``embedding``, ``pose``, ``visibility``)
            or attribute name -> the system that predicted it (filled by
            ``FacePipeline``, where several models contribute to one face).
    """

    box: np.ndarray
    score: float = 1.0
    landmarks: Optional[np.ndarray] = None
    parsing: Optional[np.ndarray] = None
    embedding: Optional[np.ndarray] = None
    pose: Optional[np.ndarray] = None
    visibility: Optional[np.ndarray] = None
    attributes: Dict[str, object] = dataclasses.field(default_factory=dict)
    sources: Dict[str, str] = dataclasses.field(default_factory=dict)

    def label(self, name: str) -> Optional[str]:
        """The most probable class name of attribute ``name`` (None if not predicted)."""
        from keras_facemt.data import schema

        probs = self.attributes.get(name)
        if probs is None or np.ndim(probs) == 0:
            return None
        spec = schema.attribute_spec(name)
        idx = int(np.argmax(probs))
        return spec.class_names[idx] if spec.class_names else str(idx)


def compare_faces(a: Face, b: Face, threshold: float):
    """Cosine similarity of two faces' embeddings and whether it reaches ``threshold``.

    Args:
        a, b: faces with an ``embedding``.
        threshold: the verification threshold (e.g. an export manifest's
            ``verification_threshold``, chosen on held-out pairs).

    Returns:
        ``(same_person, cosine)``.

    Raises:
        ConfigError: a face without an embedding.
    """
    from keras_facemt.errors import ConfigError

    if a.embedding is None or b.embedding is None:
        raise ConfigError("compare_faces needs faces with an embedding (a recognition model's output). "
                          f"Received: embeddings present={a.embedding is not None, b.embedding is not None}")
    ea, eb = np.asarray(a.embedding, np.float64), np.asarray(b.embedding, np.float64)
    cos = float(ea @ eb / max(np.linalg.norm(ea) * np.linalg.norm(eb), 1e-12))
    return cos >= float(threshold), cos


def face_to_json(face) -> Dict[str, object]:
    """A ``Face`` as plain JSON (parsing maps summarised by class pixel counts)."""
    out: Dict[str, object] = {"box": [round(float(v), 2) for v in face.box], "score": round(float(face.score), 4)}
    if face.landmarks is not None:
        out["landmarks"] = np.round(face.landmarks, 2).tolist()
    if face.visibility is not None:
        out["visibility"] = np.round(face.visibility, 3).tolist()
    if face.parsing is not None:
        from keras_facemt.data.schema import PARSING_CLASSES

        counts = np.bincount(face.parsing.ravel(), minlength=len(PARSING_CLASSES))
        out["parsing_pixels"] = {name: int(c) for name, c in zip(PARSING_CLASSES, counts) if c}
    if face.embedding is not None:
        out["embedding"] = np.round(face.embedding, 5).tolist()
    if face.pose is not None:
        out["pose"] = {k: round(float(v), 2) for k, v in zip(("yaw", "pitch", "roll"), face.pose)}
    for name, probs in face.attributes.items():
        out.setdefault("attributes", {})[name] = {
            "label": face.label(name),
            "probabilities": np.round(np.asarray(probs, np.float64), 4).tolist(),
        }
    if face.sources:
        out["sources"] = dict(face.sources)
    return out
