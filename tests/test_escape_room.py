"""The games of the mechanism-design paper: Escape Room's rules and its optimal welfare
against the closed form (exhaustive dynamic programming over the game's own dynamics),
bidding and bandwidth rewards by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import envs
from envs.escape_room import DOOR, LEVER, START, EscapeRoom, optimal_welfare


def test_escape_room_rules():
    g = EscapeRoom(5, batch_size=2, min_lever=3)
    obs = g.reset(seed=0)
    assert obs.shape == (2, 5, 21) and g.state().shape == (2, 16)
    np.testing.assert_array_equal(obs[0, :, 16:], np.eye(5))  # each agent's own index
    # copy 0: 3 pull, 2 escape: door open, +10 each, done; copy 1: only 2 pull, the door stays shut
    _, r, term, trunc = g.step(np.array([[0, 0, 0, 2, 2], [0, 0, 1, 2, 2]]))
    np.testing.assert_array_equal(r, [[-1, -1, -1, 10, 10], [-1, -1, 0, -1, -1]])
    assert term[0].all() and not term[1].any() and not trunc.any()
    # copy 1: the lever agents stay (no cost), a third joins, the door agents stay and exit
    _, r, term, _ = g.step(np.array([[1, 1, 1, 1, 1], [0, 0, 0, 2, 2]]))
    np.testing.assert_array_equal(r, [[0, 0, 0, 0, 0], [0, 0, -1, 10, 10]])  # copy 0 is frozen
    assert term.all()
    np.testing.assert_array_equal(g.pos[0], [LEVER, LEVER, LEVER, DOOR, DOOR])


def best_episode(n: int, m: int, horizon: int) -> float:
    """max over every joint-action sequence of the collective return, by backward
    induction over all 3^N positions, stepping the game itself for every (positions,
    joint action) pair."""
    positions = np.array(list(itertools.product(range(3), repeat=n)))
    joint = positions.copy()  # the same enumeration: an action is a position
    P, A = len(positions), len(joint)
    g = EscapeRoom(n, batch_size=P * A, min_lever=m, episode_length=1)
    g.reset(seed=0)
    g.pos = np.repeat(positions, A, axis=0)
    _, r, term, _ = g.step(np.tile(joint, (P, 1)))
    reward = r.sum(axis=1).reshape(P, A)
    done = term[:, 0].reshape(P, A)
    nxt = (np.tile(joint, (P, 1)) @ (3 ** np.arange(n)[::-1])).reshape(P, A)  # index of the next positions
    value = np.zeros(P)
    for _ in range(horizon):
        value = (reward + np.where(done, 0.0, value[nxt])).max(axis=1)
    start = int(np.full(n, START) @ (3 ** np.arange(n)[::-1]))
    return float(value[start])


@pytest.mark.parametrize("n, m", [(2, 1), (3, 2), (4, 2), (5, 3)])
def test_escape_room_optimal_welfare_is_the_closed_form(n, m):
    assert best_episode(n, m, horizon=5) == optimal_welfare(n, m) == 10 * (n - m) - m


def test_escape_room_reports_the_optimum_and_checks_m():
    assert [optimal_welfare(*nm) for nm in ((5, 3), (8, 5), (10, 6))] == [17, 25, 34]
    g = envs.make_batched("escape-room", 8, min_lever=5)
    assert g.reference_metrics() == {"optimal_welfare": 25.0}
    with pytest.raises(ValueError, match="min_lever"):
        EscapeRoom(5, min_lever=5)


def test_bidding_rewards():
    g = envs.make_batched("bidding", 4, batch_size=1, seed=0)
    g.reset(seed=3)
    _, r, _, _ = g.step(np.array([[0, 2, 2, 1]]))  # 1 and 2 tie at 2; one wins 5 - 2 - 1
    assert r[0, 0] == 0 and r[0, 3] == -1 and sorted(r[0, 1:3]) == [-1, 2]
    _, r, _, _ = g.step(np.array([[1, 0, 0, 0]]))  # the lone bidder at the lowest price: the optimum
    np.testing.assert_array_equal(r, [[3, 0, 0, 0]])
    assert g.reference_metrics() == {"optimal_welfare": 3 * g.episode_length, "bidders_per_step": 2.0}  # 3, then 1
    np.testing.assert_array_equal(g.state()[0, :5], [0, 1, 0, 0, 0])  # agent 0's previous bid


def test_bandwidth_rates_are_eq_25():
    g = envs.make_batched("bandwidth", 3, channels=2, power_levels=2, noise=0.5, seed=0)
    gain = np.array([[1.0, 2.0, 4.0]])
    # agents 0 and 1 on channel 0 (powers 1 and 0.5), agent 2 alone on channel 1 (power 1)
    rates = g.rates(np.array([[1, 0, 3]]), gain)
    expected = [np.log2(1 + 1.0 / (0.5 + 1.0)), np.log2(1 + 1.0 / (0.5 + 1.0)), np.log2(1 + 4.0 / 0.5)]
    np.testing.assert_allclose(rates[0], expected)
    obs = g.reset(seed=1)
    assert obs.shape == (1, 3, 7) and g.num_actions == 4


@pytest.mark.parametrize("name, n, options, idle", [("escape-room", 5, {"min_lever": 3}, START),
                                                    ("bidding", 4, {}, 0), ("bandwidth", 3, {"channels": 2}, 0)])
def test_the_horizon_ends_the_game_where_the_state_carries_time(name, n, options, idle):
    """The state carries t/T, so the last step is terminal (no bootstrap from the state at
    t/T = 1, which no transition starts from); the steps before it are not."""
    g = envs.make_batched(name, n, batch_size=2, seed=0, **options)
    g.reset(seed=0)
    assert g.horizon_terminal
    flags = []
    for _ in range(g.episode_length):  # nobody exits, nobody bids: only the horizon can end it
        _, _, term, trunc = g.step(np.full((2, n), idle))
        flags.append((bool(term.any()), bool(term.all()), bool(trunc.all())))
    assert flags[:-1] == [(False, False, False)] * (g.episode_length - 1)
    assert flags[-1] == (True, True, True)
    assert g.state()[0, -1] == 1.0  # t/T of the state after the last step


def test_dqn_targets_do_not_bootstrap_past_the_horizon():
    """Every agent stays at the start of Escape Room for the whole episode (reward 0 each
    step): the double-DQN target of the last step is its reward, 0, exactly; the earlier
    steps' targets are γ·Q_target(o') of an untrained network, not 0. Before the horizon
    was terminal the last target was γ·Q_target(o_T) too, at t/T = 1, a state no
    transition ever starts from."""
    import torch

    from clients.dqn import DQNLearner, double_dqn_target
    from clients.experience import Experience
    from clients.networks import NetworkConfig

    T, B, N = 5, 2, 3
    g = EscapeRoom(N, batch_size=B, min_lever=2, episode_length=T)
    obs = [g.reset(seed=0)]
    rewards, term = [], []
    for _ in range(T):
        o, r, d, _ = g.step(np.full((B, N), START))
        obs.append(o), rewards.append(r), term.append(d)
    exp = Experience(obs=np.stack(obs)[:, :, 0], actions=np.full((T, B), START), logp=np.zeros((T, B), np.float32),
                     rewards=np.stack(rewards)[:, :, 0], terminated=np.stack(term)[:, :, 0],
                     mask=np.ones((T, B), np.float32))
    o, a, r, o2, done = exp.transitions()
    np.testing.assert_array_equal(done.reshape(T, B), [[0, 0]] * (T - 1) + [[1, 1]])
    np.testing.assert_array_equal(r, np.zeros(T * B))
    net = DQNLearner.policy_network(g.observation_space, 3, NetworkConfig(16, 2), seed=0)
    y = double_dqn_target(net, net, torch.as_tensor(r), torch.as_tensor(o2), torch.as_tensor(done), 0.99)
    y = y.numpy().reshape(T, B)
    np.testing.assert_array_equal(y[-1], [0.0, 0.0])
    assert np.all(np.abs(y[:-1]) > 1e-4)
