"""``facemt synth``: render a SynthFace dataset into TFRecord shards.

Example::

    facemt synth --kind crops --tasks landmarks,emotion --domain webcam \\
        --count 2000 --out data/synth_emotion --shards 4

writes ``<out>/dataset.json``, ``<out>/<split>-NNNNN-of-NNNNN.tfrecord`` and
``<out>/contact_sheet.png`` (the first records with their labels drawn).
"""

from __future__ import annotations

import argparse
import time

from keras_facemt.errors import ConfigError


def _splits(text: str):
    pairs = []
    for item in text.split(","):
        name, sep, ratio = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected NAME=RATIO pairs, got {item!r}")
        try:
            pairs.append((name.strip(), float(ratio)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"ratio of {name!r} is not a number: {ratio!r}") from None
    return tuple(pairs)


def _pair(text: str):
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH numbers, got {text!r}") from None
    if len(values) != 2:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH numbers, got {text!r}")
    return values


def register(subparsers) -> None:
    """Adds the ``synth`` subcommand."""
    from keras_facemt.data.synth_expression import DEFAULT_INTENSITY_RANGE
    from keras_facemt.data.synthetic import DOMAINS, KINDS, SUPPORTED_TASKS

    p = subparsers.add_parser(
        "synth",
        help="render a synthetic labelled face dataset (SynthFace) into TFRecord shards",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--kind", default="crops", help=f"one of {list(KINDS)} (default crops)")
    p.add_argument("--tasks", default=",".join(SUPPORTED_TASKS),
                   help=f"comma-separated labels to store, from {list(SUPPORTED_TASKS)} (default: all)")  # fmt: skip
    p.add_argument("--domain", default="studio", help=f"image style, one of {sorted(DOMAINS)} (default studio)")
    p.add_argument("--count", type=int, default=1000, help="number of images (default 1000)")
    p.add_argument("--out", required=True, help="output dataset directory")
    p.add_argument("--shards", type=int, default=4, help="shards per split (default 4)")
    p.add_argument("--seed", type=int, default=0, help="sample seed (default 0)")
    p.add_argument("--image-size", type=int, default=None,
                   help="image side in pixels (default 128 for crops, 256 for scenes)")  # fmt: skip
    p.add_argument("--dataset-name", default=None, help="image/dataset of the records (default synth_<domain>)")
    p.add_argument("--splits", type=_splits, default=(("train", 0.8), ("val", 0.1), ("test", 0.1)),
                   help="split ratios, e.g. train=0.8,val=0.1,test=0.1")  # fmt: skip
    p.add_argument("--num-identities", type=int, default=1000, help="identity ids drawn from [0, N) (default 1000)")
    p.add_argument("--identity-seed", type=int, default=0, help="identity population seed (default 0)")
    p.add_argument("--max-faces", type=int, default=20, help="most faces per scene (default 20)")
    p.add_argument("--min-faces", type=int, default=1, help="fewest faces per scene (default 1)")
    p.add_argument("--landmark-scheme", default="ibug68", help="stored scheme: ibug68, aflw21 or mtfl5")
    p.add_argument("--emotion-intensity", type=_pair, default=DEFAULT_INTENSITY_RANGE,
                   help="LOW,HIGH range of emotion intensity (default %s,%s; higher is easier)"
                   % DEFAULT_INTENSITY_RANGE)  # fmt: skip
    p.add_argument("--contact-sheet", type=int, default=32,
                   help="records drawn into <out>/contact_sheet.png (0: none; default 32)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    p.set_defaults(func=run)


def run(args) -> int:
    """Runs ``facemt synth``; returns the exit status."""
    from keras_facemt.data.synthetic import KINDS, write_synthetic

    if args.kind not in KINDS:
        raise ConfigError(f"--kind must be one of {list(KINDS)}. Received: kind={args.kind!r}")
    if args.count < 1:
        raise ConfigError(f"--count must be a positive integer. Received: count={args.count}")
    size = args.image_size or (128 if args.kind == "crops" else 256)
    start = time.perf_counter()
    manifest = write_synthetic(
        args.out,
        kind=args.kind,
        tasks=args.tasks,
        domain=args.domain,
        count=args.count,
        shards=args.shards,
        seed=args.seed,
        image_size=size,
        dataset_name=args.dataset_name,
        splits=args.splits,
        overwrite=args.overwrite,
        num_identities=args.num_identities,
        identity_seed=args.identity_seed,
        max_faces=args.max_faces,
        min_faces=args.min_faces,
        landmark_scheme=args.landmark_scheme,
        contact_sheet=args.contact_sheet,
        intensity_range=args.emotion_intensity,
    )
    elapsed = time.perf_counter() - start
    counts = ", ".join(f"{k}={v}" for k, v in sorted(manifest.get("counts", {}).items()))
    faces = sum(manifest.get("faces", {}).values())
    print(f"wrote {args.count} {args.kind} ({faces} faces; {counts}) to {args.out} "
          f"in {elapsed:.1f}s ({args.count / max(elapsed, 1e-9):.0f} images/s)")  # fmt: skip
    if args.contact_sheet:
        print(f"contact sheet: {args.out}/contact_sheet.png")
    return 0
