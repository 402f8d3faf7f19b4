"""The restaurant game and its mediators (Eq. 4): a tiny instance solved by hand, the
central planner, and what the mediators may not know."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import envs
from envs.normal_form import PayoffTable
from envs.restaurant import RestaurantModel, best_seating, congested
from strategies.pareto import ParetoMediator, PunishingMediator

# 3 agents, 2 restaurants seating 2 and 1; known utilities u^k[i, r]
KNOWN = np.array([[0.9, 0.5], [0.8, 0.6], [0.7, 0.1]])
CAPS = np.array([2, 1])
MODEL = RestaurantModel(KNOWN, CAPS)


def act(mediator, actions, delegate):
    return mediator.act_for(0, None, np.asarray(actions), np.asarray(delegate, bool))


def test_crowding_by_hand():
    # all three at restaurant 0 (seats 2): each gets 2/3 of its utility
    np.testing.assert_allclose(congested(KNOWN, CAPS, np.array([0, 0, 0])), [0.6, 0.8 * 2 / 3, 0.7 * 2 / 3])
    # within capacity everyone gets it in full; batched joint actions work too
    np.testing.assert_allclose(congested(KNOWN, CAPS, np.array([[0, 1, 0], [1, 1, 0]])),
                               [[0.9, 0.6, 0.7], [0.25, 0.3, 0.7]])


def test_pareto_seats_the_crowd_by_hand():
    """Everyone at restaurant 0 (2/3 each). Feasible tables: agent 0 only restaurant 0
    (0.5 < 0.6), agent 1 both (0.6 >= 0.53), agent 2 only restaurant 0 (0.1 < 0.47):
    0 and 2 keep restaurant 0, 1 moves to restaurant 1; known welfare 1.6 -> 2.2."""
    out = act(ParetoMediator(MODEL), [[0, 0, 0]], [[1, 1, 1]])
    assert out.tolist() == [[0, 1, 0]]
    assert MODEL.utilities(out).sum() == pytest.approx(2.2)
    # 0 and 1 delegate, 2 stays at 0: one table left at each restaurant; 0 must keep
    # restaurant 0 (its only feasible table), 1 takes restaurant 1, which also helps agent 2
    out = act(ParetoMediator(MODEL), [[0, 0, 0]], [[1, 1, 0]])
    assert out.tolist() == [[0, 1, 0]]
    np.testing.assert_allclose(MODEL.utilities(out), [[0.9, 0.6, 0.7]])


def test_pareto_equals_exact_enumeration_on_the_tiny_instance():
    """Eq. 4's assignment finds Eq. 3's optimum here, for every submission and coalition."""
    profiles = np.indices((2, 2, 2)).reshape(3, -1).T
    table = PayoffTable(MODEL.utilities(profiles).reshape(2, 2, 2, 3))
    for s in profiles:
        for d in itertools.product([False, True], repeat=3):
            ours = MODEL.utilities(act(ParetoMediator(MODEL), [s], [d]))[0]
            exact = table.utilities(act(ParetoMediator(table), [s], [d]))[0]
            assert ours[list(d)].sum() == pytest.approx(exact[list(d)].sum())


def test_delegators_without_a_feasible_table_keep_their_reservation():
    """Both restaurants seat 1; agent 2 (not delegating) holds restaurant 1. Delegators 0
    and 1 share restaurant 0 (half each) and only one table is free: nobody can be seated
    without the other staying, so both keep their reservations."""
    model = RestaurantModel(np.array([[0.9, 0.2], [0.8, 0.1], [0.1, 0.5]]), np.array([1, 1]))
    assert act(ParetoMediator(model), [[0, 0, 1]], [[1, 1, 0]]).tolist() == [[0, 0, 1]]


def test_pareto_properties_on_random_instances():
    rng = np.random.default_rng(0)
    for _ in range(30):
        game = envs.make_batched("restaurant", 8, restaurants=6, max_capacity=3, seed=int(rng.integers(1000)))
        model = game.mediator_model()
        s = rng.integers(0, 3, (16, 8))  # crowd the first three restaurants
        d = rng.random((16, 8)) < 0.7
        out = act(ParetoMediator(model), s, d)
        before, after = model.utilities(s), model.utilities(out)
        np.testing.assert_array_equal(out[~d], s[~d])  # non-delegators keep their reservations
        assert (after[d] >= before[d] - 1e-12).all()  # no delegator worse off (known utilities)
        assert (after[~d] >= before[~d] - 1e-12).all()  # nor any non-delegator
        assert after.sum() > before.sum()  # and the crowd is relieved


def test_the_mediators_read_only_the_known_utilities():
    """Two games with the same known part and different private parts (a = 0 vs a = 2,
    and another private draw): every choice of both mediators is the same."""
    plain = envs.make_batched("restaurant", 6, restaurants=5, seed=3)
    private = envs.make_batched("restaurant", 6, restaurants=5, seed=3, a=2)
    assert set(vars(plain.mediator_model())) == {"known", "capacities"}
    np.testing.assert_array_equal(plain.known, private.known)
    assert not np.allclose(plain.utilities(np.zeros(6, int)), private.utilities(np.zeros(6, int)))
    rng = np.random.default_rng(1)
    s, d = rng.integers(0, 5, (32, 6)), rng.random((32, 6)) < 0.6
    for cls in (ParetoMediator, PunishingMediator):
        np.testing.assert_array_equal(act(cls(plain.mediator_model()), s, d), act(cls(private.mediator_model()), s, d))


def test_punishing_sends_every_delegator_to_a_non_delegators_restaurant():
    # agent 2 alone does not delegate, at restaurant 1 (seats 1): 0 and 1 crowd it in
    assert act(PunishingMediator(MODEL), [[0, 0, 1]], [[1, 1, 0]]).tolist() == [[1, 1, 1]]
    # two non-delegators, agent 1 at restaurant 1 and agent 2 at restaurant 0 (seats 1 each):
    # the delegator halves one of them; ties go to the lowest restaurant
    model = RestaurantModel(np.array([[0.5, 0.5], [0.1, 0.9], [0.9, 0.1]]), np.array([1, 1]))
    # at 0: 0.9 + 0.45 = 1.35; at 1: 0.45 + 0.9 = 1.35
    assert act(PunishingMediator(model), [[0, 1, 0]], [[1, 0, 0]]).tolist() == [[0, 1, 0]]
    model = RestaurantModel(np.array([[0.5, 0.5], [0.1, 0.9], [0.8, 0.1]]), np.array([1, 1]))
    # at 0: 0.9 + 0.4 = 1.3; at 1: 0.45 + 0.8 = 1.25
    assert act(PunishingMediator(model), [[0, 1, 0]], [[1, 0, 0]]).tolist() == [[1, 1, 0]]
    # everyone delegates: the planner's seating
    assert act(PunishingMediator(MODEL), [[1, 1, 1]], [[1, 1, 1]]).tolist() == [[0, 1, 0]]


def test_central_planner_by_hand_and_against_every_joint_action():
    np.testing.assert_array_equal(best_seating(KNOWN, CAPS), [0, 1, 0])  # 0.9 + 0.6 + 0.7 = 2.2
    with pytest.raises(ValueError, match="at least 3 seats"):
        best_seating(KNOWN, np.array([1, 1]))
    tested = 0
    for seed in range(20):
        game = envs.make_batched("restaurant", 3, restaurants=2, max_capacity=2, a=2, seed=seed)
        ref = game.reference_metrics()
        if game.capacities.sum() < 3:
            assert ref == {}
            continue
        profiles = np.indices((2, 2, 2)).reshape(3, -1).T
        true = game.utilities(profiles).sum(axis=1)
        known = congested(game.known, game.capacities, profiles).sum(axis=1)
        assert ref["oracle_return"] == pytest.approx(true.max())  # no joint action does better
        assert ref["planner_return"] <= ref["oracle_return"] + 1e-12
        planner = game.planner
        assert known[np.ravel_multi_index(planner, (2, 2, 2))] == pytest.approx(known.max())
        tested += 1
    assert tested >= 5


def test_restaurant_rules_and_options():
    game = envs.make_batched("restaurant", 4, batch_size=2, restaurants=7, max_capacity=3, a=2, seed=5)
    assert game.num_actions == 7 and game.capacities.min() >= 1 and game.capacities.max() <= 3
    assert ((0 <= game.known) & (game.known < 1)).all()
    joint = np.array([[0, 0, 1, 6], [2, 2, 2, 2]])
    _, rewards, terminated, _ = game.step(joint)
    np.testing.assert_allclose(rewards, congested(game.known + 2 * game.private, game.capacities, joint), rtol=1e-6)
    assert terminated.all()  # one play per episode by default
    assert envs.make_batched("restaurant", 4).num_actions == 300
    with pytest.raises(ValueError, match="a must be a number >= 0"):
        envs.make_batched("restaurant", 2, a=-1)
