"""The mechanism's math (strategies/mechanism.py) on hand-built values: Eq. 15's two
branches and its guards, the MRP buffer (Eq. 14), the best-response search (Eq. 12),
the critic's TD training (Eq. 13), and the agent's reported gradient norm."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from clients.dqn import q_gradient_norm
from strategies.mechanism import (CounterfactualCritic, Mechanism, MRPBuffer, all_joint_actions, best_response, exact_max, reshaped_reward,
                                  rollout_transitions)

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
    nobody moves. With it the optimum is not the only joint action that escapes the
    penalty (81 of the 243 do, :func:`test_81_of_243_joint_actions_escape_the_mrp_penalty`),
    and the penalty is the same for every agent and every action."""
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


# ---------------------------------------------------------------- Escape Room (5, 3) with an exact critic
def escape_room_one_step(actions: torch.Tensor) -> torch.Tensor:
    """The game's own rewards r_i of the first step from the start, ``[K, 5]``: the exact
    one-step critic (Q_tot = Σ_i r_i, Q_i = r_i)."""
    from envs.escape_room import EscapeRoom

    g = EscapeRoom(5, batch_size=len(actions), min_lever=3)
    g.reset(seed=0)
    return torch.as_tensor(g.step(actions.numpy())[1])


def exact_eq15(joint: torch.Tensor, mrp: float | None = 17.0, search: str = "sweep"):
    """[MD Eq. 15] with the exact one-step critic, |∇θ Q̄_i| = 1, h = 1, η = 0.5."""
    q = lambda s, a: escape_room_one_step(a).sum(1)  # noqa: E731
    state = torch.zeros(len(joint), 1)
    if search == "sweep":
        a_star, q_star = best_response(q, state, joint, 3)
    else:
        a_star, q_star = exact_max(q, state, 5, 3)
    now = escape_room_one_step(joint)
    return reshaped_reward(now.sum(1).numpy(), q_star.numpy(), now.numpy(), escape_room_one_step(a_star).numpy(),
                           np.ones(5), None if mrp is None else np.full(len(joint), mrp), eta=0.5, penalty=1.0)


def test_81_of_243_joint_actions_escape_the_mrp_penalty():
    """ER(5, 3) at the start, R_MRP = 17 (the optimum's value), η = 0.5: a joint action is
    penalised iff the search ends below 16.5, i.e. anywhere but a 3-lever, 2-door profile
    (the only joint actions worth 17). By hand, from the rules (L: −1, S: 0, D: +10 if at
    least 3 choose L, else −1), agent i's best response to the others' l levers and d doors:
    l ≥ 3: D; l = 2: L if d ≥ 1, else S; l ≤ 1: S. The search moves agents 0, 1, ..., 4 in
    turn, so agent 0 answers (a_1..a_4) and its own action does not matter. With l, d the
    levers and doors among a_1..a_4:

    - l ≤ 1, or l = 2 and d = 0: agent 0 goes to S and no agent ever sees 3 levers, nor 2
      with a door: everyone ends at S (value 0): penalised;
    - l = 2, d ≥ 1: agent 0 pulls (3 levers); the lever agents see 2 levers and a door and
      stay, the others see 3 levers and go to the door: 17;
    - l ≥ 3: agent 0 goes to the door; with l = 4 the first lever agent after it leaves for
      the door as well, the rest stay: 17.

    Unpenalised: 3 (agent 0) × [C(4,3)·2 + 1 (l ≥ 3) + C(4,2)·(2² − 1) (l = 2, d ≥ 1)]
    = 3 × (9 + 18) = 81. More sweeps change nothing (everyone at S is a fixed point); the
    exact max ([MD Eq. 10], every joint action reaching 17) penalises none."""
    joint = all_joint_actions(5, 3)
    assert len(joint) == 243
    _, penalised = exact_eq15(joint)
    assert int((~penalised).sum()) == 3 * (4 * 2 + 1 + 6 * 3) == 81
    assert (~penalised).reshape(3, 81).all(axis=0).sum() == 27  # agent 0's action never matters
    optimum = (joint == 0).sum(1).eq(3) & (joint == 2).sum(1).eq(2)
    assert int(optimum.sum()) == 10 and not penalised[optimum.numpy()].any()
    _, penalised_exact = exact_eq15(joint, search="exact")
    assert not penalised_exact.any()


