"""LMF: neighbour mixes (Eq. 13/14) at the strategy and at the agent, and gradient-mode privacy."""

import json

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

import clients.client_app as client_app
import run_sim
from federation.config import RunConfig
from conftest import FakeReply, actor, world

from clients import protocol
from clients.networks import flat, to_record
from clients.protocol import pack_experience
from federation.config import RunConfig
from federation.server_app import learner_config
from federation.simulation import simulate
from federation.world import World
from strategies.graphs import make_schedule
from strategies.lmf import LMF, neighbour_mix
from strategies.participation import Participation

import envs


def rec(**arrays):
    return ArrayRecord({k: Array(np.asarray(v, dtype=np.float32)) for k, v in arrays.items()})


def test_neighbour_mix_by_hand():
    C = np.array([[2 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3], [0, 1 / 3, 2 / 3]])  # Metropolis on the path 0-1-2
    shared = [rec(w=[3.0, 0.0]), rec(w=[0.0, 3.0]), rec(w=[6.0, 6.0])]
    out = neighbour_mix(C, shared)
    np.testing.assert_allclose(out[0]["w"], [2.0, 1.0])
    np.testing.assert_allclose(out[1]["w"], [3.0, 3.0])
    np.testing.assert_allclose(out[2]["w"], [4.0, 5.0])


def test_lmf_aggregate_gives_each_participant_its_own_mix():
    lmf = LMF(Participation.parse("1.0", "fixed", 3), 0, make_schedule("ring"), mode="gradients")
    lmf.bind({0: 10, 1: 11, 2: 12})
    # agents 0 and 2 share (agent 1 sends nothing): the ring over {0, 2} is one edge, C = 1/2
    replies = [FakeReply(10, {"shared": rec(w=[2.0])}), FakeReply(11, {}), FakeReply(12, {"shared": rec(w=[4.0])})]
    arrays, metrics = lmf.aggregate_train(1, replies)
    assert arrays is None and metrics["uploads"] == 2 and metrics["graph_edges"] == 1
    assert set(lmf.pending) == {0, 2}
    np.testing.assert_allclose(lmf.pending[0]["w"].numpy(), [3.0])
    expected = lmf.pending[2]
    assert lmf.instructions(2, 1, ArrayRecord())[1] == {"mix": expected}
    assert lmf.instructions(2, 1, ArrayRecord())[1] == {}  # a mix is delivered once
    assert lmf.instructions(1, 1, ArrayRecord())[1] == {}


@pytest.fixture
def identity():
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    yield
    TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = None


def _train(context, mode, share, mix=None, rnd=1, storage="/nonexistent", replace=None):
    game = envs.make_batched("matthew", 2, batch_size=2, episode_length=20)
    w = world(game)
    exp = w.rollout(1).experience(0)
    run = RunConfig.of(agents=2, hidden=8, layers=1, lr_actor=1e-2, lr_critic=1e-2, epochs=1, minibatch=20,
                       storage_dir=str(storage))
    cfg = {"server-round": rnd, "seed": 0, "agent-id": 0, "share": share, "lmf-mode": mode}
    content = RecordDict({"config": ConfigRecord(cfg), "learner": learner_config(run, w, "ppo"),
                          "experience": pack_experience(exp)})
    if mix is not None:
        content["mix"] = mix
    if replace is not None:
        content["replace"] = replace
    return client_app.train(Message(content, dst_node_id=1, message_type="train"), context).content


def _ctx(tmp_path):
    return Context(run_id=1, node_id=1, node_config={"agent-id": 0, "storage-dir": str(tmp_path)},
                   state=RecordDict(), run_config={})


def test_agent_applies_eq13_parameter_mix(identity, tmp_path):
    theta0 = to_record(actor())
    alone = _train(_ctx(tmp_path), "parameters", "parameters")
    delta = {k: alone["acting"][k].numpy() - theta0[k].numpy() for k in theta0}
    mix = rec(**{k: np.full_like(v.numpy(), 0.25) for k, v in theta0.items()})
    mixed = _train(_ctx(tmp_path), "parameters", "parameters", mix=mix)
    for k in theta0:  # θ_{t+1} = Σ_j c(i,j) θ_j + Δ_i
        np.testing.assert_allclose(mixed["acting"][k].numpy(), 0.25 + delta[k], atol=1e-6)
        np.testing.assert_allclose(mixed["shared"][k].numpy(), mixed["acting"][k].numpy())


