"""Propositions 1 and 2 of the Pareto mediator on 10,000 random 2×2 and 10,000 random 3×3
games (payoffs Uniform[0, 1), as the paper's random games), with a pure-equilibrium
enumerator checked against nashpy, each statement where it holds; and a 3×3 game where
Proposition 2, and the consequence the paper draws from it, fail.

The project's mediator (strategies/pareto.py) builds every mediated game below; an
enumeration of its own (experiments/pareto_rate.py::both_delegate) must agree with it."""

from __future__ import annotations

from functools import lru_cache

import nashpy
import numpy as np
import pytest

from envs.normal_form import PayoffTable
from experiments.pareto_rate import (both_delegate, corollary_violations, main, mediated, pure_nash,
                                     random_games, violations, whole_game)
from strategies.pareto import PunishingMediator

GAMES = 10_000


@lru_cache(maxsize=None)
def mediated_games(A: int) -> tuple[int, np.ndarray, np.ndarray]:
    """``(A, original [G, A, A, 2], whole mediated game by the project's mediator [G, 2A, 2A, 2])``."""
    original = random_games(GAMES, A, seed=A)
    return A, original, np.stack([mediated(u) for u in original])


@pytest.fixture(params=[2, 3], ids=["2x2", "3x3"])
def games(request):
    return mediated_games(request.param)


def test_the_mediator_equals_an_independent_enumeration(games):
    A, original, med = games
    np.testing.assert_array_equal(med, whole_game(original, both_delegate(original)))


def test_proposition_1_delegating_weakly_dominates(games):
    """For every own action a and every opponent choice, (a, delegate) pays at least (a, not)."""
    A, _, med = games
    assert (med[:, A:, :, 0] >= med[:, :A, :, 0]).all()
    assert (med[:, :, A:, 1] >= med[:, :, :A, 1]).all()
    # and delegating really changes outcomes: strictly better somewhere in most games
    strictly = (med[:, A:, :, 0] > med[:, :A, :, 0]).any(axis=(1, 2))
    assert strictly.mean() > 0.5


def test_proposition_1_fails_for_the_punishing_mediator():
    games = np.random.default_rng(0).random((200, 2, 2, 2))
    med = np.stack([mediated_by(u, PunishingMediator) for u in games])
    worse = (med[:, 2:, :, 0] < med[:, :2, :, 0]).any(axis=(1, 2))
    assert worse.mean() > 0.5  # a punisher often pays for punishing


def mediated_by(u: np.ndarray, mediator) -> np.ndarray:
    """The whole mediated game ``[2A, 2A, 2]`` of ``u`` under ``mediator``."""
    table, A = PayoffTable(u), u.shape[0]
    x = np.indices((2 * A, 2 * A)).reshape(2, -1).T
    return table.utilities(mediator(table).act_for(0, None, x % A, x >= A)).reshape(2 * A, 2 * A, 2)


def test_proposition_2_holds_for_2x2_games():
    """Every pure NE of the 2×2 game where both delegate (u(a, b) = u(M((a,+), (b,+)))) has
    total utility >= every pure NE of the original game."""
    _, original, med = mediated_games(2)
    both = med[:, 2:, 2:]
    ne_orig, ne_both = pure_nash(original), pure_nash(both)
    best_orig = np.where(ne_orig, original.sum(-1), -np.inf).max(axis=(1, 2))
    worst_both = np.where(ne_both, both.sum(-1), np.inf).min(axis=(1, 2))
    assert (worst_both >= best_orig).all()
    assert not violations(original, both).any()
    tested = ne_orig.any(axis=(1, 2)) & ne_both.any(axis=(1, 2))
    assert tested.sum() > 0.5 * GAMES  # the claim is not vacuous on most games
    assert (worst_both[tested] > best_orig[tested]).any()  # and the mediator does improve some


def test_the_consequence_for_the_whole_mediated_game_holds_for_2x2_games():
    """[Pareto Sec. 3]: every pure NE of the whole 4×4 mediated game has at least the total
    of the lowest pure NE of the original game."""
    _, original, med = mediated_games(2)
    worst_orig = np.where(pure_nash(original), original.sum(-1), np.inf).min(axis=(1, 2))
    worst_med = np.where(pure_nash(med), med.sum(-1), np.inf).min(axis=(1, 2))
    has = np.isfinite(worst_orig)  # games without a pure equilibrium say nothing
    assert has.sum() > 0.5 * GAMES and (worst_med[has] >= worst_orig[has]).all()
    assert not corollary_violations(original, both_delegate(original)).any()


def test_nobody_delegating_keeps_exactly_the_original_equilibria(games):
    """(a-, b-) is an equilibrium of the mediated game exactly when (a, b) is one of the original."""
    A, original, med = games
    np.testing.assert_array_equal(pure_nash(med)[:, :A, :A], pure_nash(original))


# The 3×3 counterexample (payoffs in hundredths; no two outcomes tie for either player or in total).
V = np.array([[(45, 46), (96, 40), (22, 22)],
              [(58, 61), (13, 98), (25, 77)],
              [(50, 48), (51, 52), (43, 82)]], float)


