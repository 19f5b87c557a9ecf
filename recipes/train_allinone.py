"""Trains and evaluates All-in-One (Ranjan et al., FG 2017): seven face tasks from one network.

With no arguments it runs the ``allinone`` experiment on SynthFace: renders the five
Table I streams (scene proposals labelled by IoU for detection, 21 landmarks with
visibility and pose; face proposals of separate populations for smile, gender, age
and identity), trains them mixed in every update with Eq. 8 (the age loss Euclidean,
then Gaussian: Eq. 6's lambda switch), and evaluates proposal AP, visible-point NME
in yaw bins, yaw error, smile / gender accuracy, age MAE and 10-fold verification of
unseen people, next to trivial baselines. Writes ``results.json``, ``results.md``
and ``model.keras`` to ``--model-dir``. The same as ``facemt train allinone``;
``--help`` lists the flags every system shares.

Examples::

    python recipes/train_allinone.py                                  # ~15 min on 2 CPU cores
    python recipes/train_allinone.py --experiment allinone_smoke --model-dir /tmp/allinone
    python recipes/train_allinone.py --steps 3000,1000
    python recipes/train_allinone.py --experiment allinone_paper --strategy mirrored   # accelerators
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_facemt.training.train_command import main as train_main  # noqa: E402


def main(argv=None) -> int:
    return train_main(argv, system="allinone", prog="train_allinone.py")


if __name__ == "__main__":
    sys.exit(main())
