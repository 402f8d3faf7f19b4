"""Tests of the Matthew Effect game, its PettingZoo view and the env registry.

Most tests set the internal state (``pos``, ``size``, ``resources``) by hand and check
hand-computed outcomes. Distances are chosen to be exact in binary floating point
where a test sits on the ``distance < size`` boundary.
"""

from __future__ import annotations

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

import envs
from envs import MatthewEffect

STAY, UP, DOWN, LEFT, RIGHT = range(5)
FAR = (0.05, 0.95)  # a resource position far from every agent used below


def setup(pos, size, resources, **kwargs) -> MatthewEffect:
    """A single-copy game whose state is exactly the given agents and resources."""
    pos = np.asarray(pos, dtype=float)
    resources = np.asarray(resources, dtype=float)
    game = MatthewEffect(
        num_agents=len(pos), num_resources=len(resources), seed=0, **kwargs
    )
    game.pos = pos[None].copy()
    game.size = np.asarray(size, dtype=float)[None].copy()
    game.resources = resources[None].copy()
    return game


def act(*actions: int) -> np.ndarray:
    return np.array([actions])


# ---------------------------------------------------------------- PettingZoo API


@pytest.mark.parametrize("num_agents", [3, 10])
def test_parallel_api(num_agents):
    env = envs.make("matthew", num_agents=num_agents)
    parallel_api_test(env, num_cycles=1000)


def test_parallel_view_types_and_state():
    env = envs.make("matthew", num_agents=3, episode_length=2)
    obs, infos = env.reset(seed=3)
    assert env.agents == ["agent_0", "agent_1", "agent_2"]
    assert set(infos) == set(env.agents)
    for agent in env.agents:
        assert env.observation_space(agent).contains(obs[agent])
    # state: 3 positions, 3 sizes, 3 resources (default) = 6 + 3 + 6 floats
    assert env.state().shape == (15,) and env.state().dtype == np.float32
    np.testing.assert_array_equal(env.state()[2:4], obs["agent_1"][0:2])
    np.testing.assert_array_equal(env.state()[6:9], [o[2] for o in obs.values()])
    assert env.game.batch_size == 1 and env.game.num_agents == 3
    assert env.metadata["name"] == "matthew" and env.render() is None

    with pytest.raises(ValueError, match="missing actions.*agent_2"):
        env.step({"agent_0": 0, "agent_1": 0})
    _, rewards, terms, truncs, _ = env.step({a: 0 for a in env.agents})
    assert all(type(r) is float for r in rewards.values())
    assert all(type(f) is bool for f in [*terms.values(), *truncs.values()])
    assert not any(truncs.values()) and len(env.agents) == 3
    _, _, _, truncs, _ = env.step({a: 0 for a in env.agents})
    assert all(truncs.values()) and env.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})


# ---------------------------------------------------------------- consumption


def test_consumes_when_distance_below_size():
    game = setup([(0.5, 0.5)], [0.03125], [(0.5, 0.53)])
    obs, rewards, _, _ = game.step(act(STAY))
    assert rewards[0, 0] == 1.0
    assert game.size[0, 0] == pytest.approx(0.03625)
    assert obs[0, 0, 2] == pytest.approx(0.03625)
    assert obs[0, 0, 3] == pytest.approx(0.04625)  # speed grew with size
    assert not np.allclose(game.resources[0, 0], (0.5, 0.53))  # respawned


@pytest.mark.parametrize("resource", [(0.5, 0.53125), (0.46875, 0.5), (0.5, 0.6)])
def test_no_consumption_when_distance_at_least_size(resource):
    # distances 0.03125 (== size, exact in binary), 0.03125, and 0.1
    game = setup([(0.5, 0.5)], [0.03125], [resource])
    _, rewards, _, _ = game.step(act(STAY))
    assert rewards[0, 0] == 0.0
    assert game.size[0, 0] == 0.03125
    np.testing.assert_array_equal(game.resources[0, 0], resource)


