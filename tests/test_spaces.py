"""Tests of what every game shares: observation and state spaces, observation modes,
the Stackelberg leaders' slot, and the PettingZoo view of every game and mode.

Game-specific observation and state contents are tested in each game's own file.
"""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.test import parallel_api_test, parallel_seed_test

import envs
from envs.base import BatchedGame

TEAM = {"cleanup": 3, "harvest": 3, "job": 3, "manufacturing": 3, "matching": 3, "matrix": 2, "matthew": 3,
        "mpe-crypto": 2, "mpe-deception": 2, "mpe-keep-away": 1, "mpe-predator-prey": 3, "normal-form": 3,
        "restaurant": 3, "bandwidth": 3, "bidding": 3, "dilemma": 3, "escape-room": 4, "resource-grid": 2}
# (game, mode, stackelberg) for every registered game, every mode, with and without
# the leaders' slot (images have none).
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


def test_stackelberg_spaces_add_the_slot():
    matthew = envs.make_batched("matthew", 3, stackelberg=True)  # 6 + 3 * 5
    box = matthew.observation_space
    assert box.shape == (21,) and box.dtype == np.float32
    assert np.all(box.low[6:] == 0) and np.all(box.high[6:] == 1)
    assert envs.make_batched("job", 2, observation="discrete", stackelberg=True) \
        .observation_space == spaces.Discrete(625 * 11)  # 1 + 2 * 5 slot values
    assert envs.make_batched("matrix", 2, stackelberg=True).observation_space \
        == spaces.Discrete(5 * 5)  # 1 + 2 * 2 slot values
    assert matthew.state_dim == 15  # the state has no slot


def test_unknown_observation_mode_names_the_choices():
    with pytest.raises(ValueError, match=r"job: unknown observation mode 'rgb'; "
                                         r"valid choices: vector, discrete, image"):
        envs.make("job", observation="rgb")
    with pytest.raises(ValueError, match=r"valid choices: vector$"):
        envs.make_batched("matthew", 2, observation="image")
    with pytest.raises(ValueError, match=r"valid choices: discrete$"):
        envs.make("matrix", observation="vector")


def test_stackelberg_refuses_images_and_non_bools():
    with pytest.raises(ValueError, match="stackelberg needs vector or discrete.*image"):
        envs.make("job", observation="image", stackelberg=True)
    with pytest.raises(ValueError, match="stackelberg must be a bool"):
        envs.make("matthew", stackelberg="yes")


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
    game = _Walk(stackelberg=True)
    game.step(np.array([[1, 0], [1, 1]]))
    # observations [[(1, 1), (0, 1)], [(1, 1), (1, 1)]] (t + 1 = 1 while stepping)
    np.testing.assert_array_equal(game.state(), [[1, 1, 0, 1], [1, 1, 1, 1]])
    assert game.state().dtype == np.float32
    assert game.state_space == spaces.Box(0.0, 3.0, (4,), np.float32)


# ---------------------------------------------------------------- Stackelberg slot


def test_reset_and_step_return_empty_slots_and_the_same_dynamics():
    plain = envs.make_batched("matthew", 3, batch_size=2, seed=4)
    leader = envs.make_batched("matthew", 3, batch_size=2, seed=4, stackelberg=True)
    actions = np.random.default_rng(0).integers(0, 5, (6, 2, 3))
    pairs = [(plain.reset(seed=9), leader.reset(seed=9))]
    for a in actions:
        (o1, r1, _, _), (o2, r2, _, _) = plain.step(a), leader.step(a)
        np.testing.assert_array_equal(r1, r2)
        pairs.append((o1, o2))
    for o1, o2 in pairs:
        np.testing.assert_array_equal(o2[..., :6], o1)
        assert o2.shape == (2, 3, 21) and not o2[..., 6:].any()
    game = envs.make_batched("matrix", 2, stackelberg=True)
    assert game.reset().tolist() == [[0, 0]]
    assert game.step(np.array([[1, 0]]))[0].tolist() == [[15, 15]]  # (1 + 2) * 5


