"""The plots, in one style (matplotlib, Agg backend; method i in colour ``C{i}``):

- :func:`plot_learning_curves`: a metric per round, the mean over seeds with its 95% t-CI
  band, one line per method (:func:`analysis.curves.mean_curve`).
- :func:`plot_intervals`: point estimates with their CIs, one row per method (rliable's
  IQM with its stratified bootstrap CI, or any :class:`analysis.stats.Interval`).
- :func:`plot_paired`: paired differences X - Y, one row per comparison: each seed's
  difference as a dot, the mean with its 95% t-CI, and a line at 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.curves import mean_curve  # noqa: E402
from analysis.stats import Interval, Paired  # noqa: E402

DPI = 100


def save(fig, path: str | Path) -> None:
    """Write the figure (tight layout) and close it."""
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def plot_learning_curves(ax, curves: Mapping[str, list[list[dict]]], key: str, smoothing: float = 0.05,
                         ylabel: str | None = None, title: str | None = None) -> None:
    """On ``ax``: per method (its runs' rows), the mean of ``key`` over seeds per round with its 95% CI band."""
    for c, (method, runs) in enumerate(curves.items()):
        if not runs or not min(len(r) for r in runs):
            continue
        mean, half = mean_curve(runs, key, smoothing)
        rounds = np.arange(1, len(mean) + 1)
        ax.plot(rounds, mean, color=f"C{c}", label=f"{method} (n={len(runs)})")
        ax.fill_between(rounds, mean - half, mean + half, color=f"C{c}", alpha=0.2)
    ax.set(xlabel="round", ylabel=ylabel or key, title=title or ylabel or key)


def _rows(ax, names: list[str]) -> None:
    ax.use_sticky_edges = False  # bars would pin the x-limits to their ends
    ax.margins(x=0.08)
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(-0.5, len(names) - 0.5)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)


def plot_intervals(path: str | Path, intervals: Mapping[str, Interval], xlabel: str = "IQM") -> None:
    """One row per method: the point estimate and its CI as a bar (rliable's interval-estimate style)."""
    names = list(intervals)
    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.45 * len(names)))
    for i, name in enumerate(names):
        iv = intervals[name]
        ax.barh(i, iv.hi - iv.lo, left=iv.lo, height=0.6, color=f"C{i}", alpha=0.5)
        ax.plot([iv.point, iv.point], [i - 0.3, i + 0.3], color="k", lw=1.5)
    _rows(ax, names)
    ax.set(xlabel=f"{xlabel} (95% CI)")
    save(fig, path)


def plot_paired(path: str | Path, pairs: Mapping[str, Paired], xlabel: str = "difference X - Y") -> None:
    """One row per comparison: the differences per seed, their mean and its 95% t-CI; 0 marked."""
    names = list(pairs)
    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.45 * len(names)))
    ax.axvline(0, color="0.5", lw=1, ls="--")
    for i, name in enumerate(names):
        d = pairs[name]
        ax.scatter(d.differences, np.full(d.n, i), color=f"C{i}", alpha=0.5, s=14)
        if d.n:
            ax.errorbar(d.mean, i, xerr=d.ci if np.isfinite(d.ci) else None, fmt="o", color="k", capsize=4)
    _rows(ax, names)
    ax.set(xlabel=f"{xlabel} (mean, 95% CI)")
    save(fig, path)
