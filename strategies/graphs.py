"""Communication graphs and consensus weights for local multi-federation (LMF, Alg. 2).

Each round t the participation set N_p talks over an undirected graph G_t = (N_p, E_t)
and mixes with a weight matrix C_t, either parameters ([FPF Eq. 13])

    θ_{i,t+1} = Σ_j c_t(i,j) θ_{j,t} + α_t ∇J_i(θ_{i,t})

or gradients ([FPF Eq. 14])

    θ_{i,t+1} = θ_{i,t} + α_t Σ_j c_t(i,j) g_{j,t}.

The consensus result (Theorem 2: the gap (1/N_p) Σ_i ||θ̄_t − θ_{i,t}||² vanishes) needs

- Assumption 5 (weights rule): C_t is doubly stochastic (1ᵀC_t = 1ᵀ, C_t 1 = 1) and
  some ε ∈ (0, 1) bounds c_t(i,i) ≥ ε and c_t(i,j) ≥ ε on every edge (i,j) ∈ E_t, with
  c_t(i,j) = 0 for i ≠ j off the graph;
- Assumption 4 (bounded interval): some integer B ≥ 1 makes the union
  E_t ∪ … ∪ E_{t+B−1} connected for every t (graphs here are undirected, so "strongly
  connected" is "connected").

``metropolis_weights`` builds C_t satisfying Assumption 5 for any graph; ``check_weights``
and ``check_schedule`` verify the two assumptions and raise ``GraphAssumptionError``
naming the one that fails; the ``GraphSchedule`` classes produce G_t round by round.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import networkx as nx
import numpy as np
from scipy import sparse


class GraphAssumptionError(ValueError):
    """A weight matrix or graph schedule violates Assumption 4 or 5."""


# --------------------------------------------------------------------------- helpers
def _node_list(nodes: Iterable[int]) -> list[int]:
    nodes = [int(n) for n in nodes]
    if len(set(nodes)) != len(nodes):
        raise ValueError(f"the participation set lists an agent twice: {nodes}")
    return nodes


def union_graph(graphs: Iterable[nx.Graph], nodes: Iterable[int]) -> nx.Graph:
    """The graph on ``nodes`` whose edges are the union of the graphs' edges among ``nodes``.

    Self-loops and edges to agents outside ``nodes`` are dropped: only edges inside the
    participation set can mix its parameters.
    """
    nodes = _node_list(nodes)
    keep = set(nodes)
    union = nx.Graph()
    union.add_nodes_from(nodes)
    for graph in graphs:
        union.add_edges_from((u, v) for u, v in graph.edges() if u != v and u in keep and v in keep)
    return union


def _connected(graph: nx.Graph) -> bool:
    return graph.number_of_nodes() <= 1 or nx.is_connected(graph)


def _components(graph: nx.Graph) -> list[list[int]]:
    return sorted(sorted(c) for c in nx.connected_components(graph))


def _fmt(x: float) -> str:
    return f"{x:.6g}"


# --------------------------------------------------------------------------- weights
def metropolis_weights(graph: nx.Graph, nodes: list[int]) -> np.ndarray:
    """Metropolis–Hastings consensus weights on ``graph`` restricted to ``nodes``.

    With d_i the degree of agent i among ``nodes``:

        c(i,j) = 1 / (1 + max(d_i, d_j))   for (i,j) ∈ E,
        c(i,i) = 1 − Σ_{j≠i} c(i,j),        c(i,j) = 0 otherwise.

    C is symmetric with unit row sums, hence doubly stochastic; every edge weight is
    ≥ 1/(1 + d_max) and c(i,i) ≥ 1 − d_i/(1 + d_i) = 1/(1 + d_i), so Assumption 5 holds
    with ε = 1/(1 + d_max) ≥ 1/N_p, a bound that does not depend on the round.
    Rows and columns follow the order of ``nodes``.
    """
    nodes = _node_list(nodes)
    g = union_graph([graph], nodes)
    index = {n: k for k, n in enumerate(nodes)}
    C = np.zeros((len(nodes), len(nodes)))
    for u, v in g.edges():
        w = 1.0 / (1.0 + max(g.degree(u), g.degree(v)))
        C[index[u], index[v]] = C[index[v], index[u]] = w
    np.fill_diagonal(C, 1.0 - C.sum(axis=1))
    return C


def metropolis_sparse(graph: nx.Graph, nodes: list[int]) -> sparse.csr_array:
    """:func:`metropolis_weights` as a sparse matrix (CSR, rows and columns in the order of
    ``nodes``): its N + 2|E| nonzeros instead of N² entries, for many agents on a sparse
    graph. The same weights; c(i,i) = 1 − Σ_{j≠i} c(i,j) sums the row's edge weights in
    column order."""
    nodes = _node_list(nodes)
    g = union_graph([graph], nodes)
    index = {n: k for k, n in enumerate(nodes)}
    rows, cols, vals = [], [], []
    for u, v in g.edges():
        w = 1.0 / (1.0 + max(g.degree(u), g.degree(v)))
        rows += [index[u], index[v]]
        cols += [index[v], index[u]]
        vals += [w, w]
    n = len(nodes)
    off = sparse.csr_array((np.asarray(vals, float), (np.asarray(rows, np.int64), np.asarray(cols, np.int64))),
                           shape=(n, n))
    off.sort_indices()
    diag = np.array([1.0 - np.sum(off.data[off.indptr[i]:off.indptr[i + 1]]) for i in range(n)])
    C = (off + sparse.diags_array(diag)).tocsr()
    C.sort_indices()
    return C


def _check_square(C) -> int:
    """The number of agents of a square, non-empty weight matrix C (dense or sparse)."""
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise GraphAssumptionError(f"Assumption 5 fails: the weight matrix must be square, got shape {C.shape}")
    if C.shape[0] == 0:
        raise GraphAssumptionError("Assumption 5 fails: the weight matrix is empty (no participating agents)")
    return int(C.shape[0])


def _check_sparse(C, graph_edges, eps: float | None, atol: float) -> float:
    """:func:`check_weights` for a scipy.sparse C: the same checks and messages, on its
    nonzeros only."""
    fail = "Assumption 5 fails: "
    n = _check_square(C)
    coo = sparse.coo_array(C)
    coo.sum_duplicates()
    rows, cols, vals = coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(float)
    if not np.all(np.isfinite(vals)):
        raise GraphAssumptionError(f"{fail}the weight matrix holds non-finite entries")
    if vals.size and vals.min() < -atol:
        k = int(np.argmin(vals))
        raise GraphAssumptionError(f"{fail}c({rows[k]},{cols[k]}) = {_fmt(vals[k])} is negative (consensus weights "
                                   "must be non-negative)")
    for axis, what, rule in ((1, "row", "C1 = 1"), (0, "column", "1ᵀC = 1ᵀ")):
        sums = np.asarray(C.sum(axis=axis)).ravel()
        bad = np.flatnonzero(np.abs(sums - 1.0) > atol)
        if bad.size:
            k = int(bad[0])
            raise GraphAssumptionError(f"{fail}{what} {k} of the weight matrix sums to {_fmt(sums[k])}, not 1 "
                                       f"(C must be doubly stochastic: {rule})")
    off = (rows != cols) & (np.abs(vals) > atol)
    weight = {(int(a), int(b)): float(v) for a, b, v in zip(rows[off], cols[off], vals[off])}
    if graph_edges is not None:
        on_graph = set()
        for a, b in graph_edges:
            a, b = int(a), int(b)
            if not (0 <= a < n and 0 <= b < n):
                raise ValueError(f"edge ({a}, {b}) names a row outside the {n}x{n} weight matrix")
            if a != b:
                on_graph |= {(a, b), (b, a)}
        if stray := sorted(set(weight) - on_graph):
            a, b = stray[0]
            raise GraphAssumptionError(f"{fail}c({a},{b}) = {_fmt(weight[a, b])} but ({a},{b}) is not an edge of the "
                                       "graph (c(i,j) must be 0 off the graph)")
        if missing := sorted(on_graph - set(weight)):
            a, b = missing[0]
            raise GraphAssumptionError(f"{fail}c({a},{b}) = 0 but ({a},{b}) is an edge of the graph "
                                       "(every edge needs a weight c(i,j) ≥ ε > 0)")
    diag = C.diagonal()
    k = int(np.argmin(diag))
    if diag[k] <= atol:
        raise GraphAssumptionError(f"{fail}c({k},{k}) = {_fmt(diag[k])}: every agent must keep a weight "
                                   "c(i,i) ≥ ε > 0 on its own parameters")
    found = float(min(diag.min(), min(weight.values(), default=np.inf)))
    if eps is not None and found < eps - atol:
        low = [(k, k, d) for k, d in enumerate(diag) if d < eps - atol]
        low += [(a, b, v) for (a, b), v in weight.items() if v < eps - atol]
        a, b, v = min(low, key=lambda x: (x[0], x[1]))
        raise GraphAssumptionError(f"{fail}c({a},{b}) = {_fmt(v)} is below ε = {_fmt(eps)} "
                                   "(self-weights and edge weights must be ≥ ε)")
    return found


def check_weights(C: np.ndarray, graph_edges=None, eps: float | None = None, atol: float = 1e-9) -> float:
    """Validate Assumption 5 for the consensus weights C and return the ε it satisfies.

    ``graph_edges``: optional undirected edges as pairs (i, j) of row indices of C; when
    given, the off-diagonal nonzeros of C must sit exactly on them (both c(i,j) and
    c(j,i) may be nonzero). ``eps``: a required lower bound; if None, any ε > 0 will do.
    The returned ε is the smallest positive weight on the diagonal and the edges (the
    off-diagonal nonzeros when no edges are given). Entries within ``atol`` of 0 count as 0.
    A scipy.sparse C is checked on its nonzeros, with the same messages.
    """
    if sparse.issparse(C):
        return _check_sparse(C, graph_edges, eps, atol)
    C = np.asarray(C, dtype=float)
    fail = "Assumption 5 fails: "
    n = _check_square(C)
    if not np.all(np.isfinite(C)):
        raise GraphAssumptionError(f"{fail}the weight matrix holds non-finite entries")
    i, j = np.unravel_index(np.argmin(C), C.shape)
    if C[i, j] < -atol:
        raise GraphAssumptionError(f"{fail}c({i},{j}) = {_fmt(C[i, j])} is negative (consensus weights must be non-negative)")
    for axis, what, rule in ((1, "row", "C1 = 1"), (0, "column", "1ᵀC = 1ᵀ")):
        sums = C.sum(axis=axis)
        bad = np.flatnonzero(np.abs(sums - 1.0) > atol)
        if bad.size:
            k = int(bad[0])
            raise GraphAssumptionError(f"{fail}{what} {k} of the weight matrix sums to {_fmt(sums[k])}, not 1 "
                                       f"(C must be doubly stochastic: {rule})")
    off = ~np.eye(n, dtype=bool)
    nonzero = off & (np.abs(C) > atol)
    if graph_edges is not None:
        on_graph = np.zeros((n, n), dtype=bool)
        for a, b in graph_edges:
            a, b = int(a), int(b)
            if not (0 <= a < n and 0 <= b < n):
                raise ValueError(f"edge ({a}, {b}) names a row outside the {n}x{n} weight matrix")
            if a != b:
                on_graph[a, b] = on_graph[b, a] = True
        stray = nonzero & ~on_graph
        if stray.any():
            a, b = map(int, np.argwhere(stray)[0])
            raise GraphAssumptionError(f"{fail}c({a},{b}) = {_fmt(C[a, b])} but ({a},{b}) is not an edge of the graph "
                                       "(c(i,j) must be 0 off the graph)")
        missing = on_graph & ~nonzero
        if missing.any():
            a, b = map(int, np.argwhere(missing)[0])
            raise GraphAssumptionError(f"{fail}c({a},{b}) = 0 but ({a},{b}) is an edge of the graph "
                                       "(every edge needs a weight c(i,j) ≥ ε > 0)")
    diag = np.diag(C)
    k = int(np.argmin(diag))
    if diag[k] <= atol:
        raise GraphAssumptionError(f"{fail}c({k},{k}) = {_fmt(diag[k])}: every agent must keep a weight "
                                   "c(i,i) ≥ ε > 0 on its own parameters")
    found = float(min(diag.min(), C[nonzero].min() if nonzero.any() else np.inf))
    if eps is not None and found < eps - atol:
        a, b = map(int, np.argwhere((np.eye(n, dtype=bool) | nonzero) & (C < eps - atol))[0])
        raise GraphAssumptionError(f"{fail}c({a},{b}) = {_fmt(C[a, b])} is below ε = {_fmt(eps)} "
                                   "(self-weights and edge weights must be ≥ ε)")
    return found


# --------------------------------------------------------------------------- Assumption 4
def _window(length: int, start: int, size: int) -> list[int]:
    return [(start + k) % length for k in range(size)]


def _fmt_window(steps: list[int]) -> str:
    rounds = [s + 1 for s in steps]
    if rounds == list(range(rounds[0], rounds[0] + len(rounds))):
        return f"round {rounds[0]}" if len(rounds) == 1 else f"rounds {rounds[0]}..{rounds[-1]}"
    return "rounds " + ", ".join(map(str, rounds))


def _span_needed(graphs: list[nx.Graph], nodes: list[int], start: int, periodic: bool) -> int | None:
    """Fewest consecutive graphs from ``start`` whose union is connected (None: never)."""
    if len(nodes) <= 1:
        return 1
    parent = {n: n for n in nodes}

    def root(n):
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    parts = len(nodes)
    steps = _window(len(graphs), start, len(graphs)) if periodic else range(start, len(graphs))
    for size, step in enumerate(steps, start=1):
        for u, v in graphs[step].edges():
            if u in parent and v in parent and root(u) != root(v):
                parent[root(u)] = root(v)
                parts -= 1
        if parts == 1:
            return size
    return None


def interval_bound(graphs: list[nx.Graph], nodes, periodic: bool = True) -> int | None:
    """The smallest B of Assumption 4: every B consecutive graphs have a connected union.

    ``periodic=True`` reads ``graphs`` as one period of a schedule repeated forever, so
    windows wrap around (the last graph is followed by the first) and there are
    len(graphs) windows of each size; then B ≤ len(graphs) whenever it exists.
    ``periodic=False`` reads a finite record of rounds: only windows inside the list count.
    Returns None when no B works, i.e. the union of all the graphs is disconnected.
    """
    graphs, nodes = list(graphs), _node_list(nodes)
    if not graphs:
        raise ValueError("interval_bound needs at least one graph")
    needed = [_span_needed(graphs, nodes, s, periodic) for s in range(len(graphs))]
    if periodic:
        spans = [m for m in needed if m is not None]
        return None if len(spans) < len(needed) else max(spans)
    for B in range(1, len(graphs) + 1):
        if all(m is not None and m <= B for m in needed[: len(graphs) - B + 1]):
            return B
    return None


def check_schedule(graphs: list[nx.Graph], nodes, B: int | None = None, periodic: bool = True) -> int:
    """Validate Assumption 4 for ``graphs`` (see ``interval_bound`` for ``periodic``).

    With ``B`` given, every window of B consecutive graphs must have a connected union;
    without, some B must exist. Returns B, or raises ``GraphAssumptionError`` naming the
    first window whose union is disconnected and its connected components.
    """
    graphs, nodes = list(graphs), _node_list(nodes)
    if not graphs:
        raise ValueError("check_schedule needs at least one graph")
    if B is None:
        found = interval_bound(graphs, nodes, periodic)
        if found is None:
            comps = _components(union_graph(graphs, nodes))
            raise GraphAssumptionError(f"Assumption 4 fails: even the union of all {len(graphs)} graphs "
                                       f"({_fmt_window(list(range(len(graphs))))}) is disconnected, so no "
                                       f"interval B connects the agents; components: {comps}")
        return found
    if int(B) != B or B < 1:
        raise ValueError(f"the interval B must be an integer ≥ 1, got {B}")
    B = int(B)
    if not periodic and B > len(graphs):
        raise ValueError(f"B = {B} exceeds the {len(graphs)} recorded rounds")
    starts = range(len(graphs)) if periodic else range(len(graphs) - B + 1)
    for s in starts:
        steps = _window(len(graphs), s, B)
        union = union_graph([graphs[k] for k in steps], nodes)
        if not _connected(union):
            raise GraphAssumptionError(f"Assumption 4 fails: the union of the graphs of {_fmt_window(steps)} "
                                       f"(a window of B = {B}) is disconnected; components: {_components(union)}")
    return B


# --------------------------------------------------------------------------- consensus
def consensus_gap(thetas: np.ndarray) -> float:
    """Theorem 2's consensus gap (1/N_p) Σ_i ||θ̄ − θ_i||² for stacked θ_i, shape [N_p, D]."""
    thetas = np.asarray(thetas, dtype=float)
    if thetas.ndim == 1:
        thetas = thetas[:, None]
    if thetas.shape[0] == 0:
        return 0.0
    mean = thetas.mean(axis=0)
    # by blocks of rows: each row's sum as in one pass, without a copy of all of them
    rows = np.concatenate([np.sum((thetas[k:k + 256] - mean) ** 2, axis=1) for k in range(0, len(thetas), 256)])
    return float(np.mean(rows))


