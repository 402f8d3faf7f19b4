"""Statistics of final values over seeds, for one method or a pair of methods.

- :func:`mean_sd_ci`: mean, sample standard deviation (ddof = 1) and the half-width of the
  95% confidence interval of the mean, ``t(0.975, n-1) * sd / sqrt(n)`` (Student's t).
- :func:`iqm`: rliable's interquartile mean (the 25%-trimmed mean: the mean of the middle
  half of the scores, ``rliable.metrics.aggregate_iqm``) with its stratified-bootstrap 95%
  percentile CI (``rliable.library.get_interval_estimates``).
- :func:`probability_of_improvement`: rliable's P(X > Y), the probability that a run of X
  scores more than a run of Y (ties count one half; Mann-Whitney U / (n_x n_y)), with its
  bootstrap 95% CI (X and Y resampled independently).
- :func:`paired_differences`: X - Y matched by seed: mean, sd, t-CI half-width and the
  paired (two-sided) t-test p-value.

Bootstraps use ``reps`` replications (default 2000), seeded with ``seed`` afresh for each
estimate, so the same scores and seed give the same interval (rliable 1.2 draws from NumPy's
global generator whatever random_state it is given, so that generator is seeded for the
call and then restored). Values
that are not finite (NaN: a run where the metric was not measured) are left out.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from rliable import library, metrics
from scipy import stats

REPS = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class MeanSD:
    """Mean, sample sd, half-width of the t confidence interval of the mean, and n (finite values)."""

    mean: float
    sd: float
    ci: float
    n: int


def finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """The finite values, as a float array (None, NaN and ±inf left out)."""
    arr = np.array([math.nan if v is None else float(v) for v in np.ravel(np.asarray(values, dtype=object))],
                   dtype=float)
    return arr[np.isfinite(arr)]


def t_half_width(sd: float, n: int, confidence: float = CONFIDENCE) -> float:
    """``t((1+confidence)/2, n-1) * sd / sqrt(n)``: the half-width of the t-CI of a mean (NaN for n < 2)."""
    return float(stats.t.ppf((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)) if n >= 2 else math.nan


def mean_sd_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> MeanSD:
    """Mean, sample sd and t-CI half-width over the finite values; sd and ci are NaN for
    one value, everything NaN (n = 0) for none."""
    arr = finite(values)
    if arr.size == 0:
        return MeanSD(math.nan, math.nan, math.nan, 0)
    if arr.size == 1:
        return MeanSD(float(arr[0]), math.nan, math.nan, 1)
    sd = float(arr.std(ddof=1))
    return MeanSD(float(arr.mean()), sd, t_half_width(sd, arr.size, confidence), int(arr.size))


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval [lo, hi] (all NaN when there were no scores)."""

    point: float
    lo: float
    hi: float


NO_INTERVAL = Interval(math.nan, math.nan, math.nan)


