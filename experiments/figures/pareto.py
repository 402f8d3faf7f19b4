"""The Pareto mediator's figures (experiments/campaigns/pareto.toml; McAleer et al., Figs. 3-5).

- ``fig3.png``, ``fig4.png``, ``fig5.png``: the reward per agent (top) and the delegation
  rate (bottom) against the figure's x (players and actions in random normal-form games,
  agents in the matching game, a in the restaurant game), one line per method (original
  C0, Pareto C1, Punishing C3): the mean over seeds of each run's final value with its 95%
  t-CI (analysis.stats.mean_sd_ci); fig5 adds the central planner's and the full-information
  optimum's reward per agent (``planner_return`` / N, ``oracle_return`` / N of the Pareto runs)
  as reference lines.
- ``cleanup.png``: Cleanup's learning curves (reward per agent, lowest reward, delegation
  rate), mean over seeds with the 95% t-CI band (analysis.curves.mean_curve), one colour per
  method of the scenario.
- ``planner.md``: the restaurant game against the central planner and the optimum, per agent,
  paired by seed within the same run (Pareto's reward minus the planner's): Fig. 5's claim,
  which a ``[[claims]]`` entry cannot state (its B would be another metric of the same run).

A run's final value is analysis.window's, over the campaign's ``[report] window`` (the last
10 rounds). Only what has finished runs is drawn; a figure none of whose scenarios has runs
is not written.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from analysis import stats, tables
from analysis.curves import mean_curve
from analysis.plots import plt
from analysis.window import final_value

WINDOW = "last:10"
DPI = 110
#: the sweeps: figure -> panels (x label, {scenario: x})
PANELS = {
    "fig3": [("players (2 actions)", {"nf-2p-2a": 2, "nf-3p-2a": 3, "nf-4p-2a": 4, "nf-5p-2a": 5}),
             ("actions (2 players)", {"nf-2p-2a": 2, "nf-2p-3a": 3, "nf-2p-5a": 5, "nf-2p-10a": 10})],
    "fig4": [("agents", {"matching-4": 4, "matching-8": 8, "matching-12": 12, "matching-16": 16})],
    "fig5": [("a (weight of the private utility)", {"restaurant-a0": 0, "restaurant-a2": 2})],
}
SWEEP_METHODS = (("independent", "C0"), ("pareto", "C1"), ("punishing", "C3"))
REFERENCES = (("planner", "planner_return", "--"), ("oracle", "oracle_return", ":"))
CLEANUP = "cleanup"
CLEANUP_KEYS = ("mean_return", "min_return", "delegation_rate")


def window_of(campaign) -> str:
    return (campaign.tables.get("report") or {}).get("window") or WINDOW


def finals(runs: dict, scenario: str, method: str, metric: str, window: str) -> dict[int, float]:
    """seed -> the run's final value of ``metric`` (finished runs of (scenario, method))."""
    return {seed: final_value(run.rows, metric, window).value
            for (sc, me, seed), run in sorted(runs.items(), key=lambda kv: kv[0][2]) if sc == scenario and me == method}


def agents_of(runs: dict, scenario: str) -> int:
    for (sc, _, _), run in runs.items():
        if sc == scenario:
            return int(run.config.get("agents", 1))
    return 1


def _half(values) -> float:
    """The 95% t-CI half-width of the mean (0 for fewer than two values: a bare point)."""
    ci = stats.mean_sd_ci(values).ci
    return ci if math.isfinite(ci) else 0.0


