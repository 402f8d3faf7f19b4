#!/usr/bin/env python
"""Benchmark of the default round: what Flower costs, against two references.

Runs, in one invocation so all three see the same machine load:

1. the **in-process reference**: the project's own round (``federation.server_app.Federation``:
   rollout, train messages, the ClientApp's ``train_many`` called directly, aggregation,
   federated training), with no Flower transport at all; as the in-process runner does, the
   agents train stacked (``--stacked auto``, clients/stacking.py); it is measured once more
   with the agents trained one after another (``--stacked off``);
2. the **stacked reference**: the fastest honest single-process implementation of
   independent PPO learners: the same rollout, then every agent's PPO update stacked into
   one ``torch.func`` pass (benchmarks/stacked_ppo.py); it does no federation, so it is
   the reference for ``--strategy independent``;
3. the **Flower simulation** of the same configuration.

The times per round are means over rounds 2..R: round 1 builds every learner and warms
the caches, which the stacked reference does before its clock starts. It prints the
rollout's speed, the time per round of all three, and the share of the
default run (80 rounds) that goes to Flower's start-up and messaging, projected from the
measured start-up, shut-down and per-round costs. Its last three lines are::

    Flower share of the default run: X%
    Flower round / stacked reference: R
    in-process round / stacked reference: R

    python benchmarks/bench_round.py [--rounds 5] [--agents 10] [--strategy independent] [--agents-per-node K]

``--agents-per-node K`` runs the Flower simulation with K agents per node (ceil(N/K)
nodes, each training its agents stacked); the references are the same.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from flwr.app import Context, RecordDict
from flwr.supercore.task_identity import TaskIdentity

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.stacked_ppo import StackedPPO  # noqa: E402
from clients import client_app, learners  # noqa: E402
from clients.networks import to_record  # noqa: E402
from federation.config import RunConfig  # noqa: E402
from federation.results import read_metrics  # noqa: E402
from federation.server_app import Federation, build  # noqa: E402
from federation.simulation import simulate  # noqa: E402

DEFAULT_ROUNDS = RunConfig().rounds


def in_process(cfg: RunConfig) -> float:
    """Seconds per round of the project's round with the ClientApp called directly
    (``cfg.execution.stacked``: the agents stacked or one after another)."""
    federation = Federation(cfg)
    federation.bind({a: a + 1 for a in range(cfg.agents)})
    contexts = {a + 1: Context(run_id=1, node_id=a + 1, node_config={"agent-id": a}, state=RecordDict(), run_config={})
                for a in range(cfg.agents)}
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    exchange = lambda msgs: client_app.train_many([(m, contexts[m.metadata.dst_node_id]) for m in msgs],  # noqa: E731
                                                  stacked=cfg.execution.stacked)
    federation.play(1, exchange)  # round 1 builds the learners (the stacked reference builds them untimed)
    start = time.perf_counter()
    for rnd in range(2, cfg.rounds + 1):
        federation.play(rnd, exchange)
    return (time.perf_counter() - start) / (cfg.rounds - 1)


def stacked(cfg: RunConfig) -> tuple[float, float]:
    """Seconds per round of independent PPO with the agents' updates stacked, and the
    rollout's agent-steps per second."""
    game, _, world, _ = build(cfg)
    agents = [learners.make("ppo", game.observation_space, game.num_actions, cfg.ppo, cfg.net, cfg.seed, i)
              for i in range(cfg.agents)]
    ppo = StackedPPO.from_learners(agents)
    rollout_s, steps, start = 0.0, 0, 0.0
    for rnd in range(1, cfg.rounds + 1):
        if rnd == 2:  # round 1 warms up, as the in-process reference's
            rollout_s, steps, start = 0.0, 0, time.perf_counter()
        t = time.perf_counter()
        ro = world.rollout(rnd, cfg.world.steps or None)
        rollout_s += time.perf_counter() - t
        steps += ro.agent_steps
        ppo.train([ro.experience(i) for i in range(cfg.agents)], seeds=[rnd * 1000 + i for i in range(cfg.agents)])
        for i, actor in enumerate(ppo.actors()):
            agents[i].actor.load_state_dict(actor)
            world.set_acting(i, to_record(agents[i].actor))
    return (time.perf_counter() - start) / (cfg.rounds - 1), steps / rollout_s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--agents", type=int, default=10)
    p.add_argument("--strategy", default="independent")
    p.add_argument("--agents-per-node", type=int, default=1,
                   help="agents each simulated Flower node hosts (ceil(N/K) nodes); default 1")
    args = p.parse_args()
    if args.rounds < 2:
        p.error("--rounds must be at least 2 (round 1 warms up; rounds 2..R are timed)")
    cores = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig.of(rounds=args.rounds, agents=args.agents, strategy=args.strategy, out=str(Path(tmp) / "flower"),
                           progress=False, agents_per_node=args.agents_per_node)
        torch.set_num_threads(cores)  # the references run one agent at a time, on every core
        local = cfg.replace(out=str(Path(tmp) / "local"), torch_threads=cores, stacked="auto", agents_per_node=1)
        ref_round = in_process(local)
        stacked_round, ref_steps_per_s = stacked(local)
        one_by_one = in_process(local.replace(out=str(Path(tmp) / "one-by-one"), stacked="off"))
        start = time.perf_counter()
        summary = simulate(cfg)
        wall = time.perf_counter() - start
        rows = read_metrics(Path(cfg.out))

    col = lambda k: np.array([r[k] for r in rows], dtype=float)  # noqa: E731
    rounds_wall = float(col("round_s").sum())
    flower_round = rounds_wall / len(rows)
    steady = float(col("round_s")[1:].mean())  # rounds 2..R, as the references are timed
    messaging = float(col("flower_s").mean())
    # Flower's start-up and shut-down: the run's wall time less its rounds and less the
    # project's own set-up (game, world, strategy) and finish (plots, summary), which the
    # references do as well
    own = summary["build_s"] + summary["finish_s"]
    fixed = wall - rounds_wall - own
    projected = fixed + DEFAULT_ROUNDS * flower_round
    share = (fixed + DEFAULT_ROUNDS * messaging) / projected
    steps_per_s = float(col("agent_steps").sum() / col("rollout_s").sum())
    print(f"configuration: {args.strategy}, {args.agents} agents, B={cfg.world.batch} games x 200 steps, "
          f"{args.rounds} rounds, {cores} cores"
          + (f", {args.agents_per_node} agents per Flower node" if args.agents_per_node > 1 else ""))
    print(f"rollout: {steps_per_s:,.0f} agent-steps/s in Flower's ServerApp ({ref_steps_per_s:,.0f} in-process)")
    print(f"time per round (rounds 2-{args.rounds}): Flower {steady:.2f} s, in-process reference {ref_round:.2f} s "
          f"(ratio {steady / ref_round:.2f}; agents one after another {one_by_one:.2f} s), "
          f"stacked reference {stacked_round:.2f} s")
    print(f"in Flower, per round: rollout {col('rollout_s').mean():.2f} s, agents' training {col('train_s').mean():.2f} s "
          f"(summed over agents), aggregation + federated training {col('aggregate_s').mean():.2f} s, "
          f"messaging {messaging:.2f} s")
    print(f"Flower start-up and shut-down: {fixed:.1f} s (agents identified {summary['startup_s']:.1f} s after the "
          f"ServerApp started; the project's own set-up and finish, {own:.1f} s, not counted)")
    print(f"projected default run ({DEFAULT_ROUNDS} rounds): {projected:.0f} s, of which start-up and shut-down "
          f"{fixed:.1f} s and messaging {DEFAULT_ROUNDS * messaging:.1f} s")
    if args.strategy != "independent":
        print("(the stacked reference trains independent learners: compare it with --strategy independent)")
    print(f"Flower share of the default run: {100 * share:.1f}%")
    print(f"Flower round / stacked reference: {steady / stacked_round:.2f}")
    print(f"in-process round / stacked reference: {ref_round / stacked_round:.2f}")


if __name__ == "__main__":
    main()
