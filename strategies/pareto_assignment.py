r"""The Pareto and punishing mediators in the restaurant game (McAleer et al., Sec. 4.3,
[Pareto Eq. 4]), as assignment problems on the platform's known utilities only.

The mediator holds an envs.restaurant.RestaurantModel: the known part u^k and the
capacities, never the agents' private part. Below, u_i(s) is agent i's *known*
utility of the submitted joint action s, crowding included ([Pareto Eq. 3]'s right-hand side).

**Pareto** ([Pareto Eq. 4]). The non-delegators' reservations are fixed; every remaining seat
(c_r minus the fixed agents at r, when positive) is a table t at restaurant r(t). The
mediator solves :math:`\max_f \sum_{i\in D} \hat u_i(r(f(i)))` over injections f from the
delegators to the tables (``scipy.optimize.linear_sum_assignment`` on one column per
seat, at most |D| seats per restaurant), with :math:`\hat u_i(r) = u^k_i(r)` when
:math:`u^k_i(r) \ge u_i(s)` and infeasible otherwise.

- **Infeasible cells** are a large negative number, not −inf (linear_sum_assignment
  refuses a matrix whose every complete assignment is infinite): −(2·|D|·(max u^k + 1) + 1),
  more than any feasible total can make up, so the solution has the fewest infeasible cells.
- **Decision: delegators without a feasible table.** A delegator the solution leaves on
  an infeasible cell, or without a table (fewer tables than delegators), keeps its
  submitted reservation and is treated as fixed; the assignment is solved again for the
  others until every assigned cell is feasible. Every delegator is then weakly better off
  on the known utilities: an assigned one sits within capacity at a restaurant worth at
  least u_i(s); one that kept its reservation finds at most as many agents there as before
  (tables exist only where the fixed agents leave room, and are never overfilled).
  Non-delegators are never worse off either.
- Like the paper's, this approximates [Pareto Eq. 3]: it never sends a delegator to a restaurant
  that is already full.

**Punishing.** When everyone delegates: the same assignment on u^k without the
constraint ([Pareto Eq. 2] approximated as in the paper; agents without a seat keep theirs). Else
([Pareto Eq. 1] approximated as in the paper): every delegator goes to one restaurant a
non-delegator chose, the one that leaves the non-delegators the least known welfare
(ties: the lowest index).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from envs.restaurant import RestaurantModel, seat_columns


def mediate(model: RestaurantModel, rule: str, actions: np.ndarray, delegate: np.ndarray) -> np.ndarray:
    """The mediator's joint actions ``[B, N]`` under ``rule`` ("pareto" or "punishing")."""
    solve = {"pareto": _pareto, "punishing": _punishing}[rule]
    out = np.empty_like(actions)
    for b in range(actions.shape[0]):
        out[b] = solve(model, actions[b], delegate[b])
    return out


def seat(model: RestaurantModel, s: np.ndarray, active: np.ndarray,
         floor: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Assign the ``active`` agents to the seats the others leave free, maximising their
    total known utility; cells below ``floor[i]`` are infeasible. Returns the joint action
    with the assigned agents moved, and which active agents got no feasible seat."""
    rows = np.flatnonzero(active)
    free = model.capacities - np.bincount(s[~active], minlength=model.num_actions)
    cols = seat_columns(free, len(rows))
    value = model.known[np.ix_(rows, cols)]
    feasible = np.ones_like(value, bool) if floor is None else value >= floor[rows, None]
    penalty = 2.0 * len(rows) * (np.abs(model.known).max() + 1.0) + 1.0
    r, c = linear_sum_assignment(np.where(feasible, value, -penalty), maximize=True)
    ok = feasible[r, c]
    out = s.copy()
    out[rows[r[ok]]] = cols[c[ok]]
    failed = active.copy()
    failed[rows[r[ok]]] = False
    return out, failed


def _pareto(model: RestaurantModel, s: np.ndarray, d: np.ndarray) -> np.ndarray:
    floor = model.utilities(s)
    active = d.copy()
    while active.any():
        out, failed = seat(model, s, active, floor)
        if not failed.any():
            return out
        active &= ~failed
    return s.copy()


def _punishing(model: RestaurantModel, s: np.ndarray, d: np.ndarray) -> np.ndarray:
    if d.all():
        return seat(model, s, d, None)[0]
    targets = np.unique(s[~d])
    joint = np.where(d, targets[:, None], s)  # [C, N]: every delegator at one target
    welfare = (model.utilities(joint) * ~d).sum(axis=1)
    return joint[int(np.argmin(welfare))]
