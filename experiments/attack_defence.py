#!/usr/bin/env python
"""Exploitation of a federation by poisoning participants, with and without robust aggregation.

    python experiments/attack_defence.py --strategy dnf --seeds 0 1 2 --rounds 40 \
        --out docs/results/attack_defence

On the Matthew Effect (10 agents) one agent (``--attackers``, default agent 0) uploads
poisoned parameters (``--attacks``: sign-flip, noise, free-ride; clients/attacks.py)
while the federation combines the uploads with each rule of ``--defences`` (mean, median,
trimmed-mean, krum, multikrum, bulyan; strategies/robust.py). Every (defence, seed) also
runs without an attack, the paired control. Reported in OUT/attack_defence.md and .csv:
the honest agents' mean return per agent over the last quarter of the rounds, with the
attack and without, and their difference seed by seed (the exploitation: how much the
attack costs the honest agents; negative = harm), mean ± sample std [95% CI]; and the
attacker's own return. Finished runs are skipped, so an interrupted study resumes.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clients.attacks import AttackConfig  # noqa: E402
from federation.compare import fmt_mean_std, last_quarter, mean_sd_ci  # noqa: E402
from federation.config import RunConfig  # noqa: E402
from federation.results import discard_state, read_metrics  # noqa: E402
from federation.simulation import simulate  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strategy", default="dnf", choices=["fpf", "dnf", "fedavg", "lmf"])
    p.add_argument("--attacks", nargs="+", default=["sign-flip", "noise", "free-ride"])
    p.add_argument("--defences", nargs="+", default=["mean", "median", "multikrum"])
    p.add_argument("--attackers", default="0")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--out", type=Path, default=Path("docs/results/attack_defence"))
    args = p.parse_args()
    agents = RunConfig().agents
    honest = set(range(agents)) - set(AttackConfig("sign-flip", args.attackers).ids(agents))

    def run_dir(attack: str, defence: str, seed: int) -> Path:
        return args.out / "runs" / f"{args.strategy}_{attack}_{defence}_seed{seed}"

    for seed in args.seeds:  # seed outermost: an interrupted study still has whole seeds
        for defence in args.defences:
            for attack in ["none", *args.attacks]:
                out = run_dir(attack, defence, seed)
                if (out / "summary.json").exists():
                    continue
                print(f"[seed {seed}] {args.strategy} attack {attack} defence {defence}", flush=True)
                extra = {"attackers": args.attackers} if attack != "none" else {}
                cfg = RunConfig.of(strategy=args.strategy, participation="1.0", rounds=args.rounds, seed=seed,
                                   attack=attack, robust=defence, robust_f=1, progress=False, eval_every=0,
                                   out=str(out), **extra)
                simulate(cfg)
                discard_state(cfg.out)

    lines = [f"# Attacks against {args.strategy} on the Matthew Effect, by defence\n",
             f"`python experiments/attack_defence.py --strategy {args.strategy} --seeds "
             f"{' '.join(map(str, args.seeds))} --rounds {args.rounds}` (attacker: agent {args.attackers})\n",
             "| defence | attack | seeds | honest, attacked | honest, no attack | exploitation (attacked − not) | "
             "attacker's return |", "|---|---|---|---|---|---|---|"]
    rows_csv = []
    for defence in args.defences:
        for attack in args.attacks:
            pairs = []
            for seed in args.seeds:
                a, c = run_dir(attack, defence, seed), run_dir("none", defence, seed)
                if (a / "summary.json").exists() and (c / "summary.json").exists():
                    ra, rc = read_metrics(a), read_metrics(c)
                    pairs.append((last_quarter(ra, "honest_return"),
                                  float(np.mean([last_quarter(rc, f"return_agent_{i}") for i in honest])),
                                  last_quarter(ra, "attackers_return")))
            if not pairs:
                continue
            attacked, clean, own = (list(x) for x in zip(*pairs))
            diff = [x - y for x, y in zip(attacked, clean)]
            lines.append(f"| {defence} | {attack} | {len(pairs)} | {fmt_mean_std(attacked)} | {fmt_mean_std(clean)} | "
                         f"{fmt_mean_std(diff)} | {fmt_mean_std(own)} |")
            mean, sd, half, n = mean_sd_ci(diff)
            rows_csv.append({"strategy": args.strategy, "defence": defence, "attack": attack, "n": n,
                             "exploitation_mean": mean, "exploitation_sd": sd, "exploitation_ci95": half})
    lines.append("\nReturns per agent per episode over the last quarter of the rounds; cells: mean ± sample std "
                 "over seeds [± 95% CI half-width]. The control is the same defence and seed without an attack.")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "attack_defence.md").write_text("\n".join(lines) + "\n")
    if rows_csv:
        with (args.out / "attack_defence.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows_csv[0]))
            writer.writeheader()
            writer.writerows(rows_csv)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
