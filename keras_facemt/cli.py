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
    ("compare", "keras_facemt.inference.compare_command"),
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

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        # The training flags depend on the system named after "train": its own parser reads them.
        from keras_facemt.training.train_command import main as train_main

        return train_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FaceMTError as e:
        return _fail(args.command, str(e))
    except OSError as e:
        # The file system refused (no space, a file where a directory must go, ...):
        # the writers already removed their temporaries; name the path it refused.
        where = f"{e.filename}: " if e.filename else ""
        return _fail(args.command, f"{where}{e.strerror or e}")


def _fail(command: str, message: str) -> int:
    """One line on stderr (a message's later lines are details) and exit status 2."""
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"facemt {command}: error: {first}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
