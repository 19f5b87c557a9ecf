"""Verification pairs of a converted dataset (``pairs.json``, written by the LFW converter).

::

    {"num_folds": 10, "pairs_per_fold": 300,
     "pairs": [{"a": SOURCE_ID, "b": SOURCE_ID, "same": true, "fold": 0}, ...]}

``a`` and ``b`` are the records' ``source_id`` values; ``facemt evaluate`` scores an
embedding model on them with the 10-fold protocol.
"""

from __future__ import annotations

import json
import os

from keras_facemt.errors import DataError

PAIRS_FILE = "pairs.json"


def has_pairs(data_dir: str) -> bool:
    return os.path.exists(os.path.join(data_dir, PAIRS_FILE))


def read_pairs(data_dir: str):
    """Reads ``pairs.json`` of a converted LFW dataset for the verification metric.

    Returns:
        ``(a, b, same, folds)``: source ids ``[P]`` of each pair's images, ``same``
        bool ``[P]`` and ``folds`` int ``[P]``, ready for
        ``metrics.verification.verification_accuracy(scores, same, folds=folds)``.

    Raises:
        DataError: if the file is missing or malformed.
    """
    import numpy as np

    path = os.path.join(data_dir, PAIRS_FILE)
    try:
        with open(path) as f:
            obj = json.load(f)
        pairs = obj["pairs"]
        a = [p["a"] for p in pairs]
        b = [p["b"] for p in pairs]
        same = np.array([bool(p["same"]) for p in pairs])
        folds = np.array([int(p["fold"]) for p in pairs], np.int64)
    except FileNotFoundError:
        raise DataError(f"{path}: no pairs file (convert LFW with `facemt convert lfw`).") from None
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: malformed pairs file ({e}).") from None
    return a, b, same, folds
