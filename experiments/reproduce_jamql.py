#!/usr/bin/env python
"""Reproduce the claims of JAM-QL ("Emergence of Fair Leaders via Mediators in MARL"):

    python experiments/reproduce_jamql.py --seeds 0 1 2 --jobs 2
    python experiments/reproduce_jamql.py --games grid-2 --seeds 0 1 --jobs 2
    python experiments/reproduce_jamql.py --report-only

Games (``--games``): ``pd-2``, ``pd-4``, ``chicken-2``, ``chicken-4`` (envs/dilemma.py,
12-step episodes, tabular Q agents, ε = min(1, 1/t) over the rounds each agent trained) and
``grid-2`` (envs/resource_grid.py, 25-step episodes, DQN agents). Methods: ``jamql``,
``jamql-naive`` (no end-game transfer), ``fixed-leader``, ``alternating-leader``,
``vote-leader``. Every method learns in turn with the same period (strategies/leaders.py).

Runs execute in-process (federation/in_process.py: the project's round loop with the
ClientApp called directly, no Flower transport), ``--jobs`` at a time; a finished run
(summary.json with the planned rounds) is skipped, an unfinished one is run again.

Writes into OUT (default docs/results/jamql): ``runs/<game>/<method>_seed<s>/`` (each
run's config, metrics.csv, summary.json), ``results.md`` / ``results.csv`` (per game
and method, over seeds: mean ± sample std [± 95% CI half-width, Student's t] of the
last-quarter means), ``claims.md`` (the paper's three claims, checked), and
``min_welfare.png`` (learning curves, 95% CI over seeds).

Measured per run, over the last quarter of its rounds: ``min_welfare`` (the mean over
episodes of min_i G_i, game rewards), ``min_welfare_paid`` (after the transfer),
``min_welfare_var`` (its variance across the round's episodes), ``fair_action_rate``,
``leader_fair_rate``, ``final_fair_rate``, the collective return, leader shares and, on the
grid, ``unfair_share``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from federation.compare import fmt_mean_std, last_quarter, mean_curve, mean_sd_ci  # noqa: E402
from federation.config import RunConfig  # noqa: E402
from federation.results import plt, read_metrics  # noqa: E402

METHODS = ("jamql", "jamql-naive", "fixed-leader", "alternating-leader", "vote-leader")
LABELS = {"jamql": "JAM-QL", "jamql-naive": "JAM-QL (naive)", "fixed-leader": "fixed leader",
          "alternating-leader": "alternating leader", "vote-leader": "vote-based leader"}
TABULAR = {"learner": "q-table", "q_epsilon": 1.0, "q_epsilon_schedule": "1/t", "q_lr": 0.1, "q_gamma": 0.95,
           "batch": 32}


@dataclass(frozen=True)
class Scenario:
    env: str
    agents: int
    rounds: int
    options: str
    settings: dict = field(default_factory=dict)


SCENARIOS = {
    "pd-2": Scenario("dilemma", 2, 150, "payoffs=pd", TABULAR),
    "chicken-2": Scenario("dilemma", 2, 150, "payoffs=chicken", TABULAR),
    "pd-4": Scenario("dilemma", 4, 200, "payoffs=pd", TABULAR),
    "chicken-4": Scenario("dilemma", 4, 200, "payoffs=chicken", TABULAR),
    "grid-2": Scenario("resource-grid", 2, 1200, "episode_length=25",
                       {"learner": "dqn", "batch": 32, "hidden": 32, "dqn_updates": 80, "dqn_batch": 128,
                        "dqn_eps_decay": 10_000, "dqn_buffer": 20_000, "reward_bin_width": 2.0}),
}
MATRIX = ("pd-2", "chicken-2", "pd-4", "chicken-4")
KEYS = (("min_welfare", "min welfare"), ("min_welfare_paid", "min welfare (paid)"),
        ("min_welfare_var", "var of min welfare"), ("collective_return", "collective"),
        ("fair_action_rate", "fair actions"), ("leader_fair_rate", "leaders' fair actions"),
        ("final_fair_rate", "fair last actions"), ("unfair_share", "unfair share"),
        ("leader_share_agent_0", "agent 0 leads"))


def plan(games: list[str], seeds: list[int], methods: list[str], out: Path, period: int) -> list[tuple]:
    runs = []
    for seed in seeds:  # seed outermost: an interrupted reproduction still has whole seeds
        for game in games:
            sc = SCENARIOS[game]
            for method in methods:
                cfg = RunConfig.of(env=sc.env, agents=sc.agents, rounds=sc.rounds, seed=seed, strategy=method,
                                   game_options=sc.options, mediator_period=period, progress=False, eval_every=0,
                                   out=str(out / "runs" / game / f"{method}_seed{seed}"), **sc.settings)
                runs.append((game, method, cfg))
    return runs


def finished(cfg: RunConfig) -> bool:
    path = Path(cfg.out) / "summary.json"
    return path.exists() and json.loads(path.read_text()).get("rounds_completed", 0) == cfg.rounds


def execute(cfg_json: str) -> str:
    """One run, in a worker process (the configuration travels as its JSON)."""
    import logging

    from federation.in_process import run_in_process

    logging.getLogger("fedgames").setLevel(logging.ERROR)
    cfg = RunConfig.from_json(cfg_json)
    if Path(cfg.out).exists():
        shutil.rmtree(cfg.out)
    run_in_process(cfg, checkpoints=False)
    shutil.rmtree(Path(cfg.out) / "agents", ignore_errors=True)  # the agents' tables: not results
    return cfg.out


def load(runs) -> dict[tuple[str, str], list[tuple[int, list[dict]]]]:
    results: dict = {}
    for game, method, cfg in runs:
        if finished(cfg):
            results.setdefault((game, method), []).append((cfg.seed, read_metrics(Path(cfg.out))))
    return results


def per_run(results) -> list[dict]:
    rows = []
    for (game, method), runs in results.items():
        for seed, metrics in runs:
            rows.append({"game": game, "method": method, "seed": seed,
                         **{k: last_quarter(metrics, k) for k, _ in KEYS}})
    return rows


def table(rows: list[dict], games: list[str], out: Path) -> str:
    lines = []
    for game in games:
        keys = [(k, lab) for k, lab in KEYS if any(np.isfinite(r[k]) for r in rows if r["game"] == game)]
        sc = SCENARIOS[game]
        lines += [f"\n### {game} ({sc.agents} agents, {sc.rounds} rounds, {sc.options})\n",
                  "| method | seeds | " + " | ".join(lab for _, lab in keys) + " |", "|" + "---|" * (len(keys) + 2)]
        for method in METHODS:
            mine = [r for r in rows if r["game"] == game and r["method"] == method]
            if mine:
                lines.append(f"| {LABELS[method]} | {len(mine)} | "
                             + " | ".join(fmt_mean_std([r[k] for r in mine]) for k, _ in keys) + " |")
    text = ("Last-quarter means per run; cells: mean ± sample std over seeds [± half-width of the 95% CI of "
            "the mean, Student's t].\n" + "\n".join(lines) + "\n")
    (out / "results.md").write_text(text)
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["game", "method", "seed"] + [k for k, _ in KEYS])
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["game"], r["method"], r["seed"])))
    return text


def claims(rows: list[dict], games: list[str], out: Path) -> str:
    """The paper's claims, game by game, with the numbers that decide them."""
    def values(game, method, key):
        return [r[key] for r in rows if r["game"] == game and r["method"] == method]

    lines = ["| game | JAM-QL min welfare | best baseline | JAM-QL highest? | var of min welfare, naive → JAM-QL "
             "(episodes) | cut > 50%? | var across seeds, naive → JAM-QL | cut > 50%? | fair actions (Chicken) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for game in games:
        jam = values(game, "jamql", "min_welfare")
        if not jam:
            continue
        base = {m: mean_sd_ci(values(game, m, "min_welfare"))[0] for m in METHODS[2:] if values(game, m, "min_welfare")}
        best = max(base, key=base.get) if base else None
        highest = "–" if best is None else ("yes" if np.mean(jam) > base[best] else "no")
        var_in = (np.mean(values(game, "jamql-naive", "min_welfare_var") or [np.nan]),
                  np.mean(values(game, "jamql", "min_welfare_var")))
        naive = values(game, "jamql-naive", "min_welfare")
        var_seed = (np.var(naive, ddof=1) if len(naive) > 1 else np.nan, np.var(jam, ddof=1) if len(jam) > 1 else np.nan)
        cut = "–" if not np.isfinite(var_in[0]) else ("yes" if var_in[1] < 0.5 * var_in[0] else "no")
        # across seeds: H0 equal variances, one-sided F-test that the transfer lowers it
        cut_seed = "–" if not np.isfinite(var_seed[0] + var_seed[1]) else (
            ("yes" if var_seed[1] < 0.5 * var_seed[0] else "no")
            + (f" (F-test p = {stats.f.sf(var_seed[0] / var_seed[1], len(naive) - 1, len(jam) - 1):.2g})"
               if var_seed[1] > 0 else ""))
        fair = fmt_mean_std(values(game, "jamql", "fair_action_rate")) if game.startswith("chicken") else "–"
        best_txt = "–" if best is None else f"{LABELS[best]} {base[best]:.3g}"
        lines.append(f"| {game} | {fmt_mean_std(jam)} | {best_txt} | {highest} | {var_in[0]:.3g} → {var_in[1]:.3g} "
                     f"| {cut} | {var_seed[0]:.3g} → {var_seed[1]:.3g} | {cut_seed} | {fair} |")
    text = "\n".join(lines) + ("\n\nMin welfare: the mean over episodes of the poorest agent's game return "
                               "(last quarter of the rounds). 'var (episodes)': the variance of the episode's minimum "
                               "welfare across the B episodes of a round, averaged over the last quarter and the "
                               "seeds; 'across seeds': the sample variance of the per-seed means (the spread of the "
                               "learning curves across runs), with a one-sided F-test of naive > JAM-QL.\n")
    text += "\n" + paired(rows, games)
    (out / "claims.md").write_text(text)
    return text


def paired(rows: list[dict], games: list[str]) -> str:
    """JAM-QL minus each other method, seed by seed (the same payoffs and seeds), with a paired t-test."""
    lines = ["| game | JAM-QL − | seeds | Δ min welfare | p |", "|---|---|---|---|---|"]
    for game in games:
        jam = {r["seed"]: r["min_welfare"] for r in rows if r["game"] == game and r["method"] == "jamql"}
        for method in METHODS[1:]:
            other = {r["seed"]: r["min_welfare"] for r in rows if r["game"] == game and r["method"] == method}
            seeds = sorted(set(jam) & set(other))
            if len(seeds) < 2:
                continue
            a, b = np.array([jam[k] for k in seeds]), np.array([other[k] for k in seeds])
            p = stats.ttest_rel(a, b).pvalue if np.ptp(a - b) > 0 else float("nan")
            lines.append(f"| {game} | {LABELS[method]} | {len(seeds)} | {fmt_mean_std(a - b)} | {p:.2g} |")
    return ("Paired by seed, last-quarter means; cells: mean ± sample std of the per-seed differences "
            "[± 95% CI half-width]; p: two-sided paired t-test.\n\n" + "\n".join(lines) + "\n")


def plot(results, games: list[str], path: Path) -> None:
    fig, axes = plt.subplots(1, len(games), figsize=(4.5 * len(games), 3.8), squeeze=False)
    for ax, game in zip(axes[0], games):
        for c, method in enumerate(METHODS):
            runs = results.get((game, method))
            if not runs:
                continue
            mean, half = mean_curve([m for _, m in runs], "min_welfare", smoothing=0.05)
            x = np.arange(1, len(mean) + 1)
            ax.plot(x, mean, color=f"C{c}", label=f"{LABELS[method]} (n={len(runs)})")
            ax.fill_between(x, mean - half, mean + half, color=f"C{c}", alpha=0.15)
        ax.set(title=game, xlabel="round", ylabel="minimum welfare per episode")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--games", nargs="+", default=list(MATRIX), choices=list(SCENARIOS))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--period", type=int, default=5, help="--mediator-period of every run (rounds per turn)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time")
    p.add_argument("--out", type=Path, default=Path("docs/results/jamql"))
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    runs = plan(args.games, args.seeds, args.methods, args.out, args.period)
    todo = [cfg for _, _, cfg in runs if not finished(cfg)]
    if todo and not args.report_only:
        print(f"{len(todo)} of {len(runs)} runs to do", flush=True)
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for k, done in enumerate(pool.map(execute, [c.to_json() for c in todo]), 1):
                print(f"[{k}/{len(todo)}] {done}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    every = [g for g in SCENARIOS if (args.out / "runs" / g).exists()]  # tables cover every game run so far
    runs = plan(every, sorted({int(d.name.rsplit("seed", 1)[1]) for g in every for d in (args.out / "runs" / g).iterdir()}),
                list(METHODS), args.out, args.period)
    results = load(runs)
    rows = per_run(results)
    print(table(rows, every, args.out))
    print(claims(rows, every, args.out))
    plot(results, every, args.out / "min_welfare.png")


if __name__ == "__main__":
    main()
