"""FPF's pull sweep (experiments/campaigns/pull-sweep.toml): ``sweep.png``, ``sweep.md`` and
``sweep.csv``.

The campaign's methods are the grid points (λ_u, λ_e), its scenarios ω̄'s egalitarian reward.
Each run's final values are the means over the last quarter of its rounds
(analysis.window's default; ω's and ω̄'s evaluation columns where they were measured), and
"participants − others" is the difference of two of them, ``participants_return`` minus
``nonparticipants_return`` (a derived value, which the report's tables cannot name):

- ``sweep.md`` / ``sweep.csv``: one row per (ω̄ reward, grid point), in the campaign's order:
  αλ_u, αλ_e, whether λ_u > 2√2 λ_e (FPF Theorem 1's condition without L), the seeds, and
  mean ± sample sd [± 95% t-CI half-width] over seeds (analysis.tables.fmt_mean_sd) of
  collective return, CV, participants − others, π_ω's and π_ω̄'s collective return and CV,
  the pull's and the agents' own step ‖Δθ‖; the CSV has mean, sd, ci95 and n of each;
- ``sweep.png``: collective return, CV and participants − others against αλ_u for
  λ_e = 0, λ_u/4 (and λ_u, when run), ω̄'s reward ``variance``: mean and 95% t-CI over seeds.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from analysis import stats, tables
from analysis.plots import plt
from analysis.window import final_value

WINDOW = "last-quarter"
COLUMNS = {"collective": "collective_return", "cv": "cv", "omega_collective": "omega_eval_collective",
           "omega_cv": "omega_eval_cv", "omega_bar_collective": "omega_bar_eval_collective",
           "omega_bar_cv": "omega_bar_eval_cv", "pull_norm": "agents_pull_norm", "update_norm": "agents_update_norm"}
ORDER = ("collective", "cv", "opt_in_gain", "omega_collective", "omega_cv", "omega_bar_collective", "omega_bar_cv",
         "pull_norm", "update_norm")
HEAD = ("| αλ_u | αλ_e | ω̄ reward | λ_u > 2√2 λ_e | seeds | collective | CV | participants − others | "
        "π_ω collective | π_ω CV | π_ω̄ collective | π_ω̄ CV | pull ‖Δθ‖ | own update ‖Δθ‖ |")
RATIOS = ((0.0, "o"), (0.25, "s"), (1.0, "^"))
PLOTTED = (("collective", "collective return"), ("cv", "CV"), ("opt_in_gain", "participants − non-participants"))


def metrics(rows: list[dict], window: str = WINDOW) -> dict[str, float]:
    """A run's final values (over ``window``), ``opt_in_gain`` = participants' − non-participants'."""
    def mean(key: str) -> float:
        return final_value(rows, key, window).value

    out = {k: mean(v) for k, v in COLUMNS.items()}
    out["opt_in_gain"] = mean("participants_return") - mean("nonparticipants_return")
    return {k: out[k] for k in ORDER}


def pull(run) -> tuple[float, float, float, str]:
    """(α, λ_u, λ_e, ω̄'s reward) of a run, from its config.json."""
    fpf = run.config.get("fpf", {})
    return float(fpf["fed_alpha"]), float(fpf["lambda_u"]), float(fpf["lambda_e"]), str(fpf["egalitarian"])


def points(campaign, runs: dict) -> list[tuple[str, str, list]]:
    """(scenario, method, its finished runs by seed), in the campaign's order, those with runs."""
    out = []
    for scenario, sc in campaign.scenarios.items():
        for method in campaign.methods:
            if method in sc.methods:
                mine = [runs[k] for k in sorted(runs, key=lambda k: k[2]) if k[0] == scenario and k[1] == method]
                if mine:
                    out.append((scenario, method, mine))
    return out


def table(campaign, runs: dict, out: Path, window: str) -> list[Path]:
    lines, rows_csv = [], []
    for scenario, method, mine in points(campaign, runs):
        alpha, lu, le, egalitarian = pull(mine[0])
        per_seed = [metrics(run.rows, window) for run in mine]
        theorem = lu > 2 * math.sqrt(2) * le
        cells = [tables.fmt_mean_sd([m[k] for m in per_seed]) for k in ORDER]
        lines.append(f"| {alpha * lu:g} | {alpha * le:g} | {egalitarian} | {'yes' if theorem else 'no'} | "
                     f"{len(per_seed)} | " + " | ".join(cells) + " |")
        for k in ORDER:
            s = stats.mean_sd_ci([m[k] for m in per_seed])
            rows_csv.append({"lambda_u": lu, "lambda_e": le, "egalitarian": egalitarian, "alpha": alpha, "metric": k,
                             "mean": s.mean, "sd": s.sd, "ci95": s.ci, "n": s.n})
    if not lines:
        return []
    md = out / "sweep.md"
    md.write_text("\n".join([HEAD, "|" + "---|" * 14] + lines) + "\n\nCells: mean ± sample std over seeds "
                  "[± 95% CI half-width] of the last quarter of the rounds.\n")
    path = out / "sweep.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows_csv[0]))
        writer.writeheader()
        writer.writerows(rows_csv)
    return [md, path]


def plot(campaign, runs: dict, out: Path, window: str) -> list[Path]:
    grid = [(pull(mine[0]), [metrics(run.rows, window) for run in mine])
            for _, _, mine in points(campaign, runs) if pull(mine[0])[3] == "variance"]
    if not grid:
        return []
    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    for ratio, marker in RATIOS:
        pts = [(p, per_seed) for p, per_seed in grid if p[2] == ratio * p[1]]
        for ax, (key, label) in zip(axes, PLOTTED):
            xs, ys, hs = [], [], []
            for (alpha, lu, _, _), per_seed in pts:
                s = stats.mean_sd_ci([m[key] for m in per_seed])
                xs.append(alpha * lu)
                ys.append(s.mean)
                hs.append(0.0 if not np.isfinite(s.ci) else s.ci)
            if len(xs) > 1:  # a ratio of the grid (the pull-free point belongs to every ratio)
                ax.errorbar(xs, ys, yerr=hs, marker=marker, capsize=3, label=f"λ_e = {ratio:g}·λ_u")
            ax.set_xscale("symlog", linthresh=0.01)
            ax.set(xlabel="αλ_u (pull toward ω per round)", ylabel=label, title=label)
    axes[0].legend()
    fig.suptitle("FPF on the Matthew Effect: pull sweep (mean, 95% CI over seeds; last quarter of rounds)")
    fig.tight_layout()
    path = out / "sweep.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def figures(campaign, runs: dict, out: Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    window = (campaign.tables.get("report") or {}).get("window") or WINDOW
    return table(campaign, runs, out, window) + plot(campaign, runs, out, window)