def test_agent_in_gradient_mode_shares_only_its_update(identity, tmp_path):
    theta0 = to_record(actor())
    alone = _train(_ctx(tmp_path), "gradients", "parameters")  # same training, parameters kept
    out = _train(_ctx(tmp_path), "gradients", "gradients")
    for k in theta0:
        np.testing.assert_allclose(out["shared"][k].numpy(), alone["acting"][k].numpy() - theta0[k].numpy(), atol=1e-6)
        np.testing.assert_allclose(out["acting"][k].numpy(), theta0[k].numpy())  # update travels, comes back mixed
    ctx = _ctx(tmp_path)
    _train(ctx, "gradients", "gradients")
    mix = rec(**{k: np.full_like(v.numpy(), 0.5) for k, v in theta0.items()})
    nxt = _train(ctx, "gradients", "gradients", mix=mix, rnd=2)
    for k in theta0:  # θ_{t+1} = θ_t + Σ_j c(i,j) Δ_j, before this round's own update
        np.testing.assert_allclose(nxt["acting"][k].numpy(), theta0[k].numpy() + 0.5, atol=1e-6)


def test_agent_in_diffusion_mode_trains_from_the_mix(identity, tmp_path):
    theta0 = to_record(actor())
    mix = rec(**{k: np.full_like(v.numpy(), 0.25) for k, v in theta0.items()})
    diffused = _train(_ctx(tmp_path / "a"), "diffusion", "parameters", mix=mix)
    adopted = _train(_ctx(tmp_path / "b"), "", "parameters", replace=mix)  # FedAvg: adopt, then train
    own = _train(_ctx(tmp_path / "c"), "diffusion", "parameters")  # no mix yet: trains from its own θ
    for k in theta0:  # θ <- Σ_j c(i,j)θ̃_j, then the own step from there; shares θ̃_i
        np.testing.assert_array_equal(diffused["acting"][k].numpy(), adopted["acting"][k].numpy())
        np.testing.assert_array_equal(diffused["shared"][k].numpy(), diffused["acting"][k].numpy())
        assert not np.allclose(diffused["acting"][k].numpy(), own["acting"][k].numpy())


def test_diffusion_has_participants_act_with_their_mix_and_eq13_does_not():
    for mode, acts in (("diffusion", True), ("parameters", False)):
        lmf = LMF(Participation.parse("ids:0,2", "fixed", 3), 0, make_schedule("complete"), mode=mode)
        lmf.bind({0: 10, 1: 11, 2: 12})
        lmf.members = frozenset({0, 2})
        lmf.aggregate_train(1, [FakeReply(10, {"shared": rec(w=[2.0])}), FakeReply(12, {"shared": rec(w=[4.0])})])
        acting = lmf.acting_policies(ArrayRecord())
        assert lmf.share == "parameters"
        if acts:  # the participants' mixes (Metropolis on one edge: 1/2, 1/2); agent 1 acts with its own
            assert set(acting) == {0, 2}
            np.testing.assert_allclose(acting[0]["w"].numpy(), [3.0])
        else:
            assert acting == {}


def test_diffusion_on_a_complete_graph_is_fedavg(tmp_path):
    from federation.in_process import run_in_process
    import csv

    base = RunConfig.of(agents=3, rounds=3, batch=2, steps=20, hidden=16, minibatch=64, epochs=2, progress=False)
    curves = []
    for name, extra in (("fedavg", {"strategy": "fedavg"}),
                        ("diffusion", {"strategy": "lmf", "lmf_mode": "diffusion", "graph": "complete",
                                       "participation": "1.0"})):
        run_in_process(base.replace(out=str(tmp_path / name), **extra).validated())
        with open(tmp_path / name / "metrics.csv") as f:
            curves.append([[float(r[f"return_agent_{i}"]) for i in range(3)] for r in csv.DictReader(f)])
    # Metropolis weights on K3 are 1/3 each: the mix is the mean, adopted and played by all
    np.testing.assert_allclose(curves[0], curves[1], rtol=1e-5)


