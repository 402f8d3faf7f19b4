"""JAM-QL's figure (experiments/campaigns/jamql.toml): ``min_welfare.png``, the minimum
welfare per episode over the rounds, one panel per game, one line per method: the mean
over seeds of each run's curve (smoothed over 5% of the rounds) with its 95% t-CI band
(analysis.plots.plot_learning_curves).

Panels: the campaign's scenarios in file order that have finished runs; lines: its methods
in the order of ``[methods]`` (colour C<i> for the i-th), labelled by their ``label``.
"""

from __future__ import annotations

from pathlib import Path

from analysis.plots import plot_learning_curves, plt, save

METRIC = "min_welfare"
YLABEL = "minimum welfare per episode"
SMOOTHING = 0.05
FILE = "min_welfare.png"


def curves(campaign, runs: dict, scenario: str, metric: str = METRIC) -> dict[str, list[list[dict]]]:
    """Per method (its label, in the campaign's order): the rows of its finished runs on
    ``scenario``, by seed; methods without runs map to an empty list (they keep their colour)."""
    return {campaign.label(method): [runs[k].rows for k in sorted(runs, key=lambda k: k[2])
                                     if k[0] == scenario and k[1] == method and runs[k].rows]
            for method in campaign.methods}


def figures(campaign, runs: dict, out: Path) -> list[Path]:
    out = Path(out)
    scenarios = [s for s in campaign.scenarios if any(k[0] == s and runs[k].rows for k in runs)]
    if not scenarios:
        return []
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(scenarios), figsize=(4.5 * len(scenarios), 3.8), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios):
        plot_learning_curves(ax, curves(campaign, runs, scenario), METRIC, smoothing=SMOOTHING, ylabel=YLABEL,
                             title=scenario)
    axes[0][0].legend(fontsize=7)
    path = out / FILE
    save(fig, path)
    return [path]
