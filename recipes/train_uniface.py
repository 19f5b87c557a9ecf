"""Trains and evaluates Uniface (Liao et al.): one network for face detection,
5-point landmarks and recognition, distilled from a recognition teacher.

With no arguments it runs the ``uniface`` experiment on synthetic multi-face scenes:
renders the data, trains the recognition teacher on aligned crops, adds the
teacher's embeddings to the scenes (``tfrecords_tools/add_teacher_embeddings.py``),
trains the primary model and the paper's ablations (Table I: A, B, C, D), and writes
``results.json`` (with its ``headline``) and ``results.md`` (AP, FDDB-style ROC,
NME, 10-fold verification with and without random crop/pad, and the comparison
table) to ``--model-dir``. The same as ``facemt train uniface``; ``--help`` lists
the flags every system shares and Uniface's own.

Real data: convert WIDER FACE (``facemt convert wider``), add a teacher's
embeddings (``python -m tfrecords_tools.add_teacher_embeddings``) and pass the
result with ``--data scenes=DIR``.

Examples::

    python recipes/train_uniface.py                                   # ~13 min on 2 CPU cores
    python recipes/train_uniface.py --experiment uniface_smoke --model-dir /tmp/uf
    python recipes/train_uniface.py --variants A,D --steps 800
    python recipes/train_uniface.py --data scenes=/data/wider_teacher --variants A
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_facemt.training.train_command import main as train_main  # noqa: E402


def main(argv=None) -> int:
    return train_main(argv, system="uniface", prog="train_uniface.py")


if __name__ == "__main__":
    sys.exit(main())