def test_gradient_mode_never_moves_parameters_between_agents(tiny, monkeypatch):
    acting, sent, seen = [], [], []
    original_set, original_cfg, original_agg = World.set_acting, LMF.configure_train, LMF.aggregate_train

    def spy_set(self, agent, record, spec=None):
        acting.append(flat(record))
        return original_set(self, agent, record, spec)

    def spy_cfg(self, *args, **kwargs):
        messages = list(original_cfg(self, *args, **kwargs))
        for m in messages:
            assert not {"omega", "omega-bar", "replace"} & set(m.content.keys())
            sent.extend(flat(v) for k, v in m.content.items() if k == protocol.MIX)
        return messages

    def spy_agg(self, server_round, replies):
        replies = list(replies)
        seen.extend(flat(v) for r in replies for k, v in r.content.items() if k != protocol.METRICS)
        return original_agg(self, server_round, replies)

    monkeypatch.setattr(World, "set_acting", spy_set)
    monkeypatch.setattr(LMF, "configure_train", spy_cfg)
    monkeypatch.setattr(LMF, "aggregate_train", spy_agg)
    simulate(tiny.replace(strategy="lmf", lmf_mode="gradients", graph="complete", participation="1.0", rounds=3))
    assert len(seen) == 3 * 3 and len(sent) == 2 * 3  # updates every round; mixes from round 2
    initial = flat(to_record(actor(hidden=tiny.net.hidden, layers=tiny.net.layers, seed=tiny.seed)))
    params = acting + [initial]
    for vec in seen + sent:
        assert not any(np.allclose(vec, p) for p in params)
        assert np.abs(vec).max() < 0.5 * np.abs(initial).max()  # updates are small, parameters are not


def test_parameter_mode_runs_and_reports_consensus(tiny):
    summary = simulate(tiny.replace(strategy="lmf", graph="ring", participation="1.0", rounds=3))
    rows = (tiny.out + "/metrics.csv")
    import csv
    with open(rows) as f:
        table = list(csv.DictReader(f))
    assert summary["rounds_completed"] == 3
    gaps = [float(r["consensus_gap"]) for r in table]
    assert all(g >= 0 for g in gaps) and gaps[0] > 0
    assert all(float(r["uploads"]) == 3 for r in table)


@pytest.mark.parametrize("spec, message", [
    ({"graphs": [[[0, 1]], [[1, 2]]], "weights": [[[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 0, 0.5]], None]},
     "Assumption 5 fails"),
    ({"graphs": [[[0, 1]], [[0, 1]]], "nodes": [0, 1, 2]}, "Assumption 4 fails"),
])
def test_invalid_user_graph_is_rejected_naming_the_assumption(tmp_path, capsys, spec, message):
    if spec.get("weights") and spec["weights"][1] is None:
        spec["weights"][1] = [[1, 0, 0], [0, 0.5, 0.5], [0, 0.5, 0.5]]
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(spec))
    code = run_sim.main(["--strategy", "lmf", "--agents", "3", "--graph-file", str(path), "--out", str(tmp_path / "o")])
    assert code == 2
    assert message in capsys.readouterr().err


def test_unknown_graph_and_mode_are_rejected(capsys):
    assert run_sim.main(["--strategy", "lmf", "--graph", "star"]) == 2
    assert ("--graph: unknown value 'star'; valid choices: b_connected, complete, dynamic, erdos_renyi, fixed, ring"
            in capsys.readouterr().err)
    assert run_sim.main(["--strategy", "lmf", "--lmf-mode", "votes"]) == 2
    assert "--lmf-mode: unknown value 'votes'; valid choices: parameters, gradients, diffusion" in capsys.readouterr().err


