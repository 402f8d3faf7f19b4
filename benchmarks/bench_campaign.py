#!/usr/bin/env python
"""Benchmark of the campaign engine: the same small campaign with ``--jobs 1`` and ``--jobs 2``.

One invocation runs both, so they see the same machine: a campaign of 4 short runs
(Matthew Effect, 3 agents, small networks, FPF and independent learners, 2 seeds; about
5-10 s a run on one core), written to a temporary directory, first one run at a time in
this process, then two at a time in spawned processes (each pays its own imports). It
checks that both give the same metrics, runs the same 4 runs once more without the engine
in 2 plain processes (what the machine itself gives two processes now: the ceiling of the
speed-up, below 2 when its cores are shared or busy) and prints, last::

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


BARE = """
import sys
sys.path.insert(0, sys.argv[1])
import torch
from federation.config import RunConfig
from federation.in_process import run_in_process
torch.set_num_threads(1)
for path in sys.argv[2:]:
    with open(path) as f:
        run_in_process(RunConfig.from_json(f.read()))
"""


def bare(plan, tmp: Path, processes: int = 2) -> float:
    """The same runs without the engine: ``processes`` plain processes started at once,
    each running its share of the runs one after the other. What the machine gives two
    processes now: the ceiling of the engine's speed-up (2 on two free cores)."""
    import subprocess

    files = []
    for k, run in enumerate(plan):
        path = tmp / f"bare{k}.json"
        path.write_text(run.cfg.replace(out=str(tmp / "bare" / run.out.name), progress=False).to_json())
        files.append(str(path))
    root = str(Path(__file__).resolve().parents[1])
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", BARE, root, *files[i::processes]], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for i in range(processes)]
    if any(proc.wait() for proc in procs):
        sys.exit("the reference without the engine failed")
    return time.perf_counter() - start


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
        reference = bare(plans[1], Path(tmp))
        print(f"without the engine, 2 plain processes: {reference:.1f} s; this machine's own speed-up for these runs "
              f"with 2 processes ({os.cpu_count()} CPUs, shared): {walls[1] / reference:.2f}", flush=True)
        print(f"campaign speed-up with 2 jobs: {walls[1] / walls[2]:.2f}")


if __name__ == "__main__":
    main()
