"""TFN ablations in one command (Sec. V-A, Table III, Sec. IV-B.1, IV-C, Table VI), written to
``reports/tfn_*.md`` (see ``keras_facemt/models/tfn/ablation.py`` for the variants).

Examples::

    nice -n 5 python recipes/ablate_tfn.py                          # all 13 variants
    python recipes/ablate_tfn.py --variants tfn,ormm,trmm,srmm      # Table III only
    python recipes/ablate_tfn.py --steps 200,20,30,30 --scenes 240,100
    python recipes/ablate_tfn.py --preset tiny --steps 3,0,0,0 --scenes 8,4 --variants tfn   # a quick check
    python recipes/ablate_tfn.py --seeds 0,1,2 --variants tfn,ormm,trmm,srmm  # Table III over three seeds

Reports read every variant with results in the run directory (``<out-dir>/seed<k>/``
per seed with ``--seeds``), not only those named by ``--variants``.
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
    from keras_facemt.models.tfn.ablation import VARIANTS, pool_seeds, read_scores, run_ablation, write_reports
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
    p.add_argument("--seeds", default=None, help="comma-separated seeds: each variant once per seed, in "
                                                 "<out-dir>/seed<k>/, reported as mean ± sd with paired effects")
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
        if args.seeds is None:
            run_ablation(exp, out, cache_dir=args.cache_dir, variants=variants)
            scores = read_scores(out)
        else:
            per_seed = {}
            for seed in parse_seeds(args.seeds):
                run = get_experiment(args.experiment, **dict(overrides, seed=seed))
                seed_dir = os.path.join(out, f"seed{seed}")
                run_ablation(run, seed_dir, cache_dir=args.cache_dir, variants=variants)
                per_seed[seed] = read_scores(seed_dir)
            scores = pool_seeds(per_seed)
        written = write_reports(exp, scores, args.reports_dir, command.strip())
    except FaceMTError as e:
        print(f"ablate_tfn: error: {e}", file=sys.stderr)
        return 2
    print("reports: " + ", ".join(written))
    return 0


def parse_seeds(text: str):
    """``"0,1,2"`` -> ``[0, 1, 2]``.

    Raises:
        ConfigError: an empty list, a repeated seed or one that is not an integer.
    """
    from keras_facemt.errors import ConfigError

    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers. Received: --seeds={text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds repeats a seed. Received: --seeds={text!r}")
    return seeds


if __name__ == "__main__":
    sys.exit(main())
