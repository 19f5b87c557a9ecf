"""Per-sample errors averaged within bins of a covariate (AFLW's |yaw| bins, Table II layout).

The AFLW protocol of Zhu et al. (CVPR 2016) and All-in-One's Table II report the
landmark NME in three bins of absolute yaw, [0, 30), [30, 60), [60, 90], then the
mean and the standard deviation of the three bin means: a method that is good only
on frontal faces shows a large spread.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

from keras_facemt.errors import ConfigError

YAW_BINS = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0))


def bin_label(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}"


def error_by_bins(errors, covariate, bins: Sequence[Tuple[float, float]] = YAW_BINS,
                  absolute: bool = True) -> Dict[str, object]:
    """Mean error per bin of ``covariate``, and the mean and std of the bin means.

    Each bin is ``[lo, hi)`` except the last, which is ``[lo, hi]``. Samples with a
    NaN error or outside every bin are left out.

    Args:
        errors: ``[N]`` per-sample errors (e.g. per-face NME).
        covariate: ``[N]`` the binned quantity (e.g. yaw in degrees).
        bins: ascending ``(lo, hi)`` pairs.
        absolute: bin ``|covariate|``.

    Returns:
        ``bins`` {``"lo-hi"``: {``count``, ``mean`` (NaN when empty)}},
        ``mean`` and ``std`` over the non-empty bins' means (Table II's last two
        columns), ``min_count``.

    Raises:
        ConfigError: for mismatched shapes or bins that are empty or not ascending.
    """
    e = np.asarray(errors, np.float64).reshape(-1)
    c = np.asarray(covariate, np.float64).reshape(-1)
    if e.shape != c.shape:
        raise ConfigError(f"errors and covariate need one value per sample. Received: {e.shape} and {c.shape}")
    if not bins or any(hi <= lo for lo, hi in bins) or any(b[0] < a[1] for a, b in zip(bins, bins[1:])):
        raise ConfigError(f"bins must be non-empty ascending (lo, hi) pairs. Received: bins={list(bins)}")
    if absolute:
        c = np.abs(c)
    out, means = {}, []
    for i, (lo, hi) in enumerate(bins):
        upper = c <= hi if i == len(bins) - 1 else c < hi
        sel = (c >= lo) & upper & ~np.isnan(e)
        mean = float(e[sel].mean()) if sel.any() else float("nan")
        out[bin_label(lo, hi)] = {"count": int(sel.sum()), "mean": mean}
        if sel.any():
            means.append(mean)
    return {"bins": out, "mean": float(np.mean(means)) if means else float("nan"),
            "std": float(np.std(means)) if means else float("nan"),
            "min_count": int(min(b["count"] for b in out.values()))}
