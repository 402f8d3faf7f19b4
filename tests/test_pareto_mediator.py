"""The Pareto and punishing mediators on normal-form and matching games: hand-computed
cases, the properties every choice must have, and the matching solver against
exhaustive enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import envs
from envs.matching import MatchingModel
from envs.normal_form import PayoffTable
from strategies import pareto_enumeration
from strategies.pareto import ParetoMediator, PunishingMediator

C, D = 0, 1
PD = envs.make_batched("normal-form", 2, payoffs="pd").mediator_model()


def act(mediator, actions, delegate):
    return mediator.act_for(0, None, np.asarray(actions), np.asarray(delegate, bool))


# ---------------------------------------------------------------- hand-computed


def test_prisoners_dilemma_both_delegating_cooperate():
    pareto = ParetoMediator(PD)
    joint = [[C, C], [C, D], [D, C], [D, D]]
    # from (D, D) = (1, 1) the only Pareto improvement is (C, C) = (2, 2); (C, D) and (D, C)
    # give one player 3, which no other outcome matches, so they stand
    assert act(pareto, joint, [[1, 1]] * 4).tolist() == [[C, C], [C, D], [D, C], [C, C]]
    # one delegator: the submitted actions stand (even where the delegator could gain)
    assert act(pareto, joint, [[1, 0]] * 4).tolist() == joint
    assert act(pareto, joint, [[0, 1]] * 4).tolist() == joint


def test_a_lone_delegator_is_not_best_responded_for():
    """Agent 0 delegates alone with C against C; D would pay it 3 > 2, but fewer than two
    delegators leave the game unchanged."""
    assert act(ParetoMediator(PD), [[C, C]], [[1, 0]]).tolist() == [[C, C]]


def test_punishing_prisoners_dilemma():
    punish = PunishingMediator(PD)
    joint = [[C, C], [C, D], [D, C], [D, D]]
    # everyone delegates: maximal total utility, (C, C) = 4
    assert act(punish, joint, [[1, 1]] * 4).tolist() == [[C, C]] * 4
    # agent 0 alone delegates: it defects, leaving agent 1 with 0 (vs C) or 1 (vs D), not 2 or 3
    assert act(punish, joint, [[1, 0]] * 4).tolist() == [[D, C], [D, D], [D, C], [D, D]]
    assert act(punish, joint, [[0, 0]] * 4).tolist() == joint  # nobody delegates


def test_punishing_three_players_minimises_the_non_delegator():
    """Three players, two actions; agent 2 does not delegate and plays 1. Its payoffs
    u_2(a_0, a_1, 1): (0,0) 5, (0,1) 3, (1,0) 1, (1,1) 4 -> the delegators play (1, 0),
    although that costs them (their own payoffs are 0 there)."""
    u = np.zeros((2, 2, 2, 3))
    for (a0, a1), v in {(0, 0): 5, (0, 1): 3, (1, 0): 1, (1, 1): 4}.items():
        u[a0, a1, 1] = [9, 9, v]
    u[1, 0, 1, :2] = 0
    table = PayoffTable(u)
    for submitted in itertools.product(range(2), range(2)):
        out = act(PunishingMediator(table), [[*submitted, 1]], [[1, 1, 0]])
        assert out.tolist() == [[1, 0, 1]]
    # with agent 2 on 0 (all its payoffs 0) every choice ties: the delegators keep theirs
    assert act(PunishingMediator(table), [[0, 1, 0]], [[1, 1, 0]]).tolist() == [[0, 1, 0]]


def test_pareto_three_players_maximises_the_delegators_sum_subject_to_no_loss():
    """Agents 0 and 1 delegate; agent 2 plays 0. Over (a_0, a_1) with a_2 = 0:
    (0,0): (1, 1, 0) submitted; (0,1): (3, 0.5, 0) hurts agent 1; (1,0): (1.5, 1.5, 0);
    (1,1): (1.2, 1.2, 7). Best feasible sum: (1, 0) with 3 (not (0, 1) with 3.5)."""
    u = np.zeros((2, 2, 2, 3))
    u[0, 0, 0], u[0, 1, 0], u[1, 0, 0], u[1, 1, 0] = (1, 1, 0), (3, 0.5, 0), (1.5, 1.5, 0), (1.2, 1.2, 7)
    u[1, 1, 1] = (10, 10, 10)  # better for everyone, but changes agent 2's action: not allowed
    out = act(ParetoMediator(PayoffTable(u)), [[0, 0, 0]], [[1, 1, 0]])
    assert out.tolist() == [[1, 0, 0]]
    # when agent 2 delegates too, everyone gets (10, 10, 10)
    assert act(ParetoMediator(PayoffTable(u)), [[0, 0, 0]], [[1, 1, 1]]).tolist() == [[1, 1, 1]]


# ---------------------------------------------------------------- properties


def random_case(rng, n, a, copies):
    table = PayoffTable(rng.random((a,) * n + (n,)))
    return table, rng.integers(0, a, (copies, n)), rng.random((copies, n)) < 0.6


@pytest.mark.parametrize("n, a", [(2, 3), (3, 3), (4, 2), (3, 4)])
def test_choices_keep_non_delegators_and_are_optimal(n, a):
    """Against a brute-force loop over every candidate, on random games and delegations."""
    rng = np.random.default_rng(n * 10 + a)
    for _ in range(10):
        table, s, d = random_case(rng, n, a, copies=8)
        for mediator in (ParetoMediator(table), PunishingMediator(table)):
            out = act(mediator, s, d)
            np.testing.assert_array_equal(out[~d], s[~d])  # never changes a non-delegator
            for b in range(len(s)):
                active = d[b].sum() >= mediator.minimum
                if not active:
                    np.testing.assert_array_equal(out[b], s[b])
                    continue
                best = brute_force(table, mediator.rule, s[b], d[b])
                got = objective(table, mediator.rule, s[b], d[b], out[b])
                assert got == pytest.approx(best)
                if mediator.rule == "pareto":
                    us, uo = table.utilities(s[b]), table.utilities(out[b])
                    assert (uo[d[b]] >= us[d[b]]).all()  # never leaves a delegator worse off


def objective(table, rule, s, d, joint):
    u = table.utilities(joint)
    if rule == "pareto":
        return u[d].sum()
    return u.sum() if d.all() else -u[~d].sum()


def brute_force(table, rule, s, d):
    us, best = table.utilities(s), -np.inf
    for joint in itertools.product(range(table.num_actions), repeat=table.num_agents):
        joint = np.array(joint)
        if (joint[~d] != s[~d]).any():
            continue
        if rule == "pareto" and (table.utilities(joint)[d] < us[d]).any():
            continue
        best = max(best, objective(table, rule, s, d, joint))
    return best


def test_pareto_keeps_the_submitted_actions_when_nothing_improves():
    """(C, D) in the Prisoner's Dilemma: no other outcome gives the defector 3."""
    pareto = ParetoMediator(PD)
    assert act(pareto, [[C, D]], [[1, 1]]).tolist() == [[C, D]]
    assert pareto.end_of_rollout() == {"mediated_share": 1.0, "changed_share": 0.0}


