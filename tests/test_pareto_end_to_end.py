"""The pareto and punishing strategies in a run: configuration, the world's rollout, and
tabular agents learning to delegate in the one-shot Prisoner's Dilemma."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import envs
import run_sim
from federation.config import ConfigError, RunConfig
from federation.server_app import build
from federation.simulation import simulate


def rows(out):
    with open(Path(out) / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_pareto_agents_learn_to_delegate_in_the_prisoners_dilemma(tiny):
    """Two ε-greedy (1/t) tabular agents; delegating weakly dominates (Proposition 1) and
    (D+, D+) pays (2, 2) instead of (1, 1): they come to delegate and cooperate through the
    mediator (collective 4 where independent learners settle on mutual defection, 2)."""
    cfg = tiny.replace(env="normal-form", game_options="payoffs=pd", agents=2, strategy="pareto", learner="q-table",
                       q_epsilon=1.0, q_epsilon_schedule="1/t", rounds=20, batch=32, steps=0)
    summary = simulate(cfg)
    assert summary["events"] == []
    table = rows(cfg.out)
    for row in table:
        for key in ("delegation_rate", "delegation_rate_agent_0", "delegation_rate_agent_1", "mediated_share",
                    "changed_share"):
            assert 0.0 <= float(row[key]) <= 1.0
    last = table[-5:]
    assert np.mean([float(r["delegation_rate"]) for r in last]) > 0.8
    assert np.mean([float(r["collective_return"]) for r in last]) > 3.0
    assert summary["delegation_rate_last"] > 0.8


def test_the_world_plays_the_mediators_actions_for_delegators(tmp_path):
    cfg = RunConfig.of(env="normal-form", game_options="payoffs=pd", agents=2, strategy="pareto", learner="q-table",
                       batch=64, q_epsilon=1.0, out=str(tmp_path))
    game, strategy, world, _ = build(cfg)
    assert world.num_actions == 4  # C-, D-, C+, D+
    ro = world.rollout(1)  # ε = 1: uniform choices
    own, delegate = ro.actions % 2, ro.actions >= 2
    both = delegate.all(axis=-1)
    np.testing.assert_array_equal(ro.played[~delegate], own[~delegate])
    # both delegating from (D, D): (C, C); anything else stands
    dd = both & (own == 1).all(axis=-1)
    assert dd.any() and (ro.played[dd] == 0).all() and (ro.rewards[dd] == 2).all()
    np.testing.assert_array_equal(ro.played[~dd], own[~dd])
    assert strategy.mediator.end_of_rollout()["mediated_share"] == pytest.approx(both.mean())


def test_configurations_are_checked_before_the_run(tmp_path):
    with pytest.raises(ConfigError, match="pareto on matthew acts through trained policies: give --mediator-policy"):
        RunConfig.of(env="matthew", strategy="pareto", out=str(tmp_path))
    with pytest.raises(ConfigError, match="limit is"):
        RunConfig.of(env="normal-form", agents=18, strategy="punishing", learner="q-table", out=str(tmp_path))
    RunConfig.of(env="restaurant", agents=20, strategy="pareto", learner="q-table", out=str(tmp_path))
    RunConfig.of(env="matching", agents=12, strategy="punishing", learner="q-table", out=str(tmp_path))


def test_one_command_compares_independent_pareto_and_punishing(tmp_path):
    args = run_sim.parser().parse_args(["--env", "normal-form", "--agents", "3", "--strategy", "independent", "pareto",
                                        "punishing", "--learner", "q-table", "--out", str(tmp_path)])
    runs = run_sim.plan(args)
    assert [(r.strategy, Path(r.out).name) for r in runs] == [
        ("independent", "independent-q-table_seed0"), ("pareto", "pareto-q-table_seed0"),
        ("punishing", "punishing-q-table_seed0")]


def test_the_restaurant_game_reports_the_central_planner():
    game = envs.make_batched("restaurant", 10, seed=0, a=2)
    ref = game.reference_metrics()
    assert ref["oracle_return"] > ref["planner_return"] > 0  # with a = 2 the platform's model is far off


def test_delegation_is_summarised_and_tabled_only_for_runs_that_have_it():
    from federation.compare import format_summary
    from federation.results import summarise

    assert "delegation_rate_last" not in summarise([{"collective_return": 1.0}])
    mediated = summarise([{"collective_return": 1.0, "delegation_rate": 0.25}, {"delegation_rate": 0.75}])
    assert mediated["delegation_rate_avg"] == 0.5
    plain = {"strategy": "independent", "seed": 0, "collective_return_last": 1.0, "events": []}
    assert "delegation" not in format_summary([plain])
    table = format_summary([plain, {"strategy": "pareto", "seed": 0, "delegation_rate_last": 0.9, "events": []}])
    assert table.splitlines()[0].endswith("| delegation |")
    assert table.splitlines()[2].endswith("| – |") and table.splitlines()[3].endswith("| 0.9 |")
