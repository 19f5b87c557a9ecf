"""Trains iFAN (Li et al., MM'17) by cross-dataset hybrid training (Algorithm 1).

With no arguments it runs the ``ifan_3t`` experiment: three disjoint SynthFace
datasets in three domains (parsing, 5-point landmarks, emotion) are rendered into a
cache on first use, the 3-task model with ITER=2 is pre-trained task by task and
fine-tuned with tasks alternating batch by batch, every task is evaluated at every
interaction iteration on held-out data, and ``--model-dir`` (default
``runs/ifan_3t``) receives checkpoints, TensorBoard logs (``logs/``),
``results.json`` (with its ``headline``), ``results.md`` (the paper's Tables 1-3),
``curves.png`` (Fig. 7) and ``predictions.png``. The same as ``facemt train ifan``;
``--help`` lists the flags every system shares and iFAN's own.

Real data: convert each dataset with ``tfrecords_tools`` (Helen for parsing, MTFL
for landmarks, BNU-LSVED for emotion; each output directory needs ``train`` and
``test`` splits) and pass them per task::

    python recipes/train_ifan.py --experiment ifan_3t_paper \\
        --data parsing=/data/helen_tfr --data landmarks=/data/mtfl_tfr \\
        --data emotion=/data/bnu_tfr --model-dir runs/ifan_real

Examples::

    python recipes/train_ifan.py                                  # the main job
    python recipes/train_ifan.py --experiment ifan_3t_smoke --model-dir /tmp/smoke
    python recipes/train_ifan.py --tasks parsing,landmarks --iter 1
    python recipes/train_ifan.py --resume                         # continue a killed run
    python recipes/train_ifan.py --deterministic                  # a repeatable run (same machine)
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_facemt.training.train_command import main as train_main  # noqa: E402


def main(argv=None) -> int:
    return train_main(argv, system="ifan", prog="train_ifan.py")


if __name__ == "__main__":
    sys.exit(main())