def _runs_by_tasks(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Scores as rliable's (runs x tasks) matrix: a 1-D sequence (one score per seed) is
    one task; of a 2-D matrix, runs with a non-finite score are left out."""
    arr = np.asarray(scores, dtype=float)
    if arr.ndim == 1:
        return finite(arr).reshape(-1, 1)
    if arr.ndim == 2:
        return arr[np.isfinite(arr).all(axis=1)]
    raise ValueError(f"scores must be 1-D (seeds) or 2-D (runs x tasks), not of shape {arr.shape}")


def _bootstrap(score: np.ndarray | list[np.ndarray], func, reps: int, seed: int, confidence: float) -> Interval:
    # rliable 1.2's stratified bootstraps draw their indices from NumPy's global generator
    # (np.random.choice), not from the random_state they are given: seed that one for the
    # call and put its state back afterwards.
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():  # arch deprecates random_state=RandomState, which rliable passes
            warnings.filterwarnings("ignore", message=".*random_state.*", category=FutureWarning)
            points, intervals = library.get_interval_estimates(
                {"x": score}, func, reps=reps, confidence_interval_size=confidence,
                random_state=np.random.RandomState(seed))
    finally:
        np.random.set_state(state)
    lo, hi = np.ravel(intervals["x"])
    return Interval(float(np.ravel(points["x"])[0]), float(lo), float(hi))


def iqm(scores: Sequence[float] | np.ndarray, reps: int = REPS, seed: int = 0,
        confidence: float = CONFIDENCE) -> Interval:
    """rliable's interquartile mean of the scores (one per seed, or runs x tasks) with its
    stratified-bootstrap CI. One run: the score itself, with the interval [score, score]
    (a bootstrap of one value); none: NaN."""
    arr = _runs_by_tasks(scores)
    if arr.shape[0] == 0:
        return NO_INTERVAL
    if arr.shape[0] == 1:
        point = float(metrics.aggregate_iqm(arr))
        return Interval(point, point, point)
    return _bootstrap(arr, lambda s: np.array([metrics.aggregate_iqm(s)]), reps, seed, confidence)


def iqms(scores: Mapping[str, Sequence[float]], reps: int = REPS, seed: int = 0,
         confidence: float = CONFIDENCE) -> dict[str, Interval]:
    """:func:`iqm` of each method (each with its own ``RandomState(seed)``, so a method's
    interval does not depend on which others are there)."""
    return {name: iqm(s, reps, seed, confidence) for name, s in scores.items()}


def probability_of_improvement(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
                               reps: int = REPS, seed: int = 0, confidence: float = CONFIDENCE) -> Interval:
    """rliable's P(X > Y) (ties one half; averaged over tasks) with its bootstrap CI, X and Y
    resampled independently. NaN when either has no finite score."""
    ax, ay = _runs_by_tasks(x), _runs_by_tasks(y)
    if ax.shape[0] == 0 or ay.shape[0] == 0:
        return NO_INTERVAL
    if ax.shape[1] != ay.shape[1]:
        raise ValueError(f"X and Y have different numbers of tasks: {ax.shape[1]} and {ay.shape[1]}")
    return _bootstrap([ax, ay], lambda a, b: np.array([metrics.probability_of_improvement(a, b)]),
                      reps, seed, confidence)


@dataclass(frozen=True)
class Paired:
    """X - Y over the seeds both have (finite): the differences, their mean, sample sd, the
    half-width of the t-CI of the mean, the paired t-test's two-sided p-value, and a note
    when a guard applied (zero variance, fewer than two pairs)."""

    seeds: tuple
    differences: tuple[float, ...]
    mean: float
    sd: float
    ci: float
    p: float
    note: str = ""

    @property
    def n(self) -> int:
        return len(self.differences)


def paired_differences(x: Mapping, y: Mapping, confidence: float = CONFIDENCE) -> Paired:
    """X - Y matched by seed (``x`` and ``y`` map seed -> final value; seeds that only one
    has, or where either value is not finite, are left out).

    Guards: no pair gives NaN everywhere; one pair gives its difference as the mean and NaN
    sd, ci and p; when all differences are equal (zero variance, where the t statistic is
    undefined) sd = ci = 0 and p = 0 if their mean is nonzero, 1 if it is zero, and the note
    says so. Otherwise p is the two-sided paired t-test (``scipy.stats.ttest_rel``)."""
    seeds = tuple(s for s in x if s in y and np.isfinite(float(x[s])) and np.isfinite(float(y[s])))
    xs = np.array([float(x[s]) for s in seeds])
    ys = np.array([float(y[s]) for s in seeds])
    d = xs - ys
    diffs = tuple(float(v) for v in d)
    if d.size == 0:
        return Paired(seeds, diffs, math.nan, math.nan, math.nan, math.nan, "no seed in common")
    if d.size == 1:
        return Paired(seeds, diffs, diffs[0], math.nan, math.nan, math.nan, "one pair: no sd, CI or test")
    mean = float(d.mean())
    if np.all(d == d[0]):
        p = 0.0 if mean != 0 else 1.0
        return Paired(seeds, diffs, mean, 0.0, 0.0, p,
                      f"all {d.size} differences equal {diffs[0]:.3g}: zero variance, no t-test; p set to {p:g}")
    sd = float(d.std(ddof=1))
    p = float(stats.ttest_rel(xs, ys).pvalue)
    return Paired(seeds, diffs, mean, sd, t_half_width(sd, d.size, confidence), p)
