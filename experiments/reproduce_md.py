#!/usr/bin/env python
"""Reproduce the mechanism-design paper's Figures 3, 4, 8 and 9 ([MD]).

    python experiments/reproduce_md.py --figures 8 --seeds 0 1 2 --rounds 300 --out docs/results/md
    python experiments/reproduce_md.py --figures 3 4 8 9 --seeds 0 1 2 --out docs/results/md

- Figure 3: welfare of md, iql and cen on Escape Room (5, 3), (8, 5), (10, 6);
- Figure 4: the same on bandwidth allocation (N, C) = (7, 3), (8, 4) and bidding
  (4 agents, c_h = 5, c_i = 1; also the number of bidders per step);
- Figure 8: md against md-nomrp on Escape Room (5, 3) (iql and cen for reference);
- Figure 9: Jain's index and welfare of md on Escape Room (5, 3) against the fairness
  weight λ (``--md-lambda``: agents train on λ·r_i + R̄_i).

Every run uses the paper's agents (Tables 1, 2): DQN with a 64-64 MLP (the project's
MLP has tanh units, the paper's ReLU), learning rate 1e-4, γ = 0.99, τ = 0.01, ε from 1
to 0.01; the mechanism's own defaults are Table 1 and 2's (strategies/md.py). What the
paper leaves open, and our choice: a round is one episode in each of 16 game copies; ε
falls linearly over ``EPS_DECAY`` agent steps (``--eps-decay``; the paper's 5e-4 per
episode is ~2,000 episodes, ~125 rounds of 16); ``UPDATES`` gradient steps per round for
every agent and for the mechanism (``--updates``; Algorithm 1 takes one per environment
step); see docs/results/md/README.md for the budget and its reasons.

Runs already finished with the planned number of rounds are skipped; a run killed
midway continues from its checkpoint. Writes into OUT: ``runs/<scenario>/<method>_seed<s>``,
``results.md`` / ``results.csv`` (last quarter of the rounds: welfare and Jain's index,
mean ± sample std over seeds [± half-width of the 95% CI of the mean], the optimum where
known, the share of runs within 1 of the optimum), ``fig3_escape_room.png``,
``fig4_bidding_bandwidth.png``, ``fig8_mrp_ablation.png``, ``fig9_fairness.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from federation.compare import fmt_mean_std, last_quarter, mean_curve  # noqa: E402
from federation.config import RunConfig  # noqa: E402
from federation.results import plt, read_metrics  # noqa: E402

EPS_DECAY = 8000  # agent env-steps: ~2,000 Escape Room episodes of ~4 steps, as 1/5e-4 episodes
UPDATES = 64  # gradient steps per round: ~one per step of the round's 16 copies (Algorithm 1: one per step)
PAPER = dict(learner="dqn", batch=16, hidden=64, layers=2, dqn_lr=1e-4, dqn_gamma=0.99, dqn_tau=0.01,
             dqn_eps_start=1.0, dqn_eps_end=0.01, dqn_eps_decay=EPS_DECAY, dqn_updates=UPDATES, dqn_batch=64,
             md_updates=UPDATES, md_batch=128, progress=False)


def budget(updates: int, eps_decay: int) -> dict:
    """The agents' and the mechanism's settings with another compute budget."""
    return PAPER | dict(dqn_updates=updates, md_updates=updates, dqn_eps_decay=eps_decay)


LABELS = {"md": "MD", "md-nomrp": "MD w/o MRP", "iql": "IQL", "cen": "CEN"}
LAMBDAS = (0.0, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class Scenario:
    env: str
    agents: int
    options: str
    title: str


SCENARIOS = {
    "er-5-3": Scenario("escape-room", 5, "min_lever=3", "Escape Room (5, 3)"),
    "er-8-5": Scenario("escape-room", 8, "min_lever=5", "Escape Room (8, 5)"),
    "er-10-6": Scenario("escape-room", 10, "min_lever=6", "Escape Room (10, 6)"),
    "bidding": Scenario("bidding", 4, "item_value=5.0,bid_cost=1.0", "Bidding (c_h = 5, c_i = 1)"),
    "bw-7-3": Scenario("bandwidth", 7, "channels=3", "Bandwidth (7, 3)"),
    "bw-8-4": Scenario("bandwidth", 8, "channels=4", "Bandwidth (8, 4)"),
}
# figure -> (scenarios, variants); a variant is a method, or "md-lambda-<λ>"
FIGURES = {
    "3": (("er-5-3", "er-8-5", "er-10-6"), ("md", "iql", "cen")),
    "4": (("bw-7-3", "bw-8-4", "bidding"), ("md", "iql", "cen")),
    "8": (("er-5-3",), ("md", "md-nomrp", "iql", "cen")),
    "9": (("er-5-3",), tuple(f"md-lambda-{lam:g}" for lam in LAMBDAS)),
}


def variant_settings(variant: str) -> dict:
    if variant.startswith("md-lambda-"):
        return {"strategy": "md", "md_lambda": float(variant.removeprefix("md-lambda-"))}
    return {"strategy": variant}


def plan(figures: list[str], seeds: list[int], rounds: int, out: Path, settings: dict | None = None,
         scenarios: list[str] | None = None, methods: list[str] | None = None) -> list[tuple[str, str, RunConfig]]:
    wanted = list(dict.fromkeys((s, v) for f in figures for s in FIGURES[f][0] for v in FIGURES[f][1]
                                if (scenarios is None or s in scenarios) and (methods is None or v in methods)))
    runs = []
    for seed in seeds:  # seed outermost: an interrupted reproduction still has whole seeds
        for scenario, variant in wanted:
            if variant == "md-lambda-0":  # the same run as md
                continue
            sc = SCENARIOS[scenario]
            cfg = RunConfig.of(env=sc.env, agents=sc.agents, game_options=sc.options, rounds=rounds, seed=seed,
                               out=str(out / "runs" / scenario / f"{variant}_seed{seed}"),
                               **{**(settings or PAPER), **variant_settings(variant)})
            runs.append((scenario, variant, cfg))
    return runs


def rounds_done(path: Path) -> int:
    summary = path / "summary.json"
    return int(json.loads(summary.read_text()).get("rounds_completed", 0)) if summary.exists() else 0


def run_all(runs, simulation: bool = False) -> None:
    """Run what is missing: in this process (federation/in_process.py, the default) or as a
    Flower simulation (``--simulation``); both resume from OUT/checkpoint.pt."""
    if simulation:
        from federation.simulation import simulate as run
    else:
        from federation.in_process import run_in_process as run
    for scenario, variant, cfg in runs:
        path = Path(cfg.out)
        if rounds_done(path) == cfg.rounds:
            continue
        if (path / "checkpoint.pt").exists():
            cfg = cfg.replace(resume=True)
        print(f"running {scenario} {variant} seed {cfg.seed} ({cfg.rounds} rounds)", flush=True)
        summary = run(cfg)
        print(f"  collective {summary['collective_return_last']:.2f}, {summary['wall_s']:.0f} s", flush=True)


def load(runs) -> dict[tuple[str, str], list[list[dict]]]:
    results = defaultdict(list)
    for scenario, variant, cfg in runs:
        if rounds_done(Path(cfg.out)) == cfg.rounds:
            results[scenario, variant].append(read_metrics(Path(cfg.out)))
    for (scenario, variant), found in list(results.items()):  # λ = 0 is md's run
        if variant == "md":
            results[scenario, "md-lambda-0"] = found
    return results


def label(variant: str) -> str:
    if variant.startswith("md-lambda-"):
        return f"MD, λ = {variant.removeprefix('md-lambda-')}"
    return LABELS[variant]


def table(results, figures: list[str], out: Path) -> str:
    lines = ["| scenario | method | seeds | welfare | Jain | optimum | runs at the optimum (±1) | cost (s/round) |",
             "|---|---|---|---|---|---|---|---|"]
    rows = []
    done = set()
    for f in figures:
        for scenario in FIGURES[f][0]:
            for variant in FIGURES[f][1]:
                runs = results.get((scenario, variant))
                if not runs or (scenario, variant) in done:
                    continue
                done.add((scenario, variant))
                welfare = [last_quarter(r, "collective_return") for r in runs]
                jain = [last_quarter(r, "jain") for r in runs]
                optimum = runs[0][-1].get("optimal_welfare", math.nan)
                at_opt = sum(abs(w - optimum) <= 1 for w in welfare) if math.isfinite(optimum) else None
                cost = float(np.mean([np.mean([row["round_s"] for row in r]) for r in runs]))
                lines.append(f"| {SCENARIOS[scenario].title} | {label(variant)} | {len(runs)} | {fmt_mean_std(welfare)} | "
                             f"{fmt_mean_std(jain)} | {optimum:g} | "
                             f"{'–' if at_opt is None else f'{at_opt}/{len(runs)}'} | {cost:.2f} |")
                rows.append({"scenario": scenario, "method": variant, "seeds": len(runs),
                             "welfare": json.dumps(welfare), "jain": json.dumps(jain), "optimum": optimum,
                             "s_per_round": cost})
    text = "\n".join(lines) + ("\n\nWelfare: collective return of one episode per game copy (the mean over the "
                               "copies), averaged over the last quarter of the rounds; cells: mean ± sample std over "
                               "seeds [± half-width of the 95% confidence interval of the mean, Student's t].\n")
    (out / "results.md").write_text(text)
    if rows:
        with (out / "results.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return text


def plot_figure(results, figure: str, path: Path, key: str = "collective_return", ylabel: str = "welfare") -> None:
    scenarios, variants = FIGURES[figure]
    extra = figure == "4"  # bidders per step under the bidding panel
    fig, axes = plt.subplots(2 if extra else 1, len(scenarios), figsize=(5 * len(scenarios), 8 if extra else 4),
                             squeeze=False)
    for col, scenario in enumerate(scenarios):
        for row, (k, ylab) in enumerate([(key, ylabel)] + ([("bidders_per_step", "bidders per step")] if extra else [])):
            ax = axes[row][col]
            drawn = False
            for c, variant in enumerate(variants):
                runs = [r for r in results.get((scenario, variant), []) if k in r[-1]]
                if not runs:
                    continue
                mean, half = mean_curve(runs, k, smoothing=0.1)
                x = np.arange(1, len(mean) + 1)
                low = mean - half if k == key else np.maximum(mean - half, 0.0)  # a count is never negative
                ax.plot(x, mean, color=f"C{c}", label=f"{label(variant)} (n={len(runs)})")
                ax.fill_between(x, low, mean + half, color=f"C{c}", alpha=0.15)
                drawn = True
            if not drawn:  # a game without this quantity, or a scenario not run yet
                ax.set_axis_off()
                if k == key:
                    ax.text(0.5, 0.5, f"{SCENARIOS[scenario].title}: not run", ha="center", transform=ax.transAxes)
                continue
            if k == key and results.get((scenario, variants[0])):
                optimum = results[scenario, variants[0]][0][-1].get("optimal_welfare", math.nan)
                if math.isfinite(optimum):
                    ax.axhline(optimum, color="k", ls=":", lw=1, label="optimum")
            ax.set(title=SCENARIOS[scenario].title, xlabel="round (one episode in each of 16 copies)", ylabel=ylab)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_fairness(results, path: Path) -> None:
    """Figure 9: Jain's index and welfare (last quarter) against λ, mean and 95% CI over seeds."""
    from federation.compare import mean_sd_ci

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, ylabel in zip(axes, ("jain", "collective_return"), ("Jain's index", "welfare")):
        xs, means, halves = [], [], []
        for lam in LAMBDAS:
            runs = results.get(("er-5-3", f"md-lambda-{lam:g}"))
            if not runs:
                continue
            mean, _, half, _ = mean_sd_ci([last_quarter(r, key) for r in runs])
            xs.append(lam), means.append(mean), halves.append(0.0 if math.isnan(half) else half)
        ax.errorbar(xs, means, yerr=halves, marker="o", capsize=4)
        ax.set(xlabel="fairness weight λ", ylabel=ylabel, title=f"Escape Room (5, 3): {ylabel} against λ")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--figures", nargs="+", default=list(FIGURES), choices=list(FIGURES))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS),
                   help="only these scenarios of the figures (default: all of them)")
    p.add_argument("--methods", nargs="+", help="only these methods or variants of the figures, e.g. md cen "
                   "or md-lambda-1 (default: all of them)")
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--updates", type=int, default=UPDATES,
                   help="gradient steps per round of every agent and of the mechanism")
    p.add_argument("--eps-decay", type=int, default=EPS_DECAY, help="agent env-steps over which ε falls to 0.01")
    p.add_argument("--out", default="docs/results/md")
    p.add_argument("--report-only", action="store_true", help="write tables and plots from the finished runs")
    p.add_argument("--simulation", action="store_true",
                   help="run through Flower's simulation engine (Ray) instead of in this process")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = plan(args.figures, args.seeds, args.rounds, out, budget(args.updates, args.eps_decay), args.scenarios,
                args.methods)
    if not args.report_only:
        run_all(runs, args.simulation)
    results = load(runs)
    print(table(results, args.figures, out))
    names = {"3": "fig3_escape_room.png", "4": "fig4_bidding_bandwidth.png", "8": "fig8_mrp_ablation.png"}
    for f in args.figures:
        if f in names:
            plot_figure(results, f, out / names[f])
    if "9" in args.figures:
        plot_fairness(results, out / "fig9_fairness.png")


if __name__ == "__main__":
    main()
