"""Tests of what every game shares: observation and state spaces, observation modes,
and the PettingZoo view of every game and mode (with and without the Stackelberg view).

Game-specific observation and state contents are tested in each game's own file; the
Stackelberg view's slot in tests/test_stackelberg.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.test import parallel_api_test, parallel_seed_test

import envs
from envs.base import BatchedGame
from envs.parallel import BatchedParallelEnv
from envs.stackelberg import StackelbergView

TEAM = {"cleanup": 3, "harvest": 3, "job": 3, "manufacturing": 3, "matching": 3, "matrix": 2, "matthew": 3,
        "mpe-crypto": 2, "mpe-deception": 2, "mpe-keep-away": 1, "mpe-predator-prey": 3, "normal-form": 3,
        "restaurant": 3, "bandwidth": 3, "bidding": 3, "dilemma": 3, "escape-room": 4, "resource-grid": 2}
# (game, mode, stackelberg) for every registered game, every mode, with and without
# the Stackelberg view's slot (images have none).
CASES = [
    (name, mode, leader)
    for name in envs.available()
    for mode in envs._REGISTRY[name].observation_modes
    for leader in (False, True)
    if not (leader and mode == "image")
]


def case_id(case) -> str:
    name, mode, leader = case
    return f"{name}-{mode}" + ("-stackelberg" if leader else "")


def test_every_registered_game_has_cases():
    assert {c[0] for c in CASES} == set(envs.available()) == set(TEAM)
    assert len(CASES) == 37  # job 5 (3 modes, 2 with a slot), cleanup and harvest 1 (image),
    # 2 each for the others


# ---------------------------------------------------------------- spaces and dtypes

# Expected observation space of each game and mode (3 agents, 2 for matrix).
SPACES = {
    ("job", "vector"): spaces.Box(-1.0, 1.0, (13,), np.float32),
    ("job", "discrete"): spaces.Discrete(625),
    ("job", "image"): spaces.Box(0, 255, (7, 7, 3), np.uint8),
    ("manufacturing", "vector"): spaces.Box(0.0, np.inf, (80,), np.float32),
    ("matrix", "discrete"): spaces.Discrete(5),
    ("matthew", "vector"): spaces.Box(0.0, 1.0, (6,), np.float32),
    ("cleanup", "image"): spaces.Box(0, 255, (15, 15, 3), np.uint8),
    ("harvest", "image"): spaces.Box(0, 255, (15, 15, 3), np.uint8),
    ("normal-form", "discrete"): spaces.Discrete(1),
    ("matching", "discrete"): spaces.Discrete(1),
    ("restaurant", "discrete"): spaces.Discrete(1),
}
STATE_DIMS = {"job": 8, "manufacturing": 55, "matrix": 5, "matthew": 15,
              "cleanup": 2 * 25 * 18 + 8 * 3, "harvest": 16 * 38 + 8 * 3,
              "normal-form": 3, "matching": 3, "restaurant": 3}


@pytest.mark.parametrize("name, mode", sorted(SPACES))
def test_spaces_dtypes_and_shapes(name, mode):
    n, b = TEAM[name], 4
    game = envs.make_batched(name, n, batch_size=b, observation=mode, seed=0, episode_length=5)
    space = SPACES[name, mode]
    assert game.observation == mode and game.observation_space == space
    assert isinstance(game.state_space, spaces.Box)
    assert game.state_space.shape == (STATE_DIMS[name],) == (game.state_dim,)
    assert game.state_space.dtype == np.float32
    dtype = np.int64 if isinstance(space, spaces.Discrete) else space.dtype
    rng = np.random.default_rng(0)
    obs = game.reset(seed=1)
    for _ in range(5):
        assert obs.shape == (b, n, *space.shape) and obs.dtype == dtype
        assert all(space.contains(o) for o in obs.reshape(b * n, *space.shape))
        state = game.state()
        assert state.shape == (b, STATE_DIMS[name]) and state.dtype == np.float32
        assert all(game.state_space.contains(s) for s in state)
        obs, rewards, _, _ = game.step(rng.integers(0, game.num_actions, (b, n)))
        assert rewards.dtype == np.float32


def test_unknown_observation_mode_names_the_choices():
    with pytest.raises(ValueError, match=r"job: unknown observation mode 'rgb'; "
                                         r"valid choices: vector, discrete, image"):
        envs.make("job", observation="rgb")
    with pytest.raises(ValueError, match=r"valid choices: vector$"):
        envs.make_batched("matthew", 2, observation="image")
    with pytest.raises(ValueError, match=r"valid choices: discrete$"):
        envs.make("matrix", observation="vector")


class _Walk(BatchedGame):
    """A minimal game without its own state: each agent observes (its counter, t)."""

    name = "walk"
    num_actions = 2

    def __init__(self, **kwargs):
        super().__init__(2, batch_size=2, episode_length=3, **kwargs)
        self.reset()

    def _observation_space(self):
        return spaces.Box(0.0, 3.0, (2,), np.float32)

    def _reset(self):
        self.count = np.zeros((2, 2))
        return self._observe()

    def _step(self, actions):
        self.count += actions
        return self._observe(), np.zeros((2, 2), np.float32), np.zeros((2, 2), bool)

    def _observe(self):
        return np.stack([self.count, np.full((2, 2), self.t + 1.0)], -1).astype(np.float32)


def test_default_state_is_the_observations_side_by_side_without_slots():
    game = StackelbergView(_Walk())
    game.step(np.array([[1, 0], [1, 1]]))
    # observations [[(1, 1), (0, 1)], [(1, 1), (1, 1)]] (t + 1 = 1 while stepping)
    np.testing.assert_array_equal(game.state(), [[1, 1, 0, 1], [1, 1, 1, 1]])
    assert game.state().dtype == np.float32
    assert game.state_space == spaces.Box(0.0, 3.0, (4,), np.float32)


# ---------------------------------------------------------------- PettingZoo view


def _make(name, mode, leader):
    if not leader:
        return lambda: envs.make(name, TEAM[name], observation=mode, episode_length=20)
    return lambda: BatchedParallelEnv(
        StackelbergView(envs.make_batched(name, TEAM[name], observation=mode, episode_length=20))
    )


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_parallel_api_and_seed(case):
    env = _make(*case)()
    parallel_api_test(env, num_cycles=25)
    parallel_seed_test(_make(*case), num_cycles=25)
    assert env.state_space is env.game.state_space
    obs, _ = env.reset(seed=0)
    space = env.observation_space("agent_0")
    for a in env.possible_agents:
        env.action_space(a).seed(0)  # games like Escape Room can end in a step
    for _ in range(3):
        assert all(space.contains(o) for o in obs.values())
        assert env.state_space.contains(env.state())
        if not env.agents:
            obs, _ = env.reset(seed=1)
            continue
        obs, *_ = env.step({a: env.action_space(a).sample() for a in env.agents})
