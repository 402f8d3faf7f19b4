"""[FPF]'s figures ("Beyond Mandatory Federations", Figs. 1-4, 6, 7) from the runs of the FPF
campaigns (experiments/campaigns/fpf-classic.toml, fpf-ssd-3.toml, fpf-ssd-5.toml,
fpf-mpe.toml), written into the campaign's ``out``:

- ``collective_return.png``: FPF against the baselines (IPPO/IDQN, AVG, MIN, IA, FedAvg;
  Figs. 1, 4, 7);
- ``federations.png``: FPF, LMF and D&F (Figs. 2, 4, 7);
- ``cv.png``: the coefficient of variation of the agents' returns, the baselines, D&F and
  LMF (Figs. 5, 6);
- ``lmf_variants.png``: LMF, LMF-Fix and LMF-Dynamic on the scenarios that plan them (the
  Matthew Effect, Fig. 3d);
- ``participants.png``: FPF's participants against its non-participants (Fig. 3a-c), with
  the paired control: the independent learners split into the same two groups (the set is
  drawn from the seed, so the same seed splits the same agents: ``split_in_return``,
  ``split_out_return``);
- ``omega.png``: FPF's own policies π_ω and π_ω̄ played by every agent on held-out games,
  against FPF's agents;
- ``opt_in.md``: what opting in gains, (participants − others) under FPF (and FPF pulling
  everyone) minus the same split's difference under the independent learners, seed by
  seed (a difference of differences, which a ``[[comparisons]]`` table cannot express).

One panel per scenario; a figure none of whose methods has a finished run is not written,
and its panels are only the scenarios that have runs of its methods. Curves: the mean over
seeds of each run's curve, smoothed over 10% of the rounds, with the 95% t-CI band
(:func:`analysis.curves.mean_curve`); method i of a figure's list in colour ``C<i>``.
Final values: :func:`analysis.window.final_value` (the last quarter of the rounds); cells
"mean ± sd [± 95% t-CI half-width]" (:func:`analysis.tables.fmt_mean_sd`).

``[figures]`` of a campaign may add:

- ``scenarios = [...]``: the order of the panels (default: the campaign's scenarios, then
  those of ``also``);
- ``also = ["experiments/campaigns/OTHER.toml", ...]``: campaigns writing into the same
  ``out`` whose finished runs are drawn too (fpf-ssd-3 and fpf-ssd-5 share
  docs/results/ssd: either report draws all four SSD scenarios). Paths are relative to the
  working directory, as ``out`` is.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from analysis.curves import mean_curve
from analysis.plots import plt, save
from analysis.runs import Run, read_run
from analysis.tables import fmt_mean_sd
from analysis.window import final_value

BASELINES = ("independent", "avg", "min", "ia", "fedavg", "fpf")
FEDERATIONS = ("fpf", "lmf", "dnf")
LMF_VARIANTS = ("lmf", "lmf-fix", "lmf-dynamic")
CV_METHODS = BASELINES + ("dnf", "lmf")
OPT_IN = ("fpf", "fpf-everyone")  # FPF's variants with participants
CONTROL = "independent"           # the same split under independent learners
SMOOTHING = 0.1

Groups = dict[tuple[str, str], dict[int, Run]]


# ---------------------------------------------------------------------- the runs
def all_runs(campaign, runs: Mapping) -> dict:
    """The campaign's finished runs and those of the campaigns of ``[figures] also``
    (finished: :func:`experiments.status.check` says done)."""
    from experiments.campaign import load
    from experiments.status import State, check

    merged = dict(runs)
    for path in campaign.figures.get("also", []):
        for run in load(path, check=False).plan():
            if run.key not in merged and check(run.cfg).state is State.DONE:
                merged[run.key] = read_run(run.out)
    return merged


def group(runs: Mapping) -> Groups:
    """``{(scenario, method): {seed: Run}}``, seeds in ascending order."""
    groups: Groups = {}
    for (scenario, method, seed) in sorted(runs, key=lambda k: k[2]):
        groups.setdefault((scenario, method), {})[seed] = runs[scenario, method, seed]
    return groups


def _others(campaign) -> list:
    from experiments.campaign import load

    return [load(path, check=False) for path in campaign.figures.get("also", [])]


def labels(campaign) -> dict[str, str]:
    """Method -> display name (the campaign's, else an ``also`` campaign's)."""
    out: dict[str, str] = {}
    for c in [*_others(campaign), campaign]:
        out.update({m: c.label(m) for m in c.methods})
    return out


def notes(campaign) -> dict[str, str]:
    """Scenario -> its note (what a round is), for the x axis."""
    out: dict[str, str] = {}
    for c in [*_others(campaign), campaign]:
        out.update({s: sc.note for s, sc in c.scenarios.items()})
    return out


def panels(campaign, groups: Groups) -> list[str]:
    """The scenarios that have runs, in the order of ``[figures] scenarios`` (else the
    campaign's, then the ``also`` campaigns')."""
    order = list(campaign.figures.get("scenarios", []))
    for c in [campaign, *_others(campaign)]:
        order += [s for s in c.scenarios if s not in order]
    order += sorted({s for s, _ in groups} - set(order))
    return [s for s in order if any(k[0] == s for k in groups)]


def with_runs(groups: Groups, scenarios, methods) -> list[str]:
    """The scenarios among ``scenarios`` with a finished run of one of ``methods``."""
    return [s for s in scenarios if any(groups.get((s, m)) for m in methods)]


def rows_of(runs: dict[int, Run]) -> list[list[dict]]:
    return [run.rows for run in runs.values()]


# ---------------------------------------------------------------------- figures
def plot(groups: Groups, scenarios, methods, key: str, path: Path, title: str, ylabel: str,
         names: Mapping[str, str], round_notes: Mapping[str, str]) -> Path | None:
    """One panel per scenario with runs of ``methods``: each method's mean curve of ``key``."""
    scenarios = with_runs(groups, scenarios, methods)
    if not scenarios:  # nothing of this figure was run: no empty figure
        return None
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios), 4), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios):
        for c, method in enumerate(methods):
            runs = groups.get((scenario, method))
            if not runs:
                continue
            mean, half = mean_curve(rows_of(runs), key, smoothing=SMOOTHING)
            x = np.arange(1, len(mean) + 1)
            ax.plot(x, mean, color=f"C{c}", label=f"{names.get(method, method)} (n={len(runs)})")
            ax.fill_between(x, mean - half, mean + half, color=f"C{c}", alpha=0.15)
        note = round_notes.get(scenario, "")
        ax.set(title=scenario, xlabel=f"round ({note} per game copy)" if note else "round", ylabel=ylabel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    save(fig, path)
    return path


def plot_participants(groups: Groups, scenarios, path: Path, names: Mapping[str, str]) -> Path | None:
    """FPF's participants vs the others, and the same split under the independent learners."""
    scenarios = with_runs(groups, scenarios, ["fpf"])
    if not scenarios:
        return None
    ind = names.get(CONTROL, CONTROL)
    lines = [("fpf", "participants_return", "FPF participants", "C2", "-"),
             ("fpf", "nonparticipants_return", "FPF non-participants", "C3", "-"),
             (CONTROL, "split_in_return", f"{ind}, same split: 'participants'", "C2", ":"),
             (CONTROL, "split_out_return", f"{ind}, same split: the others", "C3", ":")]
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios), 4), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios):
        for method, key, name, color, style in lines:
            runs = groups.get((scenario, method))
            if not runs:
                continue
            mean, half = mean_curve(rows_of(runs), key, smoothing=SMOOTHING)
            x = np.arange(1, len(mean) + 1)
            ax.plot(x, mean, color=color, linestyle=style, label=name)
            ax.fill_between(x, mean - half, mean + half, color=color, alpha=0.12)
        ax.set(title=f"{scenario}: mean return per agent (95% CI)", xlabel="round", ylabel="mean return per agent")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    save(fig, path)
    return path


