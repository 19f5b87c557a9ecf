"""All-in-One ablations in one command (Table VI's 2x2, multi-task vs single-task, identity
initialisation vs scratch, Eq. 6's age-loss switch), written to ``reports/allinone_*.md``.

Every variant trains through the shared runner into ``<out-dir>/<variant>/`` (a
finished run of the same configuration is reused, an interrupted one resumes). The
default is ``allinone_smoke``'s data and model with twice its updates (900 + 300);
``--variants`` takes a subset.

Examples::

    nice -n 5 python recipes/ablate_allinone.py
    python recipes/ablate_allinone.py --variants mtl_scratch,identity_only --steps 300,100
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    from keras_facemt.errors import FaceMTError
    from keras_facemt.models.allinone.ablation import VARIANTS, run_ablation, write_reports
    from keras_facemt.models.allinone.experiments import get_experiment
    from keras_facemt.models.allinone.job import parse_steps
    from keras_facemt.training.runner import selected_variants

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", default="allinone_smoke", help="base experiment (default allinone_smoke)")
    p.add_argument("--out-dir", default=None, help="default runs/<experiment>_ablation")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--variants", default=None, help=f"comma-separated subset of {', '.join(VARIANTS)}")
    p.add_argument("--steps", default="900,300", help="EUCLIDEAN,GAUSSIAN updates of every variant (default 900,300)")
    p.add_argument("--yaw-bin-faces", type=int, default=60, help="faces per Table II |yaw| bin (topped up)")
    p.add_argument("--reports-dir", default="reports")
    args = p.parse_args(argv)
    command = "python recipes/ablate_allinone.py" + "".join(f" {shlex.quote(a)}" for a in
                                                             (sys.argv[1:] if argv is None else argv))
    try:
        variants = selected_variants(args.variants, VARIANTS)
        overrides = parse_steps(args.steps)
        base = get_experiment(args.experiment, yaw_bin_faces=args.yaw_bin_faces, **overrides)
        out = args.out_dir or os.path.join("runs", f"{base.name}_ablation_{base.steps_euclidean}_{base.steps_gaussian}")
        results = run_ablation(base, out, variants=variants, cache_dir=args.cache_dir)
        written = write_reports(base, results, args.reports_dir, command)
    except FaceMTError as e:
        print(f"ablate_allinone: error: {e}", file=sys.stderr)
        return 2
    print("reports: " + ", ".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
