"""Poisoning a federation (experiments/campaigns/attack-defence.toml): ``attack_defence.md``
and ``attack_defence.csv``, the exploitation of the honest agents by defence and attack.

The campaign's scenarios are the defences (the aggregation rule), its methods the attacks,
``none`` the paired control. For each (defence, attack) and each seed where both the attacked
run and its control (the same defence and seed, no attack) finished, over the last quarter
of the rounds (analysis.window's default):

- honest, attacked: the attacked run's ``honest_return`` (the mean return of the agents that
  do not attack);
- honest, no attack: the control's mean of ``return_agent_<i>`` over the same agents;
- exploitation: attacked minus not, seed by seed (negative: the attack harms them);
- the attacker's own return (``attackers_return``).

Cells: mean ± sample sd [± 95% t-CI half-width] over seeds (analysis.tables.fmt_mean_sd);
the CSV has the exploitation's mean, sd, ci95 and n (analysis.stats.mean_sd_ci). The control's
"honest agents" are a derived value (a mean of per-agent columns), which the report's paired
tables cannot name; hence this module.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from analysis import stats, tables
from analysis.window import final_value

CONTROL = "none"
WINDOW = "last-quarter"
ROOT = Path(__file__).resolve().parents[2]


def _rel(path) -> str:
    """The campaign file's path relative to the repository's root (as given when outside it)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def attackers(run) -> set[int]:
    """The attacking agents of a run (its config's ``attackers``, e.g. "0" or "0,1")."""
    text = str(run.config.get("attack", {}).get("attackers", ""))
    return {int(x) for x in text.replace(" ", "").split(",") if x}


def pairs(campaign, runs: dict, defence: str, attack: str, window: str = WINDOW) -> list[tuple[float, float, float]]:
    """Per seed with both runs finished: (honest attacked, the same agents without the attack,
    the attacker's return)."""
    out = []
    for seed in sorted({k[2] for k in runs if k[0] == defence}):
        a, c = runs.get((defence, attack, seed)), runs.get((defence, CONTROL, seed))
        if a is None or c is None:
            continue
        honest = set(range(int(a.config.get("agents", 0)))) - attackers(a)
        clean = float(np.mean([final_value(c.rows, f"return_agent_{i}", window).value for i in sorted(honest)]))
        out.append((final_value(a.rows, "honest_return", window).value, clean,
                    final_value(a.rows, "attackers_return", window).value))
    return out


def figures(campaign, runs: dict, out: Path) -> list[Path]:
    out = Path(out)
    window = (campaign.tables.get("report") or {}).get("window") or WINDOW
    strategies = sorted({str(r.config.get("strategy")) for r in runs.values()})
    if not strategies:
        return []
    strategy = "/".join(strategies)
    agents = sorted({a for r in runs.values() for a in attackers(r)})
    lines = [f"# Attacks against {strategy} on the Matthew Effect, by defence\n",
             f"`python -m experiments report {_rel(campaign.path)}` (the runs of `python -m experiments run "
             f"{_rel(campaign.path)}`; attacker: agent {','.join(map(str, agents))})\n",
             "| defence | attack | seeds | honest, attacked | honest, no attack | exploitation (attacked − not) | "
             "attacker's return |", "|---|---|---|---|---|---|---|"]
    rows_csv = []
    for defence, sc in campaign.scenarios.items():
        for attack in campaign.methods:
            if attack == CONTROL or attack not in sc.methods:
                continue
            found = pairs(campaign, runs, defence, attack, window)
            if not found:
                continue
            attacked, clean, own = (list(x) for x in zip(*found))
            diff = [x - y for x, y in zip(attacked, clean)]
            lines.append(f"| {defence} | {attack} | {len(found)} | {tables.fmt_mean_sd(attacked)} | "
                         f"{tables.fmt_mean_sd(clean)} | {tables.fmt_mean_sd(diff)} | {tables.fmt_mean_sd(own)} |")
            s = stats.mean_sd_ci(diff)
            rows_csv.append({"strategy": strategy, "defence": defence, "attack": attack, "n": s.n,
                             "exploitation_mean": s.mean, "exploitation_sd": s.sd, "exploitation_ci95": s.ci})
    lines.append("\nReturns per agent per episode over the last quarter of the rounds; cells: mean ± sample std "
                 "over seeds [± 95% CI half-width]. The control is the same defence and seed without an attack.")
    out.mkdir(parents=True, exist_ok=True)
    md = out / "attack_defence.md"
    md.write_text("\n".join(lines) + "\n")
    written = [md]
    if rows_csv:
        path = out / "attack_defence.csv"
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows_csv[0]))
            writer.writeheader()
            writer.writerows(rows_csv)
        written.append(path)
    return written
