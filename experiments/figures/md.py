"""The mechanism-design paper's figures ([MD] Figs. 3, 4, 8, 9) from the runs of
experiments/campaigns/md.toml:

- ``fig3_escape_room.png``: welfare per round of MD, IQL and CEN on Escape Room (5, 3),
  (8, 5), (10, 6), the optimum dotted;
- ``fig4_bidding_bandwidth.png``: the same on bandwidth (7, 3), (8, 4) and bidding, and
  under the bidding panel the number of bidders per step;
- ``fig8_mrp_ablation.png``: MD against MD without MRP on Escape Room (5, 3) (IQL and CEN
  for reference);
- ``fig9_fairness.png``: Jain's index and welfare (each run's final value, the mean over
  the last quarter of its rounds) against the fairness weight λ on Escape Room (5, 3):
  mean over seeds with the 95% t-CI; λ is read from the runs' configurations (every
  method whose strategy is ``md``, the ``md`` method being λ = 0).

Curves: the mean over seeds of each run's curve, smoothed over 10% of the rounds, with
its 95% t-CI band (analysis.plots.plot_learning_curves; a count's band is cut at 0). A
panel whose scenario has no finished run says so.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from analysis.curves import mean_curve
from analysis.plots import plot_learning_curves, plt, save
from analysis.stats import mean_sd_ci
from analysis.window import final_value

WELFARE = "collective_return"
BIDDERS = "bidders_per_step"
SMOOTHING = 0.1
XLABEL = "round (one episode in each of 16 copies)"
BASELINES = ("md", "iql", "cen")
#: file -> (scenarios, methods) of the learning-curve figures
CURVES = {
    "fig3_escape_room.png": (("er-5-3", "er-8-5", "er-10-6"), BASELINES),
    "fig4_bidding_bandwidth.png": (("bw-7-3", "bw-8-4", "bidding"), BASELINES),
    "fig8_mrp_ablation.png": (("er-5-3",), ("md", "md-nomrp", "iql", "cen")),
}
FAIRNESS = ("fig9_fairness.png", "er-5-3")
EXTRA_ROW = {"fig4_bidding_bandwidth.png": (BIDDERS, "bidders per step")}


def _rows(runs: dict, scenario: str, method: str, metric: str) -> list[list[dict]]:
    """The rows of the finished runs of (scenario, method) that measure ``metric``, by seed."""
    return [runs[k].rows for k in sorted(runs, key=lambda k: k[2])
            if k[:2] == (scenario, method) and runs[k].rows and metric in runs[k].rows[-1]]


def _title(campaign, scenario: str) -> str:
    return campaign.label(scenario) if scenario in campaign.scenarios else scenario


def _label(campaign, method: str) -> str:
    return campaign.label(method) if method in campaign.methods else method


def optimum(runs: dict, scenario: str) -> float:
    """The scenario's optimal welfare as its runs report it (``optimal_welfare`` of a run's
    last round), NaN when the game has none."""
    for key in sorted(runs):
        if key[0] == scenario and runs[key].rows:
            value = runs[key].rows[-1].get("optimal_welfare", math.nan)
            if math.isfinite(value):
                return float(value)
    return math.nan


def _count_curves(ax, curves: dict[str, list[list[dict]]], key: str, ylabel: str) -> None:
    """Like plot_learning_curves, the band cut at 0 (a count is never negative)."""
    for c, (label, rows) in enumerate(curves.items()):
        if not rows:
            continue
        mean, half = mean_curve(rows, key, SMOOTHING)
        x = np.arange(1, len(mean) + 1)
        ax.plot(x, mean, color=f"C{c}", label=f"{label} (n={len(rows)})")
        ax.fill_between(x, np.maximum(mean - half, 0.0), mean + half, color=f"C{c}", alpha=0.2)
    ax.set(ylabel=ylabel)


def plot_curves(campaign, runs: dict, path: Path, scenarios, methods) -> None:
    """Welfare per round, one panel per scenario, one line per method (and the extra row of
    ``EXTRA_ROW`` for the file, drawn where the game measures it)."""
    extra = EXTRA_ROW.get(path.name)
    rows_of_panels = [(WELFARE, "welfare")] + ([extra] if extra else [])
    fig, axes = plt.subplots(len(rows_of_panels), len(scenarios), figsize=(5 * len(scenarios), 4 * len(rows_of_panels)),
                             squeeze=False)
    for col, scenario in enumerate(scenarios):
        for row, (key, ylabel) in enumerate(rows_of_panels):
            ax = axes[row][col]
            curves = {_label(campaign, m): _rows(runs, scenario, m, key) for m in methods}
            if not any(curves.values()):  # a game without this quantity, or a scenario not run yet
                ax.set_axis_off()
                if key == WELFARE:
                    ax.text(0.5, 0.5, f"{_title(campaign, scenario)}: not run", ha="center", transform=ax.transAxes)
                continue
            if key == WELFARE:
                plot_learning_curves(ax, curves, key, smoothing=SMOOTHING, ylabel=ylabel)
                best = optimum(runs, scenario)
                if math.isfinite(best):
                    ax.axhline(best, color="k", ls=":", lw=1, label="optimum")
            else:
                _count_curves(ax, curves, key, ylabel)
            ax.set(title=_title(campaign, scenario), xlabel=XLABEL)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    save(fig, path)


#: MD's settings that make another method than the λ sweep's (md.toml's md-paper: Algorithm 1
#: as printed), with the project's defaults; a run with another value is not on the sweep
ALGORITHM_SETTINGS = {"exact_max": "off", "reshape_time": "play", "denominator": "heads"}


def md_lambda(config: dict) -> float | None:
    """λ of a run of the λ sweep: strategy ``md`` with the project's reading of the algorithm
    (:data:`ALGORITHM_SETTINGS`); None for any other run. Read from its config.json (nested by
    group under the fields' or the flat keys' names, or flat)."""
    if config.get("strategy") != "md":
        return None
    group = config.get("md", {})
    for name, default in ALGORITHM_SETTINGS.items():
        if group.get(name, group.get(f"md_{name}", config.get(f"md_{name}", default))) != default:
            return None
    value = group.get("lambda_", group.get("md_lambda", config.get("md_lambda", 0.0)))
    return float(value)


def by_lambda(runs: dict, scenario: str) -> dict[float, list[list[dict]]]:
    """The finished md runs of ``scenario`` grouped by their λ (ascending)."""
    groups: dict[float, list[list[dict]]] = {}
    for key in sorted(runs, key=lambda k: (k[1], k[2])):
        lam = md_lambda(runs[key].config)
        if key[0] == scenario and lam is not None and runs[key].rows:
            groups.setdefault(lam, []).append(runs[key].rows)
    return dict(sorted(groups.items()))


def plot_fairness(campaign, runs: dict, path: Path, scenario: str) -> None:
    """Jain's index and welfare (final values) against λ: mean over seeds and its 95% t-CI."""
    groups = by_lambda(runs, scenario)
    title = _title(campaign, scenario)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, ylabel in zip(axes, ("jain", WELFARE), ("Jain's index", "welfare")):
        xs, means, halves = [], [], []
        for lam, rows in groups.items():
            s = mean_sd_ci([final_value(r, key).value for r in rows])
            xs.append(lam), means.append(s.mean), halves.append(0.0 if math.isnan(s.ci) else s.ci)
        ax.errorbar(xs, means, yerr=halves, marker="o", capsize=4)
        ax.set(xlabel="fairness weight λ", ylabel=ylabel, title=f"{title}: {ylabel} against λ")
    save(fig, path)


def figures(campaign, runs: dict, out: Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (scenarios, methods) in CURVES.items():
        if any(k[0] in scenarios and k[1] in methods for k in runs):
            plot_curves(campaign, runs, out / name, scenarios, methods)
            written.append(out / name)
    name, scenario = FAIRNESS
    if len(by_lambda(runs, scenario)) > 1:
        plot_fairness(campaign, runs, out / name, scenario)
        written.append(out / name)
    return written