def plot_omega(groups: Groups, scenarios, path: Path) -> Path | None:
    """π_ω's and π_ω̄'s own collective return on held-out games (measured every few
    rounds), against FPF's agents."""
    scenarios = with_runs(groups, scenarios, ["fpf"])
    if not scenarios:
        return None
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios), 4), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios):
        runs = groups[scenario, "fpf"]
        for key, name, color in (("collective_return", "FPF agents", "C0"), ("omega_eval_collective", "π_ω", "C1"),
                                 ("omega_bar_eval_collective", "π_ω̄", "C4")):
            rows = [[r for r in run if np.isfinite(r.get(key, np.nan))] for run in rows_of(runs)]
            if not all(rows):
                continue
            mean, half = mean_curve(rows, key, smoothing=SMOOTHING)
            x = np.array([r["round"] for r in rows[0][:len(mean)]])
            ax.plot(x, mean, color=color, label=name)
            ax.fill_between(x, mean - half, mean + half, color=color, alpha=0.12)
        ax.set(title=f"FPF on {scenario} (95% CI)", xlabel="round", ylabel="collective return")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    save(fig, path)
    return path


# ---------------------------------------------------------------------- opt_in.md
def gap(run: Run, a: str, b: str) -> float:
    """Final value of ``a`` minus that of ``b`` (each over the last quarter of the rounds)."""
    return final_value(run.rows, a).value - final_value(run.rows, b).value


