"""Consensus weights (Assumption 5), graph schedules (Assumption 4) and parameter exchange."""

import json

import networkx as nx
import numpy as np
import pytest

from strategies.graphs import (SCHEDULES, GraphAssumptionError, UserSchedule, check_schedule, check_weights,
                               consensus_gap, interval_bound, load_schedule, make_schedule, metropolis_weights, mix)


def _graph(edges, nodes=None):
    g = nx.Graph()
    g.add_nodes_from(nodes or [])
    g.add_edges_from(edges)
    return g


# ------------------------------------------------------------------ Metropolis weights
def test_metropolis_path_by_hand():
    C = metropolis_weights(_graph([(0, 1), (1, 2)]), [0, 1, 2])
    # degrees (1, 2, 1): c01 = c12 = 1/(1+2), c00 = c22 = 1 - 1/3, c11 = 1 - 2/3
    np.testing.assert_allclose(C, [[2 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3], [0, 1 / 3, 2 / 3]], atol=1e-15)
    assert check_weights(C, [(0, 1), (1, 2)]) == pytest.approx(1 / 3)


def test_metropolis_follows_node_order_and_ignores_outsiders():
    g = _graph([(7, 4), (4, 1), (4, 99)])  # 99 is not participating
    C = metropolis_weights(g, [7, 4, 1])
    np.testing.assert_allclose(C, [[2 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3], [0, 1 / 3, 2 / 3]], atol=1e-15)


@pytest.mark.parametrize("graph", [nx.cycle_graph(7), nx.complete_graph(6), nx.star_graph(8),
                                   nx.gnp_random_graph(12, 0.3, seed=1), nx.path_graph(2), nx.empty_graph(3)])
def test_metropolis_satisfies_assumption_5(graph):
    nodes = sorted(graph.nodes())
    C = metropolis_weights(graph, nodes)
    np.testing.assert_allclose(C.sum(axis=0), 1, atol=1e-12)
    np.testing.assert_allclose(C.sum(axis=1), 1, atol=1e-12)
    eps = check_weights(C, graph.edges())
    d_max = max(dict(graph.degree()).values())
    assert eps >= 1 / (1 + d_max) - 1e-12 and eps >= 1 / len(nodes) - 1e-12
    assert all(C[i, i] >= eps for i in range(len(nodes)))


# ------------------------------------------------------------------ Assumption 5 errors
@pytest.mark.parametrize("C, edges, problem", [
    ([[0.5, 0.3], [0.5, 0.7]], None, "row 0 of the weight matrix sums to 0.8, not 1"),
    ([[0.5, 0.5], [0.4, 0.6]], None, "column 0"),
    ([[1.1, -0.1], [-0.1, 1.1]], None, "negative"),
    ([[0.0, 1.0], [1.0, 0.0]], None, "c(0,0) = 0"),
    ([[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 0, 1]], [(1, 2)], "(0,1) is not an edge"),
    ([[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 0, 1]], [(0, 1), (1, 2)], "(1,2) is an edge"),
    ([[1, 0, 0], [0, 1, 0]], None, "square"),
])
def test_invalid_weights_name_assumption_5(C, edges, problem):
    with pytest.raises(GraphAssumptionError, match="Assumption 5 fails") as err:
        check_weights(np.array(C, dtype=float), edges)
    assert problem in str(err.value)


def test_required_eps():
    C = np.array([[0.95, 0.05], [0.05, 0.95]])
    assert check_weights(C) == pytest.approx(0.05)
    with pytest.raises(GraphAssumptionError, match=r"below ε = 0.1"):
        check_weights(C, eps=0.1)


# ------------------------------------------------------------------ Assumption 4
def test_interval_bound_by_hand():
    nodes = [0, 1, 2]
    alternating = [_graph([(0, 1)], nodes), _graph([(1, 2)], nodes)]
    assert interval_bound(alternating, nodes) == 2
    assert interval_bound([nx.path_graph(3)], nodes) == 1
    assert interval_bound([_graph([(0, 1)], nodes)] * 4, nodes) is None
    # periodic windows wrap: [a, ∅, b] needs a window from b to a, of size 2 ... but a..b needs 3
    gap = [_graph([(0, 1)], nodes), _graph([], nodes), _graph([(1, 2)], nodes)]
    assert interval_bound(gap, nodes) == 3
    # a finite record only counts windows inside it
    assert interval_bound(gap + gap[:1], nodes, periodic=False) == 3
    assert interval_bound([_graph([], nodes), nx.path_graph(3)], nodes, periodic=False) == 2