def plot_sweeps(campaign, runs: dict, out: Path, window: str) -> list[Path]:
    written = []
    for figure, panels in PANELS.items():
        cols = [(xlabel, {s: x for s, x in xs.items() if s in campaign.scenarios and any(k[0] == s for k in runs)})
                for xlabel, xs in panels]
        cols = [(xlabel, xs) for xlabel, xs in cols if xs]
        if not cols:
            continue
        fig, axes = plt.subplots(2, len(cols), figsize=(5 * len(cols), 7), squeeze=False)
        for c, (xlabel, xs) in enumerate(cols):
            order = sorted(xs, key=xs.get)
            for method, color in SWEEP_METHODS:
                for row, key in ((0, "mean_return"), (1, "delegation_rate")):
                    if key == "delegation_rate" and method == "independent":
                        continue
                    points = [(xs[s], list(finals(runs, s, method, key, window).values())) for s in order]
                    points = [(x, v) for x, v in points if v]
                    if points:
                        axes[row, c].errorbar([x for x, _ in points], [np.mean(v) for _, v in points],
                                              yerr=[_half(v) for _, v in points], marker="o", capsize=3, color=color,
                                              label=campaign.label(method))
            if figure == "fig5":
                for name, metric, style in REFERENCES:
                    pts = [(xs[s], np.mean([v / agents_of(runs, s) for v in finals(runs, s, "pareto", metric,
                                                                                     window).values()]))
                           for s in order if finals(runs, s, "pareto", metric, window)]
                    axes[0, c].plot([x for x, _ in pts], [y for _, y in pts], style, color="k",
                                    label=f"{name} (reference)")
            axes[0, c].set_ylabel("reward per agent")
            axes[1, c].set_ylabel("delegation rate")
            axes[1, c].set_xlabel(xlabel)
            axes[0, c].legend(fontsize=8)
        fig.suptitle(f"{figure}: {_window_words(window)}, mean over seeds with 95% CI")
        fig.tight_layout()
        path = out / f"{figure}.png"
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
        written.append(path)
    return written


def _window_words(window: str) -> str:
    return f"last {window.split(':')[1]} rounds" if window.startswith("last:") else window


def plot_cleanup(campaign, runs: dict, out: Path) -> list[Path]:
    if CLEANUP not in campaign.scenarios:
        return []
    methods = list(campaign.scenarios[CLEANUP].methods)
    present = [m for m in methods if any(k[0] == CLEANUP and k[1] == m for k in runs)]
    if not present:
        return []
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for m in present:
        color = f"C{methods.index(m)}"  # one colour per method on every panel
        rows = [run.rows for (sc, me, _), run in sorted(runs.items(), key=lambda kv: kv[0][2])
                if sc == CLEANUP and me == m]
        for ax, key in zip(axes, CLEANUP_KEYS):
            if key == "delegation_rate" and m == "independent":
                continue
            mean, half = mean_curve(rows, key, smoothing=0.05)
            x = np.arange(1, len(mean) + 1)
            ax.plot(x, mean, color=color, label=f"{campaign.label(m)} ({len(rows)} seeds)")
            ax.fill_between(x, mean - half, mean + half, color=color, alpha=0.2)
            ax.set_title(key.replace("_", " "))
            ax.set_xlabel("round (8 episodes of 100 steps)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path = out / "cleanup.png"
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return [path]


def planner_table(campaign, runs: dict, out: Path, window: str) -> list[Path]:
    """Pareto's reward per agent against the planner's and the optimum's (the same runs), paired by seed."""
    scenarios = [s for s in PANELS["fig5"][0][1] if s in campaign.scenarios
                 and any(k[0] == s and k[1] == "pareto" for k in runs)]
    if not scenarios:
        return []
    values, pairs = [], {}
    for s in scenarios:
        n = agents_of(runs, s)
        pareto = finals(runs, s, "pareto", "mean_return", window)
        values.append([s, campaign.label("pareto"), ",".join(map(str, pareto)), tables.fmt_mean_sd(list(pareto.values()))])
        for name, metric, _ in REFERENCES:
            ref = {seed: v / n for seed, v in finals(runs, s, "pareto", metric, window).items()}
            values.append([s, f"{name} (reference)", ",".join(map(str, ref)), tables.fmt_mean_sd(list(ref.values()))])
            pairs[f"{s}: {campaign.label('pareto')} − {name}"] = stats.paired_differences(pareto, ref)
    header, rows = tables.paired_table(pairs)
    text = ["# The restaurant game against the central planner (Fig. 5)", "",
            f"Reward per agent over {_window_words(window)} of each run. The planner (`planner_return`, the "
            "known-utility optimum Eq. 4 with every agent delegating) and the optimum with full information "
            "(`oracle_return`) are measured in the Pareto runs themselves, per round, and divided by the number of "
            "agents; paired by seed. Cells: mean ± sample sd [± 95% t-CI half-width] over seeds.", "",
            tables.markdown(["scenario", "what", "seeds", "reward per agent"], values), "",
            tables.markdown(header, rows), ""]
    path = out / "planner.md"
    path.write_text("\n".join(text))
    return [path]


def figures(campaign, runs: dict, out: Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    window = window_of(campaign)
    return plot_sweeps(campaign, runs, out, window) + plot_cleanup(campaign, runs, out) + planner_table(
        campaign, runs, out, window)