def test_proposition_2_fails_on_a_3x3_game():
    med = mediated(V)
    both = med[3:, 3:]
    # the game where both delegate, by hand: from each outcome, the highest total among
    # the outcomes that give both players at least as much
    np.testing.assert_array_equal(both, [[(58, 61), (96, 40), (96, 40)],
                                         [(58, 61), (13, 98), (43, 82)],
                                         [(58, 61), (58, 61), (43, 82)]])
    # the original game's only pure equilibrium is (2, 2), total 125; where both delegate,
    # the only one is (0, 0), total 119
    np.testing.assert_array_equal(np.argwhere(pure_nash(V)), [[2, 2]])
    np.testing.assert_array_equal(np.argwhere(pure_nash(both)), [[0, 0]])
    assert both[0, 0].sum() == 119 < V[2, 2].sum() == 125
    assert violations(V[None], both[None]).all()
    # where the appendix's proof breaks, with (a0, a1) = (0, 0) and (b0, b1) = (2, 2):
    # v(b0, b1) dominates v(a0, b1) = (22, 22), but the mediator's choice from (a0, b1),
    # u(a0, b1) = (96, 40), the highest total, does not dominate v(b0, b1) = (43, 82)
    assert (V[2, 2] >= V[0, 2]).all()
    assert not (both[0, 2] >= V[2, 2]).all()


def test_the_consequence_for_the_whole_mediated_game_fails_on_the_same_game():
    """(0+, 0+) is an equilibrium of the whole 6×6 mediated game (a player leaving the
    mediator gets v(a', 0) <= 58 or v(0, b') <= 61), below the original's only one."""
    med = mediated(V)
    nash = pure_nash(med)
    assert nash[3, 3] and med[3, 3].sum() == 119
    assert corollary_violations(V[None], both_delegate(V[None])).all()
    np.testing.assert_array_equal(np.argwhere(nash), [[2, 2], [3, 3], [5, 2]])


def test_the_rate_of_failure_on_3x3_games():
    """Proposition 2 fails on 2.7 random 3×3 games in 10,000 (2,706 of 10,000,000 in
    ``python -m experiments.pareto_rate --games 1000000 --seed S --no-check``, S = 0..9); on
    300,000 games the count, about Poisson with mean 81 (sd 9), lies in [40, 120]."""
    games = random_games(300_000, 3, seed=5)
    both = both_delegate(games)
    bad = violations(games, both)
    assert 40 <= bad.sum() <= 120
    assert corollary_violations(games, both).sum() < bad.sum()  # the consequence fails more rarely


def test_the_rate_command(capsys):
    assert main(["--games", "3000", "--actions", "3", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    games = random_games(3000, 3, 0)
    k = violations(games, both_delegate(games)).sum()
    assert "agrees with the enumeration on every game" in out
    assert f"Proposition 2 fails in {k} games" in out and k > 0
    with pytest.raises(SystemExit) as exit_:
        main(["--games", "0"])
    assert exit_.value.code == 2


def test_the_whole_mediated_game_keeps_bad_equilibria_where_nobody_delegates():
    """Why Proposition 2 speaks of the game where both delegate: in a coordination game,
    (low, low) without delegating stays an equilibrium of the mediated game (a lone
    delegator changes nothing), below the original's best equilibrium."""
    u = np.array([[(1, 1), (0, 0)], [(0, 0), (5, 5)]], float)
    med = mediated(u)
    assert pure_nash(med)[0, 0] and med[0, 0].sum() == 2
    assert pure_nash(med)[2, 2] and med[2, 2].sum() == 10  # (low+, low+) -> (high, high)


# ---------------------------------------------------------------- the enumerators themselves


def test_pure_nash_by_hand():
    pd = np.array([[(2, 2), (0, 3)], [(3, 0), (1, 1)]], float)
    np.testing.assert_array_equal(pure_nash(pd), [[False, False], [False, True]])
    pennies = np.array([[(1, 0), (0, 1)], [(0, 1), (1, 0)]], float)
    assert not pure_nash(pennies).any()
    # Table 1: the mediated Prisoner's Dilemma; (D+, D+) pays (2, 2) and is an equilibrium
    med = mediated(pd)
    np.testing.assert_array_equal(med[:, :, 0], [[2, 0, 2, 0], [3, 1, 3, 1], [2, 0, 2, 0], [3, 1, 3, 2]])
    assert pure_nash(med)[3, 3] and tuple(med[3, 3]) == (2, 2)
    np.testing.assert_array_equal(both_delegate(pd[None])[0], [[(2, 2), (0, 3)], [(3, 0), (2, 2)]])


@pytest.mark.filterwarnings(r"ignore:\s*An even number")  # nashpy's degeneracy notice; pure equilibria still all found
@pytest.mark.parametrize("A", [2, 3])
def test_pure_nash_agrees_with_nashpy(A):
    """Original random games (non-degenerate: support enumeration finds every equilibrium)
    and mediated ones (degenerate: each profile checked with nashpy's best-response test)."""
    rng = np.random.default_rng(10 + A)
    eye = np.eye(2 * A)
    for _ in range(40):
        u = rng.random((A, A, 2))
        ours = {tuple(np.argwhere(pure_nash(u))[k]) for k in range(pure_nash(u).sum())}
        theirs = {(int(r.argmax()), int(c.argmax())) for r, c in nashpy.Game(u[..., 0], u[..., 1]).support_enumeration()
                  if r.max() == 1 and c.max() == 1}
        assert ours == theirs
    for _ in range(10):
        med = mediated(rng.random((A, A, 2)))
        game = nashpy.Game(med[..., 0], med[..., 1])
        expected = [[all(game.is_best_response(eye[x], eye[y])) for y in range(2 * A)] for x in range(2 * A)]
        np.testing.assert_array_equal(pure_nash(med), expected)
