"""JAM-QL's mediator, its baselines and games on hand-built inputs (strategies/jamql.py,
strategies/leaders.py, envs/dilemma.py, envs/resource_grid.py)."""

from __future__ import annotations

import numpy as np
import pytest
import envs
from envs.matrix import PAYOFFS
from envs.stackelberg import StackelbergView
from clients.networks import NetworkConfig
from clients.rollout import Rollout
from federation.world import World
from strategies.jamql import JAMQLMediator, NaiveJAMQLMediator
from strategies.leaders import AlternatingLeader, LeaderConfig, VoteLeader, phase


def world(game, mediator):
    """Tabular agents playing uniformly at random (ε = 1) under ``mediator``."""
    return World(game, ["q-table"] * game.num_agents, NetworkConfig(8, 1), 0, mediator, epsilons={"q-table": 1.0})


def mediator(n=2, cls=JAMQLMediator, payoffs="pd", **cfg):
    game = StackelbergView(envs.make_batched("dilemma", n, batch_size=3, payoffs=payoffs))
    return cls(game, LeaderConfig(**cfg), seed=0), game


def test_the_leader_maximises_the_minimum_of_the_per_agent_q_values():
    med, game = mediator(n=3, mediator_epsilon=0.0)
    m = np.zeros(3, np.int64)  # first step: no previous action
    k0 = med.reward_state(np.zeros((1, 3)))[0]
    # leader 0: (5, 5, 0) sums 10 but leaves agent 2 with 0; leader 1: (2, 2, 2), the max-min;
    # leader 2: (9, 1, 1), the best for agent 0 and the largest sum
    med.q[0, 0, k0] = [[5, 5, 0], [2, 2, 2], [9, 1, 1]]
    state = np.eye(game.mediator_states, dtype=np.float32)[m]
    assert med.choose(0, state, np.zeros((3, 3))).tolist() == [1, 1, 1]
    # past rewards count: with c = (0, 0, 3) leader 0 gives min(5, 5, 3) = 3 > 2
    cum = np.array([[0.0, 0.0, 3.0]])
    k = med.reward_state(cum)[0]
    med.q[1, 0, k] = [[5, 5, 0], [2, 2, 2], [9, 1, 1]]
    assert med.greedy(1, np.zeros(1, np.int64), cum).tolist() == [0]
    values = med.values(1, np.zeros(1, np.int64), cum)[0]
    np.testing.assert_allclose(values, [[5, 5, 3], [2, 2, 5], [9, 1, 4]])
    assert int(values.min(axis=1).argmax()) == 0


def test_random_tables_agree_with_argmax_of_min():
    med, game = mediator(n=4, mediator_epsilon=0.0)
    rng = np.random.default_rng(1)
    med.q[...] = rng.normal(size=med.q.shape)
    cum = rng.integers(0, 6, (3, 4)).astype(float)
    m = np.array([0, 5, 16])
    k = med.reward_state(cum)
    expected = (cum[:, None, :] + med.q[4, m, k]).min(axis=2).argmax(axis=1)
    state = np.eye(game.mediator_states, dtype=np.float32)[m]
    np.testing.assert_array_equal(med.choose(4, state, cum), expected)


def test_cumulative_rewards_are_binned_relative_to_the_poorest_agent():
    med, _ = mediator(n=2, reward_bins=4, reward_bin_width=1.0)
    cum = np.array([[0.0, 0.0], [5.0, 3.0], [3.0, 5.5], [10.0, 0.0], [2.9, 3.0]])
    # k = min(floor(c_i - min c), 3); index k_0 + 4 k_1
    assert med.reward_state(cum).tolist() == [0, 2, 8, 3, 0]


