#!/usr/bin/env python
"""Benchmark of the default round: the world's speed and what Flower costs.

Runs, in one invocation so both sides see the same machine load:

1. the **in-process reference**: the same work as a Flower round (rollout of B games,
   every agent's PPO update one after another, the strategy's aggregation and federated
   training) with no Flower at all;
2. the **Flower simulation** of the same configuration.

Prints the rollout's agent-steps per second, the per-round wall time of both, their
ratio, and the share of the Flower run's wall time spent in start-up and messaging.

    python benchmarks/bench_round.py [--rounds 10] [--agents 10] [--strategy fpf]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs  # noqa: E402
import strategies  # noqa: E402
from clients.model import initial_policy, to_record  # noqa: E402
from clients.ppo import Anchors, PPOLearner  # noqa: E402
from federation.config import RunConfig  # noqa: E402
from federation.results import read_metrics  # noqa: E402
from federation.simulation import simulate  # noqa: E402
from federation.world import World  # noqa: E402


def reference(cfg: RunConfig) -> tuple[float, float]:
    """Seconds per round and rollout agent-steps per second, all in this process."""
    torch.set_num_threads(cfg.torch_threads)
    game = envs.make_batched(cfg.env, cfg.agents, batch_size=cfg.batch, seed=cfg.seed)
    init = to_record(initial_policy(game.obs_dim, game.num_actions, cfg.hidden, cfg.layers, cfg.seed))
    world = World(game, init, cfg.seed)
    strategy = strategies.make(cfg, game, init)
    learners = [PPOLearner(game.obs_dim, game.num_actions, cfg.ppo(), cfg.seed, i) for i in range(cfg.agents)]
    anchors = Anchors(omega=init.to_torch_state_dict(), omega_bar=init.to_torch_state_dict(),
                      lambda_u=cfg.lambda_u, lambda_e=cfg.lambda_e) if cfg.strategy != "independent" else Anchors()
    rollout_time, steps, start = 0.0, 0, time.perf_counter()
    arrays = init
    for rnd in range(1, cfg.rounds + 1):
        t = time.perf_counter()
        ro = world.rollout(rnd)
        rollout_time += time.perf_counter() - t
        steps += ro.agent_steps
        for i, learner in enumerate(learners):
            learner.train(ro.experience(i), anchors, seed=rnd)
            world.set_acting(i, to_record(learner.actor))
        arrays, _ = strategy.federated_training(rnd, ro, arrays)
    return (time.perf_counter() - start) / cfg.rounds, steps / rollout_time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--agents", type=int, default=10)
    p.add_argument("--strategy", default="fpf")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(rounds=args.rounds, agents=args.agents, strategy=args.strategy, out=tmp, progress=False).validated()
        ref_round, ref_steps_per_s = reference(cfg.replace(torch_threads=torch.get_num_threads()))
        start = time.perf_counter()
        summary = simulate(cfg)
        wall = time.perf_counter() - start
        rows = read_metrics(Path(tmp))
    rounds_wall = float(np.sum([r["round_s"] for r in rows]))
    flower_round = rounds_wall / len(rows)
    steps_per_s = float(np.sum([r["agent_steps"] for r in rows]) / np.sum([r["rollout_s"] for r in rows]))
    overhead = wall - rounds_wall + float(np.sum([r["flower_s"] for r in rows]))
    print(f"configuration: {args.strategy}, {args.agents} agents, B={cfg.batch} games x 200 steps, {args.rounds} rounds")
    print(f"rollout: {steps_per_s:,.0f} agent-steps/s in Flower's ServerApp ({ref_steps_per_s:,.0f} in-process)")
    print(f"round wall time: Flower {flower_round:.2f} s, in-process reference {ref_round:.2f} s, "
          f"ratio {flower_round / ref_round:.2f}")
    print(f"Flower run: {wall:.1f} s wall, of which start-up and shut-down {wall - rounds_wall:.1f} s "
          f"and messaging {float(np.sum([r['flower_s'] for r in rows])):.1f} s "
          f"-> {100 * overhead / wall:.0f}% of wall time in Flower's start-up and messaging")
    print(f"time per round in Flower: rollout {np.mean([r['rollout_s'] for r in rows]):.2f} s, "
          f"agents' training {np.mean([r['train_s'] for r in rows]):.2f} s (summed over agents), "
          f"aggregation + federated training {np.mean([r['aggregate_s'] for r in rows]):.2f} s, "
          f"messaging {np.mean([r['flower_s'] for r in rows]):.2f} s")
    print(f"start-up until the agents were identified: {summary['startup_s']:.1f} s")


if __name__ == "__main__":
    main()