def test_disconnected_schedule_names_assumption_4_and_window():
    nodes = [0, 1, 2]
    graphs = [_graph([(0, 1)], nodes), _graph([(1, 2)], nodes), _graph([(0, 1)], nodes), _graph([], nodes)]
    assert check_schedule(graphs, nodes) == 4  # periodic: rounds 3, 4, 1, 2
    with pytest.raises(GraphAssumptionError, match=r"Assumption 4 fails.*rounds 3..4.*B = 2.*\[\[0, 1\], \[2\]\]"):
        check_schedule(graphs, nodes, B=2)
    with pytest.raises(GraphAssumptionError, match=r"Assumption 4 fails: even the union.*\[\[0, 1\], \[2\]\]"):
        check_schedule([_graph([(0, 1)], nodes)], nodes)


# ------------------------------------------------------------------ consensus by parameter exchange
def _exchange(schedule, nodes, rounds, thetas):
    mean = thetas.mean(axis=0)
    for t in range(1, rounds + 1):
        thetas = mix(schedule.weights(t, nodes), thetas)
        np.testing.assert_allclose(thetas.mean(axis=0), mean, atol=1e-12)  # 1ᵀC = 1ᵀ keeps θ̄
    return thetas


def test_consensus_gap_by_hand():
    assert consensus_gap(np.array([[0.0, 0.0], [2.0, 0.0]])) == pytest.approx(1.0)
    assert consensus_gap(np.ones((4, 3))) == 0.0


@pytest.mark.parametrize("name, kwargs", [("b_connected", {"B": 3}), ("dynamic", {}), ("ring", {})])
def test_exchange_reaches_initial_average(name, kwargs):
    nodes = [2, 3, 5, 8, 9, 11, 13, 20]
    thetas = np.random.default_rng(0).normal(size=(len(nodes), 5))
    final = _exchange(make_schedule(name, 1, **kwargs), nodes, 300, thetas)
    assert consensus_gap(final) < 1e-10 * consensus_gap(thetas)
    np.testing.assert_allclose(final, np.broadcast_to(thetas.mean(axis=0), final.shape), atol=1e-5)


def test_fixed_federations_reach_only_their_own_average():
    nodes = list(range(6))
    thetas = np.random.default_rng(0).normal(size=(6, 4))
    thetas[3:] += 5.0  # the two federations start far apart
    final = _exchange(make_schedule("fixed", 0, k=2), nodes, 50, thetas)
    np.testing.assert_allclose(final[:3], np.broadcast_to(thetas[:3].mean(axis=0), (3, 4)), atol=1e-10)
    np.testing.assert_allclose(final[3:], np.broadcast_to(thetas[3:].mean(axis=0), (3, 4)), atol=1e-10)
    assert consensus_gap(final) > 1.0


# ------------------------------------------------------------------ schedules
@pytest.mark.parametrize("name", ["dynamic", "erdos_renyi", "b_connected"])
def test_random_schedules_are_reproducible_and_vary(name):
    nodes = list(range(8))
    edges = lambda s: [sorted(map(sorted, g.edges())) for g in s.sequence(nodes, 12)]
    first = edges(make_schedule(name, 3))
    assert first == edges(make_schedule(name, 3))
    assert first != edges(make_schedule(name, 4))
    assert len({str(e) for e in first}) > 1


