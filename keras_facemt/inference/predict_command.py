"""``facemt predict``: run a model, or a detector + per-face models, over image files.

* ``--model M``: one model (``FaceAnalyzer``): a detector gives its detections, a
  crop model one face for the whole image. ``--out`` gets one record per image.
* ``--detector D [--analyzer A ...]``: a ``FacePipeline``; ``--out`` gets one record
  per face (and one summary per image: its face count and faces beyond
  ``--max-faces``).

Any model slot takes a ``.keras`` file, a run directory, an export directory or an
exported artifact (``.tflite``, ``.onnx``, SavedModel). ``--draw`` writes one PNG
per image with boxes, points, the parsing overlay, pose axes and labels.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Dict, List

import numpy as np

from keras_facemt.errors import ConfigError
from keras_facemt.inference.face import face_to_json
from keras_facemt.inference.image_files import read_images


def run(args) -> int:
    from keras_facemt.io import write_json_atomic
    from keras_facemt.output_paths import check_output_dir, check_output_file

    if args.model and (args.detector or args.analyzer):
        raise ConfigError("--model runs one model; --detector with --analyzer runs a pipeline. Pass one of them. "
                          f"Received: model={args.model!r}, detector={args.detector!r}")
    if not args.model and not args.detector:
        raise ConfigError("Pass --model M, or --detector D [--analyzer A ...].")
    if args.input_dir:
        return _run_folder(args)
    if not args.images:
        raise ConfigError("Pass image files, or --input-dir DIR --jsonl OUT.")
    # Outputs are checked before the model runs: a bad path costs nothing.
    if args.out:
        check_output_file(args.out, "--out")
    if args.draw:
        check_output_dir(args.draw, "--draw")
    images = read_images(args.images)
    if args.model:
        from keras_facemt.inference.analyzer import FaceAnalyzer

        analyzer = FaceAnalyzer(args.model, domain=args.domain, batch_size=args.batch_size)
        results = analyzer(images)
        report = [{"image": p, "faces": [face_to_json(f) for f in faces]} for p, faces in zip(args.images, results)]
    else:
        import warnings

        pipeline = build_pipeline(args)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = pipeline(images)
        for w in caught:  # faces beyond --max-faces, a full detector: one line each
            print(f"facemt predict: note: {w.message}", file=sys.stderr)
        report = pipeline_report(args.images, results, pipeline.dropped)
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


def _run_folder(args) -> int:
    """Throughput mode: ``--input-dir`` through the model(s), streamed to ``--jsonl``."""
    from keras_facemt.inference.photo_folder import analyse_folder, analyzer_runner, list_photos, pipeline_runner, \
        summary_line
    from keras_facemt.output_paths import check_output_file

    if args.images or args.out or args.draw:
        raise ConfigError("--input-dir writes --jsonl; it takes no image arguments, --out or --draw. "
                          f"Received: images={args.images[:2]}, out={args.out!r}, draw={args.draw!r}")
    if not args.jsonl:
        raise ConfigError("--input-dir needs --jsonl OUT (one JSON line per photo; a rerun resumes from it).")
    list_photos(args.input_dir)  # a bad directory fails before any model loads
    if not os.path.exists(args.jsonl):  # an existing one is resumed
        check_output_file(args.jsonl, "--jsonl")
    if args.model:
        from keras_facemt.inference.analyzer import FaceAnalyzer

        run = analyzer_runner(FaceAnalyzer(args.model, domain=args.domain, batch_size=args.batch_size))
    else:
        run = pipeline_runner(build_pipeline(args))
    summary = analyse_folder(run, args.input_dir, args.jsonl, batch_size=args.batch_size, workers=args.workers)
    print(summary_line(summary))
    return 0


def build_pipeline(args):
    """The ``FacePipeline`` of ``--detector``, ``--analyzer``, ``--max-faces``, ``--domain``."""
    from keras_facemt.inference.pipeline import FacePipeline

    return FacePipeline(args.detector, args.analyzer or (), max_faces=args.max_faces, batch_size=args.batch_size,
                        domain=args.domain, num_threads=args.threads)


def pipeline_report(paths: List[str], results, dropped) -> Dict[str, object]:
    """``{"images": [one summary per image], "faces": [one record per face]}``."""
    images, faces = [], []
    for path, found, lost in zip(paths, results, dropped):
        images.append({"image": path, "faces": len(found), "dropped_faces": int(lost)})
        faces.extend({"image": path, "face": j, **face_to_json(f)} for j, f in enumerate(found))
    return {"images": images, "faces": faces}


def _draw_all(draw_dir: str, paths: List[str], images, results) -> None:
    """One annotated PNG per image in ``draw_dir``."""
    from keras_facemt.data.drawing import write_png_atomic

    for path, image, faces in zip(paths, images, results):
        name = os.path.splitext(os.path.basename(path))[0] + ".png"
        write_png_atomic(os.path.join(draw_dir, name), draw_faces(image, faces))


def draw_faces(image, faces) -> np.ndarray:
    """``image`` with each face's box, points, parsing overlay, pose axes and labels.

    Returns:
        uint8 RGB (enlarged as ``data.drawing.draw_labels`` does for small images).
    """
    import cv2

    from keras_facemt.data.drawing import draw_labels

    # No face found is a result: the drawing shows the image with no boxes.
    wh = _wh(image)
    boxes = np.array([f.box for f in faces], np.float32).reshape(-1, 4)
    labels: Dict[str, object] = {"bbox": boxes / wh}
    with_points = [f for f in faces if f.landmarks is not None]
    if faces and len(with_points) == len(faces) and len({f.landmarks.shape for f in faces}) == 1:
        labels["landmarks"] = np.stack([f.landmarks for f in faces]) / wh[:2]
        if all(f.visibility is not None and len(f.visibility) == len(f.landmarks) for f in faces):
            labels["landmarks_visible"] = np.stack([f.visibility for f in faces])  # hidden points drawn red
    maps = [f.parsing for f in faces if f.parsing is not None]
    if maps:
        # Per-face maps are background outside each face; the nearest (largest) face wins overlaps.
        order = np.argsort([(f.box[2] - f.box[0]) for f in faces if f.parsing is not None])
        merged = np.zeros_like(maps[0])
        for k in order:
            merged = np.where(maps[k] > 0, maps[k], merged)
        labels["parsing"] = merged
    drawn = draw_labels(image, labels)
    f = drawn.shape[1] / float(wh[0])
    scale = max(0.3, min(drawn.shape[:2]) / 900.0)
    for face in faces:
        x0, y0, x1, y1 = (face.box * f).astype(int)
        size = max(x1 - x0, 1)
        if face.pose is not None:
            _pose_axes(drawn, face, f, size)
        text = _face_labels(face)
        for j, line in enumerate(text):
            y = y1 + int((j + 1) * 16 * scale / 0.4)
            cv2.putText(drawn, line, (x0, min(y, drawn.shape[0] - 2)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (255, 255, 255), 1, cv2.LINE_AA)
    return drawn


def _face_labels(face) -> List[str]:
    """Up to three short lines: score, categorical labels, then likely multi-label attributes."""
    parts = [f"{face.score:.2f}"]
    for name, value in face.attributes.items():
        if np.ndim(value) == 1:
            parts.append(str(face.label(name)))
    likely = sorted(((float(v), n.split("/")[-1]) for n, v in face.attributes.items()
                     if np.ndim(v) == 0 and "/" in n and float(v) > 0.5), reverse=True)
    lines = [" ".join(parts)]
    if likely:
        lines.append(" ".join(n for _, n in likely[:3]))
    return lines


def _pose_axes(img, face, f: float, size: int) -> None:
    """Head axes (x red, y green, z blue) of yaw, pitch, roll at the face centre."""
    import cv2

    yaw, pitch, roll = np.deg2rad(np.asarray(face.pose, np.float64))
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rot = (np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
           @ np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]]))
    centre = (face.landmarks.mean(0) if face.landmarks is not None
              else np.array([(face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2])) * f
    length = 0.5 * size
    for axis, colour in zip(np.eye(3), ((255, 0, 0), (0, 255, 0), (0, 0, 255))):
        tip = centre + length * (rot @ axis)[:2]
        cv2.line(img, tuple(int(v) for v in centre), tuple(int(v) for v in tip), colour, 2, cv2.LINE_AA)


def _wh(image) -> np.ndarray:
    h, w = np.asarray(image).shape[:2]
    return np.array([w, h, w, h], np.float32)


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="run a model, or a detector + per-face models, over image files")
    p.add_argument("--model", help="one model: a .keras file, run directory, export directory or exported artifact")
    p.add_argument("--detector", help="the face detector of a pipeline (any model form, as --model)")
    p.add_argument("--analyzer", action="append", default=[],
                   help="a per-face model run on every detected face (repeat for several; any model form)")
    p.add_argument("--max-faces", type=int, default=64, help="faces analysed per image (pipeline); more are reported")
    p.add_argument("--threads", type=int, default=2, help="TFLite / ONNX runtime threads")
    p.add_argument("--domain", default="0",
                   help="BN domain of per-dataset BN models: an id or a training dataset/task name")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", help="write results as JSON here (default: print)")
    p.add_argument("--draw", help="directory for annotated PNGs")
    p.add_argument("--input-dir", help="throughput mode: every photo under this directory (decoded in parallel "
                   "with inference), results streamed to --jsonl; a rerun skips the photos already there")
    p.add_argument("--jsonl", help="JSON-lines output of --input-dir (one line per photo)")
    p.add_argument("--workers", type=int, default=2, help="photo decoding threads of --input-dir")
    p.add_argument("images", nargs="*", help="image files")
    p.set_defaults(func=run)