def test_consumption_is_checked_after_moving():
    # speed 0.04125: moving right takes x from 0.5 to 0.54125, 0.01875 from the resource
    game = setup([(0.5, 0.5)], [0.03125], [(0.56, 0.5)])
    _, rewards, _, _ = game.step(act(RIGHT))
    assert rewards[0, 0] == 1.0


def test_one_reward_per_agent_even_with_two_resources_in_range():
    game = setup([(0.5, 0.5)], [0.05], [(0.52, 0.5), (0.5, 0.47), FAR])
    _, rewards, _, _ = game.step(act(STAY))
    assert rewards[0, 0] == 1.0
    assert game.size[0, 0] == pytest.approx(0.055)
    # resource 0 is processed first and consumed; the others stay put
    assert not np.allclose(game.resources[0, 0], (0.52, 0.5))
    np.testing.assert_array_equal(game.resources[0, 1], (0.5, 0.47))
    np.testing.assert_array_equal(game.resources[0, 2], FAR)


@pytest.mark.parametrize(
    "resource_x, expected", [(0.52, [0.0, 1.0]), (0.51, [1.0, 0.0])]
)
def test_only_the_closer_agent_consumes(resource_x, expected):
    game = setup([(0.5, 0.5), (0.53, 0.5)], [0.05, 0.05], [(resource_x, 0.5)])
    _, rewards, _, _ = game.step(act(STAY, STAY))
    np.testing.assert_array_equal(rewards[0], expected)
    grew = np.array(expected) == 1.0
    np.testing.assert_allclose(game.size[0], np.where(grew, 0.055, 0.05))


def test_equidistant_agents_lowest_index_wins():
    # both agents exactly 0.03125 from the resource
    game = setup([(0.5625, 0.5), (0.5, 0.5)], [0.05, 0.05], [(0.53125, 0.5)])
    _, rewards, _, _ = game.step(act(STAY, STAY))
    np.testing.assert_array_equal(rewards[0], [1.0, 0.0])


def test_agent_that_already_ate_leaves_next_resource_to_others():
    # agent 0 is closest to both resources: it takes resource 0, agent 1 takes resource 1
    game = setup(
        [(0.5, 0.5), (0.56, 0.5)], [0.05, 0.05], [(0.52, 0.5), (0.53, 0.5)]
    )
    _, rewards, _, _ = game.step(act(STAY, STAY))
    np.testing.assert_array_equal(rewards[0], [1.0, 1.0])
    assert not np.allclose(game.resources[0, 0], (0.52, 0.5))
    assert not np.allclose(game.resources[0, 1], (0.53, 0.5))


def test_growth_is_capped():
    game = setup([(0.5, 0.5)], [0.148], [(0.5, 0.5)])
    _, rewards, _, _ = game.step(act(STAY))
    assert rewards[0, 0] == 1.0 and game.size[0, 0] == pytest.approx(0.15)
    game.resources[0, 0] = (0.5, 0.5)
    _, rewards, _, _ = game.step(act(STAY))
    assert rewards[0, 0] == 1.0 and game.size[0, 0] == pytest.approx(0.15)
    assert game.speed[0, 0] == pytest.approx(0.16)


def test_respawn_moves_only_the_consumed_resource():
    others = [(0.1, 0.9), (0.9, 0.1)]
    for seed in range(20):
        game = setup([(0.5, 0.5)], [0.05], [others[0], (0.5, 0.51), others[1]])
        game.reset(seed=seed)  # fresh generator for the respawn draw ...
        game.pos[0] = (0.5, 0.5)  # ... then the hand-set state again
        game.size[0] = 0.05
        game.resources[0] = [others[0], (0.5, 0.51), others[1]]
        obs, rewards, _, _ = game.step(act(STAY))
        assert rewards[0, 0] == 1.0
        new = game.resources[0, 1]
        assert np.all((0.0 <= new) & (new <= 1.0))
        assert not np.allclose(new, (0.5, 0.51))
        np.testing.assert_array_equal(game.resources[0, [0, 2]], others)
        # the observed nearest resource is chosen after the respawn
        nearest = np.argmin(np.linalg.norm(game.resources[0] - (0.5, 0.5), axis=1))
        np.testing.assert_allclose(obs[0, 0, 4:], game.resources[0, nearest], rtol=1e-6)