def mix(C: np.ndarray, thetas: np.ndarray) -> np.ndarray:
    """One parameter exchange θ_i ← Σ_j c(i,j) θ_j ([FPF Eq. 13] without the gradient step)."""
    C, thetas = np.asarray(C, dtype=float), np.asarray(thetas, dtype=float)
    if C.ndim != 2 or C.shape[0] != C.shape[1] or C.shape[1] != thetas.shape[0]:
        raise ValueError(f"cannot mix {thetas.shape[0]} agents' parameters with a weight matrix of shape {C.shape}")
    return C @ thetas


# --------------------------------------------------------------------------- schedules
class GraphSchedule:
    """G_t for every round t = 1, 2, … and participation set N_p (which may change).

    ``interval`` is the B of Assumption 4 that the schedule guarantees for any fixed
    participation set, or None when it holds only with probability (or not at all).
    Draws are seeded by (seed, t), so a schedule is reproducible and any round can be
    asked for in any order.
    """

    name = "base"
    interval: int | None = None

    def __init__(self, seed: int = 0):
        if int(seed) != seed or seed < 0:
            raise ValueError(f"the seed must be a non-negative integer, got {seed}")
        self.seed = int(seed)

    def graph(self, t: int, nodes: list[int]) -> nx.Graph:
        raise NotImplementedError

    def weights(self, t: int, nodes: list[int]) -> np.ndarray:
        """C_t over ``nodes`` (in that order): Metropolis weights on G_t."""
        return metropolis_weights(self.graph(t, nodes), nodes)

    def sparse_weights(self, t: int, nodes: list[int], graph: nx.Graph | None = None) -> sparse.csr_array:
        """:meth:`weights` as a sparse matrix (:func:`metropolis_sparse`); ``graph``: G_t when
        the caller has it already."""
        return metropolis_sparse(self.graph(t, nodes) if graph is None else graph, nodes)

    def sequence(self, nodes: list[int], rounds: int, start: int = 1) -> list[nx.Graph]:
        """The graphs of rounds start, …, start + rounds − 1."""
        return [self.graph(t, nodes) for t in range(start, start + rounds)]

    def _rng(self, t: int, *tags: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, t, *tags])

    @staticmethod
    def _start(t: int, nodes) -> tuple[list[int], nx.Graph]:
        if int(t) != t or t < 1:
            raise ValueError(f"rounds start at t = 1, got t = {t}")
        nodes = sorted(_node_list(nodes))
        graph = nx.Graph()
        graph.add_nodes_from(nodes)
        return nodes, graph

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, seed={self.seed}, interval={self.interval})"


