"""The ServerApp: the round loop of every federation.

Per round (see docs/ARCHITECTURE.md for why the world lives with the server):

1. **Rollout**: the world plays B copies of the game with every agent's acting policy.
2. **Train**: the strategy addresses one train message to each agent; the loop attaches
   the agent's own experience; agents train locally and reply.
3. **Aggregate**: acting weights go to the world; the strategy sees the replies with the
   acting weights removed, i.e. only what each agent chose to share. Then the strategy's
   server-side learners train on the world's data.

``make_server_app(cfg)`` builds the app for ``run_sim.py`` (Flower's simulation runtime
passes no run config); the module-level ``app`` reads ``context.run_config`` for
``flwr run``. Both validate the same RunConfig once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from flwr.app import ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

import envs
import strategies
from clients import protocol
from clients.model import initial_policy, to_record
from federation.agents import discover_agents
from federation.config import RunConfig
from federation.graphs import consensus_gap
from federation.metrics import welfare_row
from federation.results import RunRecorder
from federation.world import World

log = logging.getLogger("fedgames")


@dataclass
class RunOutcome:
    """Filled by the server loop; lets the caller of run_simulation see what happened."""

    summary: dict = field(default_factory=dict)
    error: BaseException | None = None


def base_config(cfg: RunConfig, game, server_round: int) -> ConfigRecord:
    """What every agent needs to build and train its learner this round."""
    ppo = {k.replace("_", "-"): v for k, v in vars(cfg.ppo()).items()}
    return ConfigRecord({**ppo, "server-round": server_round, "seed": cfg.seed, "obs-dim": game.obs_dim,
                         "num-actions": game.num_actions, "torch-threads": cfg.torch_threads})


def run_federation(grid: Grid, cfg: RunConfig, concurrency: int | None = None) -> dict:
    """Discover the agents, then run ``cfg.rounds`` rounds; returns the run's summary."""
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    game = envs.make_batched(cfg.env, cfg.agents, batch_size=cfg.batch, seed=cfg.seed)
    init = to_record(initial_policy(game.obs_dim, game.num_actions, cfg.hidden, cfg.layers, cfg.seed))
    world = World(game, init, cfg.seed)
    strategy = strategies.make(cfg, game, init)
    recorder = RunRecorder(cfg.out, cfg.to_json())

    nodes = discover_agents(grid, cfg.agents, cfg.node_timeout)
    node_agent = {n: a for a, n in nodes.items()}
    strategy.bind(nodes)
    strategy.summary()
    startup_s = time.perf_counter() - start
    concurrency = concurrency or cfg.agents

    arrays = init
    bar = _progress(cfg)
    for rnd in range(1, cfg.rounds + 1):
        t0 = time.perf_counter()
        rollout = world.rollout(rnd, cfg.steps or None)
        rewards = strategy.train_rewards(rollout.rewards)
        t1 = time.perf_counter()
        messages = list(strategy.configure_train(rnd, arrays, base_config(cfg, game, rnd), grid))
        for msg in messages:
            agent = node_agent[msg.metadata.dst_node_id]
            msg.content[protocol.EXPERIENCE] = protocol.pack_experience(rollout.experience(agent, rewards))
        t2 = time.perf_counter()
        replies = list(grid.send_and_receive(messages, timeout=cfg.reply_timeout))
        t3 = time.perf_counter()

        client_stats = deliver(rnd, replies, world, strategy, node_agent, recorder, cfg.reply_timeout)
        new_arrays, agg_metrics = strategy.aggregate_train(rnd, replies)
        arrays = new_arrays if new_arrays is not None else arrays
        arrays, fed_metrics = strategy.federated_training(rnd, rollout, arrays)
        if (shared := strategy.shared_policy(arrays)) is not None:
            for agent in nodes:
                world.set_acting(agent, shared)
        t4 = time.perf_counter()

        timings = {"rollout_s": t1 - t0, "exchange_s": t3 - t2, "aggregate_s": t4 - t3, "round_s": t4 - t0}
        row = round_row(rnd, rollout, world, strategy, client_stats, timings, concurrency, cfg.agents)
        row |= {k: float(v) for k, v in (dict(agg_metrics or {}) | fed_metrics).items()}
        recorder.add(row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(collective=f"{row['collective_return']:.1f}", cv=f"{row['cv']:.2f}")
    if bar is not None:
        bar.close()
    return recorder.finish({"strategy": cfg.strategy, "label": cfg.label, "env": cfg.env, "seed": cfg.seed, "agents": cfg.agents,
                            "startup_s": startup_s, "wall_s": time.perf_counter() - start})


def deliver(rnd: int, replies: list, world: World, strategy, node_agent: dict[int, int], recorder: RunRecorder,
            timeout: float) -> list[dict]:
    """Hand each agent's acting weights to the world (removing them from the reply the
    strategy will see) and its join decision to the participation set; record agents
    that failed or stayed silent as events. Returns the agents' training metrics."""
    stats, answered, choices = [], set(), {}
    for reply in replies:
        agent = node_agent[reply.metadata.src_node_id]
        answered.add(agent)
        if reply.has_error():
            recorder.event(rnd, "agent_error", f"agent {agent}: {reply.error.reason}")
            continue
        world.set_acting(agent, reply.content.pop(protocol.ACTING))
        metrics = dict(reply.content[protocol.METRICS])
        if "join-next" in metrics:
            choices[agent] = bool(metrics["join-next"])
        stats.append(metrics)
    for agent in sorted(set(node_agent.values()) - answered):
        recorder.event(rnd, "agent_timeout", f"agent {agent} did not reply within {timeout} s; it keeps its last policy")
    strategy.participation.declare(choices)
    return stats


def round_row(rnd: int, rollout, world: World, strategy, client_stats: list[dict], timings: dict,
              concurrency: int, num_agents: int) -> dict:
    """One row of metrics.csv: welfare, fairness, diagnostics and timings."""
    row = {"round": rnd, **welfare_row(rollout.returns, strategy.members)}
    if len(strategy.members) >= 2:  # Theorem 2's consensus gap among the participants
        row["consensus_gap"] = consensus_gap(world.policies.flat(sorted(strategy.members)))
    train_s = float(sum(s.get("train_s", 0.0) for s in client_stats))
    parallel = min(concurrency, max(len(client_stats), 1))
    row |= {**timings, "train_s": train_s, "flower_s": max(0.0, timings["exchange_s"] - train_s / parallel),
            "agent_steps": rollout.agent_steps, "failed_agents": num_agents - len(client_stats)}
    for key in ("dist_to_omega", "entropy", "approx_kl", "pg_loss", "v_loss", "optimizer_steps"):
        vals = [s[key] for s in client_stats if key in s]
        if vals:
            row[f"agents_{key}"] = float(np.mean(vals))
    return row


def _progress(cfg: RunConfig):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=cfg.rounds, desc=f"{cfg.strategy} seed {cfg.seed}", unit="round")


def make_server_app(cfg: RunConfig, outcome: RunOutcome | None = None, concurrency: int | None = None) -> ServerApp:
    """A ServerApp bound to an already validated configuration (for run_simulation)."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        try:
            summary = run_federation(grid, cfg, concurrency)
            if outcome is not None:
                outcome.summary = summary
        except BaseException as err:  # handed to the caller, which exits non-zero
            if outcome is None:
                raise
            outcome.error = err

    return server


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Entry point for ``flwr run``: the same loop, configured from the run config."""
    run_federation(grid, RunConfig.from_mapping(dict(context.run_config)))