def test_graph_file_must_cover_every_participant(tmp_path, capsys):
    path = tmp_path / "graph.json"
    path.write_text(json.dumps({"graphs": [[[0, 1], [1, 2]]]}))  # agents 0-2 of 4
    common = ["--strategy", "lmf", "--agents", "4", "--graph-file", str(path), "--out", str(tmp_path / "o")]
    assert run_sim.main(common + ["--participation", "ids:0,1,3"]) == 2
    assert "has no vertex for agents [3], which participate" in capsys.readouterr().err
    assert run_sim.main(common + ["--participation", "voluntary"]) == 2
    assert "has no vertex for agents [3], which can join" in capsys.readouterr().err
    # the covered set passes validation
    assert RunConfig.of(strategy="lmf", agents=4, graph_file=str(path), participation="ids:0,1,2",
                        out=str(tmp_path / "o")).validated()


def test_graph_file_weights_need_exactly_the_schedules_agents(tmp_path, capsys):
    path = tmp_path / "graph.json"
    path.write_text(json.dumps({"graphs": [[[0, 1]]], "weights": [[[0.5, 0.5], [0.5, 0.5]]], "nodes": [0, 1]}))
    code = run_sim.main(["--strategy", "lmf", "--agents", "2", "--graph-file", str(path), "--participation",
                         "voluntary", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "the participation set must be exactly those agents every round" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--graph", "fixed", "--graph-k", "5"], "graph-k must be in [1, 4] (the number of agents) for graph fixed, got 5"),
    (["--graph", "dynamic", "--group-size", "6"], "group-size must be in [2, 4] (the number of agents) for graph dynamic"),
])
def test_graph_sizes_larger_than_the_population_are_rejected(tmp_path, capsys, args, message):
    assert run_sim.main(["--strategy", "lmf", "--agents", "4", *args, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------- [FPF Thm. 2]'s step schedule
def test_theorem2_schedule_check_names_the_broken_condition():
    from strategies.lmf import theorem2_violations

    constant = theorem2_violations(0.0)
    assert len(constant) == 1 and "β ∈ (1/2, 1)" in constant[0] and "constant steps" in constant[0]
    assert theorem2_violations(0.75) == []
    one = theorem2_violations(1.0)
    assert len(one) == 1 and "--lmf-beta 1 is outside" in one[0]
    assert len(theorem2_violations(0.5)) == 1  # the interval is open
    # α_0 < 1/N_p is necessary for α_0 < 1/(N_p(2C_L + 1)) whatever C_L > 0 is
    assert theorem2_violations(0.75, alpha0=1e-3, participants=5) == []
    big = theorem2_violations(0.75, alpha0=0.25, participants=5)
    assert len(big) == 1 and "1/N_p = 0.2" in big[0]
    assert len(theorem2_violations(0.0, alpha0=0.5, participants=2)) == 2


def test_step_schedule_values_by_hand():
    """α_t = α_0/t^β with α_0 = 1e-3, β = 0.75: t^0.75 = 1, 2^(3/4), 3^(3/4), 2^(3/2)."""
    from strategies.lmf import step_scale

    lmf = LMF(Participation.parse("1.0", "fixed", 3), 0, make_schedule("ring"), beta=0.75)
    hand = [1e-3, 1e-3 / 1.6817928305, 1e-3 / 2.2795070570, 1e-3 / 2.8284271247]
    got = [1e-3 * lmf.instructions(0, t, ArrayRecord())[0]["lr-scale"] for t in (1, 2, 3, 4)]
    np.testing.assert_allclose(got, hand, rtol=1e-9)
    assert [step_scale(t, 0.0) for t in (1, 2, 3, 4)] == [1.0] * 4


def test_runs_outside_theorem2_are_noted_and_recorded():
    from federation.server_app import _notes

    cfg = RunConfig.of(strategy="lmf", env="job", agents=3, participation="1.0", lmf_beta=0.0)
    notes = LMF.config_notes(cfg)
    assert len(notes) == 1 and "constant steps" in notes[0]
    assert notes[0] in _notes(cfg, [0, 1, 2])
    assert LMF.config_notes(cfg.replace(lmf_beta=0.75)) == []
    assert len(LMF.config_notes(cfg.replace(lmf_beta=1.0))) == 1
    from federation import presets

    preset = RunConfig.of(**presets.load("lmf-theorem2-harvest-3"))
    assert preset.lmf.beta == 0.75 and preset.lmf.mode == "parameters" and LMF.config_notes(preset) == []
