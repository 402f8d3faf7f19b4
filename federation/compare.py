"""Compare runs: one table and one plot across strategies and seeds.

The final values and statistics are analysis/'s (the one definition of a run's final value
is :mod:`analysis.window`); this module lays them out for run_sim.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from analysis import curves, plots, stats, tables, window
from analysis.plots import plt
from analysis.runs import Run, read_run

COLUMNS = (("collective_return_last", "collective"), ("cv_last", "CV"), ("jain_last", "Jain"),
           ("min_return_last", "min"), ("participants_return_last", "participants"),
           ("nonparticipants_return_last", "non-participants"), ("collective_return_avg", "collective (avg)"),
           ("cv_avg", "CV (avg)"))
#: shown when some run has them
OPTIONAL_COLUMNS = (("delegation_rate_last", "delegation"), ("planner_return_last", "planner"))
#: the column whose interquartile mean (with its bootstrap CI) the table shows too
IQM_COLUMN = ("collective_return_last", "collective")


def mean_sd_ci(values: list[float]) -> tuple[float, float, float, int]:
    """Mean, sample standard deviation, half-width of the 95% confidence interval of the
    mean (Student's t with n-1 degrees of freedom) and n, over the finite values
    (:func:`analysis.stats.mean_sd_ci`)."""
    s = stats.mean_sd_ci(values)
    return s.mean, s.sd, s.ci, s.n


def last_quarter(rows: list[dict], key: str) -> float:
    """A run's final value of ``key``: its mean over the last quarter of the rounds, where it
    was measured (NaN if nowhere): what the studies report of a run (analysis.window's default)."""
    return window.final_value(rows, key).value


def fmt_mean_std(values: list[float]) -> str:
    """"mean ± sd [95% CI ± h]" of the finite values (sample sd; just the mean for one, "–" for none)."""
    return tables.fmt_mean_sd(values)


def format_summary(summaries: list[dict]) -> str:
    """A Markdown table of summaries grouped by strategy (mean ± std over seeds)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for s in summaries:
        groups[s.get("label", s["strategy"])].append(s)
    columns = COLUMNS + tuple(c for c in OPTIONAL_COLUMNS if any(c[0] in s for s in summaries))
    text = tables.markdown(*tables.method_table(groups, columns, iqm_of=IQM_COLUMN))
    last = (f"are each run's final value, its mean over {summaries[0]['final_window']}" if "final_window" in summaries[0]
            else f"average the last {summaries[0].get('last_rounds', '?')} rounds")
    text += (f"\n\nCells: mean ± sample std over seeds [± half-width of the 95% confidence interval "
             f"of the mean, Student's t]. Columns without '(avg)' {last}; '(avg)' averages all rounds. "
             f"'{IQM_COLUMN[1]} IQM': rliable's interquartile mean over seeds [95% stratified bootstrap CI, "
             f"{stats.REPS} resamples, seed 0].")
    incidents = [f"{s.get('label', s['strategy'])} seed {s['seed']}: {len(s['events'])}" for s in summaries
                 if s.get("events")]
    if incidents:
        text += ("\n\nWarning: agents failed or stayed silent (events per run: " + "; ".join(incidents)
                 + "); the rounds they missed are in each run's summary.json.")
    return text


def final_summary(run: Run, final: str | None = None) -> dict:
    """A run's summary.json with its final values taken from metrics.csv by analysis.window:
    each ``<metric>_last`` is the metric's mean over the window ``final`` (default: the last
    quarter of the rounds), each ``<metric>_avg`` its mean over all rounds; ``last_rounds``,
    ``final_window`` and ``final_rounds`` say which rounds. (summary.json's own ``_last``
    values average the last tenth of the rounds.) Without rows, the summary as it is."""
    if not run.rows:
        return dict(run.summary)
    win = window.parse_window(final)
    measured = {k for row in run.rows for k in row}
    out = dict(run.summary)
    for key in dict.fromkeys([*run.summary, *(k for k, _ in COLUMNS + OPTIONAL_COLUMNS)]):
        metric, _, kind = key.rpartition("_")
        if kind in ("last", "avg") and metric in measured:
            out[key] = window.final_value(run.rows, metric, win if kind == "last" else "all").value
    span = win.span(run.rows)
    return out | {"last_rounds": len(win.indices(run.rows)), "final_window": win.describe(),
                  "final_rounds": f"{span[0]}-{span[1]}" if span else ""}


def compare(run_dirs: list[Path], out: Path, final: str | None = None) -> str:
    """Write OUT/comparison.csv, OUT/comparison.md and OUT/comparison.png; return the table.
    Each run's final values are analysis.window's over the window ``final`` (default: the last
    quarter of its rounds); see :func:`final_summary`."""
    out.mkdir(parents=True, exist_ok=True)
    runs = [read_run(d) for d in run_dirs]
    summaries = [final_summary(r, final) for r in runs]
    keys = [k for k in dict.fromkeys(k for s in summaries for k in s) if k != "events"]
    with (out / "comparison.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["run_dir"] + keys, extrasaction="ignore")
        writer.writeheader()
        for d, s in zip(run_dirs, summaries):
            writer.writerow({"run_dir": str(d), **s})
    table = format_summary(summaries)
    (out / "comparison.md").write_text(table + "\n")
    plot_comparison(run_dirs, summaries, out / "comparison.png", [r.rows for r in runs])
    return table


def mean_curve(runs: list[list[dict]], key: str, smoothing: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Mean over runs of ``key`` and the half-width of its 95% confidence interval (0 for
    one run), each run smoothed over ``smoothing`` of its length (:func:`analysis.curves.mean_curve`)."""
    return curves.mean_curve(runs, key, smoothing)


def plot_comparison(run_dirs: list[Path], summaries: list[dict], path: Path,
                    rows: list[list[dict]] | None = None) -> None:
    """Collective return and CV per strategy: mean over seeds, shaded: 95% confidence interval
    (analysis.plots' learning curves). ``rows``: the runs' rows, if already read."""
    by_method: dict[str, list[list[dict]]] = defaultdict(list)
    for i, (d, s) in enumerate(zip(run_dirs, summaries)):
        by_method[s.get("label", s["strategy"])].append(rows[i] if rows is not None else read_run(d).rows)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    plots.plot_learning_curves(axes[0], by_method, "collective_return", ylabel="collective return")
    plots.plot_learning_curves(axes[1], by_method, "cv", ylabel="CV", title="coefficient of variation")
    axes[0].legend()
    plots.save(fig, path)
