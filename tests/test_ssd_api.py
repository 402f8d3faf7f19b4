"""Harvest and Cleanup behind the registry: PettingZoo API, maps, defaults, options,
seeding and refusals. Rules are tested in test_ssd_rules.py."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.test import parallel_api_test, parallel_seed_test

import envs
from envs import Cleanup, Harvest
from envs.cleanup import CONSTANTS
from envs.gridworld import FIRE, STAY

GAMES = ["cleanup", "harvest"]


@pytest.mark.parametrize("name", GAMES)
@pytest.mark.parametrize("num_agents", [3, 5])
def test_parallel_api_and_seed(name, num_agents):
    env = envs.make(name, num_agents, episode_length=30)
    parallel_api_test(env, num_cycles=40)
    parallel_seed_test(lambda: envs.make(name, num_agents, episode_length=20), num_cycles=25)
    obs, _ = env.reset(seed=0)
    assert env.observation_space("agent_0") == spaces.Box(0, 255, (15, 15, 3), np.uint8)
    assert env.action_space("agent_0") == spaces.Discrete(9 if name == "cleanup" else 8)
    assert env.state_space.contains(env.state())


def test_canonical_maps_and_defaults():
    harvest = envs.make_batched("harvest", None)
    lay = harvest.layout
    assert (harvest.num_agents, harvest.episode_length) == (5, 1000)
    assert (lay.height, lay.width, lay.count("A"), lay.count("P")) == (16, 38, 155, 20)
    assert "".join(harvest.ascii()).count("A") == 155  # every apple cell full at reset
    assert harvest.state_dim == 16 * 38 + 8 * 5

    cleanup = envs.make_batched("cleanup", None)
    lay = cleanup.layout
    assert (cleanup.num_agents, cleanup.episode_length) == (5, 1000)
    assert (lay.height, lay.width, lay.count("P"), lay.count("HR"), lay.count("H")) == \
        (25, 18, 10, 119, 56)
    assert cleanup.constants == CONSTANTS["canonical"]
    # 56 / 119 = 0.47 of the river is waste at reset: above 0.4, nothing spawns
    assert cleanup.waste_density().tolist() == [56 / 119]
    assert cleanup.apple_probability().tolist() == [0.0] == cleanup.waste_probability().tolist()
    assert cleanup.state_dim == 2 * 25 * 18 + 8 * 5


@pytest.mark.parametrize("map_name, size, spawn", [("lio-7", 7, 2), ("lio-10", 10, 3)])
def test_lio_maps(map_name, size, spawn):
    game = envs.make_batched("cleanup", spawn, map=map_name)
    assert (game.layout.height, game.layout.width, game.layout.count("P")) == (size, size, spawn)
    assert game.episode_length == 50 and game.constants == CONSTANTS[map_name]
    assert envs.make_batched("cleanup", 2, map=map_name, episode_length=70).episode_length == 70
    other = envs.make_batched("cleanup", 2, map=map_name, constants="fpf")
    assert other.constants == CONSTANTS["fpf"]
    with pytest.raises(ValueError, match=f"{spawn} spawn points"):
        envs.make_batched("cleanup", spawn + 1, map=map_name)


def test_reset_puts_agents_on_distinct_spawn_points():
    game = envs.make_batched("harvest", 20, batch_size=8, seed=0)
    spawn = set(zip(*np.nonzero(game.layout.chars == "P")))
    orientations = set()
    for b in range(8):
        cells = [tuple(p) for p in game.positions[b].tolist()]
        assert len(set(cells)) == 20 and set(cells) == spawn
        orientations |= set(game.orientation[b].tolist())
    assert orientations == {0, 1, 2, 3}


@pytest.mark.parametrize("name", GAMES)
def test_batched_shapes_and_seeded_trajectories(name):
    def run(seed):
        game = envs.make_batched(name, 4, batch_size=3, seed=seed, timeout=5)
        actions = np.random.default_rng(1).integers(0, game.num_actions, (30, 3, 4))
        out = [game.reset(seed=seed)]
        for a in actions:
            obs, rewards, terminated, truncated = game.step(a)
            assert obs.shape == (3, 4, 15, 15, 3) and obs.dtype == np.uint8
            assert rewards.dtype == np.float32 and not terminated.any() and not truncated.any()
            out += [obs, rewards, game.state()]
        return out

    a, b, c = run(5), run(5), run(6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert a[-1].shape == (3, envs.make_batched(name, 4).state_dim)


def test_truncation_and_no_autoreset():
    game = envs.make_batched("harvest", 3, batch_size=2, episode_length=3, seed=0)
    for t in range(1, 4):
        _, _, _, truncated = game.step(np.full((2, 3), STAY))
        assert truncated.all() == (t == 3) and truncated.any() == (t == 3)
    with pytest.raises(RuntimeError, match="reset"):
        game.step(np.full((2, 3), STAY))


def test_registry_and_options():
    assert {"cleanup", "harvest"} <= set(envs.available())
    assert isinstance(envs.make_batched("cleanup", 3), Cleanup)
    assert isinstance(envs.make("harvest", 3).game, Harvest)
    assert {"episode_length", "map", "constants", "timeout"} <= set(envs.options("cleanup"))
    assert {"episode_length", "map", "timeout"} <= set(envs.options("harvest"))


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("cleanup", {"map": "big"}, r"unknown map 'big'; valid choices: canonical, lio-7, lio-10"),
        ("harvest", {"map": "lio-7"}, r"unknown map 'lio-7'; valid choices: canonical"),
        ("cleanup", {"constants": "x"}, r"unknown constants 'x'; valid choices: canonical, fpf"),
        ("harvest", {"timeout": -1}, r"timeout must be an integer >= 0"),
        ("harvest", {"map": ["@@@", "@X@", "@@@"]}, r"map characters \['X'\]"),
        ("harvest", {"map": ["@@@", "@P"]}, r"same, non-zero length"),
        ("harvest", {"observation": "vector"}, r"valid choices: image"),
    ],
)
def test_bad_options_raise(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        envs.make_batched(name, 1, **kwargs)


def test_too_many_agents_and_bad_actions_raise():
    with pytest.raises(ValueError, match=r"harvest takes at most 20 agent"):
        envs.make("harvest", 21)
    with pytest.raises(ValueError, match=r"cleanup takes at most 10 agent"):
        envs.make("cleanup", 11)
    game = envs.make_batched("harvest", 2)
    with pytest.raises(ValueError, match=r"\[0, 8\).*got action 8"):
        game.step(np.array([[FIRE + 1, 0]]))
    game.step(np.array([[FIRE, 0]]))  # 7 is fine
    with pytest.raises(ValueError, match="wall"):
        game.place_agents({0: (0, 0, 0)})
    with pytest.raises(ValueError, match="two agents on one cell"):
        game.place_agents({0: (1, 1, 0), 1: (1, 1, 0)})
