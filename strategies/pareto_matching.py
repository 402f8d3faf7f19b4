r"""The Pareto and punishing mediators (McAleer et al., [Pareto Eqs. 1-3]) in the matching game
(envs.matching), exact for any number of agents.

Agent i's utility depends only on whether i and its partner point at each other, so the
equations become matching problems (p_i: whom i points at in the submitted s, u_i(s) its
utility, R the reward matrix):

- **Pareto** ([Pareto Eq. 3]). The delegators D can be matched with each other or with a
  non-delegator j that points at them (p_j ∈ D, fixed). Edges: (i, k) ⊂ D with weight
  R[i,k] + R[k,i] when R[i,k] >= u_i(s) and R[k,i] >= u_k(s); (i, j) with weight R[i,j]
  when p_j = i and R[i,j] >= u_i(s) (j's reward is not in [Pareto Eq. 3]'s sum). A delegator with
  u_i(s) > 0 must stay matched (unmatched pays 0), which a bonus of more than any total
  reward per such endpoint enforces: the submitted matching covers them all, so a
  maximum-weight matching (networkx) covers them all and then maximises Σ_{i∈D} u_i(s').
  The paper's description, "matches unmatched delegating agents with each other", is the
  special case where no delegator can do better than its current match.
- **Punishing**, D ≠ P ([Pareto Eq. 1]). A delegator i only affects the non-delegators that point
  at it, and only through whom it points at: each delegator independently points at a k
  minimising R[k,i]·[k ∉ D, p_k = i] (the paper: "unmatches them"), keeping its own
  choice if that is a minimiser, else the lowest such k.
- **Punishing**, D = P ([Pareto Eq. 2]): a maximum-weight matching on weights R[i,k] + R[k,i].

A delegator left unmatched keeps pointing where it pointed, unless that now forms a
match; then it points at the first agent with which it forms none. These rules are the
tie-breaks of strategies/pareto_enumeration.py, so both give the same joint actions
(tests/test_pareto_mediator.py compares them).
"""

from __future__ import annotations

from itertools import combinations

import networkx as nx
import numpy as np

from envs.matching import MatchingModel


def mediate(model: MatchingModel, rule: str, actions: np.ndarray, delegate: np.ndarray) -> np.ndarray:
    """The mediator's joint actions ``[B, N]`` under ``rule`` ("pareto" or "punishing")."""
    solve = {"pareto": _pareto, "punishing": _punishing}[rule]
    out = np.empty_like(actions)
    for b in range(actions.shape[0]):
        partners = solve(model, model.partners(actions[b]), delegate[b], model.utilities(actions[b]))
        out[b] = [model.action(i, p) for i, p in enumerate(partners)]
    return out


def _pareto(model: MatchingModel, p: np.ndarray, d: np.ndarray, u: np.ndarray) -> np.ndarray:
    R = model.rewards
    must = (d & (u > 0)).astype(int)
    bonus = 1.0 + 2.0 * R.sum()
    graph = nx.Graph()
    for i, k in combinations(np.flatnonzero(d), 2):
        if R[i, k] >= u[i] and R[k, i] >= u[k]:
            graph.add_edge(i, k, weight=R[i, k] + R[k, i] + bonus * (must[i] + must[k]))
    for j in np.flatnonzero(~d):
        i = p[j]
        if d[i] and R[i, j] >= u[i]:
            graph.add_edge(i, j, weight=R[i, j] + bonus * must[i])
    return _apply(graph, p, d)


def _punishing(model: MatchingModel, p: np.ndarray, d: np.ndarray, u: np.ndarray) -> np.ndarray:
    R, n = model.rewards, model.num_agents
    if d.all():
        graph = nx.Graph()
        graph.add_weighted_edges_from((i, k, R[i, k] + R[k, i]) for i, k in combinations(range(n), 2))
        return _apply(graph, p, d)
    out = p.copy()
    for i in np.flatnonzero(d):
        gain = np.where(~d & (p == i), R[:, i], 0.0)
        gain[i] = np.inf  # nobody points at itself
        if gain[p[i]] > gain.min():
            out[i] = int(np.argmin(gain))
    return out


def _apply(graph: nx.Graph, p: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Delegators point at their partner in the matching; unmatched ones as the module says."""
    out = p.copy()
    matched = set()
    for a, b in nx.max_weight_matching(graph):
        for i, k in ((a, b), (b, a)):
            if d[i]:
                out[i] = k
                matched.add(i)
    for i in np.flatnonzero(d):
        if i not in matched and out[out[i]] == i:
            free = [k for k in range(len(p)) if k != i and out[k] != i]
            if free:
                out[i] = free[0]
    return out
