"""TFN ablations in one command (Sec. V-A, Table III, Sec. IV-B.1, IV-C, Table VI), written to
``reports/tfn_*.md`` (see ``keras_facemt/models/tfn/ablation.py`` for the variants).

Examples::

    nice -n 5 python recipes/ablate_tfn.py                          # all 13 variants
    python recipes/ablate_tfn.py --variants tfn,ormm,trmm,srmm      # Table III only
    python recipes/ablate_tfn.py --steps 200,20,30,30 --scenes 240,100
    python recipes/ablate_tfn.py --preset tiny --steps 3,0,0,0 --scenes 8,4 --variants tfn   # a quick check
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
    from keras_facemt.models.tfn.ablation import VARIANTS, run_ablation, write_reports
    from keras_facemt.models.tfn.experiments import get_experiment
    from keras_facemt.models.tfn.job import parse_scenes, parse_steps
    from keras_facemt.training.runner import common_overrides, selected_variants

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", default="tfn_ablation")
    p.add_argument("--out-dir", default=None, help="default runs/<experiment>")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--variants", default=None, help=f"comma-separated subset of {', '.join(VARIANTS)}")
    p.add_argument("--steps", default=None, help="S1,S2,S3,S4 updates of the four stages")
    p.add_argument("--scenes", default=None, help="TRAIN,TEST SynthFace scenes")
    p.add_argument("--preset", default=None, help="model preset (default: the experiment's)")
    p.add_argument("--seed", type=int, default=None, help="data and training seed (default: the experiment's)")
    p.add_argument("--reports-dir", default="reports")
    args = p.parse_args(argv)
    command = "python recipes/ablate_tfn.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                   else sys.argv[1:]))
    try:
        overrides = common_overrides(args)
        if args.steps:
            overrides.update(parse_steps(args.steps))
        if args.scenes:
            overrides.update(parse_scenes(args.scenes))
        variants = selected_variants(args.variants, VARIANTS)
        exp = get_experiment(args.experiment, **overrides)
        out = args.out_dir or os.path.join("runs", exp.name)
        scores = run_ablation(exp, out, cache_dir=args.cache_dir, variants=variants)
        written = write_reports(exp, scores, args.reports_dir, command.strip())
    except FaceMTError as e:
        print(f"ablate_tfn: error: {e}", file=sys.stderr)
        return 2
    print("reports: " + ", ".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
