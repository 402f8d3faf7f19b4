"""The mechanism's math (strategies/mechanism.py) on hand-built values: Eq. 15's two
branches and its guards, the MRP buffer (Eq. 14), the best-response search (Eq. 12),
the critic's TD training (Eq. 13), and the agent's reported gradient norm."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from clients.dqn import q_gradient_norm
from strategies.mechanism import Mechanism, MRPBuffer, best_response, reshaped_reward, rollout_transitions

G = np.array([2.0, 1.0, 0.5])  # the agents' reported |∇θ Q̄_i|


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: threads only contend (40 times slower on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_first_branch_ratio_times_gradient_norm():
    # Q_tot = 2, Q* = 5 (numerator 3); Q_i(s,a*) - Q_i(s,a) = 1.5, 0 (guarded), -2
    r, pen = reshaped_reward(np.array([2.0]), np.array([5.0]), np.array([[1.0, 0.0, 3.0]]),
                             np.array([[2.5, 0.0, 1.0]]), G, mrp=np.array([5.2]), eta=0.5, penalty=1.0)
    assert not pen[0]  # R_MRP - Q* = 0.2 <= η
    # 3/1.5·2 = 4; 3/0 -> 3/0.001 clipped to 10, ·1; 3/(-2)·0.5 = -0.75
    np.testing.assert_allclose(r[0], [4.0, 10.0, -0.75], rtol=1e-6)


def test_second_branch_penalises_everyone_by_their_gradient_norm():
    r, pen = reshaped_reward(np.array([2.0, 2.0]), np.array([5.0, 5.0]), np.zeros((2, 3)), np.ones((2, 3)), G,
                             mrp=np.array([6.0, 5.5]), eta=0.5, penalty=2.0)
    assert pen.tolist() == [True, False]  # 6 - 5 = 1 > η; 5.5 - 5 = 0.5 is not
    np.testing.assert_allclose(r[0], [-4.0, -2.0, -1.0])
    np.testing.assert_allclose(r[1], [6.0, 3.0, 1.5])  # ratio 3/1 on the other copy


def test_guards_zero_numerator_tiny_denominator_and_clips():
    q = np.array([1.0, 1.0, 1.0])
    q_star = np.array([1.0, 1.004, 1.0 + 1e-6])
    qi_now = np.zeros((3, 1))
    qi_star = np.array([[0.0], [1e-5], [10.0]])
    r, _ = reshaped_reward(q, q_star, qi_now, qi_star, np.ones(1), mrp=None, eta=0.0, penalty=5.0)
    assert r[0, 0] == 0.0  # no improvement found (0/0): no signal
    assert r[1, 0] == pytest.approx(0.004 / 1e-3, rel=1e-3)  # |den| < clip_min counts as clip_min
    assert r[2, 0] == pytest.approx(1e-3)  # 1e-7 is raised to clip_min
    assert np.isfinite(r).all()


def test_without_mrp_only_the_first_branch():
    r, pen = reshaped_reward(np.array([0.0]), np.array([1.0]), np.zeros((1, 1)), np.ones((1, 1)), np.ones(1),
                             mrp=None, eta=0.0, penalty=1.0)
    assert not pen.any() and r[0, 0] == pytest.approx(1.0)


def test_mrp_buffer_keeps_the_running_maximum_per_state():
    buf = MRPBuffer(capacity=2, state_dim=2)
    s1, s2, s3 = np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 1.0])
    buf.update(np.stack([s1, s2, s1]), np.array([1.0, 5.0, 3.0]))
    np.testing.assert_array_equal(buf.lookup(np.stack([s1, s2])), [3.0, 5.0])
    buf.update(s1[None], np.array([2.0]))  # lower: the maximum stays
    assert buf.lookup(s1[None])[0] == 3.0
    assert np.isnan(buf.lookup(s3[None])[0])  # never seen
    buf.update(s3[None], np.array([-1.0]))  # full: the oldest state goes
    assert np.isnan(buf.lookup(s1[None])[0]) and buf.lookup(s3[None])[0] == -1.0 and len(buf) == 2
    copy = MRPBuffer(2, 2)
    copy.load_state_dict(buf.state_dict())
    np.testing.assert_array_equal(copy.lookup(np.stack([s2, s3])), [5.0, -1.0])


def table_q(table: torch.Tensor):
    return lambda state, a: table[tuple(a.T)]


def test_best_response_finds_the_maximum_of_a_slice():
    # 3 agents, 3 actions; from (1, 1, 1) only agent 1's slice improves: [0.5, 0, 4]
    table = torch.zeros(3, 3, 3)
    table[1, 0, 1], table[1, 2, 1] = 0.5, 4.0
    a, v = best_response(table_q(table), torch.zeros(1, 1), torch.tensor([[1, 1, 1]]), 3, sweeps=1)
    assert a.tolist() == [[1, 2, 1]] and v.item() == 4.0


def test_best_response_moves_agents_in_turn_and_keeps_ties():
    table = torch.zeros(3, 3, 3)
    table[2, 0, 0] = 1.0  # agent 0 moves first ...
    table[2, 0, 1] = 3.0  # ... then agent 2 improves on the new joint action
    table[0, 2, 0] = 0.0  # agent 1's alternatives tie: it stays
    a, v = best_response(table_q(table), torch.zeros(1, 1), torch.tensor([[0, 0, 0]]), 3, sweeps=1)
    assert a.tolist() == [[2, 0, 1]] and v.item() == 3.0
    # the value is Q_tot at a*, and never below the start
    assert v.item() == table[2, 0, 1]
    flat = torch.zeros(3, 3, 3)
    a, v = best_response(table_q(flat), torch.zeros(1, 1), torch.tensor([[1, 2, 0]]), 3)
    assert a.tolist() == [[1, 2, 0]] and v.item() == 0.0


def test_more_sweeps_reach_an_optimum_one_sweep_misses():
    table = torch.zeros(2, 2)
    table[1, 0] = 1.0  # agent 0 moves to 1 ...
    table[1, 1] = 2.0  # agent 1 then moves to 1 ...
    table[0, 1] = 5.0  # ... and only a second pass brings agent 0 back to 0
    one, v1 = best_response(table_q(table), torch.zeros(1, 1), torch.tensor([[0, 0]]), 2, sweeps=1)
    two, v2 = best_response(table_q(table), torch.zeros(1, 1), torch.tensor([[0, 0]]), 2, sweeps=3)
    assert (one.tolist(), v1.item()) == ([[1, 1]], 2.0)
    assert (two.tolist(), v2.item()) == ([[0, 1]], 5.0)


def test_the_critic_learns_a_one_step_game_by_td_and_the_search_finds_its_optimum():
    """Terminal one-step transitions with R = table[a]: Eq. 13's target is R; Q_tot learns
    the table, the heads learn each agent's own reward, and Eq. 12 then finds the best
    joint action from a poor one."""
    rng = np.random.default_rng(0)
    own = np.array([[0.0, 1.0], [2.0, -1.0]])  # agent i's reward for (a_i, a_other)
    mech = Mechanism(1, 2, 2, seed=0, dropout=0.0, grad_clip=10.0, critic_lr=1e-2, batch=64, updates=150)
    actions = rng.integers(0, 2, (512, 2))
    rewards = np.stack([own[actions[:, 0], actions[:, 1]], own[actions[:, 1], actions[:, 0]]], axis=1)
    data = {"state": np.ones((512, 1), np.float32), "actions": actions, "rewards": rewards.astype(np.float32),
            "next_state": np.ones((512, 1), np.float32), "next_actions": actions, "done": np.ones(512, np.float32)}
    mech.train(data, 1)
    grid = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    values = mech.values(np.ones((4, 1), np.float32), grid)
    np.testing.assert_allclose(values[:, 0], [0.0, 3.0, 3.0, -2.0], atol=0.15)  # Q_tot = Σ rewards
    np.testing.assert_allclose(values[:, 1], [0.0, 1.0, 2.0, -1.0], atol=0.15)  # Q_0
    a_star, q_star = mech.search(np.ones((1, 1), np.float32), np.array([[1, 1]]))
    assert a_star.tolist() in ([[0, 1]], [[1, 0]]) and q_star[0] == pytest.approx(3.0, abs=0.15)


def test_rollout_transitions_keep_live_steps_and_bootstrap_at_the_next_played_action():
    T, B, N = 3, 2, 2
    state = np.arange((T + 1) * B, dtype=np.float32).reshape(T + 1, B, 1)
    actions = np.arange(T * B * N).reshape(T, B, N) % 3
    mask = np.ones((T, B, N), np.float32)
    mask[2, 1] = 0  # copy 1 ended after step 1
    term = np.zeros((T, B, N), bool)
    term[1, 1] = True
    d = rollout_transitions(state, actions, np.ones((T, B, N), np.float32), term, mask)
    assert len(d["done"]) == 5
    assert d["done"].tolist() == [0, 0, 0, 1, 0]
    # a game whose horizon is terminal (horizon_terminal) ends copy 0 there: no bootstrap past it
    term[-1, 0] = True
    d = rollout_transitions(state, actions, np.ones((T, B, N), np.float32), term, mask)
    assert d["done"].tolist() == [0, 0, 0, 1, 1]
    np.testing.assert_array_equal(d["next_actions"][0], actions[1, 0])
    np.testing.assert_array_equal(d["next_state"][:, 0], [2, 3, 4, 5, 6])


def test_agent_reports_the_norm_of_its_own_q_gradient():
    """For a linear Q = Wo + b and one sample, ∇_W Q(o, a) = e_a o^T and ∇_b = e_a."""
    net = nn.Linear(3, 2)
    obs = torch.tensor([[1.0, 2.0, 2.0]])
    assert q_gradient_norm(net, obs, torch.tensor([1])) == pytest.approx(math.sqrt(9.0 + 1.0))
    two = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # mean over the minibatch: half each
    assert q_gradient_norm(net, two, torch.tensor([0, 0])) == pytest.approx(math.sqrt(0.25 + 0.25 + 1.0))


def test_eq_15_with_an_exact_one_step_critic_on_escape_room_5_3():
    """Eq. 15 at Escape Room (5, 3)'s start with the exact one-step values (Q_tot = Σ r,
    Q_i = r_i, from the game's own rules), every |∇θ Q̄_i| = 1, h = 1, η = 0.5. By hand:

    - the optimum (L, L, L, D, D) and the all-stay equilibrium (S, S, S, S, S) are both
      best responses of every agent: no improvement, R̄ = 0 for everyone in both;
    - (L, S, S, S, S): the search sends agent 0 back (a* = all stay, Q* = 0, Q_tot = -1):
      agent 0's ratio 1/(0 - (-1)) = 1, the others' 1/0 -> clip_max = 10: the lone
      lever-puller's co-players are paid the most;
    - with an MRP that has seen the optimum (R_MRP = 17), every joint action whose search
      ends below 17 - η is penalised (-1 for everyone), the optimum is not (0).

    So without MRP the first branch cannot tell the optimum from the equilibrium where
    nobody moves; with it the optimum is the only joint action at the start that is not
    penalised, but the penalty is the same for every agent and every action."""
    from envs.escape_room import EscapeRoom

    def one_step(actions: torch.Tensor) -> torch.Tensor:  # [K, 5] -> [K, 5] rewards r_i
        g = EscapeRoom(5, batch_size=len(actions), min_lever=3)
        g.reset(seed=0)
        return torch.as_tensor(g.step(actions.numpy())[1])

    joint = torch.tensor([[0, 0, 0, 2, 2], [1, 1, 1, 1, 1], [0, 1, 1, 1, 1]])
    state = torch.zeros(3, 1)
    a_star, q_star = best_response(lambda s, a: one_step(a).sum(1), state, joint, 3)
    np.testing.assert_array_equal(a_star.numpy(), [[0, 0, 0, 2, 2], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(q_star.numpy(), [17, 0, 0])
    q_now, qi_now, qi_star = one_step(joint).sum(1), one_step(joint), one_step(a_star)
    args = (q_now.numpy(), q_star.numpy(), qi_now.numpy(), qi_star.numpy(), np.ones(5))
    r, _ = reshaped_reward(*args, mrp=None, eta=0.5, penalty=1.0)
    np.testing.assert_allclose(r, [[0] * 5, [0] * 5, [1, 10, 10, 10, 10]])
    r, pen = reshaped_reward(*args, mrp=np.full(3, 17.0), eta=0.5, penalty=1.0)
    assert pen.tolist() == [False, True, True]
    np.testing.assert_allclose(r, [[0] * 5, [-1] * 5, [-1] * 5])
