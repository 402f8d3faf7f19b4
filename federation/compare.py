"""Compare runs: one table and one plot across strategies and seeds."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from federation.results import plt, read_metrics, smooth

COLUMNS = (("collective_return_last", "collective"), ("cv_last", "CV"), ("jain_last", "Jain"),
           ("min_return_last", "min"), ("participants_return_last", "participants"),
           ("nonparticipants_return_last", "non-participants"), ("collective_return_avg", "collective (avg)"),
           ("cv_avg", "CV (avg)"))
#: shown when some run has them
OPTIONAL_COLUMNS = (("delegation_rate_last", "delegation"), ("planner_return_last", "planner"))


def mean_sd_ci(values: list[float]) -> tuple[float, float, float, int]:
    """Mean, sample standard deviation, half-width of the 95% confidence interval of the
    mean (Student's t with n-1 degrees of freedom) and n, over the finite values."""
    arr = np.array([v for v in values if v is not None and math.isfinite(float(v))], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan, math.nan, 0
    if arr.size == 1:
        return float(arr[0]), math.nan, math.nan, 1
    sd = float(arr.std(ddof=1))
    return float(arr.mean()), sd, float(stats.t.ppf(0.975, arr.size - 1) * sd / math.sqrt(arr.size)), int(arr.size)


def last_quarter(rows: list[dict], key: str) -> float:
    """Mean of ``key`` over the last quarter of a run's rows (at least one), where it was
    measured (NaN if nowhere): what the studies report of a run."""
    vals = [r.get(key, math.nan) for r in rows[-max(1, len(rows) // 4):]]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def fmt_mean_std(values: list[float]) -> str:
    """"mean ± sd [95% CI ± h]" of the finite values (sample sd; just the mean for one, "–" for none)."""
    mean, sd, half, n = mean_sd_ci(values)
    if n == 0:
        return "–"
    return f"{mean:.3g}" if n == 1 else f"{mean:.3g} ± {sd:.2g} [±{half:.2g}]"


def format_summary(summaries: list[dict]) -> str:
    """A Markdown table of summaries grouped by strategy (mean ± std over seeds)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for s in summaries:
        groups[s.get("label", s["strategy"])].append(s)
    columns = COLUMNS + tuple(c for c in OPTIONAL_COLUMNS if any(c[0] in s for s in summaries))
    head = "| method | seeds | " + " | ".join(label for _, label in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 2)]
    for strategy, runs in groups.items():
        seeds = ",".join(str(r["seed"]) for r in runs)
        cells = [fmt_mean_std([r.get(key, math.nan) for r in runs]) for key, _ in columns]
        lines.append(f"| {strategy} | {seeds} | " + " | ".join(cells) + " |")
    last = summaries[0].get("last_rounds", "?")
    text = "\n".join(lines) + (f"\n\nCells: mean ± sample std over seeds [± half-width of the 95% confidence interval "
                                f"of the mean, Student's t]. Columns without '(avg)' average the last {last} rounds; "
                                "'(avg)' averages all rounds.")
    incidents = [f"{s.get('label', s['strategy'])} seed {s['seed']}: {len(s['events'])}" for s in summaries
                 if s.get("events")]
    if incidents:
        text += ("\n\nWarning: agents failed or stayed silent (events per run: " + "; ".join(incidents)
                 + "); the rounds they missed are in each run's summary.json.")
    return text


def compare(run_dirs: list[Path], out: Path) -> str:
    """Write OUT/comparison.csv, OUT/comparison.md and OUT/comparison.png; return the table."""
    out.mkdir(parents=True, exist_ok=True)
    summaries = [json.loads((d / "summary.json").read_text()) for d in run_dirs]
    keys = [k for k in dict.fromkeys(k for s in summaries for k in s) if k != "events"]
    with (out / "comparison.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["run_dir"] + keys, extrasaction="ignore")
        writer.writeheader()
        for d, s in zip(run_dirs, summaries):
            writer.writerow({"run_dir": str(d), **s})
    table = format_summary(summaries)
    (out / "comparison.md").write_text(table + "\n")
    plot_comparison(run_dirs, summaries, out / "comparison.png")
    return table


def mean_curve(runs: list[list[dict]], key: str, smoothing: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Mean over runs of ``key`` and the half-width of its 95% confidence interval (0 for
    one run), each run smoothed over ``smoothing`` of its length."""
    length = min(len(r) for r in runs)
    w = max(1, int(length * smoothing))
    ys = np.array([smooth(np.array([row.get(key, math.nan) for row in r[:length]], dtype=float), w) for r in runs])
    if len(runs) < 2:
        return ys[0], np.zeros(length)
    half = stats.t.ppf(0.975, len(runs) - 1) * np.nanstd(ys, axis=0, ddof=1) / math.sqrt(len(runs))
    return np.nanmean(ys, axis=0), half


def plot_comparison(run_dirs: list[Path], summaries: list[dict], path: Path) -> None:
    """Collective return and CV per strategy: mean over seeds, shaded: 95% confidence interval."""
    curves: dict[str, list[list[dict]]] = defaultdict(list)
    for d, s in zip(run_dirs, summaries):
        curves[s.get("label", s["strategy"])].append(read_metrics(d))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for c, (strategy, runs) in enumerate(curves.items()):
        for ax, key in zip(axes, ("collective_return", "cv")):
            mean, half = mean_curve(runs, key)
            rounds = np.arange(1, len(mean) + 1)
            ax.plot(rounds, mean, color=f"C{c}", label=f"{strategy} (n={len(runs)})")
            ax.fill_between(rounds, mean - half, mean + half, color=f"C{c}", alpha=0.2)
    axes[0].set(xlabel="round", ylabel="collective return", title="collective return")
    axes[1].set(xlabel="round", ylabel="CV", title="coefficient of variation")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