class CompleteSchedule(GraphSchedule):
    """Everyone talks to everyone, every round: Metropolis gives c(i,j) = 1/N_p, one-step consensus (B = 1)."""

    name, interval = "complete", 1

    def graph(self, t, nodes):
        nodes, g = self._start(t, nodes)
        g.add_edges_from((u, v) for k, u in enumerate(nodes) for v in nodes[k + 1:])
        return g


class RingSchedule(GraphSchedule):
    """A cycle over the participants in sorted order (one edge for 2, none for 1); B = 1.
    ``hops`` = k > 1 links each agent to its k nearest on each side (a circulant graph; the
    FPF authors' LMF on the Matthew Effect talks to i±1, i±2)."""

    name, interval = "ring", 1

    def __init__(self, seed: int = 0, hops: int = 1):
        super().__init__(seed)
        if int(hops) != hops or hops < 1:
            raise ValueError(f"the ring's hops must be a positive integer, got {hops}")
        self.hops = int(hops)

    def graph(self, t, nodes):
        nodes, g = self._start(t, nodes)
        ring = nx.circulant_graph(len(nodes), range(1, self.hops + 1))
        g.add_edges_from((nodes[u], nodes[v]) for u, v in ring.edges() if u != v)
        return g


def _clique(g: nx.Graph, members: Sequence[int]) -> None:
    g.add_edges_from((u, v) for k, u in enumerate(members) for v in members[k + 1:] if u != v)


