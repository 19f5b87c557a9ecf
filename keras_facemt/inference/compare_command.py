"""``facemt compare A B --model M``: are the faces of two photos the same person?

``M`` is a model that declares an identity ``embedding``: a detector with per-face
embeddings (Uniface; the highest-scoring face of each photo is compared), or a
recognition crop model (MTFR). A crop model that aligns faces by their 5 points
reads each photo's highest-scoring face found by ``--detector``; without one, each
photo is taken as an already aligned face crop. The threshold is the one chosen on
held-out pairs and recorded with the model (a run's ``results.json``, an export's
``manifest.json``: ``verification_threshold``), or ``--threshold``.
"""

from __future__ import annotations

from keras_facemt.errors import ConfigError, DataError


def run(args) -> int:
    from keras_facemt.inference.face import compare_faces
    from keras_facemt.inference.image_files import read_images
    from keras_facemt.inference.stage import load_stage

    images = read_images([args.image_a, args.image_b])
    stage = load_stage(args.model, args.domain, num_threads=args.threads)
    if not stage.spec.keys_of("embedding"):
        raise ConfigError(f"{args.model}: not a recognition model (it declares no identity embedding; outputs: "
                          f"{sorted(stage.spec.outputs)}). Pass a model such as MTFR or Uniface as --model.")
    threshold = args.threshold if args.threshold is not None else stage.threshold
    if threshold is None:
        raise ConfigError(f"{args.model}: no verification threshold recorded with the model (results.json or "
                          "manifest.json verification_threshold); pass --threshold.")
    faces = _faces(stage, images, args)
    for path, face in zip((args.image_a, args.image_b), faces):
        if face is None:
            raise DataError(f"{path}: no face found.")
    same, cosine = compare_faces(faces[0], faces[1], threshold)
    print(f"cosine {cosine:.4f}  {'same' if same else 'different'}  (threshold {float(threshold):.4f})")
    return 0


def _faces(stage, images, args):
    """The face compared in each photo (None where none was found)."""
    if stage.detecting:
        if args.detector:
            raise ConfigError(f"{args.model}: the model detects faces itself; --detector is for crop models.")
        from keras_facemt.inference.analyzer import FaceAnalyzer

        found = FaceAnalyzer(stage)(images)
    elif args.detector:
        import warnings

        from keras_facemt.inference.pipeline import FacePipeline

        pipeline = FacePipeline(args.detector, [stage], max_faces=1, domain=args.domain, num_threads=args.threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # only each photo's best face is compared, by design
            found = pipeline(images)
    else:
        from keras_facemt.inference.analyzer import FaceAnalyzer

        found = FaceAnalyzer(stage)(images)
    return [faces[0] if faces else None for faces in found]


def register(subparsers) -> None:
    p = subparsers.add_parser("compare", help="cosine similarity of the faces of two photos: same person or not")
    p.add_argument("image_a")
    p.add_argument("image_b")
    p.add_argument("--model", required=True, help="a recognition model (.keras, run dir, export or artifact)")
    p.add_argument("--detector", help="face detector for a crop recognition model (else photos are aligned crops)")
    p.add_argument("--threshold", type=float, help="cosine threshold (default: the one recorded with the model)")
    p.add_argument("--domain", default="0", help="BN domain: an id or a training dataset name")
    p.add_argument("--threads", type=int, default=2, help="TFLite / ONNX runtime threads")
    p.set_defaults(func=run)
