#!/usr/bin/env python
"""Reproduce the comparisons of "Beyond Mandatory Federations" on the three classic games.

    python experiments/reproduce_fpf.py --seeds 0 1 --out docs/results

For the Matthew Effect (10 agents), Job Scheduling (4) and Manufacturing Plant (5) it
runs the baselines (independent, AVG, MIN, IA, FedAvg), FPF with half the agents
participating, D&F, and LMF with every agent participating over a ring; on the Matthew
Effect also LMF-Fix (two disjoint federations) and LMF-Dynamic (overlapping federations
that change every round). It then writes into OUT:

- ``collective_return.png``  FPF against the baselines (the paper's Figure 1);
- ``federations.png``        FPF, LMF and D&F (Figure 2);
- ``participants.png``       FPF's participants vs non-participants (Figure 3a-c);
- ``lmf_variants.png``       LMF, LMF-Fix and LMF-Dynamic on the Matthew Effect (Figure 3d);
- ``results.md`` / ``results.csv``  collective return, CV, Jain, min return and the
  participants' and non-participants' returns per game and method, mean ± std over seeds.

Runs already finished (their summary.json exists) are not run again, so an interrupted
reproduction resumes where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from federation.config import RunConfig  # noqa: E402
from federation.compare import fmt_mean_std, mean_curve  # noqa: E402
from federation.results import plt, read_metrics  # noqa: E402
from federation.simulation import simulate  # noqa: E402

GAMES = {"matthew": 10, "job": 4, "manufacturing": 5}
LABELS = {"independent": "IPPO", "avg": "IPPO-AVG", "min": "IPPO-MIN", "ia": "IA", "fedavg": "FedAvg",
          "fpf": "FPF", "dnf": "D&F", "lmf": "LMF", "lmf-fix": "LMF-Fix", "lmf-dynamic": "LMF-Dynamic"}
VARIANTS = {
    "independent": {"strategy": "independent"},
    "avg": {"strategy": "avg"},
    "min": {"strategy": "min"},
    "ia": {"strategy": "ia"},
    "fedavg": {"strategy": "fedavg"},
    "fpf": {"strategy": "fpf", "participation": "0.5"},
    "dnf": {"strategy": "dnf"},
    "lmf": {"strategy": "lmf", "participation": "1.0", "graph": "ring"},
    "lmf-fix": {"strategy": "lmf", "participation": "1.0", "graph": "fixed", "graph_k": 2},
    "lmf-dynamic": {"strategy": "lmf", "participation": "1.0", "graph": "dynamic"},
}
MATTHEW_ONLY = ("lmf-fix", "lmf-dynamic")


def plan(games: dict[str, int], seeds: list[int], out: Path) -> list[tuple[str, str, RunConfig]]:
    runs = []  # seed outermost: an interrupted reproduction still has whole seeds
    for seed in seeds:
        for game, rounds in games.items():
            for variant, settings in VARIANTS.items():
                if variant in MATTHEW_ONLY and game != "matthew":
                    continue
                cfg = RunConfig.of(env=game, agents=GAMES[game], rounds=rounds, seed=seed, progress=False,
                                out=str(out / "runs" / game / f"{variant}_seed{seed}"), **settings)
                runs.append((game, variant, cfg))
    return runs


def load(runs) -> dict[tuple[str, str], list[tuple[dict, list[dict]]]]:
    results = defaultdict(list)
    for game, variant, cfg in runs:
        path = Path(cfg.out)
        if (path / "summary.json").exists():
            results[game, variant].append((json.loads((path / "summary.json").read_text()), read_metrics(path)))
    return results


def plot(results, games, variants, key, path: Path, title: str, ylabel: str) -> None:
    fig, axes = plt.subplots(1, len(games), figsize=(5 * len(games), 4), squeeze=False)
    for ax, game in zip(axes[0], games):
        for c, variant in enumerate(variants):
            runs = results.get((game, variant))
            if not runs:
                continue
            mean, std = mean_curve([m for _, m in runs], key, smoothing=0.1)
            x = np.arange(1, len(mean) + 1)
            ax.plot(x, mean, color=f"C{c}", label=LABELS[variant])
            ax.fill_between(x, mean - std, mean + std, color=f"C{c}", alpha=0.15)
        ax.set(title=game, xlabel="round (one 200-step episode per game copy)", ylabel=ylabel)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_participants(results, games, path: Path) -> None:
    fig, axes = plt.subplots(1, len(games), figsize=(5 * len(games), 4), squeeze=False)
    for ax, game in zip(axes[0], games):
        runs = results.get((game, "fpf"))
        if not runs:
            continue
        for c, (key, label) in enumerate((("participants_return", "participants"),
                                          ("nonparticipants_return", "non-participants"))):
            mean, std = mean_curve([m for _, m in runs], key, smoothing=0.1)
            x = np.arange(1, len(mean) + 1)
            ax.plot(x, mean, color=f"C{c + 2}", label=label)
            ax.fill_between(x, mean - std, mean + std, color=f"C{c + 2}", alpha=0.15)
        ax.set(title=f"FPF on {game}", xlabel="round", ylabel="mean return per agent")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(results, games, out: Path) -> str:
    cols = [("collective_return_last", "collective (last 10%)"), ("collective_return_avg", "collective (avg)"),
            ("cv_last", "CV (last 10%)"), ("cv_avg", "CV (avg)"), ("jain_last", "Jain (last)"),
            ("min_return_last", "min (last)"), ("participants_return_last", "participants (last)"),
            ("nonparticipants_return_last", "non-participants (last)")]
    lines, rows = [], []
    for game in games:
        lines += [f"\n### {game} ({GAMES[game]} agents)\n", "| method | seeds | " + " | ".join(c for _, c in cols) + " |",
                  "|" + "---|" * (len(cols) + 2)]
        for variant in VARIANTS:
            runs = results.get((game, variant))
            if not runs:
                continue
            seeds = ",".join(str(s["seed"]) for s, _ in runs)
            cells = [fmt_mean_std([s.get(k) for s, _ in runs]) for k, _ in cols]
            lines.append(f"| {LABELS[variant]} | {seeds} | " + " | ".join(cells) + " |")
            for s, _ in runs:
                rows.append({"game": game, "method": LABELS[variant], "seed": s["seed"], **{k: s.get(k) for k, _ in cols}})
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["game", "method", "seed"] + [k for k, _ in cols])
        writer.writeheader()
        writer.writerows(rows)
    text = "\n".join(lines).strip() + "\n"
    (out / "results.md").write_text(text)
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--out", type=Path, default=Path("docs/results"))
    p.add_argument("--rounds", type=int, nargs=3, default=[30, 40, 40], metavar=("MATTHEW", "JOB", "MANUFACTURING"))
    p.add_argument("--report-only", action="store_true", help="only redraw figures and tables from finished runs")
    args = p.parse_args()
    games = dict(zip(GAMES, args.rounds))
    runs = plan(games, args.seeds, args.out)
    if not args.report_only:
        for k, (game, variant, cfg) in enumerate(runs, 1):
            if (Path(cfg.out) / "summary.json").exists():
                continue
            print(f"[{k}/{len(runs)}] {game} {variant} seed {cfg.seed}", flush=True)
            simulate(cfg)
    results = load(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    baselines = ["independent", "avg", "min", "ia", "fedavg", "fpf"]
    plot(results, list(games), baselines, "collective_return", args.out / "collective_return.png",
         "Collective return: FPF and the baselines", "collective return")
    plot(results, list(games), ["fpf", "lmf", "dnf"], "collective_return", args.out / "federations.png",
         "Collective return: FPF, LMF and D&F", "collective return")
    plot(results, ["matthew"], ["lmf", "lmf-fix", "lmf-dynamic"], "collective_return", args.out / "lmf_variants.png",
         "LMF variants on the Matthew Effect", "collective return")
    plot(results, list(games), baselines + ["dnf", "lmf"], "cv", args.out / "cv.png", "Coefficient of variation", "CV")
    plot_participants(results, list(games), args.out / "participants.png")
    print(table(results, list(games), args.out))


if __name__ == "__main__":
    main()