@pytest.mark.parametrize("n", [2, 3, 5, 10])
@pytest.mark.parametrize("B", [1, 3, 4])
def test_b_connected_keeps_its_interval(n, B):
    nodes = list(range(10, 10 + 2 * n, 2))
    schedule = make_schedule("b_connected", 7, B=B)
    graphs = schedule.sequence(nodes, 50)
    assert schedule.interval == B
    assert check_schedule(graphs, nodes, B, periodic=False) == B
    assert interval_bound(graphs, nodes, periodic=False) <= B
    if n > B:  # every tree edge appears once per B rounds, so no single round is the whole tree
        assert interval_bound(graphs, nodes, periodic=False) == B
    assert all(g.number_of_edges() <= -(-(n - 1) // B) for g in graphs)


def test_b_connected_extra_edges_keep_the_guarantee():
    nodes = list(range(10))
    graphs = make_schedule("b_connected", 0, B=4, extra=0.05).sequence(nodes, 40)
    assert check_schedule(graphs, nodes, 4, periodic=False) == 4


@pytest.mark.parametrize("n", [2, 3, 4, 7])
def test_dynamic_federations_overlap_without_loops(n):
    schedule = make_schedule("dynamic", 0, group_size=3)
    nodes = list(range(n))
    for t in range(1, 20):
        g = schedule.graph(t, nodes)
        assert nx.number_of_selfloops(g) == 0 and nx.is_connected(g)
        groups = schedule.federations(t, nodes)
        assert all(len(set(grp)) == len(grp) >= 2 for grp in groups)
        assert all(len(set(a) & set(b)) == 1 for a, b in zip(groups, groups[1:]))
    assert make_schedule("dynamic", 0).graph(1, [0, 1, 2, 3]).number_of_edges() == 4  # triangle + one edge


def test_small_graphs_by_hand():
    assert sorted(make_schedule("ring", 0).graph(1, [4, 1]).edges()) == [(1, 4)]
    assert sorted(map(sorted, make_schedule("ring", 0).graph(1, [7, 1, 4]).edges())) == [[1, 4], [1, 7], [4, 7]]
    assert make_schedule("fixed", 0, k=2).graph(1, [1, 4, 7, 9]).edges() == _graph([(1, 4), (7, 9)]).edges()
    fixed = make_schedule("fixed", 0, k=2, agents=6)  # federations {0,1,2} and {3,4,5} stay put
    assert sorted(fixed.graph(5, [0, 2, 3, 5]).edges()) == [(0, 2), (3, 5)]


@pytest.mark.parametrize("name", SCHEDULES)
def test_every_schedule_handles_small_and_changing_participation(name):
    schedule = make_schedule(name, 0)
    for t, nodes in enumerate([[5], [1, 4], [1, 4, 7], [7, 4, 1, 9], [3]], start=1):
        g = schedule.graph(t, nodes)
        assert sorted(g.nodes()) == sorted(nodes)
        C = schedule.weights(t, nodes)
        assert C.shape == (len(nodes), len(nodes))
        index = {n: k for k, n in enumerate(nodes)}
        check_weights(C, [(index[u], index[v]) for u, v in g.edges()])
    assert schedule.interval == {"fixed": None, "erdos_renyi": None, "b_connected": 3}.get(name, 1)


def test_unknown_schedule():
    with pytest.raises(ValueError, match="unknown graph 'star'; valid choices: complete, ring, fixed"):
        make_schedule("star", 0)


# ------------------------------------------------------------------ user schedules
def test_user_schedule_validates_both_assumptions():
    a, b = _graph([(0, 1)], [0, 1, 2]), _graph([(1, 2)], [0, 1, 2])
    half = np.array([[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 0, 1]])
    schedule = UserSchedule([a, b], [half, half[::-1, ::-1]])
    assert schedule.interval == 2
    np.testing.assert_allclose(schedule.weights(3, [0, 1, 2]), half)
    np.testing.assert_allclose(schedule.weights(2, [2, 1, 0]), half)  # rows follow the given order
    with pytest.raises(ValueError, match="participation set"):
        schedule.weights(1, [0, 1])
    with pytest.raises(GraphAssumptionError, match=r"weight matrix 2 .*Assumption 5 fails.*not an edge"):
        UserSchedule([a, b], [half, half])
    with pytest.raises(GraphAssumptionError, match="Assumption 4 fails"):
        UserSchedule([a, a])


def test_load_schedule(tmp_path):
    path = tmp_path / "graphs.json"
    path.write_text(json.dumps({"graphs": [[[0, 1]], [[1, 2], [2, 3]]]}))
    schedule = load_schedule(path, seed=0)
    assert schedule.nodes == [0, 1, 2, 3] and schedule.interval == 2
    assert sorted(schedule.graph(3, [0, 1, 2, 3]).edges()) == [(0, 1)]
    path.write_text(json.dumps({"graphs": [[[0, 1]], [[2, 3]]]}))
    with pytest.raises(GraphAssumptionError, match=r"Assumption 4.*\[\[0, 1\], \[2, 3\]\]"):
        load_schedule(path, seed=0)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_schedule(path, seed=0)