def test_the_optimum_is_not_an_equilibrium_of_the_exactly_reshaped_game():
    """The one-shot game at ER(5, 3)'s start whose payoffs are [MD Eq. 15]'s R̄_i with the
    exact one-step critic, R_MRP = 17, |∇θ Q̄_i| = 1, h = 1, η = 0.5. At the optimum
    LLLDD nobody's search improves: R̄ = 0 for everyone. Unilateral deviations, by hand
    (a*: where the search from the deviation ends; the ratio (Q* − Q_tot)/(r_i(a*) − r_i(a))
    clipped to [0.001, 10] in magnitude, a zero denominator counting as +):

    - agent 0 to D (DLLDD, −5): agent 0 returns to L, a* = LLLDD (17); its denominator
      −1 − (−1) = 0: R̄_0 = +10 > 0, a profitable deviation;
    - agent 0 to S (SLLDD, −4): a* = LLLDD; denominator −1 − 0 = −1: R̄_0 = −10;
    - agent 1 or 2 to S or D: agent 0 sees one lever and leaves, and everyone follows to
      S (a* = SSSSS, 0): penalised, R̄ = −1;
    - agent 3 (or 4) to S (LLLSD, 7): a* = LLLDD; denominator 10 − 0 = 10, ratio 1: R̄ = +1;
    - agent 3 (or 4) to L (LLLLD, 6): agent 0 goes to the door, a* = DLLLD (17); its own
      reward is −1 in both: R̄ = +10.

    So agents 0, 3 and 4 gain by leaving the optimum: it is not a Nash equilibrium of the
    reshaped game."""
    optimum = [0, 0, 0, 2, 2]
    deviations = [(i, b) for i in range(5) for b in range(3) if b != optimum[i]]
    joint = torch.tensor([optimum] + [[b if k == i else optimum[k] for k in range(5)] for i, b in deviations])
    r, penalised = exact_eq15(joint)
    assert not penalised[0] and (r[0] == 0).all()
    gain = {(i, "LSD"[b]): float(r[1 + n, i]) for n, (i, b) in enumerate(deviations)}
    assert gain == {(0, "S"): -10.0, (0, "D"): 10.0, (1, "S"): -1.0, (1, "D"): -1.0, (2, "S"): -1.0,
                    (2, "D"): -1.0, (3, "L"): 10.0, (3, "S"): 1.0, (4, "L"): 10.0, (4, "S"): 1.0}
    profitable = {i for (i, _), g in gain.items() if g > r[0, i]}
    assert profitable == {0, 3, 4}


# ---------------------------------------------------------------- exact joint maximisation
def test_exact_max_equals_brute_force_on_a_tiny_critic():
    torch.manual_seed(0)
    critic = CounterfactualCritic(2, 3, 3, hidden=(8, 8), dropout=0.0).eval()
    q = lambda s, a: critic(s, a)[:, 0]  # noqa: E731
    states = torch.randn(4, 2)
    with torch.no_grad():
        a_star, q_star = exact_max(q, states, 3, 3, rows=10)  # blocks of one state at a time
        for m in range(4):
            best = max((float(q(states[m:m + 1], torch.tensor([a]))), a)
                       for a in itertools.product(range(3), repeat=3))
            assert q_star[m].item() == pytest.approx(best[0], abs=1e-6)
            assert tuple(a_star[m].tolist()) == best[1]
    # the table one sweep of the search misses (test_more_sweeps_reach_an_optimum_one_sweep_misses)
    table = torch.zeros(2, 2)
    table[1, 0], table[1, 1], table[0, 1] = 1.0, 2.0, 5.0
    a, v = exact_max(table_q(table), torch.zeros(1, 1), 2, 2)
    assert a.tolist() == [[0, 1]] and v.item() == 5.0
    assert all_joint_actions(2, 3).tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2], [2, 0], [2, 1], [2, 2]]


