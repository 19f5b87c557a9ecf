"""MTFR ablations in one command (Tables 2-3, 5, 6, 7), written to ``reports/mtfr_table*.md``.

Examples::

    python recipes/ablate_mtfr.py --experiment mtfr_smoke            # 10 small runs
    python recipes/ablate_mtfr.py --experiment mtfr --variants fast_none,fast_all
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    from keras_facemt.errors import FaceMTError
    from keras_facemt.models.mtfr.ablation import VARIANTS, run_ablation
    from keras_facemt.models.mtfr.experiments import get_experiment
    from keras_facemt.models.mtfr.job import parse_steps
    from keras_facemt.training.runner import selected_variants

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", default="mtfr_smoke")
    p.add_argument("--model-dir", default=None, help="default runs/<experiment>_ablation")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--variants", default=None, help=f"comma-separated subset of {', '.join(VARIANTS)}")
    p.add_argument("--steps", default=None, help="STAGE1,STAGE2 updates")
    p.add_argument("--reports-dir", default="reports")
    args = p.parse_args(argv)
    try:
        overrides = parse_steps(args.steps) if args.steps else {}
        variants = selected_variants(args.variants, VARIANTS)
        exp = get_experiment(args.experiment, **overrides)
        out = args.model_dir or os.path.join("runs", f"{exp.name}_ablation")
        run_ablation(exp, out, cache_dir=args.cache_dir, variants=variants, reports_dir=args.reports_dir)
    except FaceMTError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"reports: {args.reports_dir}/mtfr_table*.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
