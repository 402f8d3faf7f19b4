"""JAM-QL and the leader baselines in whole runs: the command line in Flower's simulation,
and the round loop in-process on the grid with DQN agents."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Context, RecordDict
from flwr.supercore.task_identity import TaskIdentity

import run_sim
from clients import client_app
from federation.config import ConfigError, RunConfig
from federation.in_process import run_in_process
from federation.server_app import Federation
from federation.simulation import simulate

STRATEGIES = ["jamql", "fixed-leader", "alternating-leader", "vote-leader"]


def rows(out):
    with open(Path(out) / "metrics.csv") as f:
        return list(csv.DictReader(f))


def check_leader_run(out, name):
    metrics = rows(out)
    assert len(metrics) == 3
    assert [float(r["learning"]) for r in metrics] == [0.0, 1.0, 2.0]  # agent 0, agent 1, the mediator
    for r in metrics:
        shares = [float(r[f"leader_share_agent_{i}"]) for i in range(2)]
        assert sum(shares) == pytest.approx(1.0)  # one leader per step
        assert 0 <= float(r["fair_action_rate"]) <= 1
        assert float(r["min_welfare"]) <= float(r["min_return"]) + 1e-6
    if name == "fixed-leader":
        assert all(float(r["leader_share_agent_0"]) == 1.0 for r in metrics)
    if name == "alternating-leader":
        assert all(float(r["leader_share_agent_0"]) == 0.5 for r in metrics)
    if name == "jamql":
        assert metrics[2]["mediator_td_abs"] != "" and metrics[1]["mediator_td_abs"] == ""
    return metrics


def test_jamql_runs_in_flowers_simulation_and_agents_learn_in_turn(tmp_path):
    """Through Flower's messages: the resting agent really does not learn (its table stays)."""
    cfg = RunConfig.of(env="dilemma", game_options="payoffs=chicken", agents=2, strategy="jamql", learner="q-table",
                       rounds=3, batch=4, mediator_period=1, q_epsilon=1.0, progress=False, out=str(tmp_path / "run"))
    summary = simulate(cfg)
    assert summary["events"] == []
    check_leader_run(cfg.out, "jamql")
    import torch

    # period 1: round 1 agent 0 learns, round 2 agent 1, round 3 the mediator; each agent
    # trained once (all three rounds if the instruction to rest were ignored)
    for agent in (0, 1):
        state = torch.load(Path(cfg.out) / "agents" / f"agent_{agent}" / "learner.pt", weights_only=False)
        assert state["learner"]["rounds_trained"] == 1


def test_one_command_runs_jamql_and_the_baselines_and_compares_them(tmp_path, monkeypatch):
    """run_sim.py with the four leader strategies; the rounds run in-process (the same round
    loop, without Flower's transport, federation/in_process.py) to keep the test short."""
    import federation.simulation

    monkeypatch.setattr(federation.simulation, "simulate", run_in_process)
    code = run_sim.main(["--env", "dilemma", "--game-options", "payoffs=chicken", "--agents", "2",
                         "--strategy", *STRATEGIES, "--learner", "q-table", "--rounds", "3", "--batch", "4",
                         "--mediator-period", "1", "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    table = (tmp_path / "comparison.md").read_text()
    assert (tmp_path / "comparison.png").exists()
    for name in STRATEGIES:
        assert f"| {name}-q-table |" in table
        check_leader_run(tmp_path / f"{name}-q-table_seed0", name)


def test_leader_settings_are_checked(tmp_path):
    base = dict(env="dilemma", agents=2, learner="q-table", out=str(tmp_path))
    with pytest.raises(ConfigError, match="end-transfer must be in"):
        RunConfig.of(strategy="jamql", end_transfer=1.5, **base)
    with pytest.raises(ConfigError, match="leader must be an agent id"):
        RunConfig.of(strategy="fixed-leader", leader=2, **base)
    with pytest.raises(ConfigError, match=r"--mediator-period must be in \[0, "):
        RunConfig.of(strategy="vote-leader", mediator_period=-1, **base)
    with pytest.raises(ConfigError, match="reward-bins"):
        RunConfig.of(strategy="jamql", reward_bins=30, **{**base, "agents": 4})
    with pytest.raises(ConfigError, match="--mediator-state: unknown value 'cells'"):
        RunConfig.of(strategy="jamql", mediator_state="cells", **base)
    grid = dict(env="resource-grid", learner="dqn", out=str(tmp_path))
    with pytest.raises(ConfigError, match="use --mediator-state none"):  # 25³ cells: a table too large
        RunConfig.of(strategy="jamql", agents=3, **grid)
    RunConfig.of(strategy="jamql", agents=3, mediator_state="none", **grid)


def in_process(cfg: RunConfig) -> list[dict]:
    """The round loop with the ClientApp called directly (benchmarks/bench_round.py's reference)."""
    fed = Federation(cfg)
    fed.bind({a: a + 1 for a in range(cfg.agents)})
    contexts = {a + 1: Context(run_id=1, node_id=a + 1, node_config={"agent-id": a}, state=RecordDict(),
                               run_config={}) for a in range(cfg.agents)}
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    exchange = lambda msgs: [client_app.train(m, contexts[m.metadata.dst_node_id]) for m in msgs]  # noqa: E731
    return [fed.play(r, exchange) for r in range(1, cfg.rounds + 1)], fed


def test_jamql_plays_the_grid_with_dqn_agents_and_checkpoints_its_mediator(tmp_path):
    cfg = RunConfig.of(env="resource-grid", agents=2, strategy="jamql", learner="dqn", rounds=3, batch=2,
                       game_options="episode_length=10", hidden=16, dqn_updates=2, dqn_batch=16,
                       mediator_period=0, progress=False, out=str(tmp_path))
    played, fed = in_process(cfg)
    assert all(r["learning"] == -1.0 for r in played)  # period 0: everyone learns every round
    assert {"unfair_share", "min_welfare", "min_welfare_paid", "leader_share_agent_1"} <= set(played[-1])
    state = fed.strategy.state_dict()
    assert state["mediator"]["rounds_learnt"] == 3 and np.abs(state["mediator"]["q"]).sum() > 0
    other = Federation(cfg.replace(out=str(tmp_path / "again")))
    other.strategy.load_state_dict(state)
    np.testing.assert_array_equal(other.strategy.mediator.q, fed.strategy.mediator.q)
    # the mediator's table is over the agents' cells (25² on the 5×5 grid) and the run reached several
    q = state["mediator"]["q"]  # [T, m, k, leader, agent]
    assert q.shape[1] == 625
    assert (np.abs(q).sum(axis=(0, 2, 3, 4)) > 0).sum() > 1


def test_the_grid_mediator_with_one_state_as_the_committed_runs(tmp_path):
    cfg = RunConfig.of(env="resource-grid", agents=2, strategy="jamql", learner="dqn", rounds=1, batch=2,
                       game_options="episode_length=10", hidden=16, dqn_updates=1, dqn_batch=16,
                       mediator_period=0, mediator_state="none", progress=False, out=str(tmp_path))
    played, fed = in_process(cfg)
    assert fed.strategy.mediator.q.shape[1] == 1 and np.abs(fed.strategy.mediator.q).sum() > 0
