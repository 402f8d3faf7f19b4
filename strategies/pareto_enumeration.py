r"""The Pareto and punishing mediators' choices (McAleer et al., [Pareto Eqs. 1-3]), exact by
enumeration of the joint actions of a payoff table (envs.normal_form.PayoffTable).

For one copy with submitted joint action s and delegators D, the candidates are the
joint actions s' that keep every non-delegator's action, :math:`s'_j = s_j` for
:math:`j \notin D`, and the mediator picks

- **Pareto** ([Pareto Eq. 3]): :math:`\arg\max_{s'} \sum_{i \in D} u_i(s')` subject to
  :math:`u_i(s') \ge u_i(s)` for all :math:`i \in D` (s itself is always feasible);
- **punishing**, :math:`D \subsetneq P` ([Pareto Eq. 1]): :math:`\arg\min_{s'} \sum_{j \notin D} u_j(s')`,
  the non-delegators' welfare;
- **punishing**, :math:`D = P` ([Pareto Eq. 2]): :math:`\arg\max_{s'} \sum_{i \in P} u_i(s')`.

Ties (objectives within 1e-9·(1 + |best|)) go to the candidate that keeps the most
delegators' submitted actions, then to the first joint action in C order (agent 0's
action most significant). When the mediator acts at all (two or more delegators for
Pareto) is decided by the mediator (strategies/pareto.py), not here.

All copies are solved at once: ``[B, P, N]`` arrays for P = A^N joint actions, in
chunks of copies that keep them to a few million entries.
"""

from __future__ import annotations

import numpy as np

from envs.normal_form import PayoffTable

#: the largest table solved by enumeration (A^N joint actions)
MAX_PROFILES = 200_000
_CHUNK = 4_000_000  # entries of a [copies, P, N] array per chunk


def check_size(table: PayoffTable) -> None:
    """Raise ValueError if the table has too many joint actions to enumerate."""
    size = table.num_actions ** table.num_agents
    if size > MAX_PROFILES:
        raise ValueError(f"exact mediation enumerates A^N = {table.num_actions}^{table.num_agents} = {size} joint "
                         f"actions; the limit is {MAX_PROFILES}")


def choose(value: np.ndarray, allowed: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Per row: the allowed column of maximal ``value``; ties to the most ``kept``, then the first."""
    v = np.where(allowed, value, -np.inf)
    best = v.max(axis=1, keepdims=True)
    top = allowed & (v >= best - 1e-9 * (1.0 + np.abs(best)))
    return np.where(top, kept, -1).argmax(axis=1)


def mediate(table: PayoffTable, rule: str, actions: np.ndarray, delegate: np.ndarray) -> np.ndarray:
    """The mediator's joint actions ``[B, N]`` under ``rule`` ("pareto" or "punishing")
    for submitted ``actions`` and ``delegate`` (bool) ``[B, N]``."""
    profiles, U = table.profiles(), table.flat()  # [P, N] each
    step = max(1, _CHUNK // U.size)
    out = np.empty_like(actions)
    for lo in range(0, actions.shape[0], step):
        s, d = actions[lo:lo + step], delegate[lo:lo + step]
        out[lo:lo + step] = profiles[_solve(profiles, U, rule, s, d, table.utilities(s))]
    return out


def _solve(profiles, U, rule, s, d, u_s) -> np.ndarray:
    same = profiles[None] == s[:, None]  # [B, P, N]
    D = d[:, None, :]
    allowed = (same | D).all(axis=-1)  # non-delegators keep their actions
    if rule == "pareto":
        allowed &= ((U[None] >= u_s[:, None]) | ~D).all(axis=-1)  # [Pareto Eq. 3]'s constraint
        value = (U[None] * D).sum(axis=-1)
    elif rule == "punishing":
        everyone = d.all(axis=1)[:, None]
        value = np.where(everyone, U.sum(axis=-1)[None], -(U[None] * ~D).sum(axis=-1))  # [Pareto Eq. 2] / [Pareto Eq. 1]
    else:
        raise ValueError(f"unknown rule {rule!r}; valid choices: pareto, punishing")
    return choose(value, allowed, (same & D).sum(axis=-1))
