#!/usr/bin/env python
"""Reproduce the experiments of "Improving Social Welfare While Preserving Autonomy via a
Pareto Mediator" (McAleer et al.): Figures 3, 4 and 5.

    python experiments/reproduce_pareto.py --seeds 0 1 2 --out docs/results/pareto
    python experiments/reproduce_pareto.py --figures cleanup --seeds 0 1 2 --in-process --out docs/results/pareto

Every setting runs the original game (``independent``) and its Pareto- and
Punishing-mediated versions on the same seed, so the payoffs are the same across the
three (``payoff_seed`` is the run's seed) and the comparisons are paired.

- ``fig3``: random normal-form games, payoffs Uniform[0, 1); more players (2-5, 2
  actions) and more actions (2, 3, 5, 10; 2 players); ε-greedy tabular agents with
  ε = 1/t (t: rounds of B plays), 100 rounds of 32 plays.
- ``fig4``: the matching game with 4, 8, 12 and 16 agents, the same learners.
- ``fig5``: the restaurant game, 20 agents, 300 restaurants, a = 0 and a = 2, 200
  rounds, against the central planner (``planner_return``, the known-utility optimum)
  and the full-information optimum (``oracle_return``).
- ``cleanup``: Cleanup with 2 agents on LIO's 7×7 map (100-step episodes, small CNN,
  PPO): first the joint policies the mediators play, trained with ``avg`` (cooperative)
  and ``spite`` (punishing), then independent, Pareto and Punishing with delegation at
  the first step (the paper) and at any step (``--delegate any``).

Reported per setting and method, over the last 10 rounds of each run: the average
reward per agent, the minimum reward, and the delegation rate; mean ± sample std over
seeds [95% CI of the mean]. Also the paired differences Pareto − original and
Pareto − Punishing per seed. Files in OUT: ``results.md``, ``results.csv``,
``fig3.png``, ``fig4.png``, ``fig5.png``, ``cleanup.png`` and ``runs/``.
Finished runs are skipped, so an interrupted reproduction resumes where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from federation.compare import fmt_mean_std, mean_curve  # noqa: E402
from federation.config import RunConfig  # noqa: E402
from federation.results import discard_state, plt, read_metrics  # noqa: E402
from federation.simulation import simulate  # noqa: E402

METHODS = ("independent", "pareto", "punishing")
LABELS = {"independent": "original", "pareto": "Pareto", "punishing": "Punishing",
          "pareto-any": "Pareto (any step)", "punishing-any": "Punishing (any step)"}
TABULAR = {"learner": "q-table", "q_epsilon": 1.0, "q_epsilon_schedule": "1/t", "batch": 32}
LAST = 10  # rounds averaged at the end of a run


@dataclass(frozen=True)
class Setting:
    """One point of a figure: a game, its size and options, and how long to run."""

    figure: str
    name: str
    env: str
    agents: int
    x: float  # the figure's x value (players, actions, agents, a)
    options: str = ""
    rounds: int = 100
    methods: tuple[str, ...] = METHODS
    settings: dict = field(default_factory=lambda: dict(TABULAR))


SETTINGS: list[Setting] = (
    [Setting("fig3", f"nf-{n}p-2a", "normal-form", n, n, "actions=2") for n in (2, 3, 4, 5)]
    + [Setting("fig3", f"nf-2p-{a}a", "normal-form", 2, a, f"actions={a}") for a in (3, 5, 10)]
    + [Setting("fig4", f"matching-{n}", "matching", n, n) for n in (4, 8, 12, 16)]
    + [Setting("fig5", f"restaurant-a{a}", "restaurant", 20, a, f"a={a}", rounds=200) for a in (0, 2)]
)
CLEANUP_NET = {"channels": 6, "hidden": 32, "batch": 8}
CLEANUP_OPTIONS = "map=lio-7,episode_length=100"
CLEANUP_PRETRAIN = [Setting("cleanup", f"cleanup-pretrain-{m}", "cleanup", 2, 0, CLEANUP_OPTIONS, 200, (m,),
                            dict(CLEANUP_NET)) for m in ("avg", "spite")]
CLEANUP = Setting("cleanup", "cleanup", "cleanup", 2, 0, CLEANUP_OPTIONS, 200,
                  ("independent", "pareto", "punishing", "pareto-any", "punishing-any"), dict(CLEANUP_NET))


def config(setting: Setting, method: str, seed: int, out: Path) -> RunConfig:
    extra = {}
    if setting.name == "cleanup":
        pre = out / "runs" / "cleanup-pretrain-{}" / "{}_seed{}" / "policies.pt"
        extra = {"mediator_policy": str(pre).format("avg", "avg", seed),
                 "punishing_policy": str(pre).format("spite", "spite", seed),
                 "delegate": "any" if method.endswith("-any") else "first"}
    return RunConfig.of(env=setting.env, agents=setting.agents, rounds=setting.rounds, seed=seed,
                        strategy=method.removesuffix("-any"), game_options=setting.options, progress=False,
                        out=str(out / "runs" / setting.name / f"{method}_seed{seed}"), **setting.settings, **extra)


def finished(cfg: RunConfig) -> bool:
    summary = Path(cfg.out) / "summary.json"
    return (summary.exists() and (Path(cfg.out) / "metrics.csv").exists()  # the report reads the curves
            and json.loads(summary.read_text()).get("rounds_completed") == cfg.rounds)


def run(settings: list[Setting], seeds: list[int], out: Path, runner=simulate) -> None:
    todo = [(s, m, seed) for seed in seeds for s in settings for m in s.methods]
    for k, (setting, method, seed) in enumerate(todo, 1):
        if setting.name == "cleanup" and not all(
                finished(config(p, p.methods[0], seed, out)) for p in CLEANUP_PRETRAIN):
            print(f"skipping cleanup {method} seed {seed}: its joint policies are not trained yet", flush=True)
            continue
        cfg = config(setting, method, seed, out)
        if finished(cfg):
            continue
        print(f"[{k}/{len(todo)}] {setting.name} {method} seed {seed}", flush=True)
        resumable = (Path(cfg.out) / "checkpoint.pt").exists()
        runner(cfg.replace(resume=True) if resumable else cfg)
        if setting.figure != "cleanup":  # keep the pretrained policies; drop tabular agents' state
            discard_state(cfg.out)


def last(rows: list[dict], key: str) -> float:
    values = [r.get(key, np.nan) for r in rows[-LAST:]]
    return float(np.nanmean(values)) if np.isfinite(values).any() else np.nan


def measure(settings: list[Setting], seeds: list[int], out: Path) -> dict:
    """(setting name, method) -> {seed: {metric: value}} for finished runs."""
    results: dict = {}
    for s in settings:
        for m in s.methods:
            for seed in seeds:
                try:
                    cfg = config(s, m, seed, out)
                except ValueError:  # Cleanup before its joint policies are trained
                    continue
                if not finished(cfg):
                    continue
                rows = read_metrics(Path(cfg.out))
                results.setdefault((s.name, m), {})[seed] = {
                    "mean_reward": last(rows, "mean_return"), "min_reward": last(rows, "min_return"),
                    "collective": last(rows, "collective_return"), "delegation": last(rows, "delegation_rate"),
                    "planner": last(rows, "planner_return"), "oracle": last(rows, "oracle_return"),
                    "rows": rows}
    return results


def report(settings: list[Setting], results: dict, out: Path) -> str:
    lines = ["| figure | setting | method | seeds | reward per agent | minimum reward | delegation rate | "
             "Pareto − this (paired) |", "|---|---|---|---|---|---|---|---|"]
    csv_rows = []
    for s in settings:
        pareto = results.get((s.name, "pareto"), {})
        for m in s.methods:
            runs = results.get((s.name, m), {})
            if not runs:
                continue
            seeds = sorted(runs)
            paired = [pareto[k]["mean_reward"] - runs[k]["mean_reward"] for k in seeds if k in pareto]
            lines.append(f"| {s.figure} | {s.name} | {LABELS.get(m, m)} | {','.join(map(str, seeds))} | "
                         f"{fmt_mean_std([runs[k]['mean_reward'] for k in seeds])} | "
                         f"{fmt_mean_std([runs[k]['min_reward'] for k in seeds])} | "
                         f"{fmt_mean_std([runs[k]['delegation'] for k in seeds])} | "
                         f"{'–' if m == 'pareto' else fmt_mean_std(paired)} |")
            csv_rows += [{"figure": s.figure, "setting": s.name, "method": m, "seed": k,
                          **{key: runs[k][key] for key in ("mean_reward", "min_reward", "collective", "delegation",
                                                           "planner", "oracle")}} for k in seeds]
        if s.env == "restaurant" and pareto:
            for ref in ("planner", "oracle"):
                values = [pareto[k][ref] / s.agents for k in sorted(pareto)]
                lines.append(f"| {s.figure} | {s.name} | {ref} (reference) | {','.join(map(str, sorted(pareto)))} | "
                             f"{fmt_mean_std(values)} | – | – | "
                             f"{fmt_mean_std([pareto[k]['mean_reward'] - pareto[k][ref] / s.agents for k in sorted(pareto)])} |")
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["figure", "setting", "method", "seed", "mean_reward", "min_reward",
                                               "collective", "delegation", "planner", "oracle"])
        writer.writeheader()
        writer.writerows(csv_rows)
    text = ("# Pareto and punishing mediators\n\nLast 10 rounds of each run; mean ± sample std over seeds "
            "[± half-width of the 95% CI of the mean]. 'Pareto − this': the Pareto run minus this method's "
            "run on the same seed (same payoffs), averaged over seeds.\n\n" + "\n".join(lines) + "\n")
    (out / "results.md").write_text(text)
    return text


def plot_sweeps(settings: list[Setting], results: dict, out: Path) -> None:
    panels = {"fig3": [("players (2 actions)", [s for s in settings if s.figure == "fig3" and "-2a" in s.name]),
                       ("actions (2 players)", [s for s in settings if s.figure == "fig3" and s.name.startswith("nf-2p")])],
              "fig4": [("agents", [s for s in settings if s.figure == "fig4"])],
              "fig5": [("a (weight of the private utility)", [s for s in settings if s.figure == "fig5"])]}
    for figure, cols in panels.items():
        cols = [(x, ss) for x, ss in cols if ss]
        if not cols:
            continue
        fig, axes = plt.subplots(2, len(cols), figsize=(5 * len(cols), 7), squeeze=False)
        for c, (xlabel, ss) in enumerate(cols):
            ss = sorted(ss, key=lambda s: s.x)
            for m, color in zip(METHODS, ("C0", "C1", "C3")):
                for row, key in ((0, "mean_reward"), (1, "delegation")):
                    if key == "delegation" and m == "independent":
                        continue
                    xs, means, halves = [], [], []
                    for s in ss:
                        values = [v[key] for v in results.get((s.name, m), {}).values()]
                        if values:
                            xs.append(s.x)
                            means.append(np.mean(values))
                            halves.append(_half(values))
                    if xs:
                        axes[row, c].errorbar(xs, means, yerr=halves, marker="o", capsize=3, color=color,
                                              label=LABELS[m])
            if figure == "fig5":
                for ref, style in (("planner", "--"), ("oracle", ":")):
                    xs = [s.x for s in ss if (s.name, "pareto") in results]
                    ys = [np.mean([v[ref] / s.agents for v in results[s.name, "pareto"].values()])
                          for s in ss if (s.name, "pareto") in results]
                    axes[0, c].plot(xs, ys, style, color="k", label=f"{ref} (reference)")
            axes[0, c].set_ylabel("reward per agent")
            axes[1, c].set_ylabel("delegation rate")
            axes[1, c].set_xlabel(xlabel)
            axes[0, c].legend(fontsize=8)
        fig.suptitle(f"{figure}: last {LAST} rounds, mean over seeds with 95% CI")
        fig.tight_layout()
        fig.savefig(out / f"{figure}.png", dpi=110)
        plt.close(fig)


def plot_cleanup(results: dict, out: Path) -> None:
    methods = [m for m in CLEANUP.methods if (CLEANUP.name, m) in results]
    if not methods:
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for m in methods:
        color = f"C{CLEANUP.methods.index(m)}"  # one colour per method on every panel
        runs = [v["rows"] for v in results[CLEANUP.name, m].values()]
        for ax, key in zip(axes, ("mean_return", "min_return", "delegation_rate")):
            if key == "delegation_rate" and m == "independent":
                continue
            mean, half = mean_curve(runs, key, smoothing=0.05)
            x = np.arange(1, len(mean) + 1)
            ax.plot(x, mean, color=color, label=f"{LABELS.get(m, m)} ({len(runs)} seeds)")
            ax.fill_between(x, mean - half, mean + half, color=color, alpha=0.2)
            ax.set_title(key.replace("_", " "))
            ax.set_xlabel("round (8 episodes of 100 steps)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "cleanup.png", dpi=110)
    plt.close(fig)


def _half(values: list[float]) -> float:
    from scipy import stats

    if len(values) < 2:
        return 0.0
    return float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--figures", nargs="+", default=["fig3", "fig4", "fig5"],
                   choices=["fig3", "fig4", "fig5", "cleanup"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=Path("docs/results/pareto"))
    p.add_argument("--in-process", action="store_true",
                   help="run each configuration in this process, without Flower's transport (same round loop and "
                        "metrics for the same seed, tests/test_simulation.py; no Ray start-up per run)")
    p.add_argument("--report-only", action="store_true", help="only redraw figures and tables from finished runs")
    args = p.parse_args()
    chosen = [s for s in SETTINGS if s.figure in args.figures]
    if "cleanup" in args.figures:
        chosen += CLEANUP_PRETRAIN + [CLEANUP]
    if not args.report_only:
        if args.in_process:
            from federation.in_process import run_in_process
            run(chosen, args.seeds, args.out, run_in_process)
        else:
            run(chosen, args.seeds, args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    every = SETTINGS + CLEANUP_PRETRAIN + [CLEANUP]  # the report covers every finished run in OUT
    results = measure(every, args.seeds, args.out)
    plot_sweeps(every, results, args.out)
    plot_cleanup(results, args.out)
    print(report(every, results, args.out))


if __name__ == "__main__":
    main()
