"""Propositions 1 and 2 of the Pareto mediator, checked exactly on 1,000 random 2×2 and
1,000 random 3×3 games (payoffs Uniform[0, 1), as the paper's random games), with our own
pure-equilibrium enumerator, itself checked against nashpy."""

from __future__ import annotations

import nashpy
import numpy as np
import pytest

from envs.normal_form import PayoffTable
from strategies.pareto import ParetoMediator, PunishingMediator

GAMES = 1000


def mediated(u: np.ndarray, mediator=ParetoMediator) -> np.ndarray:
    """The mediated two-player game ``[2A, 2A, 2]``: row/column x = a + A·d as the world encodes choices."""
    table = PayoffTable(u)
    A = u.shape[0]
    x = np.indices((2 * A, 2 * A)).reshape(2, -1).T
    played = mediator(table).act_for(0, None, x % A, x >= A)
    return table.utilities(played).reshape(2 * A, 2 * A, 2)


def pure_nash(g: np.ndarray) -> np.ndarray:
    """Pure Nash equilibria of two-player games ``[..., R, C, 2]``: bool ``[..., R, C]``."""
    rows_best = g[..., 0] >= g[..., 0].max(axis=-2, keepdims=True)
    cols_best = g[..., 1] >= g[..., 1].max(axis=-1, keepdims=True)
    return rows_best & cols_best


def random_games(A: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``GAMES`` random A×A games and their Pareto-mediated games."""
    games = np.random.default_rng(seed).random((GAMES, A, A, 2))
    return games, np.stack([mediated(u) for u in games])


@pytest.fixture(scope="module", params=[2, 3], ids=["2x2", "3x3"])
def games(request):
    return request.param, *random_games(request.param, seed=request.param)


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
    med = np.stack([mediated(u, PunishingMediator) for u in games])
    worse = (med[:, 2:, :, 0] < med[:, :2, :, 0]).any(axis=(1, 2))
    assert worse.mean() > 0.5  # a punisher often pays for punishing


def test_proposition_2_equilibria_when_both_delegate_beat_every_original_one(games):
    """Every pure NE of the game where both delegate (u(a, b) = u(M((a,+), (b,+)))) has total
    utility >= every pure NE of the original game."""
    A, original, med = games
    both = med[:, A:, A:]
    ne_orig, ne_both = pure_nash(original), pure_nash(both)
    total_orig, total_both = original.sum(-1), both.sum(-1)
    best_orig = np.where(ne_orig, total_orig, -np.inf).max(axis=(1, 2))
    worst_both = np.where(ne_both, total_both, np.inf).min(axis=(1, 2))
    assert (worst_both >= best_orig).all()
    tested = ne_orig.any(axis=(1, 2)) & ne_both.any(axis=(1, 2))
    assert tested.sum() > 0.5 * GAMES  # the claim is not vacuous on most games
    assert (worst_both[tested] > best_orig[tested]).any()  # and the mediator does improve some


def test_every_equilibrium_of_the_whole_mediated_game_beats_the_worst_original_one(games):
    """The paper's corollary for the full 2A×2A mediated game (lone delegators change nothing)."""
    A, original, med = games
    worst_orig = np.where(pure_nash(original), original.sum(-1), np.inf).min(axis=(1, 2))
    worst_med = np.where(pure_nash(med), med.sum(-1), np.inf).min(axis=(1, 2))
    has = np.isfinite(worst_orig)  # games without a pure equilibrium say nothing
    assert has.sum() > 0.5 * GAMES and (worst_med[has] >= worst_orig[has]).all()
    # (a-, b-) is an equilibrium of the mediated game exactly when (a, b) is one of the original
    np.testing.assert_array_equal(pure_nash(med)[:, :A, :A], pure_nash(original))


def test_the_whole_mediated_game_keeps_bad_equilibria_where_nobody_delegates():
    """Why Proposition 2 speaks of the game where both delegate: in a coordination game,
    (low, low) without delegating stays an equilibrium of the mediated game (a lone
    delegator changes nothing), below the original's best equilibrium."""
    u = np.array([[(1, 1), (0, 0)], [(0, 0), (5, 5)]], float)
    med = mediated(u)
    assert pure_nash(med)[0, 0] and med[0, 0].sum() == 2
    assert pure_nash(med)[2, 2] and med[2, 2].sum() == 10  # (low+, low+) -> (high, high)


# ---------------------------------------------------------------- the enumerator itself


def test_pure_nash_by_hand():
    pd = np.array([[(2, 2), (0, 3)], [(3, 0), (1, 1)]], float)
    np.testing.assert_array_equal(pure_nash(pd), [[False, False], [False, True]])
    pennies = np.array([[(1, 0), (0, 1)], [(0, 1), (1, 0)]], float)
    assert not pure_nash(pennies).any()
    # Table 1: the mediated Prisoner's Dilemma; (D+, D+) pays (2, 2) and is an equilibrium
    med = mediated(pd)
    np.testing.assert_array_equal(med[:, :, 0], [[2, 0, 2, 0], [3, 1, 3, 1], [2, 0, 2, 0], [3, 1, 3, 2]])
    assert pure_nash(med)[3, 3] and tuple(med[3, 3]) == (2, 2)


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
