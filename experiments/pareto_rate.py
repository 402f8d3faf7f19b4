r"""How often [Pareto Prop. 2] fails on random two-player games.

    python -m experiments.pareto_rate --games 10000 --actions 3 --seed 0
    python -m experiments.pareto_rate --games 1000000 --actions 3 --seed 0 --no-check

[Pareto Prop. 2]: every pure Nash equilibrium of the game where both players delegate to
the Pareto mediator, :math:`u(a, b) = u(M((a,+), (b,+)))`, has at least as high total
utility as every pure Nash equilibrium of the original game v. It holds for 2×2 games but
not for larger ones: the appendix's step ":math:`v(b_0, b_1) \succeq v(a_0, b_1)`, so
:math:`u(a_0, b_1) \succeq v(b_0, b_1)`" assumes that the mediator's choice from
:math:`(a_0, b_1)` dominates every outcome that dominates :math:`v(a_0, b_1)`, while it
is only the one of highest total.

Games are drawn as in [Pareto Sec. 4.1] (payoffs i.i.d. Uniform[0, 1)). The game where
both delegate is computed by an enumeration of its own (:func:`both_delegate`, numpy
over all games at once) and, unless ``--no-check``, also by the project's mediator
(strategies/pareto.py), which must agree. Printed: the number of games where both the
original game and the game where both delegate have a pure equilibrium (where the
proposition says something), then, for the proposition and for the consequence the paper
draws from it (every pure equilibrium of the whole mediated game has at least the total
of the lowest pure equilibrium of the original game), the number of games in which it
fails and its rate with a 95% Clopper-Pearson interval.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.stats import binomtest

from envs.normal_form import PayoffTable
from strategies.pareto import ParetoMediator

_CHUNK = 100_000  # games per block of the enumeration


def random_games(games: int, actions: int, seed: int) -> np.ndarray:
    """``games`` random two-player games ``[games, A, A, 2]``, payoffs Uniform[0, 1)."""
    return np.random.default_rng(seed).random((games, actions, actions, 2))


def pure_nash(g: np.ndarray) -> np.ndarray:
    """Pure Nash equilibria of two-player games ``[..., R, C, 2]``: bool ``[..., R, C]``."""
    rows_best = g[..., 0] >= g[..., 0].max(axis=-2, keepdims=True)
    cols_best = g[..., 1] >= g[..., 1].max(axis=-1, keepdims=True)
    return rows_best & cols_best


def both_delegate(games: np.ndarray) -> np.ndarray:
    """The games where both players delegate, ``[G, R, C, 2]``: at every outcome s the
    outcome of highest total among those giving both players at least v(s) ([Pareto Eq. 3]
    with D = P). Ties (which random games do not have) go to the first outcome in C order."""
    G, R, C, _ = games.shape
    out = np.empty_like(games)
    for lo in range(0, G, _CHUNK):
        v = games[lo:lo + _CHUNK].reshape(-1, R * C, 2)
        better = (v[:, None, :, :] >= v[:, :, None, :]).all(axis=-1)  # [g, s, s']: v(s') ⪰ v(s)
        pick = np.where(better, v.sum(-1)[:, None, :], -np.inf).argmax(axis=-1)
        out[lo:lo + _CHUNK] = np.take_along_axis(v, pick[..., None], axis=1).reshape(-1, R, C, 2)
    return out


def mediated(u: np.ndarray) -> np.ndarray:
    """The project's whole mediated game ``[2R, 2C, 2]`` of one game ``[R, C, 2]``
    (strategies/pareto.py): choice x = a + A·d, rows then columns."""
    if u.shape[0] != u.shape[1]:
        raise ValueError(f"the mediated game needs a square game; got {u.shape[0]}×{u.shape[1]}")
    table = PayoffTable(u)
    A = u.shape[0]
    x = np.indices((2 * A, 2 * A)).reshape(2, -1).T
    played = ParetoMediator(table).act_for(0, None, x % A, x >= A)
    return table.utilities(played).reshape(2 * A, 2 * A, 2)


def whole_game(games: np.ndarray, both: np.ndarray) -> np.ndarray:
    """The whole mediated games ``[G, 2R, 2C, 2]`` (choice a + R·d, b + C·d): the original
    outcome unless both delegate ([Pareto Sec. 3]: one delegator changes nothing)."""
    R, C = games.shape[1:3]
    whole = np.tile(games, (1, 2, 2, 1))
    whole[:, R:, C:] = both
    return whole


def _lowest(g: np.ndarray) -> np.ndarray:
    return np.where(pure_nash(g), g.sum(-1), np.inf).min(axis=(1, 2))


def violations(games: np.ndarray, both: np.ndarray) -> np.ndarray:
    """Per game, [Pareto Prop. 2] fails: some pure equilibrium of ``both`` has a lower
    total than some pure equilibrium of ``games`` (bool ``[G]``)."""
    best = np.where(pure_nash(games), games.sum(-1), -np.inf).max(axis=(1, 2))
    return _lowest(both) < best


def corollary_violations(games: np.ndarray, both: np.ndarray) -> np.ndarray:
    """Per game, the paper's consequence of [Pareto Prop. 2] fails: some pure equilibrium of
    the whole mediated game has a lower total than the lowest pure equilibrium of the
    original game (bool ``[G]``; games without a pure equilibrium do not fail)."""
    lowest = _lowest(games)
    return np.isfinite(lowest) & (_lowest(whole_game(games, both)) < lowest)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", type=int, default=10_000, help="random games (default 10000)")
    p.add_argument("--actions", type=int, default=3, help="actions of each player (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip the comparison with the project's mediator (about 0.2 ms a game)")
    args = p.parse_args(argv)
    if args.games < 1 or args.actions < 1:
        p.error(f"--games and --actions must be at least 1; got {args.games}, {args.actions}")
    games = random_games(args.games, args.actions, args.seed)
    both = both_delegate(games)
    if args.check:
        A = args.actions
        ours = np.stack([mediated(u)[A:, A:] for u in games])
        if not np.array_equal(ours, both):
            differ = np.flatnonzero((ours != both).any(axis=(1, 2, 3)))
            print(f"the project's mediator disagrees with the enumeration in {len(differ)} games, "
                  f"e.g. game {differ[0]}")
            return 1
    n = args.games
    defined = (pure_nash(games).any(axis=(1, 2)) & pure_nash(both).any(axis=(1, 2))).sum()
    print(f"{args.actions}x{args.actions} games, seed {args.seed}: {n} games, both the original game and the "
          f"game where both delegate have a pure equilibrium in {defined}"
          + ("; the project's mediator agrees with the enumeration on every game" if args.check else ""))
    for name, bad in (("Proposition 2", violations(games, both)),
                      ("its consequence for the whole mediated game", corollary_violations(games, both))):
        k = int(bad.sum())
        ci = binomtest(k, n).proportion_ci()
        print(f"  {name} fails in {k} games: {1e4 * k / n:.2f} in 10,000 "
              f"(95% CI {1e4 * ci.low:.2f}-{1e4 * ci.high:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
