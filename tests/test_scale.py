"""Many agents: LMF's sparse consensus weights and mix, the consensus gap by blocks, and
the in-process runner's training in groups of agents with learners read from storage."""

import csv

import networkx as nx
import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord
from scipy import sparse

import strategies.lmf as lmf_module
from clients import client_app
from federation.config import RunConfig
from federation.in_process import run_in_process
from strategies.graphs import (GraphAssumptionError, check_weights, consensus_gap, make_schedule, metropolis_sparse,
                               metropolis_weights)
from strategies.lmf import neighbour_mix

THIRD = 1.0 / 3.0
#: Metropolis weights on the ring 0-1-2-3-0: every degree is 2, so each edge weighs 1/(1 + 2)
#: and each agent keeps 1 − 2/3
RING4 = np.array([[THIRD, THIRD, 0, THIRD], [THIRD, THIRD, THIRD, 0], [0, THIRD, THIRD, THIRD],
                  [THIRD, 0, THIRD, THIRD]])


def rec(**arrays):
    return ArrayRecord({k: Array(np.asarray(v, dtype=np.float32)) for k, v in arrays.items()})


def test_sparse_metropolis_weights_on_a_ring_of_four_by_hand():
    graph = make_schedule("ring").graph(1, [0, 1, 2, 3])
    C = metropolis_sparse(graph, [0, 1, 2, 3])
    assert sparse.issparse(C) and C.nnz == 4 + 2 * 4  # the diagonal and both directions of 4 edges
    np.testing.assert_allclose(C.toarray(), RING4, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(C.toarray(), metropolis_weights(graph, [0, 1, 2, 3]))
    assert make_schedule("ring").sparse_weights(1, [0, 1, 2, 3]).toarray().tolist() == C.toarray().tolist()


@pytest.mark.parametrize("dense_limit", [0, 1000])  # the sparse row sums, the dense product
def test_mix_on_a_ring_of_four_by_hand(monkeypatch, dense_limit):
    monkeypatch.setattr(lmf_module, "DENSE_MIX", dense_limit)
    shared = [rec(w=[1.0, 10.0]), rec(w=[2.0, 20.0]), rec(w=[3.0, 30.0]), rec(w=[4.0, 40.0])]
    out = neighbour_mix(metropolis_sparse(make_schedule("ring").graph(1, [0, 1, 2, 3]), [0, 1, 2, 3]), shared)
    # row i averages agent i and its two ring neighbours
    for i, want in enumerate([(1 + 2 + 4) / 3, (1 + 2 + 3) / 3, (2 + 3 + 4) / 3, (3 + 4 + 1) / 3]):
        np.testing.assert_allclose(out[i]["w"], [want, 10 * want], rtol=1e-15)
        assert out[i]["w"].dtype == np.float64
    # asked for float32, each row is the float64 sum rounded once
    single = neighbour_mix(metropolis_sparse(make_schedule("ring").graph(1, [0, 1, 2, 3]), [0, 1, 2, 3]), shared,
                           np.float32)
    for row, wide in zip(single, out):
        assert row["w"].dtype == np.float32
        np.testing.assert_array_equal(row["w"], wide["w"].astype(np.float32))


@pytest.mark.parametrize("seed", range(5))
def test_sparse_mix_equals_dense_mix_on_random_graphs(monkeypatch, seed):
    rng = np.random.default_rng(seed)
    nodes = sorted(rng.choice(100, size=30, replace=False).tolist())
    graph = make_schedule("erdos_renyi", seed=seed, p=0.2).graph(1, nodes)
    shared = [rec(a=rng.normal(size=(3, 4)), b=rng.normal(size=5)) for _ in nodes]
    dense_C, sparse_C = metropolis_weights(graph, nodes), metropolis_sparse(graph, nodes)
    np.testing.assert_allclose(sparse_C.toarray(), dense_C, rtol=0, atol=1e-15)
    index = {a: k for k, a in enumerate(nodes)}
    edges = [(index[u], index[v]) for u, v in graph.edges()]
    assert check_weights(sparse_C, edges) == pytest.approx(check_weights(dense_C, edges), abs=1e-15)
    dense = neighbour_mix(dense_C, shared)
    monkeypatch.setattr(lmf_module, "DENSE_MIX", 0)
    for mixed_sparse in (neighbour_mix(sparse_C, shared), neighbour_mix(dense_C, shared)):
        for a, b in zip(dense, mixed_sparse):
            for key in ("a", "b"):  # only the order of float64 additions differs
                np.testing.assert_allclose(b[key], a[key], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("C, edges", [
    (np.array([[0.5, 0.5, 0.0], [0.5, 0.4, 0.0], [0.0, 0.0, 1.0]]), None),  # row 1 sums to 0.9
    (np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]), [(1, 2)]),  # c(0,1) off the graph
    (np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]), [(0, 1), (1, 2)]),  # edge (1,2) unweighted
    (np.array([[0.0, 1.0], [1.0, 0.0]]), [(0, 1)]),  # no self-weight
    (np.array([[1.2, -0.2], [-0.2, 1.2]]), None),  # negative
])
def test_sparse_check_refuses_what_the_dense_check_refuses(C, edges):
    with pytest.raises(GraphAssumptionError) as dense_err:
        check_weights(C, edges)
    with pytest.raises(GraphAssumptionError) as sparse_err:
        check_weights(sparse.csr_array(C), edges)
    assert str(sparse_err.value) == str(dense_err.value)


