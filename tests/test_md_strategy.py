"""The md strategies in a run: configuration, the world's reshaped rewards, the agents'
reported gradient norms, checkpoints, and md / md-nomrp / iql / cen on Escape Room."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Context, RecordDict
from flwr.supercore.task_identity import TaskIdentity

import run_sim
from clients import client_app
from federation.compare import compare
from federation.config import ConfigError, RunConfig
from federation.server_app import Federation, build

TINY = dict(env="escape-room", agents=5, learner="dqn", batch=4, hidden=16, dqn_updates=4, dqn_batch=32,
            md_updates=4, md_batch=32, progress=False)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_settings_are_checked(tmp_path):
    base = dict(env="escape-room", agents=5, learner="dqn", strategy="md", out=str(tmp_path))
    for key, value, message in (("md_lambda", -0.5, r"--md-lambda must be in \[0, "),
                                ("md_penalty", -1.0, r"--md-penalty must be in \[0, "),
                                ("md_eta", -0.1, r"--md-eta must be in \[0, "),
                                ("md_clip_max", 1e-4, "md-clip-max"),
                                ("md_dropout", 1.0, r"--md-dropout must be in \[0, 1\), got 1"),
                                ("md_sweeps", 0, r"--md-sweeps must be in \[1, 1000\], got 0")):
        with pytest.raises(ConfigError, match=message):
            RunConfig.of(**base, **{key: value})
    with pytest.raises(ConfigError, match="md needs dqn agents"):
        RunConfig.of(**{**base, "learner": "ppo"})
    with pytest.raises(ConfigError, match="min_lever"):
        RunConfig.of(**base, game_options="min_lever=7")
    RunConfig.of(**{**base, "strategy": "cen"})


def test_agents_train_on_lambda_r_plus_the_mechanisms_reward(tmp_path):
    cfg = RunConfig.of(strategy="md", md_lambda=0.5, out=str(tmp_path), **TINY)
    _, strategy, world, _ = build(cfg)
    mech, med = strategy.mediator.mechanism, strategy.mediator
    med.grad_norm[:] = [1.0, 2.0, 0.5, 1.0, 3.0]
    ro = world.rollout(1)
    assert ro.shaped is not None and not np.allclose(ro.shaped, ro.rewards)
    for t in range(len(ro.rewards)):
        r_bar, _ = mech.reward(ro.state[t], ro.actions[t], med.grad_norm, 0.5, 1.0, 1e-3, 10.0)
        np.testing.assert_allclose(ro.shaped[t], (0.5 * ro.rewards[t] + r_bar) * ro.mask[t], rtol=1e-5, atol=1e-6)
    assert set(med.end_of_rollout()) == {"md_reward_mean", "md_penalised_share", "md_improved_share", "md_grad_norm"}


def in_process(cfg: RunConfig):
    """The round loop with the ClientApp called directly (benchmarks/bench_round.py's reference)."""
    fed = Federation(cfg)
    fed.bind({a: a + 1 for a in range(cfg.agents)})
    contexts = {a + 1: Context(run_id=1, node_id=a + 1, node_config={"agent-id": a}, state=RecordDict(),
                               run_config={}) for a in range(cfg.agents)}
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    exchange = lambda msgs: [client_app.train(m, contexts[m.metadata.dst_node_id]) for m in msgs]  # noqa: E731
    rows = [fed.play(r, exchange) for r in range(1, cfg.rounds + 1)]
    return rows, fed


def test_md_reads_the_reported_gradient_norms_and_checkpoints_its_mechanism(tmp_path):
    cfg = RunConfig.of(strategy="md", rounds=2, out=str(tmp_path), **TINY)
    rows, fed = in_process(cfg)
    norms = fed.strategy.mediator.grad_norm
    assert (norms > 0).all() and not np.allclose(norms, 1.0)  # the agents' reports replaced the initial 1
    assert rows[1]["md_grad_norm"] == pytest.approx(float(rows[1]["md_grad_norm"]))
    assert {"md_critic_loss", "md_mrp_loss", "md_mrp_states", "md_penalised_share", "optimal_welfare"} <= set(rows[-1])
    state = fed.strategy.state_dict()
    again = build(cfg)[1]
    again.load_state_dict(state)
    s = fed.world.rollout(3).state[0]
    a = np.ones((len(s), 5), np.int64)
    np.testing.assert_array_equal(again.mediator.mechanism.values(s, a), fed.strategy.mediator.mechanism.values(s, a))
    np.testing.assert_array_equal(again.mediator.grad_norm, norms)


def test_md_md_nomrp_iql_and_cen_run_on_escape_room_and_are_compared(tmp_path):
    """The four methods in the round loop (the ClientApp called in-process: a Flower
    simulation costs 20-60 s of Ray start-up per run), then the usual comparison;
    ``run_sim.py`` plans the same four runs."""
    runs = []
    for strategy in ("md", "md-nomrp", "iql", "cen"):
        cfg = RunConfig.of(strategy=strategy, rounds=2, out=str(tmp_path / f"{strategy}-dqn_seed0"), **TINY)
        rows, fed = in_process(cfg)
        assert len(rows) == 2 and all(np.isfinite(r["collective_return"]) for r in rows)
        assert ("md_critic_loss" in rows[-1]) == strategy.startswith("md")
        assert ("md_mrp_loss" in rows[-1]) == (strategy == "md")  # the ablation has no MRP
        if strategy == "md-nomrp":
            assert rows[-1]["md_penalised_share"] == 0.0
        fed.recorder.finish({"strategy": strategy, "label": cfg.label, "env": cfg.env, "seed": cfg.seed,
                             "agents": cfg.agents, "learner": cfg.learner})
        runs.append(Path(cfg.out))
    table = compare(runs, tmp_path)
    for label in ("md-dqn", "md-nomrp-dqn", "iql-dqn", "cen-dqn"):
        assert f"| {label} |" in table
    assert (tmp_path / "comparison.png").exists() and (tmp_path / "comparison.csv").exists()
    args = run_sim.parser().parse_args(["--env", "escape-room", "--agents", "5", "--strategy", "md", "md-nomrp", "iql",
                                        "cen", "--learner", "dqn", "--out", str(tmp_path / "cli")])
    assert [c.strategy for c in run_sim.plan(args)] == ["md", "md-nomrp", "iql", "cen"]



# ---------------------------------------------------------------- minibatch-time R̄ in the round loop
def test_minibatch_mode_relabels_every_minibatch_in_a_run(tmp_path):
    """--md-reshape-time minibatch: the agents receive the mechanism and the joint steps,
    keep them in their replay and relabel every minibatch; round 2's labels differ from the
    stored round-1 labels because the critic trained in between."""
    cfg = RunConfig.of(strategy="md", rounds=2, out=str(tmp_path), md_reshape_time="minibatch", **TINY)
    rows, fed = in_process(cfg)
    assert all(np.isfinite(r["collective_return"]) for r in rows)
    assert rows[1]["agents_md_relabel_gap"] > 0
    ro = fed.world.rollout(3)
    entries, records = fed.strategy.instructions(0, 3, fed.arrays)
    assert entries["md-denominator"] == "heads" and set(records) == {"mechanism", "joint"}
    np.testing.assert_array_equal(records["joint"]["state"].numpy(), ro.state[:-1])  # row (t, b) is step t of copy b
    np.testing.assert_array_equal(records["joint"]["rewards"].numpy(), ro.rewards * ro.mask)
    play = RunConfig.of(strategy="md", rounds=1, out=str(tmp_path / "play"), **TINY)
    assert "agents_md_relabel_gap" not in in_process(play)[0][0]


def test_md_settings_of_the_papers_readings_are_checked(tmp_path):
    base = dict(env="escape-room", agents=5, learner="dqn", strategy="md", out=str(tmp_path))
    with pytest.raises(ConfigError, match="--md-denominator own needs --md-reshape-time minibatch"):
        RunConfig.of(**base, md_denominator="own")
    RunConfig.of(**base, md_denominator="own", md_reshape_time="minibatch")
    with pytest.raises(ConfigError, match="--md-reshape-time: unknown value .episode.; valid choices: play, minibatch"):
        RunConfig.of(**base, md_reshape_time="episode")
    with pytest.raises(ConfigError, match="1,594,323 joint actions"):  # 3^13
        RunConfig.of(**{**base, "agents": 13}, game_options="min_lever=6", md_exact_max="on")
    auto = RunConfig.of(**base, md_exact_max="auto", md_exact_limit=243)
    assert build(auto)[1].mediator.mechanism.exact  # 3^5 = 243 <= 243
    assert not build(auto.replace(md_exact_limit=242))[1].mediator.mechanism.exact
    assert not build(RunConfig.of(**base))[1].mediator.mechanism.exact  # off by default
