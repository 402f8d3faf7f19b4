"""Tests of the PettingZoo adapter and the four MPE games.

The MPE games are checked against ``mpe2`` itself: an env built directly with a copy's
seed and fed the same joint actions (the learners' and the fixed agents' recorded
ones) must give the same observations, rewards and state. A small hand-written
ParallelEnv checks what the MPE games never exercise: padding, action mapping,
early termination and the fallback state.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from gymnasium import spaces
from mpe2 import simple_adversary_v3, simple_crypto_v3, simple_push_v3, simple_tag_v3
from pettingzoo import ParallelEnv
from pettingzoo.test import parallel_api_test, parallel_seed_test

import envs
from envs.pettingzoo_adapter import PettingZooGame

# name -> (mpe2 module, its kwargs for N learners, learners, fixed agents), default N
MPE = {
    "mpe-deception": (simple_adversary_v3, lambda n: {"N": n},
                      lambda n: [f"agent_{i}" for i in range(n)], ["adversary_0"]),
    "mpe-crypto": (simple_crypto_v3, lambda n: {}, lambda n: ["alice_0", "bob_0"], ["eve_0"]),
    "mpe-predator-prey": (simple_tag_v3, lambda n: {"num_adversaries": n},
                          lambda n: [f"adversary_{i}" for i in range(n)], ["agent_0"]),
    "mpe-keep-away": (simple_push_v3, lambda n: {}, lambda n: ["agent_0"], ["adversary_0"]),
}
DEFAULT_TEAM = {"mpe-deception": 2, "mpe-crypto": 2, "mpe-predator-prey": 3, "mpe-keep-away": 1}

# Two sizes per game: two team sizes where the scenario has a size parameter; for the
# fixed-size games (crypto: Alice and Bob; keep-away: one agent) two episode lengths.
SIZES = [
    ("mpe-deception", 2, {"episode_length": 10}),
    ("mpe-deception", 4, {"episode_length": 10}),
    ("mpe-predator-prey", 3, {"episode_length": 10}),
    ("mpe-predator-prey", 2, {"episode_length": 10, "num_prey": 2}),
    ("mpe-crypto", 2, {"episode_length": 25}),
    ("mpe-crypto", 2, {"episode_length": 3}),
    ("mpe-keep-away", 1, {"episode_length": 25}),
    ("mpe-keep-away", 1, {"episode_length": 3}),
]


def size_id(case) -> str:
    name, n, kwargs = case
    return f"{name}-{n}-" + "-".join(f"{k}={v}" for k, v in kwargs.items())


def direct(name: str, n: int, episode_length: int) -> ParallelEnv:
    """The mpe2 env the game ``name`` wraps, built directly."""
    module, kwargs, _, _ = MPE[name]
    return module.parallel_env(continuous_actions=False, max_cycles=episode_length, **kwargs(n))


# ---------------------------------------------------------------- PettingZoo API


@pytest.mark.parametrize("case", SIZES, ids=size_id)
def test_parallel_api_and_seed(case):
    name, n, kwargs = case
    make = functools.partial(envs.make, name, n, **kwargs)
    parallel_api_test(make(), num_cycles=30)
    parallel_seed_test(make, num_cycles=30)


@pytest.mark.parametrize("name", sorted(MPE))
def test_learners_fixed_agents_and_defaults(name):
    _, _, learners, fixed = MPE[name]
    game = envs.make_batched(name, None)
    n = DEFAULT_TEAM[name]
    assert game.num_agents == n and game.learners == learners(n) and game.fixed_agents == fixed
    assert game.episode_length == 1000
    assert game.envs[0].unwrapped.max_cycles == 1000
    short = envs.make_batched(name, n, episode_length=25)
    assert short.envs[0].unwrapped.max_cycles == 25
    assert isinstance(game.observation_space, spaces.Box)
    assert game.observation_space.dtype == np.float32
    assert game.num_actions == (4 if name == "mpe-crypto" else 5)


@pytest.mark.parametrize("name, bad", [("mpe-crypto", 3), ("mpe-keep-away", 2),
                                       ("mpe-deception", 0), ("mpe-predator-prey", 0)])
def test_team_size_limits(name, bad):
    with pytest.raises(ValueError, match=name):
        envs.make(name, bad)


# ---------------------------------------------------------------- against mpe2


@pytest.mark.parametrize("name, n", [("mpe-deception", 2), ("mpe-deception", 3),
                                     ("mpe-crypto", 2), ("mpe-predator-prey", 2),
                                     ("mpe-keep-away", 1)])
def test_observations_rewards_and_state_equal_mpe2(name, n):
    length, b = 8, 3
    game = envs.make_batched(name, n, batch_size=b, episode_length=length, seed=5)
    rng = np.random.default_rng(0)
    obs = game.reset(seed=11)
    copies = [direct(name, n, length) for _ in range(b)]
    expected = [env.reset(seed=int(s))[0] for env, s in zip(copies, game.seeds)]
    for t in range(length):
        for c in range(b):
            for i, agent in enumerate(game.learners):
                np.testing.assert_array_equal(obs[c, i], expected[c][agent])
            np.testing.assert_array_equal(game.state()[c], copies[c].state())
        actions = rng.integers(0, game.num_actions, (b, n))
        obs, rewards, terminated, truncated = game.step(actions)
        assert not terminated.any() and truncated.all() == (t == length - 1)
        for c, env in enumerate(copies):
            joint = {a: int(actions[c, i]) for i, a in enumerate(game.learners)}
            assert set(game.fixed_actions[c]) == set(game.fixed_agents)
            joint |= game.fixed_actions[c]
            expected[c], rew, _, _, _ = env.step(joint)
            np.testing.assert_array_equal(rewards[c], np.float32([rew[a] for a in game.learners]))


@pytest.mark.parametrize("name", ["mpe-deception", "mpe-crypto", "mpe-predator-prey"])
def test_the_team_shares_one_reward(name):
    game = envs.make_batched(name, None, batch_size=4, episode_length=30, seed=0)
    rng = np.random.default_rng(1)
    total = np.zeros((4, game.num_agents))
    for _ in range(30):
        _, rewards, _, _ = game.step(rng.integers(0, game.num_actions, (4, game.num_agents)))
        assert np.all(rewards == rewards[:, :1])
        total += rewards
    assert name == "mpe-predator-prey" or np.any(total != 0)


# ---------------------------------------------------------------- the random adversary


def adversary_actions(seed: int, steps: int = 20) -> np.ndarray:
    game = envs.make_batched("mpe-deception", 2, batch_size=3, episode_length=steps)
    game.reset(seed=seed)
    played = []
    for _ in range(steps):
        game.step(np.zeros((3, 2), np.int64))
        played.append([f["adversary_0"] for f in game.fixed_actions])
    return np.array(played)


def test_random_adversary_is_reproducible_and_differs_between_seeds():
    first, again, other = adversary_actions(3), adversary_actions(3), adversary_actions(4)
    np.testing.assert_array_equal(first, again)
    assert np.any(first != other)
    assert set(first.ravel()) == set(range(5))  # uniform over its 5 actions: all appear
    assert np.any(first[:, 0] != first[:, 1])  # the copies draw their own actions


def test_random_adversary_does_not_depend_on_the_learners_actions():
    games = [envs.make_batched("mpe-keep-away", 1, episode_length=10, seed=2) for _ in range(2)]
    for t in range(10):
        games[0].step(np.array([[0]]))
        games[1].step(np.array([[t % 5]]))
        assert games[0].fixed_actions == games[1].fixed_actions


def test_fixed_adversary_policy():
    seen = []

    def still(agent, obs, rng):
        seen.append((agent, obs.copy()))
        return np.zeros(len(obs), np.int64)

    game = envs.make_batched("mpe-deception", 2, batch_size=3, episode_length=4,
                             adversary_policy=still, seed=0)
    for _ in range(4):
        before = game.state()[:, :8]  # the state starts with the adversary's observation
        game.step(np.ones((3, 2), np.int64))
        agent, obs = seen[-1]
        assert agent == "adversary_0" and obs.dtype == np.float32
        np.testing.assert_array_equal(obs, before)
        assert all(f == {"adversary_0": 0} for f in game.fixed_actions)
    assert len(seen) == 4


@pytest.mark.parametrize("policy, message", [
    (lambda agent, obs, rng: np.zeros(2, np.int64), "3 integer actions"),
    (lambda agent, obs, rng: np.zeros(3), "3 integer actions"),
    (lambda agent, obs, rng: np.full(3, 5), r"in \[0, 5\)"),
])
def test_bad_fixed_policy_output_raises(policy, message):
    game = envs.make_batched("mpe-keep-away", 1, batch_size=3, adversary_policy=policy)
    with pytest.raises(ValueError, match=message):
        game.step(np.zeros((3, 1), np.int64))


def test_fixed_policy_must_be_callable():
    with pytest.raises(ValueError, match="adversary_policy must be a callable"):
        envs.make("mpe-keep-away", adversary_policy="random")
    make = functools.partial(simple_push_v3.parallel_env, continuous_actions=False)
    with pytest.raises(ValueError, match="fixed_policy must be callable"):
        PettingZooGame(make, ["agent_0"], fixed_policy=3)


# ---------------------------------------------------------------- padding


def test_shorter_observations_are_padded_with_zeros():
    # learners of different sizes: mpe2's adversary observes 8 floats, agent_0 10
    make = functools.partial(simple_adversary_v3.parallel_env, continuous_actions=False)
    game = PettingZooGame(make, ["adversary_0", "agent_0"], batch_size=2,
                          episode_length=5, seed=0)
    assert game.observation_space.shape == (10,) and game.fixed_agents == ["agent_1"]
    copies = [make() for _ in range(2)]
    obs = game.reset(seed=None)
    expected = [env.reset(seed=int(s))[0] for env, s in zip(copies, game.seeds)]
    for _ in range(5):
        for c in range(2):
            assert not obs[c, 0, 8:].any()
            np.testing.assert_array_equal(obs[c, 0, :8], expected[c]["adversary_0"])
            np.testing.assert_array_equal(obs[c, 1], expected[c]["agent_0"])
        actions = np.array([[1, 2], [3, 4]])
        obs, _, _, _ = game.step(actions)
        for c, env in enumerate(copies):
            joint = {"adversary_0": int(actions[c, 0]), "agent_0": int(actions[c, 1])}
            expected[c] = env.step(joint | game.fixed_actions[c])[0]


class Toy(ParallelEnv):
    """Agents "a" (actions 1..3), "b" (0..4) and "c" (0..1) observe their last action.

    Observations: "a" sees (last action, t) in [0, 9]^2; "b" sees (last action, t, -1),
    the last entry always -1; "c" sees (last action,). Rewards are the actions played. "a" is
    terminated at step ``stop``; every agent is truncated at step ``cut``; no ``state()``.
    """

    metadata = {"name": "toy"}

    def __init__(self, stop: int = 100, cut: int = 100):
        self.possible_agents = ["a", "b", "c"]
        self.stop, self.cut = stop, cut
        self._act = {"a": spaces.Discrete(3, start=1), "b": spaces.Discrete(5),
                     "c": spaces.Discrete(2)}
        self._obs = {"a": spaces.Box(0, 9, (2,), np.float32),
                     "b": spaces.Box(np.array([0, 0, -1], np.float32),
                                     np.array([9, 9, -1], np.float32)),
                     "c": spaces.Box(0, 9, (1,), np.float32)}

    def observation_space(self, agent):
        return self._obs[agent]

    def action_space(self, agent):
        return self._act[agent]

    def _observe(self, last):
        return {"a": np.array([last["a"], self.t], np.float32),
                "b": np.array([last["b"], self.t, -1], np.float32),
                "c": np.array([last["c"]], np.float32)}

    def reset(self, seed=None, options=None):
        self.agents, self.t = list(self.possible_agents), 0
        return {a: o for a, o in self._observe({"a": 0, "b": 0, "c": 0}).items()}, \
            {a: {} for a in self.agents}

    def step(self, actions):
        assert set(actions) == set(self.agents)
        for agent, action in actions.items():
            assert self._act[agent].contains(action)
        self.t += 1
        last = {a: actions.get(a, 0) for a in self.possible_agents}
        obs = {a: o for a, o in self._observe(last).items() if a in self.agents}
        rewards = {a: float(actions[a]) for a in self.agents}
        term = {a: a == "a" and self.t >= self.stop for a in self.agents}
        trunc = {a: self.t >= self.cut for a in self.agents}
        self.agents = [a for a in self.agents if not (term[a] or trunc[a])]
        return obs, rewards, term, trunc, {a: {} for a in obs}


def test_padded_space_bounds_and_action_mapping():
    game = PettingZooGame(Toy, ["a", "b"], batch_size=2, episode_length=4, seed=0)
    assert game.num_actions == 5  # the largest learner's action set
    # position 2 only "b" fills; "a" pads it with 0
    assert game.observation_space == spaces.Box(
        np.array([0, 0, -1], np.float32), np.array([9, 9, 0], np.float32), dtype=np.float32)
    obs, rewards, _, _ = game.step(np.array([[0, 4], [4, 0]]))
    # "a" plays 1 + (a mod 3): 0 -> 1, 4 -> 2; "b" plays its action
    np.testing.assert_array_equal(rewards, [[1, 4], [2, 0]])
    np.testing.assert_array_equal(obs[:, 0], [[1, 1, 0], [2, 1, 0]])
    np.testing.assert_array_equal(obs[:, 1], [[4, 1, -1], [0, 1, -1]])
    assert all(game.observation_space.contains(o) for o in obs.reshape(-1, 3))


def test_early_termination_is_sticky_and_the_state_falls_back_to_observations():
    game = PettingZooGame(functools.partial(Toy, stop=2), ["a", "b"], episode_length=4,
                          fixed_policy=lambda agent, obs, rng: np.ones(len(obs), np.int64))
    # no env state: every agent's observation side by side (a: 2, b: 3, c: 1)
    assert game.state_space.shape == (6,)
    np.testing.assert_array_equal(game.state(), [[0, 0, 0, 0, -1, 0]])
    _, rewards, terminated, _ = game.step(np.array([[2, 3]]))
    assert not terminated.any()
    np.testing.assert_array_equal(game.state(), [[3, 1, 3, 1, -1, 1]])
    obs, rewards, terminated, _ = game.step(np.array([[2, 3]]))
    np.testing.assert_array_equal(terminated, [[True, False]])
    np.testing.assert_array_equal(rewards, [[3, 3]])
    last = obs[0, 0].copy()
    for _ in range(2):
        obs, rewards, terminated, truncated = game.step(np.array([[1, 2]]))
        np.testing.assert_array_equal(terminated, [[True, False]])
        np.testing.assert_array_equal(rewards, [[0, 2]])  # no reward once terminated
        np.testing.assert_array_equal(obs[0, 0], last)  # its last observation, frozen
    assert truncated.all()


# ---------------------------------------------------------------- episodes and errors


def test_the_wrapped_envs_early_truncation_ends_the_learners():
    game = PettingZooGame(functools.partial(Toy, cut=2), ["a", "b"], batch_size=2,
                          episode_length=4, seed=0)
    for t in range(4):
        _, rewards, terminated, truncated = game.step(np.full((2, 2), 2))
        assert terminated.all() == (t >= 1) and truncated.all() == (t == 3)
        assert (rewards != 0).all() == (t <= 1)  # finished copies are not stepped
    assert game.fixed_actions == [{}, {}]



def test_episode_is_truncated_at_episode_length():
    game = envs.make_batched("mpe-predator-prey", 2, batch_size=2, episode_length=3, seed=0)
    for t in range(3):
        _, _, terminated, truncated = game.step(np.zeros((2, 2), np.int64))
        assert truncated.all() == (t == 2) and not terminated.any()
    assert all(not env.agents for env in game.envs)  # mpe2 ended its episode too
    with pytest.raises(RuntimeError, match="reset"):
        game.step(np.zeros((2, 2), np.int64))
    game.reset()
    assert all(len(env.agents) == 3 for env in game.envs)
    view = envs.make("mpe-keep-away", episode_length=2)
    view.reset(seed=0)
    view.step({"agent_0": 0})
    _, _, _, truncations, _ = view.step({"agent_0": 0})
    assert truncations == {"agent_0": True} and view.agents == []


def test_reset_seeds_the_copies_from_the_game_generator():
    game = envs.make_batched("mpe-crypto", 2, batch_size=4, seed=0)
    first = game.reset(seed=7).copy()
    seeds = game.seeds.copy()
    assert len(set(seeds.tolist())) == 4
    np.testing.assert_array_equal(game.reset(seed=7), first)
    np.testing.assert_array_equal(game.seeds, seeds)
    game.reset()  # keeps drawing from the generator: new seeds
    assert np.all(game.seeds != seeds)


def test_box_actions_make_a_continuous_game():
    make = functools.partial(simple_push_v3.parallel_env, continuous_actions=True)
    game = PettingZooGame(make, ["agent_0"], episode_length=3, seed=0)
    assert game.continuous and game.action_shape == (5,) and game.num_actions == 5
    with pytest.raises(ValueError, match="must be floats"):
        game.step(np.zeros((1, 1, 5), np.int64))


@pytest.mark.parametrize("learners, message", [
    ([], "at least one learner"), (["agent_0", "nobody"], "not agents of the env"),
    (["agent_0", "agent_0"], "distinct"),
])
def test_bad_learners_raise(learners, message):
    make = functools.partial(simple_push_v3.parallel_env, continuous_actions=False)
    with pytest.raises(ValueError, match=message):
        PettingZooGame(make, learners)


@pytest.mark.parametrize("actions, message", [
    (np.zeros((2, 3), np.int64), "shape"),
    (np.zeros((1, 2), np.int64), "shape"),
    (np.zeros((2, 2)), "integers"),
    (np.array([[0, 5], [0, 0]]), r"in \[0, 5\)"),
    (np.array([[0, -1], [0, 0]]), r"in \[0, 5\)"),
])
def test_bad_actions_raise(actions, message):
    game = envs.make_batched("mpe-deception", 2, batch_size=2, episode_length=3)
    with pytest.raises(ValueError, match=message):
        game.step(actions)
    assert game.t == 0