def test_sparse_check_names_a_weight_below_the_required_epsilon():
    C = metropolis_sparse(nx.path_graph(4), [0, 1, 2, 3])  # edges 1/3, self-weights 2/3, 1/3, 1/3, 2/3
    assert check_weights(C) == pytest.approx(THIRD)
    with pytest.raises(GraphAssumptionError, match=r"c\(0,1\) = 0.333333 is below ε = 0.4"):
        check_weights(C, eps=0.4)


def test_consensus_gap_by_hand_and_by_blocks():
    assert consensus_gap(np.array([[0.0, 0.0], [2.0, 4.0]])) == pytest.approx(5.0)  # mean (1, 2); 5 each
    thetas = np.random.default_rng(0).normal(size=(700, 9))  # more rows than one block
    one_pass = float(np.mean(np.sum((thetas - thetas.mean(axis=0)) ** 2, axis=1)))
    assert consensus_gap(thetas) == one_pass  # the same sums, bit for bit


def _metrics(out):
    with open(out / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if not k.endswith("_s")} for row in csv.DictReader(f)]


@pytest.mark.parametrize("stacked", ["off", "auto"])
def test_in_process_groups_of_agents_give_the_same_run(tmp_path, stacked):
    """Agents trained in groups of 2, learners read back from storage every round, against
    all at once with learners kept in memory: the same metrics, digit for digit one by one;
    stacked, groups of other sizes sum in another order (clients/stacking.py: within 1e-5)."""
    rows = {}
    for chunk in (2, 256):
        cfg = RunConfig.of(env="matthew", agents=5, strategy="lmf", rounds=2, batch=2, steps=6, hidden=8,
                           progress=False, stacked=stacked, out=str(tmp_path / f"chunk{chunk}"))
        run_in_process(cfg, checkpoints=False, chunk=chunk)
        rows[chunk] = _metrics(tmp_path / f"chunk{chunk}")
        client_app.release_learners()
    assert len(rows[2]) == 2 and float(rows[2][0]["trained_agents"]) == 5
    if stacked == "off":
        assert rows[2] == rows[256]
        # the world took each group's acting weights as the group finished: the final
        # policies are the same, weight for weight
        grouped, whole = (torch.load(tmp_path / f"chunk{c}" / "policies.pt", weights_only=False) for c in (2, 256))
        assert len(grouped["policies"]) == 5
        for a, b in zip(grouped["policies"], whole["policies"]):
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    else:
        for grouped, whole in zip(rows[2], rows[256]):
            assert grouped.keys() == whole.keys()
            for key in grouped:
                assert float(grouped[key]) == pytest.approx(float(whole[key]), rel=1e-5, abs=1e-7), key


def test_release_learners_empties_the_cache(tmp_path):
    cfg = RunConfig.of(env="matthew", agents=3, strategy="lmf", rounds=1, batch=1, steps=3, hidden=4, progress=False,
                       out=str(tmp_path / "run"))
    client_app.release_learners()
    run_in_process(cfg, checkpoints=False)  # 3 agents, one group: their learners stay in memory
    assert client_app.release_learners() == 3
    assert client_app.release_learners() == 0
    with pytest.raises(ValueError, match="chunk must be at least 1"):
        run_in_process(cfg, chunk=0)


def test_run_sim_runs_in_process(tmp_path, capsys):
    import run_sim

    out = tmp_path / "run"
    assert run_sim.main(["--runner", "in-process", "--stacked", "auto", "--env", "matthew", "--agents", "3",
                         "--strategy", "lmf", "--rounds", "2", "--batch", "1", "--steps", "3", "--hidden", "4",
                         "--no-progress", "--out", str(out)]) == 0
    with open(out / "summary.json") as f:
        assert '"runner": "in-process"' in f.read()
    assert [row["round"] for row in _metrics(out)] == ["1", "2"]
    with pytest.raises(SystemExit) as exit_:
        run_sim.main(["--runner", "ray"])
    assert exit_.value.code == 2
    assert "invalid choice: 'ray'" in capsys.readouterr().err


