"""The games' random-policy levels against the reference implementation's.

    python -m experiments.random_levels --episodes 1024 --out docs/results/random_levels.md

Every agent plays uniformly random actions for one 200-step episode in each of
``--episodes`` copies of Job Scheduling (4 agents) and Manufacturing Plant (5 agents),
under the reference rules (the default) and the earlier ``legacy`` rules. Reported:
the collective return (mean ± sample std over episodes, 95% CI of the mean) and the CV
of the agents' returns per episode (mean over episodes), against the levels the
reference code gives (Job 29.1 ± 9.7, CV 0.65; Plant 15.8 ± 4.0, CV 0.55).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import envs
from federation.compare import fmt_mean_std
from federation.metrics import cv

GAMES = {"job": 4, "manufacturing": 5}
REFERENCE = {"job": (29.1, 9.7, 0.65), "manufacturing": (15.8, 4.0, 0.55)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("docs/results/random_levels.md"))
    args = p.parse_args()
    lines = ["| game | rules | episodes | collective return | CV | reference code | mean − reference |",
             "|---|---|---|---|---|---|---|"]
    for name, agents in GAMES.items():
        for rules in ("reference", "legacy"):
            returns = envs.random_policy_returns(name, agents, args.episodes, args.seed, rules=rules)
            cvs = [cv(r) for r in returns if r.sum() > 0]
            mean, sd, ref_cv = REFERENCE[name]
            lines.append(f"| {name} ({agents} agents) | {rules} | {args.episodes} | {fmt_mean_std(returns.sum(axis=1))} | "
                         f"{np.mean(cvs):.2f} | {mean} ± {sd}, CV {ref_cv} | {returns.sum(axis=1).mean() - mean:+.1f} |")
    text = ("# Random-policy levels\n\n`python -m experiments.random_levels --episodes "
            f"{args.episodes} --seed {args.seed}`\n\n" + "\n".join(lines)
            + "\n\nCollective return of one 200-step episode: mean ± sample std over episodes [± 95% CI "
              "half-width of the mean]; CV: std/mean of the agents' returns in an episode, averaged over "
              "episodes (episodes where nobody scored are left out).\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
