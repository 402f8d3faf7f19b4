"""The Stackelberg view (envs/stackelberg.py) on hand-set inputs, and games that know
nothing about it (nor about attacks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

import envs
from envs.stackelberg import StackelbergView

ENVS = Path(__file__).resolve().parents[1] / "envs"


def view(name, n, **kwargs) -> StackelbergView:
    return StackelbergView(envs.make_batched(name, n, **kwargs))


# ---------------------------------------------------------------- games know nothing of it


def test_no_game_module_mentions_stackelberg_or_attacks():
    modules = sorted(p for p in ENVS.rglob("*.py") if p != ENVS / "stackelberg.py")
    assert ENVS / "base.py" in modules and ENVS / "resource_grid.py" in modules
    offenders = {str(p.relative_to(ENVS)): word for p in modules for word in ("stackelberg", "attack")
                 if word in p.read_text().lower()}
    assert offenders == {}


def test_games_take_no_stackelberg_keyword():
    with pytest.raises(TypeError):
        envs.make_batched("matthew", 2, stackelberg=True)
    assert "stackelberg" not in envs.options("resource-grid")
    assert not hasattr(envs.make_batched("matrix", 2), "observe_leaders")


# ---------------------------------------------------------------- the space


def test_the_slot_grows_the_observation_space():
    matthew = view("matthew", 3)  # 6 + 3 * 5
    box = matthew.observation_space
    assert box.shape == (21,) and box.dtype == np.float32
    np.testing.assert_array_equal(box.low[:6], matthew.game.observation_space.low)
    np.testing.assert_array_equal(box.high[:6], matthew.game.observation_space.high)
    assert np.all(box.low[6:] == 0) and np.all(box.high[6:] == 1)
    assert view("job", 2, observation="discrete").observation_space == spaces.Discrete(625 * 11)  # 1 + 2 * 5
    assert view("matrix", 2).observation_space == spaces.Discrete(5 * 5)  # 1 + 2 * 2 slot values
    assert view("dilemma", 4).observation_space == spaces.Discrete(204 * 9)  # 1 + 4 * 2
    assert matthew.state_dim == 15 and matthew.state_space is matthew.game.state_space  # no slot in the state


@pytest.mark.parametrize("name, kwargs", [("job", {"observation": "image"}), ("harvest", {}), ("cleanup", {})])
def test_image_observations_are_refused(name, kwargs):
    with pytest.raises(ValueError, match=r"stackelberg needs vector or discrete observations, got "
                                         r"observation='image' with space Box\(0, 255"):
        view(name, 2, **kwargs)


def test_everything_else_is_the_games():
    game = envs.make_batched("dilemma", 3, batch_size=2, payoffs="chicken", seed=1)
    v = StackelbergView(game)
    assert (v.name, v.num_agents, v.num_actions, v.batch_size, v.episode_length) == ("dilemma", 3, 2, 2, 12)
    assert v.fair_action == 0 and v.joint == game.joint and v.mediator_states == game.mediator_states
    assert v.horizon_terminal is game.horizon_terminal and v.state_space is game.state_space
    assert v.reference_metrics() == game.reference_metrics()
    v.step(np.ones((2, 3), np.int64))
    assert v.t == game.t == 1
    np.testing.assert_array_equal(v.state(), game.state())
    with pytest.raises(AttributeError):
        v.no_such_attribute


# ---------------------------------------------------------------- empty slots


def test_reset_and_step_return_empty_slots_and_the_same_dynamics():
    plain = envs.make_batched("matthew", 3, batch_size=2, seed=4)
    leader = view("matthew", 3, batch_size=2, seed=4)
    actions = np.random.default_rng(0).integers(0, 5, (6, 2, 3))
    pairs = [(plain.reset(seed=9), leader.reset(seed=9))]
    for a in actions:
        (o1, r1, d1, t1), (o2, r2, d2, t2) = plain.step(a), leader.step(a)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(d1, d2)
        np.testing.assert_array_equal(t1, t2)
        np.testing.assert_array_equal(plain.state(), leader.state())
        pairs.append((o1, o2))
    for o1, o2 in pairs:
        np.testing.assert_array_equal(o2[..., :6], o1)
        assert o2.shape == (2, 3, 21) and o2.dtype == np.float32 and not o2[..., 6:].any()
    game = view("matrix", 2)
    assert game.reset().tolist() == [[0, 0]]
    assert game.step(np.array([[1, 0]]))[0].tolist() == [[15, 15]]  # (1 + 2) * 5


# ---------------------------------------------------------------- observe_leaders


def test_observe_leaders_vector_by_hand():
    game = view("matthew", 3, batch_size=2, seed=0)
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
    game = view("matrix", 2, batch_size=3)
    obs, _, _, _ = game.step(np.array([[1, 0], [0, 0], [1, 1]]))
    # joint indices 2, 0, 3 -> observations 3, 1, 4, times 1 + N * A = 5
    np.testing.assert_array_equal(obs, [[15, 15], [5, 5], [20, 20]])
    leaders = np.array([[True, False], [False, True], [False, False]])
    acts = np.array([[1, 0], [0, 1], [1, 1]])
    out = game.observe_leaders(obs, acts, leaders)
    # copy 0: leader 0 played 1 -> s = 1 + 0 * 2 + 1 = 2 for agent 1
    # copy 1: leader 1 played 1 -> s = 1 + 1 * 2 + 1 = 4 for agent 0
    # copy 2: no leader -> s = 0 for both
    np.testing.assert_array_equal(out, [[15, 17], [9, 5], [20, 20]])
    assert out.dtype == np.int64
    assert all(game.observation_space.contains(o) for o in out.ravel())
    # the game index is recoverable: out // 5 is the observation without the slot
    np.testing.assert_array_equal(out // 5, obs // 5)


def test_observe_leaders_job_discrete_follower_sees_the_leader():
    game = view("job", 2, observation="discrete", seed=0)
    game.pos[0] = [(0, 0), (1, 0)]
    game.resource[0] = (4, 2)
    obs, _, _, _ = game.step(np.array([[0, 0]]))
    np.testing.assert_array_equal(obs, [[14 * 11, 39 * 11]])  # see test_job: 14 and 39
    out = game.observe_leaders(obs, np.array([[0, 4]]), np.array([[False, True]]))
    np.testing.assert_array_equal(out, [[14 * 11 + 1 + 5 + 4, 39 * 11]])


@pytest.mark.parametrize(
    "leaders, message",
    [([[True, True]], "at most one leader"), ([[1, 0]], "leaders must be bool"),
     ([True, False], r"leaders must be bool of shape \(1, 2\)")],
)
def test_observe_leaders_refuses(leaders, message):
    game = view("matrix", 2)
    obs = game.reset()
    with pytest.raises(ValueError, match=message):
        game.observe_leaders(obs, np.array([[0, 1]]), np.array(leaders))


def test_observe_leaders_checks_shapes_and_actions():
    game = view("matthew", 2)
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


# ---------------------------------------------------------------- set_leaders


def _contested_grid():
    """Agents at (0,0) and (0,2) of a 3x3 grid, a fair resource between them at (0,1)."""
    game = view("resource-grid", 2, batch_size=1, size=3, fair=1, unfair=1, seed=0)
    game.pos[:] = [[0, 2]]
    game.kind[:] = 0
    game.kind[0, 1], game.kind[0, 8] = 1, 2
    return game


@pytest.mark.parametrize("leader", [0, 1])
def test_set_leaders_reaches_the_rules_of_a_game_with_the_hook(leader):
    game = _contested_grid()
    game.set_leaders(np.arange(2)[None] == leader)
    _, r, _, _ = game.step(np.array([[4, 3]]))  # both step onto (0, 1): the leader gets there
    assert game.pos[0, leader] == 1 and game.pos[0, 1 - leader] != 1
    np.testing.assert_allclose(r, [[1.0, 1.0]])  # a fair resource pays everyone


def test_leaders_hold_for_one_step():
    game = _contested_grid()
    game.set_leaders(np.array([[False, True]]))
    game.step(np.array([[0, 0]]))  # nobody moves: the role is used up
    assert game.game._leaders is None
    game.set_leaders(np.array([[False, True]]))
    game.reset(seed=3)  # a new episode starts without leaders
    assert game.game._leaders is None


def test_set_leaders_is_checked_and_ignored_by_games_without_the_hook():
    plain = envs.make_batched("matthew", 3, batch_size=2, seed=4)
    leader = view("matthew", 3, batch_size=2, seed=4)
    assert not hasattr(plain, "leader_rules")
    for a in np.random.default_rng(1).integers(0, 5, (4, 2, 3)):
        leader.set_leaders(np.array([[True, False, False], [False, False, True]]))
        np.testing.assert_array_equal(plain.step(a)[1], leader.step(a)[1])
    with pytest.raises(ValueError, match=r"leaders must be bool of shape \(2, 3\)"):
        leader.set_leaders(np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"leaders must be bool of shape \(2, 3\)"):
        leader.set_leaders(np.zeros((1, 3), bool))


# ---------------------------------------------------------------- the world needs the view


def test_the_world_refuses_a_leader_mediator_on_a_plain_game():
    from clients.networks import NetworkConfig
    from federation.world import World
    from strategies.mediator import Mediator

    class Leads(Mediator):
        stackelberg = True

    game = envs.make_batched("matrix", 2, batch_size=2)
    with pytest.raises(ValueError, match="StackelbergView"):
        World(game, ["q-table"] * 2, NetworkConfig(8, 1), 0, Leads())
    World(StackelbergView(game), ["q-table"] * 2, NetworkConfig(8, 1), 0, Leads())


def test_the_server_wraps_the_game_when_the_mediator_needs_leaders(tmp_path):
    from federation.config import RunConfig
    from federation.server_app import build

    common = dict(env="dilemma", agents=2, learner="q-table", batch=2, rounds=1, progress=False)
    game, strategy, world, _ = build(RunConfig.of(**common, strategy="fixed-leader", out=str(tmp_path / "a")))
    assert isinstance(game, StackelbergView) and world.game is game and strategy.mediator.stackelberg
    assert game.observation_space == spaces.Discrete(60 * 5)
    game, _, _, _ = build(RunConfig.of(**common, strategy="independent", out=str(tmp_path / "b")))
    assert not isinstance(game, StackelbergView) and game.observation_space == spaces.Discrete(60)