def test_a_restored_learner_skips_the_orthogonal_initialisation_and_loads_the_same_state():
    """Built under clients.networks.restoring(), a learner's layers keep PyTorch's default
    initialisation (no QR decomposition: the weights are not orthogonal); loaded with a
    stored state it equals the learner built as usual and loaded with that state, tensor for
    tensor, and the global RNG is where it was (initialisation draws from a forked one)."""
    from gymnasium import spaces

    from clients import learners, networks
    from clients.networks import NetworkConfig
    from clients.ppo import PPOConfig

    space = spaces.Box(-1.0, 1.0, (6,), np.float32)
    source = learners.make("ppo", space, 3, PPOConfig(), NetworkConfig(hidden=16), seed=4, agent=1)
    stored = source.state_dict()
    torch.manual_seed(123)
    usual = learners.make("ppo", space, 3, PPOConfig(), NetworkConfig(hidden=16), seed=9, agent=1)
    after_usual = torch.rand(1)
    torch.manual_seed(123)
    with networks.restoring():
        quick = learners.make("ppo", space, 3, PPOConfig(), NetworkConfig(hidden=16), seed=9, agent=1)
    assert torch.equal(torch.rand(1), after_usual)
    w_usual, w_quick = usual.actor[0].weight.detach(), quick.actor[0].weight.detach()
    gram = lambda w: w @ w.T  # noqa: E731  rows of an orthogonal 16 x 6 matrix's transpose
    assert torch.allclose(gram(w_usual.T), 2.0 * torch.eye(6), atol=1e-5)  # gain sqrt(2)
    assert not torch.allclose(gram(w_quick.T), 2.0 * torch.eye(6), atol=1e-2)
    usual.load_state_dict(stored)
    quick.load_state_dict(stored)
    a, b = usual.state_dict(), quick.state_dict()
    for name in ("actor", "critic"):
        assert all(torch.equal(a[name][k], b[name][k]) for k in a[name])
    assert a["opt_actor"]["state"].keys() == b["opt_actor"]["state"].keys()
    assert not getattr(networks._BUILDING, "restoring", False)  # the context ends with the block
    # a DQN learner on images (the CNN), its target network included
    from clients.dqn import DQNConfig

    image = spaces.Box(0, 255, (8, 8, 3), np.uint8)
    source = learners.make("dqn", image, 4, DQNConfig(), NetworkConfig(hidden=16), seed=4, agent=2)
    with networks.restoring():
        quick = learners.make("dqn", image, 4, DQNConfig(), NetworkConfig(hidden=16), seed=9, agent=2)
    quick.load_state_dict(source.state_dict())
    a, b = source.state_dict(), quick.state_dict()
    tensors = [(k, v) for k, v in a.items() if isinstance(v, dict) and all(isinstance(t, torch.Tensor) for t in v.values())]
    assert len(tensors) >= 2  # the Q-network and its target
    for name, params in tensors:
        assert all(torch.equal(params[k], b[name][k]) for k in params), name


def test_checkpoint_arrays_travel_as_tensors_sharing_their_memory(tmp_path):
    """Federation.checkpoint writes numpy arrays as tensors over the same memory (no pickled
    copy of many agents' arrays); loading gives the arrays back, equal in dtype and value,
    and leaves what torch cannot share as it is."""
    from federation.server_app import NDARRAY, as_arrays, as_tensors

    frozen = np.arange(3.0)
    frozen.flags.writeable = False
    state = {"pending": {0: [np.arange(6, dtype=np.float32).reshape(2, 3), np.array(7, np.int64)]},
             "keys": ("a", np.array([True, False])), "objects": np.array(["x", None], dtype=object),
             "frozen": frozen, "big-endian": np.arange(4, dtype=">f4"), "tensor": torch.ones(2), "n": 3}
    wrapped = as_tensors(state)
    shared = wrapped["pending"][0][0][NDARRAY]
    assert isinstance(shared, torch.Tensor) and np.shares_memory(shared.numpy(), state["pending"][0][0])
    assert wrapped["objects"] is state["objects"] and wrapped["frozen"] is frozen
    assert wrapped["big-endian"] is state["big-endian"] and isinstance(wrapped["keys"], tuple)
    torch.save(wrapped, tmp_path / "state.pt")
    back = as_arrays(torch.load(tmp_path / "state.pt", weights_only=False))
    for got, want in ((back["pending"][0][0], state["pending"][0][0]), (back["pending"][0][1], state["pending"][0][1]),
                      (back["keys"][1], state["keys"][1])):
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(back["big-endian"], state["big-endian"])  # pickled as before
    assert back["objects"].tolist() == ["x", None] and torch.equal(back["tensor"], state["tensor"]) and back["n"] == 3
    assert as_arrays(state)["pending"][0][0] is state["pending"][0][0]  # a checkpoint written before: unchanged
