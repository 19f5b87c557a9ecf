"""Generic JSON lines: one object per image with the schema's fields.

For any dataset without a dedicated converter. Each non-empty line of the file(s)
is one image::

    {"image": "images/0001.jpg", "split": "train", "coordinates": "pixels",
     "landmark_scheme": "mtfl5", "has_boxes": 1, "parsing": "labels/0001.png",
     "faces": [{"bbox": [12, 20, 80, 96],
                "landmarks": [[30, 44], [60, 44], [45, 60], [33, 78], [58, 78]],
                "visible": [1, 1, 1, 1, 1],
                "pose": [10.0, -5.0, 2.0],
                "identity": 17,
                "attributes": {"age": 31, "gender": 1, "emotion": 0}}]}

Only ``image`` is required. ``image`` and ``parsing`` are relative to the file's
directory (or ``--image-root``). ``coordinates`` is ``pixels`` (default) or
``normalized`` ([0, 1] of the image size); boxes are ``[xmin, ymin, xmax, ymax]``,
points ``[x, y]``, "left" is the image's left. ``split`` defaults to ``train``,
``faces`` to one whole-image face, ``has_boxes`` to 0 (set 1 only when the boxes
list every face). ``attributes`` use the schema's registered names (``age``,
``gender``, ``celeba/Smiling``, ...); ``parsing`` is a class-id PNG of the image's
size. Unknown keys are reported, so a typo never silently drops a label.
"""

from __future__ import annotations

import json
import os
from typing import Iterator, List, Optional, Sequence

import numpy as np

from keras_facemt.data import schema
from keras_facemt.data.landmarks import SCHEMES
from keras_facemt.errors import ConfigError, DataError
from tfrecords_tools.common import (
    MALFORMED,
    POINT_COUNT,
    Converter,
    Face,
    Problem,
    Problems,
    Sample,
    parse_lines,
    require_file,
)

IMAGE_KEYS = {"image", "split", "coordinates", "landmark_scheme", "has_boxes", "parsing", "faces", "source_id"}
FACE_KEYS = {"bbox", "landmarks", "visible", "pose", "identity", "attributes"}


