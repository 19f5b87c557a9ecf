"""The ``facemt`` command line.

Each subcommand lives beside the code it drives and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``.
This module only wires them together, importing each lazily so ``facemt --help``
stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# (subcommand names, module providing register()).
COMMAND_MODULES = (
    ("train", "keras_facemt.training.train_command"),
    ("bench", "keras_facemt.bench_command"),
    ("predict", "keras_facemt.inference.predict_command"),
    ("synth", "keras_facemt.data.synth_command"),
    ("convert inspect vote-attributes", "tfrecords_tools.convert_command"),
    ("export", "keras_facemt.serving.export_command"),
    ("evaluate", "keras_facemt.inference.evaluate_command"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facemt", description="keras-facemt: multi-task face analysis.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for _, module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_facemt.errors import FaceMTError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FaceMTError as e:
        print(f"facemt {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