def test_exact_max_evaluates_each_state_once_and_the_split_first_layer_agrees():
    """A minibatch repeats states: exact_max evaluates each distinct one once and gives
    duplicates the same row; CounterfactualCritic.joint_values (the first layer split into
    its state and action parts) equals the critic pair by pair, dropout layers and all."""
    torch.manual_seed(1)
    critic = CounterfactualCritic(4, 3, 3, hidden=(16, 8, 8), dropout=0.5).eval()
    states = torch.randn(5, 4)[torch.tensor([0, 1, 0, 2, 1, 3, 4, 0])]
    grid = all_joint_actions(3, 3)
    calls: list[int] = []

    def q(s, a):
        calls.append(len(s))
        return critic(s, a)[:, 0]

    with torch.no_grad():
        pairs = critic(states.repeat_interleave(27, dim=0), grid.repeat(8, 1))[:, 2].reshape(8, 27)
        torch.testing.assert_close(critic.joint_values(states, grid, column=2), pairs, atol=1e-5, rtol=1e-5)
        a1, v1 = exact_max(q, states, 3, 3)
        assert sum(calls) == 5 * 27  # five distinct states, 27 joint actions each
        assert v1[0] == v1[2] == v1[7] and a1[0].tolist() == a1[2].tolist() == a1[7].tolist()
        brute = pairs.new_tensor([max(float(q(states[m:m + 1], grid[k:k + 1])) for k in range(27)) for m in range(8)])
        torch.testing.assert_close(v1, brute, atol=1e-6, rtol=0)
        a2, v2 = exact_max(q, states, 3, 3, table=critic.joint_values)
        torch.testing.assert_close(v2, v1, atol=1e-5, rtol=1e-5)
        assert a2.tolist() == a1.tolist()


def test_the_bootstrap_max_enumerates_when_exact():
    table = torch.zeros(2, 2)
    table[1, 0], table[1, 1], table[0, 1] = 1.0, 2.0, 5.0

    class Table(nn.Module):
        def forward(self, state, actions):
            return table[tuple(actions.long().T)][:, None].repeat(1, 3)

    for exact, expected in ((False, [[1, 1]]), (True, [[0, 1]])):
        mech = Mechanism(1, 2, 2, seed=0, exact=exact)
        mech.target = Table()
        assert mech.bootstrap_actions(torch.zeros(1, 1), torch.tensor([[0, 0]])).tolist() == expected


# ---------------------------------------------------------------- R̄ recomputed at minibatch time
def set_additive_critic(critic, tables: np.ndarray) -> None:
    """Make the critic compute Q_k(s, a) = Σ_i tables[k, i, a_i] for its outputs k = tot, 1..N:
    the first layer copies the joint action's one-hot, the hidden layers pass it on (ReLU of
    a one-hot is itself), the output layer reads the tables."""
    linears = [m for m in critic.net if isinstance(m, nn.Linear)]
    NA = critic.num_agents * critic.num_actions
    state_dim = linears[0].in_features - NA
    with torch.no_grad():
        for k, layer in enumerate(linears):
            layer.weight.zero_()
            layer.bias.zero_()
            if k == len(linears) - 1:
                layer.weight[:, :NA] = torch.as_tensor(tables.reshape(len(tables), NA), dtype=torch.float32)
            else:
                offset = state_dim if k == 0 else 0
                layer.weight[torch.arange(NA), offset + torch.arange(NA)] = 1.0