def test_observe_leaders_vector_by_hand():
    game = envs.make_batched("matthew", 3, batch_size=2, stackelberg=True, seed=0)
    obs = game.reset()
    leaders = np.array([[False, True, False], [True, False, True]])
    acts = np.array([[4, 3, 4], [0, 4, 2]])  # only the leaders' entries matter
    out = game.observe_leaders(obs, acts, leaders)
    assert out is not obs and out.dtype == np.float32 and not obs[..., 6:].any()
    np.testing.assert_array_equal(out[..., :6], obs[..., :6])
    # copy 0: agent 1 led with action 3 -> block 1, entry 3 = slot index 6 + 5 + 3
    expected = np.zeros((2, 3, 15), dtype=np.float32)
    expected[0, [0, 2], 5 + 3] = 1
    # copy 1: agents 0 (action 0) and 2 (action 2) led; only agent 1 follows
    expected[1, 1, [0 + 0, 10 + 2]] = 1
    np.testing.assert_array_equal(out[..., 6:], expected)
    # a slot that was filled before is overwritten, and leaders' slots emptied
    again = game.observe_leaders(out, acts, ~leaders)
    assert again[0, 1, 6 + 0 + 4] == 1 and again[0, 1, 6 + 10 + 4] == 1
    assert again[0, 1, 6:].sum() == 2 and not again[0, [0, 2], 6:].any()


def test_observe_leaders_discrete_by_hand():
    game = envs.make_batched("matrix", 2, batch_size=3, stackelberg=True)
    obs, _, _, _ = game.step(np.array([[1, 0], [0, 0], [1, 1]]))
    # joint indices 2, 0, 3 -> observations 3, 1, 4, times 1 + N * A = 5
    np.testing.assert_array_equal(obs, [[15, 15], [5, 5], [20, 20]])
    leaders = np.array([[True, False], [False, True], [False, False]])
    acts = np.array([[1, 0], [0, 1], [1, 1]])
    out = game.observe_leaders(obs, acts, leaders)
    # copy 0: leader 0 played 1 -> s = 1 + 0 * 2 + 1 = 2 for agent 1
    # copy 1: leader 1 played 1 -> s = 1 + 1 * 2 + 1 = 4 for agent 0
    np.testing.assert_array_equal(out, [[15, 17], [9, 5], [20, 20]])
    assert out.dtype == np.int64
    assert all(game.observation_space.contains(o) for o in out.ravel())
    # the game index is recoverable: out // 5 is the observation without the slot
    np.testing.assert_array_equal(out // 5, obs // 5)


def test_observe_leaders_job_discrete_follower_sees_the_leader():
    game = envs.make_batched("job", 2, observation="discrete", stackelberg=True, seed=0)
    game.pos[0] = [(0, 0), (1, 0)]
    game.resource[0] = (4, 2)
    obs, _, _, _ = game.step(np.array([[0, 0]]))
    np.testing.assert_array_equal(obs, [[14 * 11, 39 * 11]])  # see test_job: 14 and 39
    out = game.observe_leaders(obs, np.array([[0, 4]]), np.array([[False, True]]))
    np.testing.assert_array_equal(out, [[14 * 11 + 1 + 5 + 4, 39 * 11]])


@pytest.mark.parametrize(
    "kwargs, leaders, message",
    [
        ({}, [[True, False]], "stackelberg=True"),
        ({"stackelberg": True}, [[True, True]], "at most one leader"),
        ({"stackelberg": True}, [[1, 0]], "leaders must be bool"),
    ],
)
def test_observe_leaders_refuses(kwargs, leaders, message):
    game = envs.make_batched("matrix", 2, **kwargs)
    obs = game.reset()
    with pytest.raises(ValueError, match=message):
        game.observe_leaders(obs, np.array([[0, 1]]), np.array(leaders))


def test_observe_leaders_checks_shapes_and_actions():
    game = envs.make_batched("matthew", 2, stackelberg=True)
    obs = game.reset()
    lead = np.array([[True, False]])
    with pytest.raises(ValueError, match=r"obs must have shape \(1, 2, 16\)"):
        game.observe_leaders(obs[..., :6], np.array([[0, 0]]), lead)
    with pytest.raises(ValueError, match=r"leader actions must be in \[0, 5\)"):
        game.observe_leaders(obs, np.array([[5, 0]]), lead)
    with pytest.raises(ValueError, match="leader_actions must be integers"):
        game.observe_leaders(obs, np.array([[0.0, 0.0]]), lead)
    # a follower's out-of-range entry is ignored: only leaders' actions matter
    game.observe_leaders(obs, np.array([[0, 9]]), lead)


# ---------------------------------------------------------------- PettingZoo view


def _make(name, mode, leader):
    return lambda: envs.make(
        name, TEAM[name], observation=mode, stackelberg=leader, episode_length=20
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
