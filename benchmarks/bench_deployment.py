#!/usr/bin/env python
"""Per-round cost of a real local deployment against the simulation, in one invocation.

    python benchmarks/bench_deployment.py --rounds 6 --agents 3

Runs the same configuration (independent PPO learners on the Matthew Effect) first in
Flower's simulation runtime (``run_sim.py``'s path) and then on a local SuperLink with
one SuperNode per agent (tools/local_deployment.py; ``--tls`` for TLS with SuperNode
authentication), and prints the mean ``round_s`` of both (the first round, which warms
up, left out) and their ratio. In deployment every message starts a fresh ClientApp
process that imports torch and reloads the learner from its storage; in simulation the
workers stay. Compare the two printed numbers, not either alone: the machine's load
moves both.
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


def mean_round_s(out: Path) -> float:
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    return float(np.mean([float(r["round_s"]) for r in rows[1:]]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--agents", type=int, default=3)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--tls", action="store_true", help="deployment over TLS with SuperNode authentication")
    args = p.parse_args()
    settings = {"strategy": "independent", "agents": args.agents, "rounds": args.rounds, "batch": args.batch,
                "progress": False}
    with tempfile.TemporaryDirectory() as tmp:
        sim_out, dep_out = Path(tmp) / "simulation", Path(tmp) / "deployment"
        simulate(RunConfig.of(**settings, out=str(sim_out)).validated())
        with LocalDeployment(ROOT, num_agents=args.agents, tls=args.tls, auth=args.tls) as dep:
            dep.run({**settings, "out": str(dep_out)}, timeout=3600)
        sim, depl = mean_round_s(sim_out), mean_round_s(dep_out)
    print(f"simulation: {sim:.2f} s per round; deployment{' (TLS, auth)' if args.tls else ''}: {depl:.2f} s per round "
          f"({args.agents} agents, rounds 2-{args.rounds})")
    print(f"Deployment round / simulation round: {depl / sim:.2f}")


if __name__ == "__main__":
    main()
