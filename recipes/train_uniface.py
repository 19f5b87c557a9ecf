"""Trains and evaluates Uniface (Liao et al.): one network for face detection,
5-point landmarks and recognition, distilled from a recognition teacher.

With no arguments it runs the ``uniface`` experiment on synthetic multi-face scenes:
renders the data, trains the recognition teacher on aligned crops, adds the
teacher's embeddings to the scenes (``tfrecords_tools/add_teacher_embeddings.py``),
trains the primary model and the paper's ablations (Table I: A, B, C, D), and writes
``results.json`` and ``results.md`` (AP, FDDB-style ROC, NME, 10-fold verification
with and without random crop/pad, and the comparison table) to ``--model-dir``.

Examples::

    python recipes/train_uniface.py                                   # ~20 min on 2 CPU cores
    python recipes/train_uniface.py --experiment uniface_smoke --model-dir /tmp/uf
    python recipes/train_uniface.py --variants A,D --steps 800
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_facemt.errors import FaceMTError  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--experiment", default="uniface", help="uniface, uniface_smoke or uniface_paper")
    p.add_argument("--model-dir", default=None, help="output directory (default runs/<experiment>)")
    p.add_argument("--variants", default=None, help="comma-separated Table I models, e.g. A,B,C,D")
    p.add_argument("--steps", type=int, default=None, help="Uniface updates per variant")
    p.add_argument("--preset", default=None, help="model preset: paper, small or tiny")
    p.add_argument("--seed", type=int, default=None)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from keras_facemt.models.uniface.experiments import get_experiment
    from keras_facemt.models.uniface.job import run_experiment

    overrides = {}
    if args.variants:
        overrides["variants"] = tuple(v.strip().upper() for v in args.variants.split(",") if v.strip())
    for key in ("steps", "preset", "seed"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    try:
        exp = get_experiment(args.experiment, **overrides)
        out = args.model_dir or os.path.join("runs", exp.name)
        results = run_experiment(exp, out)
    except FaceMTError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"results: {os.path.join(out, 'results.md')} ({results['timings_seconds']['total']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
