#!/usr/bin/env python
"""Speed of the batched grid games: env-steps per second with random actions.

An env-step is one step of one copy, so a call of ``step`` at batch size B counts B.
Every step produces all agents' observations, as in training; episodes that end are
reset (inside the timing). Prints one line per game and batch size, e.g.::

    cleanup B=64: 70,000 env-steps/s (90,000 per CPU-second)

The first figure is wall-clock; the second divides by the process's CPU time, which is
less disturbed when other processes share the cores.

Reference figures, the open reference implementation (``sequential_social_dilemma_games``)
on one quiet core, 5 agents, random actions: Cleanup about 3,100 and Harvest about 2,600
env-steps/s. On a shared machine compare like with like: ``--reference DIR`` (a checkout
of that repository) measures it in the same invocation, under the same load, and prints
each game's speed-up per CPU-second. Only its environments run, so its RLlib, gym and
OpenCV imports are replaced by stand-ins (gym by gymnasium). Pin one thread::

    OMP_NUM_THREADS=1 python benchmarks/bench_games.py [--seconds 10] [--agents 5]
        [--games cleanup harvest] [--batch 1 64] [--reference DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs  # noqa: E402


def env_steps_per_second(
    name: str, agents: int, batch: int, seconds: float, seed: int = 0
) -> tuple[float, float]:
    """Env-steps per wall-clock second and per CPU second of ``name`` over about
    ``seconds`` of random play."""
    game = envs.make_batched(name, agents, batch_size=batch, seed=seed)
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, game.num_actions, (256, batch, agents))
    game.reset()
    for a in actions[:20]:  # warm-up
        game.step(a)
    steps, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for a in actions[:50]:
            if game.t >= game.episode_length:
                game.reset()
            game.step(a)
        steps += 50
        actions = np.roll(actions, 7, axis=0)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return steps * batch / wall, steps * batch / cpu


def reference_steps_per_second(
    checkout: str, name: str, agents: int, seconds: float, seed: int = 0
) -> tuple[float, float]:
    """The same measurement for the reference implementation's environment ``name``."""
    import gymnasium

    stand_ins = {"gym": gymnasium, "gym.spaces": gymnasium.spaces}
    for module in ("ray", "ray.rllib", "ray.rllib.agents", "ray.rllib.agents.callbacks",
                   "ray.rllib.env", "cv2"):
        stand_ins[module] = types.ModuleType(module)
    stand_ins["ray.rllib.agents.callbacks"].DefaultCallbacks = object
    stand_ins["ray.rllib.env"].MultiAgentEnv = object
    saved = {m: sys.modules.get(m) for m in stand_ins}
    sys.modules.update(stand_ins)
    sys.path.insert(0, checkout)
    try:
        if name == "cleanup":
            from social_dilemmas.envs.cleanup import CleanupEnv as Env
        else:
            from social_dilemmas.envs.harvest import HarvestEnv as Env
        env = Env(num_agents=agents)
    finally:
        sys.path.remove(checkout)
        for module, old in saved.items():
            if old is None:
                sys.modules.pop(module, None)
            else:
                sys.modules[module] = old
    np.random.seed(seed)  # the reference draws from numpy's global generator
    env.reset()
    ids = list(env.agents)
    rng = np.random.default_rng(seed)
    num_actions = 9 if name == "cleanup" else 8
    steps, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for a in rng.integers(0, num_actions, (50, agents)):
            env.step(dict(zip(ids, a.tolist())))
            steps += 1
            if steps % 1000 == 0:  # the reference's 1000-step episodes
                env.reset()
    return steps / (time.perf_counter() - start), steps / (time.process_time() - cpu)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="total time to measure")
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--games", nargs="+", default=["cleanup", "harvest"])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--reference", default="", help="a checkout of the reference "
                        "implementation, measured in the same invocation")
    args = parser.parse_args(argv)
    runs = len(args.games) * (len(args.batch) + bool(args.reference))
    each = args.seconds / runs
    for name in args.games:
        ours = {}
        for batch in args.batch:
            wall, cpu = env_steps_per_second(name, args.agents, batch, each)
            ours[batch] = cpu
            print(f"{name} B={batch}: {wall:,.0f} env-steps/s ({cpu:,.0f} per CPU-second)",
                  flush=True)
        if args.reference:
            wall, cpu = reference_steps_per_second(args.reference, name, args.agents, each)
            print(f"reference {name}: {wall:,.0f} env-steps/s ({cpu:,.0f} per CPU-second); "
                  + ", ".join(f"B={b} {rate / cpu:.1f}x" for b, rate in ours.items()),
                  flush=True)


if __name__ == "__main__":
    main()
