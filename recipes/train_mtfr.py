"""Trains and evaluates MTFR (Wang et al., ICMR 2017): face recognition with attribute supervision.

With no arguments it runs the ``mtfr`` experiment on SynthFace: renders aligned
112x96-template crops of the training people (identity + 7 attribute labels, noisy
per image and repaired by the per-identity vote), trains stage 1 (identity softmax,
lambda1 = 0) and stage 2 (Eq. 2 with lambda1 = 0.1) with SGD and step decay, and
evaluates on people never seen in training: LFW-style 10-fold verification,
MegaFace-style rank-1 / CMC against 10,000 distractors, TAR at FAR 1e-3 / 1e-4 and
per-attribute accuracy, next to trivial baselines. Writes ``results.json``,
``results.md`` and ``model.keras`` to ``--model-dir``. The same as
``facemt train mtfr``; ``--help`` lists the flags every system shares.

Examples::

    python recipes/train_mtfr.py                                  # ~12 min on 2 CPU cores
    python recipes/train_mtfr.py --experiment mtfr_smoke --model-dir /tmp/mtfr
    python recipes/train_mtfr.py --data train=/data/casia_tfr     # converted identity folders + CelebA labels
    python recipes/train_mtfr.py --experiment mtfr_paper --strategy mirrored   # accelerators
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_facemt.training.train_command import main as train_main  # noqa: E402


def main(argv=None) -> int:
    return train_main(argv, system="mtfr", prog="train_mtfr.py")


if __name__ == "__main__":
    sys.exit(main())