# ---------------------------------------------------------------- movement


@pytest.mark.parametrize(
    "action, expected",
    [(STAY, (0.5, 0.5)), (UP, (0.5, 0.53)), (DOWN, (0.5, 0.47)),
     (LEFT, (0.47, 0.5)), (RIGHT, (0.53, 0.5))],
)
def test_moves_by_speed(action, expected):
    game = setup([(0.5, 0.5)], [0.02], [FAR])
    assert game.speed[0, 0] == pytest.approx(0.03)
    obs, _, _, _ = game.step(act(action))
    np.testing.assert_allclose(game.pos[0, 0], expected)
    np.testing.assert_allclose(obs[0, 0, :4], [*expected, 0.02, 0.03], rtol=1e-6)
    np.testing.assert_allclose(obs[0, 0, 4:], FAR, rtol=1e-6)


def test_positions_are_clipped_to_the_unit_square():
    game = setup(
        [(0.99, 0.5), (0.5, 0.005), (0.02, 0.5), (0.5, 0.97)],
        [0.04, 0.04, 0.04, 0.04],
        [(0.3, 0.3)],
    )
    game.step(act(RIGHT, DOWN, LEFT, UP))
    np.testing.assert_allclose(
        game.pos[0], [(1.0, 0.5), (0.5, 0.0), (0.0, 0.5), (0.5, 1.0)]
    )


def test_state_by_hand():
    game = setup([(0.5, 0.25), (0.75, 1.0)], [0.02, 0.04], [FAR, (0.125, 0.5)])
    game.step(act(STAY, DOWN))  # agent 1 moves down by its speed 0.05
    np.testing.assert_allclose(
        game.state(),
        [[0.5, 0.25, 0.75, 0.95, 0.02, 0.04, *FAR, 0.125, 0.5]],
        rtol=1e-6,
    )
    assert game.state().dtype == np.float32


def test_reset_draws_state_in_range():
    game = MatthewEffect(num_agents=10, batch_size=8, seed=1)
    obs = game.reset()
    assert obs.shape == (8, 10, 6) and obs.dtype == np.float32
    assert np.all((game.size >= 0.01) & (game.size <= 0.05))
    np.testing.assert_allclose(obs[..., 3], 0.01 + game.size, rtol=1e-6)
    assert np.all((game.pos >= 0) & (game.pos <= 1))
    assert game.state().shape == (8, 36) == (8, game.state_dim)


# ---------------------------------------------------------------- episode, seeds


def test_truncation_exactly_at_episode_length():
    game = MatthewEffect(num_agents=2, batch_size=3, episode_length=5, seed=0)
    for t in range(1, 6):
        _, _, terminated, truncated = game.step(np.zeros((3, 2), dtype=int))
        assert not terminated.any()
        assert truncated.all() == (t == 5) and truncated.any() == (t == 5)
    with pytest.raises(RuntimeError, match="reset"):
        game.step(np.zeros((3, 2), dtype=int))
    game.reset()
    assert game.t == 0


def _trajectory(seed: int) -> list[np.ndarray]:
    game = MatthewEffect(num_agents=4, batch_size=2, episode_length=60)
    actions = np.random.default_rng(123).integers(0, 5, (60, 2, 4))
    out = [game.reset(seed=seed)]
    for a in actions:
        obs, rewards, _, _ = game.step(a)
        out += [obs, rewards]
    return out