class FixedSchedule(GraphSchedule):
    """LMF-Fix, the paper's baseline: k disjoint federations, each a complete graph, fixed in time.

    Federations are k contiguous blocks of the sorted agents (``np.array_split``). With
    ``agents`` (a count N for ids 0..N−1, or a list of ids) the blocks split that whole
    population once, so an agent's federation never changes and each round keeps the
    participants of every block; without, the current participation set is split.
    For k ≥ 2 the union over all rounds is disconnected: Assumption 4 fails (interval
    None) and consensus holds only within each federation, each converging to its own
    average.
    """

    name, interval = "fixed", None

    def __init__(self, seed: int = 0, k: int = 2, agents: int | Sequence[int] | None = None):
        super().__init__(seed)
        if int(k) != k or k < 1:
            raise ValueError(f"the number of federations k must be an integer ≥ 1, got {k}")
        self.k = int(k)
        self.agents = None if agents is None else sorted(range(agents) if isinstance(agents, int) else _node_list(agents))

    def federations(self, nodes: list[int]) -> list[list[int]]:
        """The non-empty federations among ``nodes``."""
        population = sorted(nodes) if self.agents is None else self.agents
        present = set(nodes)
        blocks = [[int(n) for n in block if n in present] for block in np.array_split(population, self.k)]
        return [b for b in blocks if b]

    def graph(self, t, nodes):
        nodes, g = self._start(t, nodes)
        for block in self.federations(nodes):
            _clique(g, block)
        return g


