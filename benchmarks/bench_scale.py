#!/usr/bin/env python
"""How LMF scales with the number of agents: seconds per round and peak memory.

For each size N (default 100, 1,000 and 10,000 agents) runs::

    python run_sim.py --runner RUNNER --env matthew --agents N --strategy lmf --graph ring \\
        --rounds 2 --batch 2 [--stacked auto] --no-progress --overwrite --out OUT/RUNNER_N

under benchmarks/peak_memory.py's measurement (the peak of the summed PSS of the whole
process tree, Ray's workers included) and prints one line per size::

    N agents: T s per round, M GiB peak

T is the mean ``round_s`` of metrics.csv over the rounds named in the line (all of them;
round 1 includes building every learner). Before each size the peak is extrapolated from
the sizes measured so far (linearly in N: the cost per agent of the last two, or the last
size's peak times N/N' when only one is known); a size whose estimate exceeds
``--memory-limit`` is skipped and its line says so. After the sizes, the memory each more
agent costs, (peak(N2) − peak(N1)) / (N2 − N1), in bytes.

    python benchmarks/bench_scale.py [--sizes 100 1000 10000] [--runner in-process|simulation|both]

``--runner in-process`` (the default) is what README's "Many agents" recommends at scale:
the round loop in one process, agents trained stacked (``--stacked auto``) in groups of
federation/in_process.py's CHUNK, learners read from their storage each round;
``--runner simulation`` is Flower's simulation runtime (one Ray actor per CPU).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.peak_memory import measure  # noqa: E402
from federation.in_process import CHUNK  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024 ** 3
#: the flags every size runs with (besides --agents, --runner and --out)
FLAGS = ["--env", "matthew", "--strategy", "lmf", "--graph", "ring", "--batch", "2", "--no-progress", "--overwrite"]
#: what each runner adds: the configuration a user at that scale should use
#: (in one process, the stacked updates' matrix products use every core: 1.8 times faster on 2)
THREADS = os.cpu_count() or 1
RUNNER_FLAGS = {"in-process": ["--stacked", "auto", "--torch-threads", str(THREADS)], "simulation": []}


def command(runner: str, agents: int, rounds: int, out: Path) -> list[str]:
    return [sys.executable, str(ROOT / "run_sim.py"), "--runner", runner, "--agents", str(agents),
            "--rounds", str(rounds), *FLAGS, *RUNNER_FLAGS[runner], "--out", str(out)]


def estimate(measured: list[tuple[int, float]], agents: int) -> float | None:
    """Peak bytes extrapolated to ``agents`` from (N, peak bytes) measured so far."""
    if not measured:
        return None
    (n1, m1), = measured[-1:]
    if len(measured) == 1:
        return m1 * agents / n1
    n0, m0 = measured[-2]
    return m1 + (agents - n1) * max((m1 - m0) / (n1 - n0), 0.0)


def ppo_floor(agents: int, group: int = CHUNK) -> float:
    """Seconds per round that the agents' PPO updates alone take, stacked in groups of
    ``group`` as the in-process runner trains them (benchmarks/stacked_ppo.py: the same
    networks, hyperparameters and experience, B = 2 episodes per agent): a full group's
    update times the number of full groups, plus the last, smaller group's update (each
    the second of two, after a warm-up). No round of the project can be faster on this
    machine than this, whatever else it cuts."""
    import torch

    torch.set_num_threads(THREADS)  # as the in-process runs here (RUNNER_FLAGS)
    full, rest = divmod(agents, group)
    last = max(rest, 2)  # a game needs two agents: one agent's share of the smallest group
    return (full * _group_seconds(group) if full else 0.0) + (_group_seconds(last) * rest / last if rest else 0.0)


def _group_seconds(size: int) -> float:
    """One stacked PPO update of ``size`` agents (the second of two)."""
    from benchmarks.stacked_ppo import StackedPPO
    from clients import learners
    from federation.config import RunConfig
    from federation.server_app import build

    cfg = RunConfig.from_mapping({"env": "matthew", "agents": size, "batch": 2, "strategy": "independent",
                                  "out": tempfile.gettempdir()})  # nothing is written: no run starts
    game, _, world, _ = build(cfg)
    rollout = world.rollout(1, None)
    experiences = [rollout.experience(i) for i in range(size)]
    agents_ = [learners.make("ppo", game.observation_space, game.num_actions, cfg.ppo, cfg.net, cfg.seed, i)
               for i in range(size)]
    ppo = StackedPPO.from_learners(agents_)
    ppo.train(experiences, seeds=list(range(size)))
    start = time.perf_counter()
    ppo.train(experiences, seeds=list(range(size)))
    return time.perf_counter() - start


def round_seconds(out: Path) -> list[float]:
    with open(out / "metrics.csv", newline="") as f:
        return [float(row["round_s"]) for row in csv.DictReader(f)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000], help="numbers of agents")
    p.add_argument("--runner", choices=("in-process", "simulation", "both"), default="in-process")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--memory-limit", type=float, default=20.0, help="GiB: skip a size estimated to need more")
    p.add_argument("--out", default="", help="where the runs are written (default: a temporary directory, removed)")
    p.add_argument("--keep", action="store_true", help="keep the run directories")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between memory polls")
    p.add_argument("--no-floor", dest="floor", action="store_false",
                   help="skip the line of the PPO updates alone (the floor of a round on this machine)")
    args = p.parse_args(argv)
    if any(n < 2 for n in args.sizes):
        p.error("LMF needs at least 2 agents per size")
    if args.rounds < 1 or args.memory_limit <= 0:
        p.error("--rounds must be at least 1 and --memory-limit positive")
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_scale_"))
    root.mkdir(parents=True, exist_ok=True)
    runners = ["in-process", "simulation"] if args.runner == "both" else [args.runner]
    failed = False
    for runner in runners:
        print(f"runner {runner}: python run_sim.py --runner {runner} --agents N --rounds {args.rounds} "
              f"{' '.join(FLAGS + RUNNER_FLAGS[runner])}", flush=True)
        measured: list[tuple[int, float]] = []
        for agents in sorted(args.sizes):
            guess = estimate(measured, agents)
            if guess is not None and guess > args.memory_limit * GIB:
                print(f"{agents} agents: skipped, estimated {guess / GIB:.1f} GiB peak (extrapolated from "
                      f"{', '.join(str(n) for n, _ in measured[-2:])} agents) > --memory-limit "
                      f"{args.memory_limit:g} GiB", flush=True)
                continue
            out = root / f"{runner}_{agents}"
            start = time.perf_counter()
            log = root / f"{runner}_{agents}.log"
            with open(log, "w") as f:
                rc, pss, _, largest = measure(command(runner, agents, args.rounds, out), args.interval,
                                              stdout=f, stderr=subprocess.STDOUT)
            wall = time.perf_counter() - start
            if rc != 0:
                print(f"{agents} agents: the run failed (exit status {rc}); its output: {log}", flush=True)
                failed = True
                continue
            seconds = round_seconds(out)
            peak = pss * 1024
            measured.append((agents, peak))
            print(f"{agents} agents: {sum(seconds) / len(seconds):.1f} s per round, {peak / GIB:.2f} GiB peak "
                  f"(mean round_s of rounds 1-{len(seconds)}: {', '.join(f'{s:.1f}' for s in seconds)}; "
                  f"largest process {largest / 1024 ** 2:.2f} GiB; {wall:.0f} s in all)", flush=True)
            if args.floor:
                print(f"{agents} agents: the PPO updates alone (stacked, in groups of {CHUNK}): "
                      f"{ppo_floor(agents):.1f} s per round", flush=True)
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
                log.unlink()
        for (n0, m0), (n1, m1) in zip(measured, measured[1:]):
            print(f"{runner}: each agent beyond {n0} costs {(m1 - m0) / (n1 - n0):,.0f} bytes "
                  f"((peak at {n1} - peak at {n0}) / {n1 - n0})", flush=True)
    if not args.out and not args.keep and not failed:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