def test_same_seed_same_trajectory_different_seed_differs():
    a, b, c = _trajectory(7), _trajectory(7), _trajectory(8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_reset_without_seed_keeps_the_generator():
    game = MatthewEffect(num_agents=3, seed=0)
    first = game.reset(seed=5)
    assert not np.array_equal(game.reset(), first)
    np.testing.assert_array_equal(game.reset(seed=5), first)


def test_batched_game_matches_independent_single_games():
    b, n, r = 4, 5, 4
    batched = MatthewEffect(num_agents=n, batch_size=b, num_resources=r, seed=0)
    rng = np.random.default_rng(0)
    batched.size = rng.uniform(0.08, 0.15, (b, n))  # big agents: frequent conflicts
    singles = [MatthewEffect(n, 1, r, seed=10 + i) for i in range(b)]
    for i, s in enumerate(singles):
        s.pos = batched.pos[i : i + 1].copy()
        s.size = batched.size[i : i + 1].copy()
        s.resources = batched.resources[i : i + 1].copy()

    eaten_total = 0
    for _ in range(40):
        actions = rng.integers(0, 5, (b, n))
        before = batched.resources.copy()
        obs, rewards, _, _ = batched.step(actions)
        for i, s in enumerate(singles):
            s_before = s.resources.copy()
            s_obs, s_rewards, _, _ = s.step(actions[i : i + 1])
            np.testing.assert_array_equal(s_rewards[0], rewards[i])
            np.testing.assert_array_equal(s.pos[0], batched.pos[i])
            np.testing.assert_array_equal(s.size[0], batched.size[i])
            eaten = np.any(batched.resources[i] != before[i], axis=1)
            s_eaten = np.any(s.resources[0] != s_before[0], axis=1)
            np.testing.assert_array_equal(s_eaten, eaten)
            assert eaten.sum() == rewards[i].sum()
            eaten_total += eaten.sum()
            np.testing.assert_array_equal(s_obs[0, :, :4], obs[i, :, :4])
            if not eaten.any():
                np.testing.assert_array_equal(s_obs[0], obs[i])
            # respawn draws come from different generators: resynchronise them
            s.resources = batched.resources[i : i + 1].copy()
    assert eaten_total >= 10  # the comparison exercised consumption


def test_random_policy_return_is_plausible(random_returns):
    # reference: 4.6 +- 2.2 collective return per 200-step episode, 10 agents
    total = random_returns("matthew", 10).sum(axis=1)
    assert 2.0 < total.mean() < 9.0


# ---------------------------------------------------------------- validation, registry


@pytest.mark.parametrize(
    "actions, message",
    [
        (np.zeros((1, 3), dtype=int), r"shape .*\(1, 2\).*got \(1, 3\)"),
        (np.zeros(2, dtype=int), r"shape"),
        (np.array([[0, 5]]), r"\[0, 5\).*got action 5"),
        (np.array([[-1, 0]]), r"got action -1"),
        (np.zeros((1, 2)), r"integers.*float64"),
    ],
)
def test_bad_actions_raise(actions, message):
    game = MatthewEffect(num_agents=2)
    with pytest.raises(ValueError, match=message):
        game.step(actions)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_agents": 0}, "num_agents"),
        ({"num_resources": 0}, "num_resources"),
        ({"batch_size": 0}, "batch_size"),
        ({"episode_length": 0}, "episode_length"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=f"{name} must be >= 1, got 0"):
        MatthewEffect(**kwargs)


def test_registry():
    assert "matthew" in envs.available() and envs.available() == sorted(envs.available())
    env = envs.make("matthew")
    assert env.game.num_agents == 10 and len(env.possible_agents) == 10
    game = envs.make_batched("matthew", 4, batch_size=3, episode_length=7)
    assert isinstance(game, MatthewEffect)
    assert (game.num_agents, game.batch_size, game.episode_length) == (4, 3, 7)
    with pytest.raises(ValueError, match="make_batched"):
        envs.make("matthew", batch_size=2)


def test_make_unknown_name_lists_choices():
    choices = ", ".join(envs.available())
    tail = ", or a PettingZoo ParallelEnv factory module.path:name$"
    with pytest.raises(ValueError, match=f"unknown env 'x'; valid choices: {choices}{tail}"):
        envs.make("x")
    with pytest.raises(ValueError, match=f"unknown env 'x'; valid choices: {choices}{tail}"):
        envs.make_batched("x", 3)


def test_make_with_zero_agents_says_why():
    with pytest.raises(
        ValueError,
        match=r"matthew needs at least 1 agent.*got 0.*valid choices: num_agents >= 1",
    ):
        envs.make("matthew", num_agents=0)