class DynamicSchedule(GraphSchedule):
    """LMF-Dynamic: overlapping federations that are redrawn every round.

    Round t draws a permutation π of the participants (seeded by (seed, t)) and cuts it
    into federations of ``group_size`` = s ≥ 2 agents, consecutive ones sharing one
    agent: π[0:s], π[s−1:2s−1], π[2(s−1):3s−2], … (the last may be smaller; a trailing
    single agent, already in the previous federation, is not a federation of its own).
    Each federation is a complete graph. Consecutive federations share an agent, so the
    federations form a chain and G_t is connected in every round: B = 1. Who shares a
    federation with whom changes from round to round. Every federation has ≥ 2 distinct
    agents, so there are no self-loops, and ``nx.Graph`` merges repeated edges (N = 2:
    one edge; N = 3: a triangle; N = 4, s = 3: a triangle plus one pendant edge).
    """

    name, interval = "dynamic", 1

    def __init__(self, seed: int = 0, group_size: int = 3):
        super().__init__(seed)
        if int(group_size) != group_size or group_size < 2:
            raise ValueError(f"group_size must be an integer ≥ 2, got {group_size}")
        self.group_size = int(group_size)

    def federations(self, t: int, nodes: list[int]) -> list[list[int]]:
        nodes = sorted(_node_list(nodes))
        perm = [nodes[k] for k in self._rng(t).permutation(len(nodes))]
        step = self.group_size - 1
        return [perm[s:s + self.group_size] for s in range(0, max(len(perm) - 1, 0), step)]

    def graph(self, t, nodes):
        nodes, g = self._start(t, nodes)
        for group in self.federations(t, nodes):
            _clique(g, group)
        return g


