#!/usr/bin/env python
"""Benchmark of the campaign engine: the same small campaign with ``--jobs 1`` and ``--jobs 2``.

One invocation runs both, so they see the same machine: a campaign of 4 short runs
(Matthew Effect, 3 agents, small networks, FPF and independent learners, 2 seeds; about
5-10 s a run on one core), written to a temporary directory, first one run at a time in
this process, then two at a time in spawned processes (each pays its own imports). It
checks that both give the same metrics, measures the machine's own headroom for two
processes (two CPU-bound loops at once against one after the other: the ceiling of the
speed-up, below 2 when the cores are shared or busy) and prints, last::

    campaign speed-up with 2 jobs: X

    python benchmarks/bench_campaign.py [--rounds 30] [--steps 200]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CAMPAIGN = """
name = "bench"
description = "4 short Matthew runs: FPF and independent learners, 2 seeds"
out = "{out}"
seeds = [0, 1]
runner = "in-process"
keep_state = false

[defaults]
env = "matthew"
agents = 3
rounds = {rounds}
batch = 8
steps = {steps}
hidden = 16
minibatch = 256
epochs = 2
eval-every = 0

[scenarios.matthew-3]

[methods.fpf]
strategy = "fpf"
fed-updates = 4
fed-batch = 128

[methods.independent]
strategy = "independent"
"""


SPIN = "import time\nt = time.perf_counter()\nx = 0\nfor i in range(20_000_000):\n    x += i\nprint(time.perf_counter() - t)"


def headroom() -> float:
    """What two CPU-bound processes at once gain over one after the other on this machine
    now (2.0 with two free cores): the ceiling of the speed-up below."""
    import subprocess

    def spin(n: int) -> float:
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.DEVNULL) for _ in range(n)]
        for proc in procs:
            proc.wait()
        return time.perf_counter() - start

    return 2 * spin(1) / spin(2)


def metrics(run_dir: Path) -> list[dict]:
    with (run_dir / "metrics.csv").open() as f:
        return [{k: v for k, v in row.items() if not k.endswith("_s")} for row in csv.DictReader(f)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--steps", type=int, default=200, help="steps of each game copy per round")
    args = p.parse_args()

    from experiments.campaign import load
    from experiments.engine import run_campaign

    with tempfile.TemporaryDirectory(prefix="bench-campaign-") as tmp:
        walls, plans = {}, {}
        for jobs in (1, 2):
            path = Path(tmp) / f"jobs{jobs}.toml"
            path.write_text(CAMPAIGN.format(out=Path(tmp) / f"jobs{jobs}", rounds=args.rounds, steps=args.steps))
            campaign = load(path)
            log = io.StringIO()
            start = time.perf_counter()
            report = run_campaign(campaign, jobs=jobs, stream=log)
            walls[jobs] = time.perf_counter() - start
            if not report.complete:
                sys.exit(f"the campaign with --jobs {jobs} did not finish:\n{log.getvalue()}")
            runs = [o.wall_s for o in report.outcomes.values()]
            plans[jobs] = campaign.plan()
            print(f"--jobs {jobs}: {len(runs)} runs in {walls[jobs]:.1f} s (each {min(runs):.1f}-{max(runs):.1f} s)",
                  flush=True)
        same = all(metrics(a.out) == metrics(b.out) for a, b in zip(plans[1], plans[2]))
        print(f"same metrics with 1 and 2 jobs: {'yes' if same else 'NO'}")
        print(f"this machine's headroom for 2 processes (two CPU-bound loops at once against one after the other; "
              f"{os.cpu_count()} CPUs): {headroom():.2f}", flush=True)
        print(f"campaign speed-up with 2 jobs: {walls[1] / walls[2]:.2f}")


if __name__ == "__main__":
    main()
