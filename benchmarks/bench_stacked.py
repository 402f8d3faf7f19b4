#!/usr/bin/env python
"""Is ``--stacked auto`` faster for this learner and game? One round's training, one by one
and stacked, on the same experience, in one invocation.

    python benchmarks/bench_stacked.py --env matthew --learner ppo --agents 10
    python benchmarks/bench_stacked.py --env harvest --learner dqn --agents 3 --set dqn_updates=50

Builds the game and N learners as a run would (the project's defaults, ``--set KEY=VALUE``
to change a setting), plays one rollout of ``--batch`` episodes, and times
clients.stacking.train_all on copies of the same learners with ``mode="off"`` (each agent's
own ``train``) and ``mode="auto"`` (one stacked pass), alternating, ``--reps`` times; prints
each pair and the ratio stacked / one by one. Both copies start from the same state each
repetition, so they do the same work. One torch thread unless ``--threads``. ``--profile``:
then one more stacked pass under ``torch.profiler``, its operators by time spent.

    python benchmarks/bench_stacked.py --agents 256 --threads 2 --reps 1 --profile
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from clients import learners, stacking  # noqa: E402
from clients.anchors import Anchors  # noqa: E402
from federation.config import RunConfig  # noqa: E402
from federation.server_app import build  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="matthew")
    p.add_argument("--learner", default="ppo")
    p.add_argument("--agents", type=int, default=10)
    p.add_argument("--batch", type=int, default=2, help="episodes of the rollout the agents train on")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--profile", action="store_true", help="profile one more stacked pass (torch.profiler)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="other settings, e.g. dqn_updates=50")
    args = p.parse_args(argv)
    if args.agents < 2 or args.reps < 1 or args.threads < 1:
        p.error("--agents must be at least 2, --reps and --threads at least 1")
    extra = dict(item.split("=", 1) for item in args.set)
    torch.set_num_threads(args.threads)
    cfg = RunConfig.from_mapping({"env": args.env, "agents": args.agents, "learner": args.learner,
                                  "strategy": "independent", "batch": args.batch, "out": tempfile.gettempdir(),
                                  **extra})  # nothing is written: no run starts
    game, _, world, _ = build(cfg)
    rollout = world.rollout(1, None)
    exps = [rollout.experience(i) for i in range(args.agents)]
    made = [learners.make(args.learner, game.observation_space, game.num_actions, getattr(cfg, args.learner),
                          cfg.net, cfg.seed, i) for i in range(args.agents)]
    print(f"{args.env}, {args.agents} {args.learner} agents, {args.threads} torch thread(s); network of agent 0:\n"
          f"{made[0].policy}", flush=True)
    for rep in range(args.reps):
        seconds = {}
        for mode in ("off", "auto"):
            group = copy.deepcopy(made)
            jobs = [stacking.Job(lr, exp, Anchors(), i) for i, (lr, exp) in enumerate(zip(group, exps))]
            start = time.perf_counter()
            stacking.train_all(jobs, mode)
            seconds[mode] = time.perf_counter() - start
        print(f"repetition {rep + 1}: one by one {seconds['off']:.2f} s, stacked {seconds['auto']:.2f} s, "
              f"stacked / one by one: {seconds['auto'] / seconds['off']:.2f}", flush=True)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        group = copy.deepcopy(made)
        jobs = [stacking.Job(lr, exp, Anchors(), i) for i, (lr, exp) in enumerate(zip(group, exps))]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            stacking.train_all(jobs, "auto")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