class ErdosRenyiSchedule(GraphSchedule):
    """A fresh G(N_p, p) each round, seeded by (seed, t); connected only with some probability (interval None)."""

    name, interval = "erdos_renyi", None

    def __init__(self, seed: int = 0, p: float = 0.3):
        super().__init__(seed)
        if not 0 <= p <= 1:
            raise ValueError(f"the edge probability p must be in [0, 1], got {p}")
        self.p = float(p)

    def graph(self, t, nodes):
        nodes, g = self._start(t, nodes)
        draw = nx.gnp_random_graph(len(nodes), self.p, seed=int(self._rng(t).integers(2**32)))
        g.add_edges_from((nodes[u], nodes[v]) for u, v in draw.edges())
        return g


class BConnectedSchedule(GraphSchedule):
    """Sparse graphs, each possibly disconnected, that are jointly connected over every B rounds.

    For a participation set N_p, a random spanning tree T of N_p (seeded by the seed and
    N_p) has its N_p − 1 edges shuffled and dealt into B parts P_0, …, P_{B−1}
    (edge k → P_{k mod B}). Round t shows P_{t mod B}, plus, with probability ``extra``,
    each other pair as a random edge drawn afresh (seeded by (seed, t)).

    Guarantee (Assumption 4 with this B): any B consecutive rounds t, …, t+B−1 have
    pairwise distinct residues mod B, hence all of them, so their union contains
    P_0 ∪ … ∪ P_{B−1} = T, which spans N_p: the union is connected. This holds for every
    window in which the participation set stays the same (T depends on N_p only).
    With B = 1 every round shows the whole tree.
    """

    name = "b_connected"
    interval: int  # B, set by the constructor

    def __init__(self, seed: int = 0, B: int = 3, extra: float = 0.0):
        super().__init__(seed)
        if int(B) != B or B < 1:
            raise ValueError(f"the interval B must be an integer ≥ 1, got {B}")
        if not 0 <= extra <= 1:
            raise ValueError(f"the extra-edge probability must be in [0, 1], got {extra}")
        self.interval, self.extra = int(B), float(extra)

    def parts(self, nodes: list[int]) -> list[list[tuple[int, int]]]:
        """The spanning tree of ``nodes`` dealt into B parts."""
        nodes = sorted(_node_list(nodes))
        rng = np.random.default_rng([self.seed, len(nodes), *nodes])
        order = [nodes[k] for k in rng.permutation(len(nodes))]
        # random recursive tree: each agent attaches to an earlier one
        edges = [(order[k], order[int(rng.integers(k))]) for k in range(1, len(order))]
        edges = [edges[k] for k in rng.permutation(len(edges))]
        return [edges[r::self.interval] for r in range(self.interval)]

    def graph(self, t, nodes):
        nodes, g = self._start(t, nodes)
        g.add_edges_from(self.parts(nodes)[t % self.interval])
        if self.extra > 0:
            rng = self._rng(t, 1)
            g.add_edges_from((u, v) for k, u in enumerate(nodes) for v in nodes[k + 1:] if rng.random() < self.extra)
        return g


