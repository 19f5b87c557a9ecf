"""``facemt predict``: run a saved model over image files, write JSON (and drawings)."""

from __future__ import annotations

import json
import os
from typing import Dict, List

import numpy as np

from keras_facemt.errors import DataError


def face_to_json(face) -> Dict[str, object]:
    """A ``Face`` as plain JSON (parsing maps summarised by class pixel counts)."""
    out: Dict[str, object] = {"box": [round(float(v), 2) for v in face.box], "score": round(float(face.score), 4)}
    if face.landmarks is not None:
        out["landmarks"] = np.round(face.landmarks, 2).tolist()
    if face.parsing is not None:
        from keras_facemt.data.schema import PARSING_CLASSES

        counts = np.bincount(face.parsing.ravel(), minlength=len(PARSING_CLASSES))
        out["parsing_pixels"] = {name: int(c) for name, c in zip(PARSING_CLASSES, counts) if c}
    if face.embedding is not None:
        out["embedding"] = np.round(face.embedding, 5).tolist()
    for name, probs in face.attributes.items():
        out.setdefault("attributes", {})[name] = {
            "label": face.label(name),
            "probabilities": np.round(np.asarray(probs, np.float64), 4).tolist(),
        }
    return out


def read_images(paths: List[str]) -> List[np.ndarray]:
    """Reads image files as RGB(A)/gray arrays.

    Raises:
        DataError: naming the first missing or undecodable file.
    """
    import cv2

    images = []
    for p in paths:
        if os.path.isdir(p):
            raise DataError(f"{p}: is a directory; pass image files.")
        if not os.path.isfile(p):
            raise DataError(f"{p}: image file does not exist.")
        data = np.fromfile(p, np.uint8)
        if data.size == 0:
            raise DataError(f"{p}: empty file, not an image.")
        try:
            arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        except cv2.error:  # OpenCV asserts on some damaged headers instead of returning None
            arr = None
        if arr is None or arr.size == 0:
            raise DataError(f"{p}: not a decodable image (JPEG/PNG/BMP...).")
        if arr.ndim == 3 and arr.shape[-1] == 3:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
        elif arr.ndim == 3 and arr.shape[-1] == 4:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
        images.append(arr)
    return images


def run(args) -> int:
    from keras_facemt.io import write_json_atomic
    from keras_facemt.inference.analyzer import FaceAnalyzer

    from keras_facemt.output_paths import check_output_dir, check_output_file

    # Outputs are checked before the model runs: a bad path costs nothing.
    if args.out:
        check_output_file(args.out, "--out")
    if args.draw:
        check_output_dir(args.draw, "--draw")
    images = read_images(args.images)
    analyzer = FaceAnalyzer(args.model, domain=args.domain, batch_size=args.batch_size)
    results = analyzer(images)
    report = [{"image": p, "faces": [face_to_json(f) for f in faces]} for p, faces in zip(args.images, results)]
    if args.out:
        write_json_atomic(args.out, report)
        print(f"wrote {args.out}")
    else:
        print(json.dumps(report, indent=1))
    if args.draw:
        created = not os.path.isdir(args.draw)
        os.makedirs(args.draw, exist_ok=True)
        try:
            _draw_all(args.draw, args.images, images, results)
        except BaseException:
            if created and not os.listdir(args.draw):
                os.rmdir(args.draw)  # a failed first drawing leaves no empty directory behind
            raise
        print(f"drawings in {args.draw}")
    return 0


def _draw_all(draw_dir: str, paths: List[str], images, results) -> None:
    """One annotated PNG per image in ``draw_dir``."""
    from keras_facemt.data.drawing import draw_labels, write_png_atomic

    for path, image, faces in zip(paths, images, results):
        # No face found is a result: the drawing shows the image with no boxes.
        boxes = np.array([f.box for f in faces], np.float32).reshape(-1, 4)
        labels: Dict[str, object] = {"bbox": boxes / _wh(image)}
        if faces and faces[0].landmarks is not None:
            labels["landmarks"] = np.stack([f.landmarks for f in faces]) / _wh(image)[:2]
        if faces and faces[0].parsing is not None:
            labels["parsing"] = faces[0].parsing
        for name in faces[0].attributes if faces else ():
            labels[name] = [f.label(name) for f in faces]
        name = os.path.splitext(os.path.basename(path))[0] + ".png"
        write_png_atomic(os.path.join(draw_dir, name), draw_labels(image, labels))


def _wh(image) -> np.ndarray:
    h, w = np.asarray(image).shape[:2]
    return np.array([w, h, w, h], np.float32)


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="run a saved model (.keras) over image files")
    p.add_argument("--model", required=True, help="a .keras model file or a training run directory")
    p.add_argument("--domain", default="0",
                   help="BN domain of per-dataset BN models: an id or a training dataset/task name")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", help="write results as JSON here (default: print)")
    p.add_argument("--draw", help="directory for annotated PNGs")
    p.add_argument("images", nargs="+", help="image files")
    p.set_defaults(func=run)