def opt_in_table(names: Mapping[str, str], groups: Groups, scenarios) -> str:
    """Per scenario and FPF variant: participants − others (FPF), the same split's
    difference under the independent learners, and their difference, seed by seed (the
    seeds both have)."""
    lines = ["| game | method | seeds | participants − others | independent learners on the same split | "
             "difference of differences |", "|---|---|---|---|---|---|"]
    for scenario in scenarios:
        control = {seed: gap(run, "split_in_return", "split_out_return")
                   for seed, run in groups.get((scenario, CONTROL), {}).items()}
        for method in OPT_IN:
            runs = {seed: run for seed, run in groups.get((scenario, method), {}).items() if seed in control}
            if not runs:
                continue
            own = [gap(run, "participants_return", "nonparticipants_return") for run in runs.values()]
            ctl = [control[seed] for seed in runs]
            lines.append(f"| {scenario} | {names.get(method, method)} | {len(runs)} | {fmt_mean_sd(own)} | "
                         f"{fmt_mean_sd(ctl)} | {fmt_mean_sd([a - b for a, b in zip(own, ctl)])} |")
    return "\n".join(lines) + ("\n\nMean return per agent over the last quarter of the rounds; cells: mean ± sample "
                               "std over seeds [± 95% CI half-width]. Seeds are paired: the participation set is "
                               "drawn from the seed, so FPF and the independent learners split the same agents.\n")


# ---------------------------------------------------------------------- the campaign's figures
def figures(campaign, runs: Mapping, out: Path) -> list[Path]:
    """Draw the figures and opt_in.md of the campaign's finished ``runs`` (and those of its
    ``[figures] also`` campaigns) into ``out``; the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    groups = group(all_runs(campaign, runs))
    names, round_notes = labels(campaign), notes(campaign)
    order = panels(campaign, groups)
    variants = [s for s in order if s in campaign.scenarios
                and {"lmf-fix", "lmf-dynamic"} & set(campaign.scenarios[s].methods)]
    written = [
        plot(groups, order, BASELINES, "collective_return", out / "collective_return.png",
             "Collective return: FPF and the baselines", "collective return", names, round_notes),
        plot(groups, order, FEDERATIONS, "collective_return", out / "federations.png",
             "Collective return: FPF, LMF and D&F", "collective return", names, round_notes),
        plot(groups, variants, LMF_VARIANTS, "collective_return", out / "lmf_variants.png",
             "LMF variants on the Matthew Effect" if variants == ["matthew"] else "LMF variants", "collective return",
             names, round_notes),
        plot(groups, order, CV_METHODS, "cv", out / "cv.png", "Coefficient of variation", "CV", names, round_notes),
        plot_participants(groups, order, out / "participants.png", names),
        plot_omega(groups, order, out / "omega.png"),
    ]
    path = out / "opt_in.md"
    path.write_text(opt_in_table(names, groups, order))
    return [p for p in written if p is not None] + [path]