class UserSchedule(GraphSchedule):
    """A user-supplied period of graphs G_1, …, G_L (repeated) and optional weights C_1, …, C_L.

    The schedule's agents are ``nodes`` (default: every node of every graph). At
    construction every matrix is checked against Assumption 5, with its nonzeros on its
    graph's edges (rows in the order of the schedule's agents), and the period against
    Assumption 4 (``check_schedule``, periodic); ``interval`` is the smallest B found,
    for the schedule's full set of agents (a smaller participation set keeps only the
    edges among its members, which may disconnect it).
    Without matrices, C_t is Metropolis on G_t restricted to the participation set;
    with them, the participation set must be the schedule's agents.
    """

    name = "user"

    def __init__(self, graphs: Sequence[nx.Graph], weights: Sequence[np.ndarray] | None = None,
                 nodes: Sequence[int] | None = None, seed: int = 0):
        super().__init__(seed)
        if not graphs:
            raise ValueError("a user schedule needs at least one graph")
        everyone = sorted({int(n) for g in graphs for n in g.nodes()})
        self.nodes = everyone if nodes is None else sorted(_node_list(nodes))
        unknown = sorted(set(everyone) - set(self.nodes))
        if unknown:
            raise ValueError(f"the graphs name agents {unknown} missing from the schedule's agents {self.nodes}")
        self.graphs = [union_graph([g], self.nodes) for g in graphs]
        self.matrices = None
        if weights is not None:
            if len(weights) != len(self.graphs):
                raise ValueError(f"{len(weights)} weight matrices for {len(self.graphs)} graphs; give one per graph")
            index = {n: k for k, n in enumerate(self.nodes)}
            self.matrices = []
            for step, (g, C) in enumerate(zip(self.graphs, weights), start=1):
                C = np.asarray(C, dtype=float)
                if C.shape != (len(self.nodes), len(self.nodes)):
                    raise GraphAssumptionError(f"Assumption 5 fails: weight matrix {step} has shape {C.shape}, "
                                               f"expected {(len(self.nodes),) * 2} for agents {self.nodes}")
                try:
                    check_weights(C, [(index[u], index[v]) for u, v in g.edges()])
                except GraphAssumptionError as err:
                    raise GraphAssumptionError(f"weight matrix {step} (rows = agents {self.nodes}): {err}") from None
                self.matrices.append(C)
        self.interval = check_schedule(self.graphs, self.nodes)

    def graph(self, t, nodes):
        nodes, _ = self._start(t, nodes)
        unknown = sorted(set(nodes) - set(self.nodes))
        if unknown:
            raise ValueError(f"the participation set names agents {unknown} unknown to the user schedule "
                             f"(its agents: {self.nodes})")
        return union_graph([self.graphs[(t - 1) % len(self.graphs)]], nodes)

    def sparse_weights(self, t, nodes, graph=None):
        if self.matrices is None:
            return super().sparse_weights(t, nodes, graph)
        return sparse.csr_array(self.weights(t, nodes))

    def weights(self, t, nodes):
        if self.matrices is None:
            return super().weights(t, nodes)
        nodes = _node_list(nodes)
        if set(nodes) != set(self.nodes):
            raise ValueError(f"the user weight matrices cover agents {self.nodes}, but the participation set is "
                             f"{sorted(nodes)}; supply graphs without weights to let Metropolis weights adapt")
        self._start(t, nodes)
        idx = [self.nodes.index(n) for n in nodes]
        return self.matrices[(t - 1) % len(self.matrices)][np.ix_(idx, idx)]


