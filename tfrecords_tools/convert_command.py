"""``facemt convert <layout>``, ``facemt inspect DIR`` and ``facemt vote-attributes``.

Example::

    facemt convert wider_face --root ~/data/WIDER --out ~/shards/wider --workers 8
    facemt inspect ~/shards/wider
"""

from __future__ import annotations

import inspect
import os
import sys

from tfrecords_tools.registry import CONVERTERS, get_converter

_RATIO_OPTIONS = ("seed", "val_fraction", "test_fraction")


def register(subparsers) -> None:
    p = subparsers.add_parser("convert", help="convert a public dataset layout to schema shards",
                              description="Convert a dataset, as distributed, to TFRecord shards.")
    layouts = p.add_subparsers(dest="layout", metavar="LAYOUT")
    layouts.required = True
    for name in CONVERTERS:
        cls = get_converter(name)
        lp = layouts.add_parser(name, help=cls.description, description=(cls.__doc__ or "").split("\n")[0])
        lp.add_argument("--src", "--root", dest="root", required=True, help="dataset root, as distributed")
        lp.add_argument("--out", required=True, help="output dataset directory")
        lp.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1)),
                        help="processes reading images (default: CPU count)")
        lp.add_argument("--num-shards", type=int, default=None, help="shards per split (default: ~--shard-mb each)")
        lp.add_argument("--shard-mb", type=float, default=200.0)
        lp.add_argument("--strict", action="store_true", help="the first bad entry is fatal")
        lp.add_argument("--overwrite", action="store_true", help="replace an output made from other input")
        lp.add_argument("--tolerance", type=float, default=0.1,
                        help="how far (fraction of the image) geometry may leave the image")
        lp.add_argument("--verify-images", action="store_true", help="fully decode every image")
        lp.add_argument("--verify-records", type=int, default=64, help="records decoded before commit")
        lp.add_argument("--no-progress", action="store_true")
        lp.add_argument("--quiet", action="store_true", help="do not print each skipped entry")
        params = inspect.signature(cls.__init__).parameters
        for opt in _RATIO_OPTIONS:
            if opt in params:
                default = params[opt].default
                lp.add_argument("--" + opt.replace("_", "-"), type=type(default), default=default,
                                help=f"seeded split (this dataset defines none); default {default}")
        cls.add_arguments(lp)
        lp.set_defaults(func=_convert, converter_cls=cls)

    from tfrecords_tools.inspect_dataset import register_inspect
    from tfrecords_tools.vote_attributes import register_vote

    register_inspect(subparsers)
    register_vote(subparsers)
    from keras_facemt.models.mtfr.pseudo_labels import register_pseudo_labels

    register_pseudo_labels(subparsers)


def _convert(args) -> int:
    from tfrecords_tools.common import run_conversion

    converter = args.converter_cls.from_args(args)
    result = run_conversion(
        converter, args.out, workers=args.workers, num_shards=args.num_shards, shard_mb=args.shard_mb,
        strict=args.strict, overwrite=args.overwrite, tolerance=args.tolerance,
        verify_images=args.verify_images, verify_records=args.verify_records,
        progress=not args.no_progress and sys.stderr.isatty(), log=None if args.quiet else sys.stderr)
    print(result.summary())
    return 0
