#!/usr/bin/env python
"""Per-round cost of a real local deployment against the simulation, in one invocation.

    python benchmarks/bench_deployment.py --rounds 6 --agents 3
    python benchmarks/bench_deployment.py --rounds 4 --agents 10

Runs the same configuration (independent PPO learners on the Matthew Effect) first in
Flower's simulation runtime (``run_sim.py``'s path) and then on a local SuperLink with
one SuperNode per agent (tools/local_deployment.py; ``--tls`` for TLS with SuperNode
authentication; ``--flower-supernode`` for Flower's own ``flower-supernode``, which starts
a ``flwr-clientapp`` process per message, instead of ``tools.supernode``), and prints where
a round's time goes in both (means over the rounds after the first, which warms up) and
the ratio of their ``round_s``. In deployment the agents' learners live in each node's
learner process (clients/node_worker.py); in simulation in Flower's workers. Compare the
two columns, not either alone: the machine's load moves both.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from federation.config import RunConfig  # noqa: E402
from federation.simulation import simulate  # noqa: E402
from tools.local_deployment import LocalDeployment  # noqa: E402


#: (column of metrics.csv, what it is); indented rows are parts of the row above
BREAKDOWN = [
    ("round_s", "round"),
    ("rollout_s", "  rollout (server)"),
    ("exchange_s", "  exchange: messages out, training, replies back"),
    ("busiest_s", "    the busiest agent process's own work (client_s)"),
    ("train_per_agent_s", "      of which training (mean per agent)"),
    ("agents_relay_s", "    relay: ClientApp <-> the node's learner process (mean)"),
    ("agents_clientapp_start_s", "    ClientApp process start: Python, Flower, bundle (mean)"),
    ("flower_s", "    Flower: processes, polling, transport (exchange - busiest)"),
    ("aggregate_s", "  aggregation (server)"),
]


def _value(row: dict[str, str], key: str) -> float:
    if key == "train_per_agent_s":
        return float(row["train_s"]) / max(1.0, float(row["trained_agents"]))
    return float(row[key]) if row.get(key, "") != "" else float("nan")


def breakdown(out: Path) -> dict[str, float]:
    """Mean of each BREAKDOWN column over the rounds after the first (nan where absent)."""
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))[1:]
    return {key: float(np.mean([_value(r, key) for r in rows])) for key, _ in BREAKDOWN}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--agents", type=int, default=3)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--tls", action="store_true", help="deployment over TLS with SuperNode authentication")
    p.add_argument("--flower-supernode", action="store_true",
                   help="Flower's flower-supernode (a flwr-clientapp process per message) instead of tools.supernode")
    args = p.parse_args()
    if args.rounds < 2:
        p.error("--rounds must be at least 2: the first round is left out")
    settings = {"strategy": "independent", "agents": args.agents, "rounds": args.rounds, "batch": args.batch,
                "progress": False}
    with tempfile.TemporaryDirectory() as tmp:
        sim_out, dep_out = Path(tmp) / "simulation", Path(tmp) / "deployment"
        simulate(RunConfig.of(**settings, out=str(sim_out)).validated())
        with LocalDeployment(ROOT, num_agents=args.agents, tls=args.tls, auth=args.tls,
                             flower_supernode=args.flower_supernode) as dep:
            dep.run({**settings, "out": str(dep_out)}, timeout=3600)
        sim, depl = breakdown(sim_out), breakdown(dep_out)
    kind = ("flower-supernode" if args.flower_supernode else "tools.supernode") + (", TLS, auth" if args.tls else "")
    print(f"{args.agents} agents, seconds per round, means of rounds 2-{args.rounds}")
    print(f"{'':66s} {'simulation':>10s} {'deployment':>10s}")
    for key, label in BREAKDOWN:
        print(f"{label:66s} {sim[key]:10.3f} {depl[key]:10.3f}")
    print(f"deployment ({kind}) round / simulation round: {depl['round_s'] / sim['round_s']:.2f}")


if __name__ == "__main__":
    main()