SCHEDULES: dict[str, type[GraphSchedule]] = {
    "complete": CompleteSchedule,
    "ring": RingSchedule,
    "fixed": FixedSchedule,
    "dynamic": DynamicSchedule,
    "erdos_renyi": ErdosRenyiSchedule,
    "b_connected": BConnectedSchedule,
}


def make_schedule(name: str, seed: int = 0, **kwargs) -> GraphSchedule:
    """The schedule called ``name`` (a key of SCHEDULES), e.g. make_schedule("b_connected", 0, B=4)."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown graph '{name}'; valid choices: {', '.join(SCHEDULES)}")
    return SCHEDULES[name](seed=seed, **kwargs)


def load_schedule(path: str | Path, seed: int = 0) -> UserSchedule:
    """Read a UserSchedule from JSON: one edge list per step of the period, optional weights.

    ``{"graphs": [[[0, 1], [1, 2]], [[2, 3]]], "weights": [C_1, C_2], "nodes": [0, 1, 2, 3]}``
    where ``weights`` (nested lists, rows in the order of the sorted agents) and ``nodes``
    (needed only for agents that appear in no edge) are optional.
    """
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("graphs"), list) or not spec["graphs"]:
        raise ValueError(f"{path}: expected an object with a non-empty list 'graphs' of edge lists")
    graphs = []
    for step, edges in enumerate(spec["graphs"], start=1):
        if not isinstance(edges, list) or not all(isinstance(e, list) and len(e) == 2 for e in edges):
            raise ValueError(f"{path}: graph {step} must be a list of edges [u, v]")
        bad = [e for e in edges if not all(_is_agent_id(x) for x in e)]
        if bad:
            raise ValueError(f"{path}: graph {step} has edge {bad[0]}; an edge joins two agent ids (integers >= 0)")
        g = nx.Graph()
        g.add_edges_from((int(u), int(v)) for u, v in edges)
        graphs.append(g)
    nodes = spec.get("nodes")
    if nodes is not None and (not isinstance(nodes, list) or not all(_is_agent_id(x) for x in nodes)):
        raise ValueError(f"{path}: 'nodes' must be a list of agent ids (integers >= 0), got {nodes!r}")
    weights = spec.get("weights")
    if weights is not None:
        try:
            arrays = [np.asarray(w, dtype=float) for w in weights]
        except (TypeError, ValueError):
            raise ValueError(f"{path}: 'weights' must be a list of square matrices of numbers") from None
        if not all(a.ndim == 2 and np.isfinite(a).all() for a in arrays):
            raise ValueError(f"{path}: 'weights' must be a list of square matrices of finite numbers")
    return UserSchedule(graphs, weights, nodes, seed=seed)


def _is_agent_id(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0