def test_minibatch_reward_is_recomputed_with_the_current_critic():
    """Two agents, two actions, no MRP. Critic 1: Q_tot = 1 if a_0 = 1; heads Q_0 = 2·[a_0 = 1],
    Q_1 = −[a_0 = 1]. At a = (0, 0) the search moves agent 0 (a* = (1, 0), Q* = 1), so
    R̄_0 = 1/2·g, R̄_1 = 1/(−1)·g. Then the critic changes (critic 2: Q_tot = 3 if a_1 = 1,
    Q_0 = [a_1 = 1], Q_1 = 2·[a_1 = 1]): a* = (0, 1), Q* = 3, R̄_0 = 3/1·g, R̄_1 = 3/2·g.
    The label stored at play time is critic 1's; the agent recomputes critic 2's, with
    λ = 0.5 and r = (4, −2): λ·r_0 + R̄_0 = 2 + 3·2 = 8 for g = 2."""
    from clients.reshaping import JointSteps, ReceivedMechanism, Reshaper
    from strategies.md import MDConfig, MechanismMediator

    mech = Mechanism(1, 2, 2, seed=0, use_mrp=False)
    one = np.zeros((3, 2, 2))
    one[0, 0, 1], one[1, 0, 1], one[2, 0, 1] = 1.0, 2.0, -1.0
    set_additive_critic(mech.critic, one)
    med = MechanismMediator(mech, MDConfig(lambda_=0.5, reshape_time="minibatch"))
    med.grad_norm[:] = 2.0
    state, joint, raw = np.zeros((1, 1), np.float32), np.array([[0, 0]]), np.array([[4.0, -2.0]], np.float32)
    med.begin_rollout(1)
    stored = med.reshape(0, state, joint, raw)
    np.testing.assert_allclose(stored, [[2.0 + 0.5 * 2, -1.0 - 1.0 * 2]])  # λ·r + R̄ with critic 1
    steps = med.joint_steps()
    assert steps.state.shape == (1, 1, 1) and steps.actions.tolist() == [[[0, 0]]]

    two = np.zeros((3, 2, 2))
    two[0, 1, 1], two[1, 1, 1], two[2, 1, 1] = 3.0, 1.0, 2.0
    set_additive_critic(mech.critic, two)  # the critic trained after the round was played
    views = ReceivedMechanism(mech.to_record(), 1, 2, 2, dropout=mech.dropout, sweeps=1, use_mrp=False)
    for agent, hand in ((0, 0.5 * 4 + 3.0 * 2), (1, 0.5 * -2 + 1.5 * 2)):
        reshaper = Reshaper(views, agent, JointSteps.from_record(steps.to_record()), eta=0.5, penalty=1.0,
                            clip_min=1e-3, clip_max=10.0, lambda_=0.5)
        new = reshaper.rewards(state, joint, raw, grad_norm=2.0)
        assert new[0] == pytest.approx(hand) and new[0] != pytest.approx(stored[0, agent])
    # [MD Eqs. 9, 11]: the agent's own Q̄_1(s, ·) = (5, 3): denominator Q̄_1(a_1* = 1) − Q̄_1(a_1 = 0) = −2
    own = Reshaper(views, 1, steps, eta=0.5, penalty=1.0, clip_min=1e-3, clip_max=10.0, lambda_=0.0,
                   denominator="own")
    assert own.rewards(state, joint, raw, 2.0, own_q=np.array([[5.0, 3.0]]))[0] == pytest.approx(3.0 / -2.0 * 2.0)


def test_mrp_travels_to_the_agent_and_penalises_there():
    """The agent's copy of the MRP: a state the buffer has seen gets its value (here 10, so
    10 − Q* = 9 > η: −h·g), an unseen one the predictor's."""
    from clients.reshaping import ReceivedMechanism

    mech = Mechanism(1, 2, 2, seed=0)
    one = np.zeros((3, 2, 2))
    one[0, 0, 1] = 1.0
    set_additive_critic(mech.critic, one)
    seen, unseen = np.array([[0.0]], np.float32), np.array([[1.0]], np.float32)
    mech.mrp.update(seen, np.array([10.0]))
    view = ReceivedMechanism(mech.to_record(), 1, 2, 2, dropout=mech.dropout, sweeps=1, use_mrp=True)
    np.testing.assert_array_equal(view.predicted_max(np.concatenate([seen, unseen])),
                                  mech.predicted_max(np.concatenate([seen, unseen])))
    r, info = view.reward(seen, np.array([[0, 0]]), np.array([3.0]), 0.5, 2.0, 1e-3, 10.0, agent=1)
    assert info["penalised"].tolist() == [True] and r[0, 0] == pytest.approx(-6.0)