class JsonLinesConverter(Converter):
    """JSON-lines annotation files.

    Args:
        root: directory of the ``.jsonl`` files (and default image root).
        files: the JSON-lines files (default: every ``*.jsonl`` in ``root``).
        image_root: directory image paths are relative to (default: each file's dir).
        dataset_name: value of ``image/dataset`` (default ``jsonl``).
    """

    name = "jsonl"
    dataset = "jsonl"
    version = "1"
    description = "generic JSON lines (one object per image with the schema's fields)"

    def __init__(self, root: str, files: Optional[Sequence[str]] = None, image_root: Optional[str] = None,
                 dataset_name: Optional[str] = None):
        super().__init__(root)
        if files:
            self.files = [require_file(os.path.abspath(f), "JSON-lines file") for f in files]
        else:
            self.files = sorted(os.path.join(self.root, f) for f in os.listdir(self.root) if f.endswith(".jsonl"))
            if not self.files:
                raise DataError(f"{self.root}: no *.jsonl files found; pass --files.")
        self.image_root = os.path.abspath(image_root) if image_root else None
        self.dataset_name = dataset_name
        if dataset_name:
            self.dataset = dataset_name

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--files", nargs="+", default=None, help="JSON-lines files (default: root/*.jsonl)")
        parser.add_argument("--image-root", default=None, help="image paths are relative to this directory")
        parser.add_argument("--dataset-name", default=None, help="image/dataset value (default: jsonl)")

    def options(self):
        return {"files": [os.path.basename(f) for f in self.files], "dataset_name": self.dataset_name}

    def source_files(self) -> List[str]:
        return list(self.files)

    def samples(self, problems: Problems) -> Iterator[Sample]:
        for path in self.files:
            base = self.image_root or os.path.dirname(path)
            yield from parse_lines(path, lambda line, loc, base=base: self._parse(line, loc, base), problems)

    def _parse(self, line: str, loc: str, base: str) -> Sample:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise Problem(loc, MALFORMED, f"not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("image"), str):
            raise Problem(loc, MALFORMED, "expected an object with an 'image' path")
        unknown = sorted(set(obj) - IMAGE_KEYS)
        if unknown:
            raise Problem(loc, MALFORMED, f"unknown keys {unknown}; known: {sorted(IMAGE_KEYS)}")
        coords = obj.get("coordinates", "pixels")
        if coords not in ("pixels", "normalized"):
            raise Problem(loc, MALFORMED, f"coordinates must be 'pixels' or 'normalized', got {coords!r}")
        scheme = obj.get("landmark_scheme", "none")
        if scheme != "none" and scheme not in SCHEMES:
            raise Problem(loc, MALFORMED, f"landmark_scheme {scheme!r} is not one of {sorted(SCHEMES)}")
        k = SCHEMES[scheme].num_points if scheme != "none" else 0
        faces_obj = obj.get("faces", [{}])
        if not isinstance(faces_obj, list):
            raise Problem(loc, MALFORMED, "'faces' must be a list")
        faces = [self._face(f, i, loc, k, scheme) for i, f in enumerate(faces_obj)]
        parsing = (os.path.join(base, obj["parsing"]),) if obj.get("parsing") else None
        return Sample(image_path=os.path.join(base, obj["image"]), source_id=str(obj.get("source_id", obj["image"])),
                      split=str(obj.get("split", "train")), origin=loc, faces=faces,
                      has_boxes=int(bool(obj.get("has_boxes", 0))), landmark_scheme=scheme if k else "none",
                      parsing_paths=parsing, normalized=coords == "normalized")

    @staticmethod
    def _face(f, i: int, loc: str, k: int, scheme: str) -> Face:
        if not isinstance(f, dict):
            raise Problem(loc, MALFORMED, f"face {i} must be an object")
        unknown = sorted(set(f) - FACE_KEYS)
        if unknown:
            raise Problem(loc, MALFORMED, f"face {i}: unknown keys {unknown}; known: {sorted(FACE_KEYS)}")
        try:
            face = Face()
            if f.get("bbox") is not None:
                face.bbox = [float(v) for v in f["bbox"]]
                if len(face.bbox) != 4:
                    raise ValueError(f"bbox needs 4 numbers, got {len(face.bbox)}")
            if f.get("landmarks") is not None:
                pts = np.asarray(f["landmarks"], np.float64)
                if k == 0:
                    raise Problem(loc, MALFORMED, f"face {i} has landmarks but no landmark_scheme")
                if pts.ndim != 2 or pts.shape != (k, 2):
                    raise Problem(loc, POINT_COUNT, f"face {i} has {pts.size // 2} points; scheme {scheme!r} "
                                                    f"has {k}")
                face.landmarks = pts
                if f.get("visible") is not None:
                    face.visible = np.asarray(f["visible"], np.float64)
                    if face.visible.shape != (k,):
                        raise Problem(loc, POINT_COUNT, f"face {i} has {face.visible.size} visibility flags, "
                                                        f"scheme {scheme!r} has {k} points")
            if f.get("pose") is not None:
                face.pose = [float(v) for v in f["pose"]]
                if len(face.pose) != 3:
                    raise ValueError("pose needs 3 numbers (yaw, pitch, roll)")
            if f.get("identity") is not None:
                face.identity = int(f["identity"])
            for name, value in (f.get("attributes") or {}).items():
                spec = schema.attribute_spec(name)
                face.attributes[name] = float(value) if spec.kind == "regression" else int(value)
        except (TypeError, ValueError, ConfigError) as e:
            raise Problem(loc, MALFORMED, f"face {i}: {e}") from None
        return face
