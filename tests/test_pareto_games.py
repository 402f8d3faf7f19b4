"""The one-shot games the mediators act on: random normal-form games and the matching
game (the restaurant game: tests/test_pareto_restaurant.py)."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.test import parallel_api_test, parallel_seed_test

import envs
from envs.matching import MatchingModel


def test_normal_form_payoffs_are_uniform_and_fixed_per_payoff_seed():
    game = envs.make_batched("normal-form", 3, actions=4, seed=7)
    u = game.table.payoffs
    assert u.shape == (4, 4, 4, 3) and ((0 <= u) & (u < 1)).all()
    assert abs(u.mean() - 0.5) < 0.05 and len(np.unique(u)) == u.size  # i.i.d. continuous
    before = u.copy()
    game.reset(seed=123)
    np.testing.assert_array_equal(game.table.payoffs, before)  # reset never redraws them
    same = envs.make_batched("normal-form", 3, actions=4, seed=99, payoff_seed=7)
    np.testing.assert_array_equal(same.table.payoffs, before)  # the default payoff seed is the seed
    other = envs.make_batched("normal-form", 3, actions=4, seed=8)
    assert not np.allclose(other.table.payoffs, before)
    assert envs.make_batched("normal-form", 2).payoff_seed == 0  # no seed at all: payoff seed 0
    with pytest.raises(ValueError):
        game.table.payoffs[0, 0, 0, 0] = 1.0  # read-only: a mediator cannot change the game


def test_normal_form_plays_the_table_and_ends_each_episode():
    game = envs.make_batched("normal-form", 3, batch_size=2, actions=3, episode_length=2, seed=0)
    assert game.observation_space == spaces.Discrete(1) and game.num_actions == 3
    joint = np.array([[0, 1, 2], [2, 2, 0]])
    obs, rewards, terminated, truncated = game.step(joint)
    np.testing.assert_allclose(rewards, game.table.payoffs[[0, 2], [1, 2], [2, 0]], rtol=1e-6)
    assert rewards.dtype == np.float32 and not terminated.any() and (obs == 0).all()
    _, _, terminated, truncated = game.step(joint)
    assert terminated.all() and truncated.all()  # the last play ends the episode
    np.testing.assert_array_equal(game.state(), np.zeros((2, 3)))


def test_normal_form_named_tables():
    pd = envs.make_batched("normal-form", 2, batch_size=4, payoffs="pd")
    _, rewards, _, _ = pd.step(np.array([[0, 0], [0, 1], [1, 0], [1, 1]]))
    np.testing.assert_array_equal(rewards, [(2, 2), (0, 3), (3, 0), (1, 1)])
    with pytest.raises(ValueError, match="2-player, 2-action"):
        envs.make_batched("normal-form", 3, payoffs="pd")
    with pytest.raises(ValueError, match="valid choices: uniform, pd"):
        envs.make_batched("normal-form", 2, payoffs="poker")


def test_matching_by_hand():
    """Agent i's action k points at k if k < i, else k + 1; mutual pointing pays R."""
    model = MatchingModel(np.array([[0, .1, .2], [.3, 0, .4], [.5, .6, 0]]))
    assert model.partners(np.array([0, 0, 0])).tolist() == [1, 0, 0]
    assert model.partners(np.array([1, 1, 1])).tolist() == [2, 2, 1]
    for i in range(3):
        for p in set(range(3)) - {i}:
            assert model.partners(np.full(3, model.action(i, p)))[i] == p
    # 0 <-> 1 matched (0.1, 0.3); 2 points at 0, unmatched
    np.testing.assert_allclose(model.utilities(np.array([0, 0, 0])), [.1, .3, 0])
    # 1 <-> 2 matched (0.4, 0.6); 0 points at 2, unmatched
    np.testing.assert_allclose(model.utilities(np.array([1, 1, 1])), [0, .4, .6])


def test_matching_game_draws_asymmetric_uniform_rewards():
    game = envs.make_batched("matching", 5, batch_size=3, seed=2)
    R = game.model.rewards
    assert game.num_actions == 4 and (np.diag(R) == 0).all()
    off = R[~np.eye(5, dtype=bool)]
    assert ((0 < off) & (off < 1)).all() and not np.allclose(R, R.T)
    joint = np.random.default_rng(0).integers(0, 4, (3, 5))
    np.testing.assert_allclose(game.step(joint)[1], game.model.utilities(joint), rtol=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        envs.make_batched("matching", 1)


@pytest.mark.parametrize("name", ["normal-form", "matching", "restaurant"])
def test_pettingzoo_view(name):
    parallel_api_test(envs.make(name, 3, episode_length=5), num_cycles=20)
    parallel_seed_test(lambda: envs.make(name, 3, episode_length=5), num_cycles=20)


def test_game_options_reach_the_constructor(tmp_path):
    from federation.config import RunConfig

    cfg = RunConfig.of(env="normal-form", agents=3, game_options="actions=4,payoff_seed=5", learner="q-table",
                       strategy="pareto", out=str(tmp_path))
    assert cfg.game_options() == {"actions": 4, "payoff_seed": 5}
    assert set(envs.options("restaurant")) >= {"restaurants", "max_capacity", "a", "payoff_seed"}