def test_the_agents_copy_computes_each_rows_critic_terms_once():
    """ReceivedMechanism.terms gives what the server's mechanism gives, row for row, and
    asks the critic only about rows it has not seen this round (duplicates in a minibatch,
    rows of an earlier minibatch)."""
    from clients.reshaping import MechanismValues, ReceivedMechanism

    torch.manual_seed(2)
    mech = Mechanism(3, 3, 3, seed=0)
    rng = np.random.default_rng(0)
    states, joints = rng.normal(size=(4, 3)).astype(np.float32), rng.integers(0, 3, size=(4, 3))
    mech.mrp.update(states[:2], np.array([5.0, -1.0]))
    view = ReceivedMechanism(mech.to_record(), 3, 3, 3, dropout=mech.dropout, sweeps=1, use_mrp=True)
    asked: list[int] = []
    values = MechanismValues.values

    def counted(self, state, actions):
        asked.append(len(state))
        return values(self, state, actions)

    first, second = np.array([0, 1, 0, 2, 1]), np.array([2, 3, 3, 0])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MechanismValues, "values", counted)
        got = view.terms(states[first], joints[first])
        assert asked == [3, 3]  # rows 0, 1, 2: [Q] at a, then at a*
        again = view.terms(states[second], joints[second])
        assert asked == [3, 3, 1, 1]  # only row 3 is new
    for rows, out in ((first, got), (second, again)):
        want = MechanismValues.terms(mech, states[rows], joints[rows])
        for g, w in zip(out, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    assert np.array_equal(got[0][0], got[0][2]) and got[4][0] == 5.0 and got[4][1] == -1.0


def test_dqn_agent_relabels_its_minibatches():
    """A DQN agent in minibatch mode keeps the joint step in its replay and trains on the
    reshaper's rewards, not the stored ones: ``md_relabel_gap`` is |recomputed − stored|
    with its own |∇θ Q(o, a)| (one transition, so every minibatch row is the same)."""
    from gymnasium import spaces

    from clients.anchors import Anchors
    from clients.dqn import DQNConfig, DQNLearner
    from clients.experience import Experience
    from clients.networks import NetworkConfig
    from clients.reshaping import JointSteps, ReceivedMechanism, Reshaper

    mech = Mechanism(1, 2, 2, seed=0, use_mrp=False)
    two = np.zeros((3, 2, 2))
    two[0, 1, 1], two[1, 1, 1], two[2, 1, 1] = 3.0, 1.0, 2.0
    set_additive_critic(mech.critic, two)
    view = ReceivedMechanism(mech.to_record(), 1, 2, 2, dropout=mech.dropout, sweeps=1, use_mrp=False)
    steps = JointSteps(np.zeros((1, 1, 1), np.float32), np.array([[[0, 0]]]), np.array([[[4.0, -2.0]]], np.float32))
    reshaper = Reshaper(view, 0, steps, eta=0.5, penalty=1.0, clip_min=1e-3, clip_max=10.0, lambda_=0.5)
    learner = DQNLearner(spaces.Box(0.0, 1.0, (3,), np.float32), 2, DQNConfig(updates=1, batch=4),
                         NetworkConfig(hidden=8), seed=0, agent=0)
    obs = np.zeros((2, 1, 3), np.float32)
    exp = Experience(obs, np.array([[0]]), np.zeros((1, 1), np.float32), np.array([[-7.0]], np.float32),
                     np.array([[True]]), np.ones((1, 1), np.float32))
    g = q_gradient_norm(learner.policy, torch.zeros(1, 3), torch.tensor([0]))
    learner.reshape_with(reshaper)
    stats = learner.train(exp, Anchors(), seed=0)
    assert stats["md_relabel_gap"] == pytest.approx(abs(0.5 * 4 + 3.0 * g - (-7.0)), rel=1e-5)
    assert learner.buffer.joint and learner.buffer.raw_rewards[0].tolist() == [4.0, -2.0]
    again = DQNLearner(spaces.Box(0.0, 1.0, (3,), np.float32), 2, DQNConfig(updates=1, batch=4),
                       NetworkConfig(hidden=8), seed=0, agent=0)
    again.load_state_dict(learner.state_dict())  # the joint fields survive a checkpoint
    assert again.buffer.joint and again.buffer.joint_actions[0].tolist() == [0, 0]
    learner.reshape_with(None)
    with pytest.raises(ValueError, match="keeps the joint fields"):
        learner.train(exp, Anchors(), seed=0)