def test_the_end_game_transfer_is_zero_sum_and_taxes_the_unfair_final_action():
    med, _ = mediator(n=4, end_transfer=1.0)
    rng = np.random.default_rng(0)
    r = rng.normal(size=(50, 4)) * 3
    tau = med.transfer(r)
    np.testing.assert_allclose(tau.sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(r + tau, np.repeat(r.mean(axis=1, keepdims=True), 4, axis=1))
    # 2-player PD, last step (D, C): 3 and 0 become 1.5 and 1.5; defecting on a cooperator pays less
    med2, _ = mediator(n=2, end_transfer=1.0)
    np.testing.assert_allclose(med2.transfer(np.array([[3.0, 0.0]])), [[-1.5, 1.5]])
    half, _ = mediator(n=2, end_transfer=0.5)
    np.testing.assert_allclose(half.transfer(np.array([[3.0, 0.0]])), [[-0.75, 0.75]])
    naive, _ = mediator(n=2, cls=NaiveJAMQLMediator, end_transfer=1.0)
    np.testing.assert_allclose(naive.transfer(np.array([[3.0, 0.0]])), 0.0)


def test_in_a_rollout_only_the_last_step_is_reshaped_and_the_transfer_sums_to_zero():
    game = StackelbergView(envs.make_batched("dilemma", 4, batch_size=8, payoffs="chicken"))
    med = JAMQLMediator(game, LeaderConfig(), seed=0)
    ro = world(game, med).rollout(1)
    diff = ro.shaped - ro.rewards
    np.testing.assert_allclose(diff[:-1], 0.0)
    np.testing.assert_allclose(diff[-1].sum(axis=1), 0.0, atol=1e-5)
    assert np.abs(diff[-1]).max() > 0  # untrained agents play unequal final actions somewhere
    metrics = med.end_of_rollout()
    mins = ro.rewards.sum(axis=0).min(axis=1).mean()
    assert metrics["min_welfare"] == pytest.approx(mins)
    assert metrics["min_welfare_paid"] == pytest.approx(ro.shaped.sum(axis=0).min(axis=1).mean(), abs=1e-5)
    assert metrics["fair_action_rate"] == pytest.approx((ro.actions == 0).mean())


def test_followers_see_the_leaders_action_and_leaders_not_the_followers():
    game = StackelbergView(envs.make_batched("dilemma", 4, batch_size=16, payoffs="pd"))
    med = JAMQLMediator(game, LeaderConfig(mediator_epsilon=1.0), seed=3)  # random leaders
    ro = world(game, med).rollout(1)
    slot = 1 + game.num_agents * game.num_actions
    s = ro.obs[:-1] % slot  # [T, B, N]
    lead = ro.leaders.argmax(axis=2)
    assert (ro.leaders.sum(axis=2) == 1).all()
    assert len(np.unique(lead)) == 4
    T, B = lead.shape
    for t in range(T):
        for b in range(B):
            j = lead[t, b]
            for i in range(4):
                if i == j:
                    assert s[t, b, i] == 0  # the leader's slot is empty: no follower's action of this step
                else:
                    assert s[t, b, i] == 1 + j * game.num_actions + ro.actions[t, b, j]
    # the game's part is the previous joint action: nothing of this step's actions
    np.testing.assert_array_equal(ro.obs[1:-1, :, 0] // slot % game.joint,
                                  1 + (ro.actions[:-1] * 2 ** np.arange(4)).sum(axis=2))


def test_the_mediator_learns_max_min_values_on_a_hand_built_rollout():
    """Horizon 2, two copies; hand-computed backward sweep with α = 0.5."""
    game = StackelbergView(envs.make_batched("dilemma", 2, batch_size=2, payoffs="pd", episode_length=2))
    med = JAMQLMediator(game, LeaderConfig(mediator_lr=0.5, end_transfer=1.0), seed=0)
    rewards = np.array([[[3, 0], [2, 2]], [[1, 1], [0, 3]]], np.float32)  # [T, B, N]
    shaped = rewards.copy()
    shaped[1] = rewards[1].mean(axis=1, keepdims=True)  # κ = 1
    state = np.zeros((3, 2, game.mediator_states), np.float32)
    state[:, :, 0] = 1  # m = 0 throughout (keeps the hand computation small)
    leaders = np.zeros((2, 2, 2), bool)
    leaders[0, :, 0] = True  # agent 0 leads at t = 0
    leaders[1, :, 1] = True  # agent 1 at t = 1
    ro = Rollout(obs=np.zeros((3, 2, 2), np.int64), state=state, actions=np.zeros((2, 2, 2), np.int64),
                 logp=np.zeros((2, 2, 2), np.float32), rewards=rewards, terminated=np.zeros((2, 2, 2), bool),
                 mask=np.ones((2, 2, 2), np.float32), shaped=shaped, leaders=leaders)
    med.learn(ro)
    # t = 1 (terminal): copy 0 at c = (3, 0) -> k = 3; copy 1 at c = (2, 2) -> k = 0
    np.testing.assert_allclose(med.q[1, 0, 3, 1], 0.5 * np.array([1.0, 1.0]))
    np.testing.assert_allclose(med.q[1, 0, 0, 1], 0.5 * np.array([1.5, 1.5]))
    # t = 0, both copies at k = 0 with leader 0: targets r_0 + Q̂(s_1, l*) averaged over copies
    # copy 0: (3, 0) + (0.5, 0.5); copy 1: (2, 2) + (0.75, 0.75); mean (3.125, 1.625)
    np.testing.assert_allclose(med.q[0, 0, 0, 0], 0.5 * np.array([3.125, 1.625]))
    assert med.rounds_learnt == 1 and med.epsilon == pytest.approx(0.1)


def test_sequential_learning_takes_turns():
    assert [phase(r, 2, 2) for r in range(1, 9)] == [0, 0, 1, 1, 2, 2, 0, 0]
    assert phase(7, 0, 4) == -1


def test_alternating_and_vote_leaders():
    med, game = mediator(n=4, cls=AlternatingLeader)
    assert [int(med.choose(t, np.zeros((1, 17)), np.zeros((1, 4)))[0]) for t in range(6)] == [0, 1, 2, 3, 0, 1]
    vote, _ = mediator(n=3, cls=VoteLeader, mediator_epsilon=0.0)
    vote.votes[0, 0, 0] = [0, 0, 1]  # agents 0 and 1 vote for 2, agent 2 for 1
    vote.votes[1, 0, 0] = [0, 0, 1]
    vote.votes[2, 0, 0] = [0, 1, 0]
    state = np.eye(vote.states, dtype=np.float32)[[0, 0]]
    assert vote.choose(0, state, np.zeros((2, 3))).tolist() == [2, 2]


def test_the_dilemma_pays_the_pairwise_mean_and_ends_at_a_terminal_step():
    two = envs.make_batched("dilemma", 2, batch_size=4, payoffs="chicken")
    joint = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(two.payoff(joint), PAYOFFS["chicken"][joint[:, 0], joint[:, 1]])
    four = envs.make_batched("dilemma", 4, batch_size=1, payoffs="pd")
    # (C, C, C, D): cooperators get (2 + 2 + 0)/3, the defector 3
    np.testing.assert_allclose(four.payoff(np.array([[0, 0, 0, 1]])), [[4 / 3, 4 / 3, 4 / 3, 3.0]])
    for t in range(12):
        _, _, term, _ = four.step(np.zeros((1, 4), np.int64))
        assert term.all() == (t == 11)


def test_grid_leaders_win_contested_resources_and_unfair_resources_hurt_others():
    game = envs.make_batched("resource-grid", 2, batch_size=1, size=3, fair=1, unfair=1, seed=0)
    # agents at (0,0) and (0,2), a fair resource between them at (0,1), the unfair one at (2,2)
    game.pos[:] = [[0, 2]]
    game.kind[:] = 0
    game.kind[0, 1], game.kind[0, 8] = 1, 2
    for leader in (0, 1):
        g = envs.make_batched("resource-grid", 2, batch_size=1, size=3, fair=1, unfair=1, seed=0)
        g.pos[:], g.kind[:] = game.pos, game.kind
        g.leader_rules(np.arange(2)[None] == leader)
        _, r, _, _ = g.step(np.array([[4, 3]]))  # both step onto (0, 1)
        assert g.pos[0, leader] == 1 and g.pos[0, 1 - leader] != 1
        np.testing.assert_allclose(r, [[1.0, 1.0]])  # a fair resource pays everyone
    g = envs.make_batched("resource-grid", 2, batch_size=1, size=3, fair=1, unfair=1, seed=0)
    g.pos[:], g.kind[:] = [[5, 0]], game.kind  # agent 0 (greedy) above the unfair resource
    _, r, _, _ = g.step(np.array([[2, 0]]))
    np.testing.assert_allclose(r, [[2.0, -0.5]])
    assert g.reference_metrics()["unfair_share"] == 1.0


def test_the_grid_mediator_state_on_a_hand_made_sequence():
    """[JAM-QL augmented state] on the grid: m = p_0 + C·p_1 (the agents' cells, C = 9 on a
    3×3 grid) and the cumulative rewards binned relative to the poorest agent (width 1)."""
    game = StackelbergView(envs.make_batched("resource-grid", 2, batch_size=1, size=3, fair=1, unfair=1, seed=0))
    med = JAMQLMediator(game, LeaderConfig(), seed=0)
    assert med.states == game.mediator_states == 81
    game.pos[:] = [[0, 2]]  # agent 0 (the greedy one) at (0, 0), agent 1 at (0, 2)
    game.kind[:] = 0
    game.kind[0, 1], game.kind[0, 8] = 1, 2  # fair at (0, 1), unfair at (2, 2)
    ms, ks, cum = [], [], np.zeros((1, 2))
    ms.append(med.state_index(game.state()))
    ks.append(med.reward_state(cum))
    _, r, _, _ = game.step(np.array([[4, 0]]))  # agent 0 takes the fair resource: +1 each
    cum += r
    np.testing.assert_allclose(r, [[1.0, 1.0]])
    ms.append(med.state_index(game.state()))
    ks.append(med.reward_state(cum))
    game.kind[:] = 0
    game.kind[0, 5] = 2  # an unfair resource at (1, 2), below agent 1
    _, r, _, _ = game.step(np.array([[0, 2]]))  # agent 1 (not greedy) takes it: 1/2, agent 0 loses 1/2
    cum += r
    np.testing.assert_allclose(r, [[-0.5, 0.5]])
    ms.append(med.state_index(game.state()))
    ks.append(med.reward_state(cum))
    # cells (0, 2), (1, 2), (1, 5): m = 0 + 9·2, 1 + 9·2, 1 + 9·5; cumulative rewards (0, 0),
    # (1, 1), (0.5, 1.5): bins (0, 0), (0, 0), (0, 1): k = 0, 0, 0 + 4·1
    assert np.concatenate(ms).tolist() == [18, 19, 46]
    assert np.concatenate(ks).tolist() == [0, 0, 4]
    # the same states, a batch of them, through the game itself
    np.testing.assert_array_equal(game.mediator_state(np.stack([game.state()[0]] * 2)), [46, 46])
    # --mediator-state none: one state, whatever the cells
    flat = JAMQLMediator(game, LeaderConfig(mediator_state="none"), seed=0)
    assert flat.states == 1 and flat.state_index(game.state()).tolist() == [0]
    assert flat.q.shape[1] == 1 and med.q.shape[1] == 81


def test_a_checkpoint_of_another_state_space_is_refused():
    game = StackelbergView(envs.make_batched("resource-grid", 2, batch_size=1, size=3, fair=1, unfair=1, seed=0))
    saved = JAMQLMediator(game, LeaderConfig(mediator_state="none"), seed=0).state_dict()
    with pytest.raises(ValueError, match="--mediator-state"):
        JAMQLMediator(game, LeaderConfig(), seed=0).load_state_dict(saved)
    votes = VoteLeader(game, LeaderConfig(mediator_state="none"), seed=0).state_dict()
    with pytest.raises(ValueError, match="vote table"):
        VoteLeader(game, LeaderConfig(), seed=0).load_state_dict(votes)
