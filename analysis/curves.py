"""Learning curves over seeds: a metric per round, smoothed, averaged over runs.

A run's curve is smoothed with a trailing moving average of ``w = max(1, int(L *
smoothing))`` rounds (NaN-aware), L being the shortest run's length (longer runs are cut
to it); the band is the half-width of the 95% t confidence interval of the mean over runs
at each round, ``t(0.975, n-1) * sd / sqrt(n)`` (0 for one run).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats


def smooth(values, width: int) -> np.ndarray:
    """Trailing moving average (NaN-aware) of ``width`` rounds; NaN where the window has no value."""
    values = np.asarray(values, dtype=float)
    out = np.empty_like(values)
    for i in range(len(values)):
        chunk = values[max(0, i - width + 1): i + 1]
        out[i] = np.nanmean(chunk) if np.isfinite(chunk).any() else np.nan
    return out


def column(rows: list[dict], key: str) -> np.ndarray:
    """A metric per round (NaN where missing)."""
    return np.array([float(row.get(key, math.nan)) for row in rows], dtype=float)


def mean_curve(runs: list[list[dict]], key: str, smoothing: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Mean over runs of ``key`` per round and the half-width of its 95% CI (see the module doc)."""
    length = min(len(r) for r in runs)
    w = max(1, int(length * smoothing))
    ys = np.array([smooth(column(r[:length], key), w) for r in runs]).reshape(len(runs), length)
    if len(runs) < 2:
        return ys[0], np.zeros(length)
    with warnings.catch_warnings():  # rounds where no run measured the metric stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        half = stats.t.ppf(0.975, len(runs) - 1) * np.nanstd(ys, axis=0, ddof=1) / math.sqrt(len(runs))
        return np.nanmean(ys, axis=0), half
