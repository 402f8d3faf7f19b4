"""Tests of the iterated matrix games (Prisoner's Dilemma, Chicken, Stag Hunt)."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from envs import MatrixGame

# (game, a_0, a_1) -> (reward_0, reward_1), written out from the rules.
PAYOFFS = {
    ("pd", 0, 0): (2, 2), ("pd", 0, 1): (0, 3),
    ("pd", 1, 0): (3, 0), ("pd", 1, 1): (1, 1),
    ("chicken", 0, 0): (3, 3), ("chicken", 0, 1): (1, 4),
    ("chicken", 1, 0): (4, 1), ("chicken", 1, 1): (0, 0),
    ("stag_hunt", 0, 0): (4, 4), ("stag_hunt", 0, 1): (0, 3),
    ("stag_hunt", 1, 0): (3, 0), ("stag_hunt", 1, 1): (3, 3),
}


@pytest.mark.parametrize("payoffs, a0, a1", sorted(PAYOFFS))
def test_payoff_of_every_joint_action(payoffs, a0, a1):
    game = envs.make_batched("matrix", 2, payoffs=payoffs)
    _, rewards, terminated, _ = game.step(np.array([[a0, a1]]))
    np.testing.assert_array_equal(rewards, [PAYOFFS[payoffs, a0, a1]])
    assert rewards.dtype == np.float32 and not terminated.any()


def test_copies_play_independently():
    game = MatrixGame(batch_size=4, payoffs="chicken")
    _, rewards, _, _ = game.step(np.array([[0, 0], [0, 1], [1, 0], [1, 1]]))
    np.testing.assert_array_equal(rewards, [(3, 3), (1, 4), (4, 1), (0, 0)])


def test_observation_is_the_previous_joint_action_and_state_its_one_hot():
    game = MatrixGame(batch_size=2)
    np.testing.assert_array_equal(game.reset(), [[0, 0], [0, 0]])
    np.testing.assert_array_equal(game.state(), [[1, 0, 0, 0, 0]] * 2)
    obs, _, _, _ = game.step(np.array([[0, 1], [1, 1]]))
    np.testing.assert_array_equal(obs, [[2, 2], [4, 4]])  # 1 + a_0 * 2 + a_1
    assert obs.dtype == np.int64
    np.testing.assert_array_equal(game.state(), [[0, 0, 1, 0, 0], [0, 0, 0, 0, 1]])
    obs, _, _, _ = game.step(np.array([[1, 0], [0, 0]]))
    np.testing.assert_array_equal(obs, [[3, 3], [1, 1]])
    assert game.state().dtype == np.float32
    np.testing.assert_array_equal(game.reset(), [[0, 0], [0, 0]])


def test_episode_is_ten_steps_by_default():
    game = MatrixGame()
    for t in range(1, 11):
        _, _, _, truncated = game.step(np.array([[0, 0]]))
        assert truncated.all() == (t == 10)
    with pytest.raises(RuntimeError, match="reset"):
        game.step(np.array([[0, 0]]))


def test_registry_and_validation():
    env = envs.make("matrix")
    assert isinstance(env.game, MatrixGame)
    assert env.possible_agents == ["agent_0", "agent_1"]
    assert env.game.payoffs == "pd" and env.game.episode_length == 10
    with pytest.raises(ValueError, match=r"matrix takes at most 2 agent\(s\), got 3"):
        envs.make("matrix", num_agents=3)
    with pytest.raises(ValueError, match=r"matrix needs at least 2 agent\(s\), got 1"):
        envs.make_batched("matrix", 1)
    with pytest.raises(ValueError, match="exactly 2 agents, got 3"):
        MatrixGame(num_agents=3)
    choices = r"unknown payoffs 'x'; valid choices: pd, chicken, stag_hunt"
    with pytest.raises(ValueError, match=choices):
        MatrixGame(payoffs="x")
    with pytest.raises(ValueError, match=r"actions must be in \[0, 2\)"):
        MatrixGame().step(np.array([[0, 2]]))
