"""Trains and evaluates TFN (Lin et al., IEEE TCYB 2019): face detection, 68 landmarks, age, gender, ethnicity.

With no arguments it runs the ``tfn`` experiment on SynthFace scenes: renders
192x192 scenes with boxes, 68 ibug points, age, gender and ethnicity; trains the
multilayer-RPN / feature-fused-block network through the paper's four-stage
alternating scheme (all tasks; RPN + detection; landmark subnet; attribute subnet)
with step decay; and evaluates the deployable graph: detection AP@0.5, matched-face
NME with CED AUC / failure rate, age MAE, gender and ethnicity accuracy, next to
trivial baselines. Writes ``results.json``, ``results.md`` and ``model.keras`` to
``--model-dir``. The same as ``facemt train tfn``; ``--help`` lists the flags every
system shares and TFN's own (``--steps``, ``--partial-labels``).

Examples::

    python recipes/train_tfn.py                                   # ~15 min on 2 CPU cores
    python recipes/train_tfn.py --experiment tfn_smoke --model-dir /tmp/tfn
    python recipes/train_tfn.py --partial-labels                  # JFA-like missing labels
    python recipes/train_tfn.py --experiment tfn_paper --strategy mirrored   # accelerators
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_facemt.training.train_command import main as train_main  # noqa: E402


def main(argv=None) -> int:
    return train_main(argv, system="tfn", prog="train_tfn.py")


if __name__ == "__main__":
    sys.exit(main())
