"""The ``headline`` of ``results.json``: each paper metric next to its strongest trivial baseline.

Every system's run reports one entry per headline metric of its paper::

    {"metric": "ap_at_0.5", "split": "held-out scenes", "model": 0.93,
     "baseline": 0.12, "baseline_name": "fixed prior boxes", "higher_is_better": true}

The baseline is the *strongest* of the trivial predictors offered (mean shape,
majority class, chance, training mean, fixed prior, raw pixels), so a reader sees at
a glance how far above "no learning" a run is.
"""

from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

from keras_facemt.errors import ConfigError

HEADLINE_KEYS = ("metric", "split", "model", "baseline", "baseline_name", "higher_is_better")


def headline_entry(metric: str, split: str, model: float, baselines: Sequence[Tuple[str, float]],
                   higher_is_better: bool = True) -> Dict[str, object]:
    """One headline entry; the strongest of ``baselines`` (name, value) is kept.

    Raises:
        ConfigError: when no baseline is given.
    """
    options = [(str(n), float(v)) for n, v in baselines if v is not None and math.isfinite(float(v))]
    if not options:
        raise ConfigError(f"Headline metric {metric!r} needs at least one finite trivial baseline. "
                          f"Received: baselines={list(baselines)}")
    pick = max if higher_is_better else min
    name, value = pick(options, key=lambda kv: kv[1])
    return {"metric": metric, "split": split, "model": float(model), "baseline": value, "baseline_name": name,
            "higher_is_better": bool(higher_is_better)}


def beats_baseline(entry: Dict[str, object], margin: float = 0.0) -> bool:
    """Whether the model beats its baseline by more than ``margin`` (in the metric's units)."""
    if entry["higher_is_better"]:
        return entry["model"] > entry["baseline"] + margin
    return entry["model"] < entry["baseline"] - margin


def check_headline(headline, system: str) -> List[Dict[str, object]]:
    """Validates a run's headline list.

    Raises:
        ConfigError: naming the system and the malformed entry.
    """
    if not isinstance(headline, list) or not headline:
        raise ConfigError(f"System {system!r} returned no headline metrics (a non-empty list is required). "
                          f"Received: headline={headline!r}")
    for h in headline:
        missing = [k for k in HEADLINE_KEYS if not isinstance(h, dict) or k not in h]
        if missing:
            raise ConfigError(f"System {system!r}: headline entry lacks {missing}. Received: {h!r}")
    return headline