def test_metrics_count_plays_and_changed_actions():
    pareto = ParetoMediator(PD)
    act(pareto, [[D, D], [D, D], [C, C]], [[1, 1], [1, 0], [0, 0]])
    # the mediator acted in 1 of 3 plays and changed both of its 2 delegators' actions (of 3 delegators)
    assert pareto.end_of_rollout() == {"mediated_share": pytest.approx(1 / 3), "changed_share": pytest.approx(2 / 3)}
    assert pareto.end_of_rollout() == {"mediated_share": 0.0, "changed_share": 0.0}  # reset after each rollout


def test_too_large_tables_are_refused():
    game = envs.make_batched("normal-form", 18, actions=2)  # 2^18 > MAX_PROFILES
    with pytest.raises(ValueError, match="limit is"):
        ParetoMediator(game.mediator_model())
    assert 2 ** 17 <= pareto_enumeration.MAX_PROFILES


def test_game_without_a_utility_model_is_refused():
    with pytest.raises(ValueError, match="no pareto mediator for a ndarray"):
        ParetoMediator(np.zeros((2, 2, 2)))


# ---------------------------------------------------------------- matching game


def matching_table(model: MatchingModel) -> PayoffTable:
    n = model.num_agents
    profiles = np.indices((n - 1,) * n).reshape(n, -1).T
    return PayoffTable(model.utilities(profiles).reshape((n - 1,) * n + (n,)))


def test_matching_pareto_matches_unmatched_delegators_by_hand():
    """Four agents: 0 and 1 delegate and point at 2 and 3, who point at each other
    (matched, not delegating). The mediator matches 0 with 1."""
    R = np.array([[0, .5, .2, .1], [.4, 0, .3, .6], [.1, .2, 0, .9], [.3, .3, .8, 0]])
    model = MatchingModel(R)
    s = np.array([[model.action(0, 2), model.action(1, 3), model.action(2, 3), model.action(3, 2)]])
    d = np.array([[True, True, False, False]])
    out = act(ParetoMediator(model), s, d)
    assert model.partners(out).tolist() == [[1, 0, 3, 2]]
    np.testing.assert_allclose(model.utilities(out), [[.5, .4, .9, .8]])
    # the punishing mediator has no non-delegator to hurt here (2 and 3 point at each other):
    # the delegators keep their actions
    assert act(PunishingMediator(model), s, d).tolist() == s.tolist()
    # ... but if 3 pointed at 1 and 1 at 3, it would unmatch them: 1 points at the lowest other, 0
    s2 = np.array([[model.action(0, 2), model.action(1, 3), model.action(2, 3), model.action(3, 1)]])
    assert model.partners(act(PunishingMediator(model), s2, d)).tolist() == [[2, 0, 3, 1]]


def test_matching_pareto_never_breaks_a_match_for_less():
    """Agent 0 (delegating) is matched with the non-delegator 2 at R[0, 2] = 0.7; agent 1
    delegates and offers R[0, 1] = 0.6 < 0.7: the mediator leaves 0 where it is."""
    R = np.array([[0, .6, .7], [.9, 0, .1], [.5, .5, 0]])
    model = MatchingModel(R)
    s = np.array([[model.action(0, 2), model.action(1, 0), model.action(2, 0)]])
    out = act(ParetoMediator(model), s, [[True, True, False]])
    assert model.partners(out)[0, 0] == 2


@pytest.mark.parametrize("n", [3, 4, 5])
def test_matching_solvers_equal_enumeration(n):
    """The matching mediators (maximum-weight matchings) choose exactly what exhaustive
    enumeration of Eqs. 1-3 chooses, with the same tie-breaks."""
    rng = np.random.default_rng(n)
    for _ in range(20):
        model = MatchingModel(rng.random((n, n)) * (1 - np.eye(n)))
        table = matching_table(model)
        s = rng.integers(0, n - 1, (16, n))
        d = rng.random((16, n)) < 0.6
        for cls in (ParetoMediator, PunishingMediator):
            np.testing.assert_array_equal(act(cls(model), s, d), act(cls(table), s, d))
