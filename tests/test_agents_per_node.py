"""Several agents per Flower node (--agents-per-node K, a SuperNode's agent-ids).

The round loop runs against a grid of nodes in this process (``LocalGrid``: every
message goes to the ClientApp's own ``hello``/``train`` with its node's context, as
Flower's simulation hands them over), so K nodes' worth of agents can be compared with
one node each in seconds; one simulation and one local deployment check the same with
Flower's transport.

Tolerance of K > 1 against K = 1: a node of several agents trains them stacked, and each
stacked update equals the one-by-one update within 1e-5 (tests/test_stacked_training.py);
what differs is the order of float reductions, ~1e-7 relative per update. Over three
rounds such differences move the agents' sampling probabilities by ~1e-6, which changes
an action only when a uniform draw falls within ~1e-6 of a boundary, so the returns are
equal and the learners' diagnostics agree to ~1e-6 relative; 1e-4 relative (1e-6
absolute) leaves two orders of margin and still catches a wrong agent's experience or a
lost update, which change them at the first digits.
"""

import csv
import math

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Error, Message, MessageType, RecordDict
from flwr.supercore.task_identity import TaskIdentity

import run_sim
from clients import client_app, protocol
from clients.ppo import PPOLearner
from federation.agents import AgentDiscoveryError, discover_agents
from federation.config import ConfigError, RunConfig
from federation.in_process import run_in_process
from federation.server_app import Federation, run_federation

TIMING = {"rollout_s", "train_s", "client_s", "busiest_s", "aggregate_s", "flower_s", "exchange_s", "round_s",
          "agents_train_s"}
RTOL, ATOL = 1e-4, 1e-6


class LocalGrid:
    """Flower's Grid for nodes in this process: each message goes to the ClientApp's
    handler with its node's context (an exception becomes an error reply, as in Flower);
    ``received`` keeps every message each node got, ``answered`` every reply it sent."""

    def __init__(self, node_configs: list[dict]):
        # node ids far from the small numbers the loop gives agents as addresses
        self.contexts = {7919 * (i + 1): Context(run_id=1, node_id=7919 * (i + 1), node_config=dict(c),
                                                 state=RecordDict(), run_config={})
                         for i, c in enumerate(node_configs)}
        self.received: dict[int, list[Message]] = {}
        self.answered: dict[int, list[Message]] = {}
        self.count = 0
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1

    def get_node_ids(self):
        return list(self.contexts)

    def push_messages(self, messages):
        self._pending = getattr(self, "_pending", []) + self.send_and_receive(messages)
        return [m.metadata.message_id for m in messages]

    def pull_messages(self, message_ids):
        ids = set(message_ids)
        got = [r for r in self._pending if r.metadata.reply_to_message_id in ids]
        self._pending = [r for r in self._pending if r.metadata.reply_to_message_id not in ids]
        return got

    def send_and_receive(self, messages, timeout=None):
        replies = []
        for msg in messages:
            self.count += 1
            msg.metadata.__dict__["_message_id"] = f"message-{self.count}"  # as Flower's in-memory grid does
            node = msg.metadata.dst_node_id
            self.received.setdefault(node, []).append(msg)
            handler = client_app.hello if msg.metadata.message_type == MessageType.QUERY else client_app.train
            try:
                reply = handler(msg, self.contexts[node])
            except Exception as err:  # noqa: BLE001 - Flower answers with an error reply
                reply = Message(Error(1, f"{type(err).__name__}: {err}"), reply_to=msg)
            self.answered.setdefault(node, []).append(reply)
            replies.append(reply)
        return replies


def simulated_nodes(agents: int, per_node: int) -> list[dict]:
    """The node configs of Flower's simulation runtime: a partition id each."""
    return [{"partition-id": p, "num-partitions": math.ceil(agents / per_node)}
            for p in range(math.ceil(agents / per_node))]


def small(tmp_path, name: str, **kw) -> RunConfig:
    values = dict(agents=4, rounds=3, batch=2, steps=20, hidden=16, ppo_minibatch=64, fed_batch=64, fed_updates=2,
                  ppo_epochs=2, out=str(tmp_path / name), progress=False, storage_dir=str(tmp_path / name / "agents")) | kw
    return RunConfig.of(**values).validated()


def read_rows(out):
    with open(f"{out}/metrics.csv") as f:
        return [{k: float(v) for k, v in r.items() if k not in TIMING and v != ""} for r in csv.DictReader(f)]


def run_local(cfg: RunConfig, nodes: list[dict] | None = None) -> tuple[list[dict], LocalGrid]:
    grid = LocalGrid(simulated_nodes(cfg.agents, cfg.execution.agents_per_node) if nodes is None else nodes)
    summary = run_federation(grid, cfg)
    assert summary["rounds_completed"] == cfg.rounds and summary["events"] == []
    return read_rows(cfg.out), grid


def assert_close(rows, reference):
    assert len(rows) == len(reference)
    for row, ref in zip(rows, reference):
        assert set(row) == set(ref)
        for key, value in ref.items():
            assert row[key] == pytest.approx(value, rel=RTOL, abs=ATOL, nan_ok=True), key


def digits(rows):
    """The rows as text, so that two runs compare to the last digit (NaN equal to NaN)."""
    return [{k: repr(v) for k, v in r.items()} for r in rows]


# ---------------------------------------------------------------- the node's agents and the packing


def test_agent_ids_of_a_node():
    assert protocol.parse_agent_ids("0-4") == [0, 1, 2, 3, 4]
    assert protocol.parse_agent_ids("0-2, 7") == [0, 1, 2, 7]
    assert protocol.parse_agent_ids(3) == [3]
    assert protocol.node_agent_ids({"agent-ids": "5-6", "storage-dir": "/x"}) == [5, 6]
    assert protocol.node_agent_ids({"agent-id": 2}) == [2]
    # a simulated node: partition p holds agents pK .. min(pK + K, N) - 1; the last may hold fewer
    assert protocol.node_agent_ids({"partition-id": 0}, num_agents=4, per_node=3) == [0, 1, 2]
    assert protocol.node_agent_ids({"partition-id": 1}, num_agents=4, per_node=3) == [3]
    assert protocol.node_agent_ids({"partition-id": 1}) == [1]
    for bad, why in [("a", "must list agent ids"), ("3-1", "must list agent ids"), ("1,1", "twice"),
                     ("-2", "negative"), ("", "must list agent ids")]:
        with pytest.raises(ValueError, match=why):
            protocol.parse_agent_ids(bad)
    with pytest.raises(ValueError, match="both agent-id and agent-ids"):
        protocol.node_agent_ids({"agent-id": 0, "agent-ids": "0-1"})
    with pytest.raises(ValueError, match="has no agent"):
        protocol.node_agent_ids({"storage-dir": "/x"})


def test_pack_keeps_each_agents_records_apart():
    contents = {3: RecordDict({protocol.CONFIG: ConfigRecord({"agent-id": 3})}),
                5: RecordDict({protocol.CONFIG: ConfigRecord({"agent-id": 5}), protocol.ATTACK: ConfigRecord({"k": 1})})}
    packed = protocol.pack(contents, {"stacked": "auto"})
    assert sorted(packed.keys()) == ["3/config", "5/attack", "5/config", "agents"]
    header, back = protocol.unpack(packed)
    assert header["agent-ids"] == [3, 5] and header["stacked"] == "auto"
    assert list(back) == [3, 5]
    assert back[3][protocol.CONFIG]["agent-id"] == 3 and protocol.ATTACK not in back[3]
    assert back[5][protocol.ATTACK]["k"] == 1
    assert protocol.unpack(contents[3]) is None  # a message of one agent
    packed["4/config"] = ConfigRecord({"agent-id": 4})  # a record of an agent the header does not name
    with pytest.raises(ValueError, match="no agent it names"):
        protocol.unpack(packed)


# ---------------------------------------------------------------- bad input


def test_agents_per_node_below_one_is_refused(tmp_path, capsys):
    with pytest.raises(ConfigError, match="agents-per-node"):
        RunConfig.of(agents_per_node=0, out=str(tmp_path / "a")).validated()
    code = run_sim.main(["--agents-per-node", "0", "--rounds", "1", "--out", str(tmp_path / "b"), "--no-progress"])
    assert code == 2
    assert "agents-per-node" in capsys.readouterr().err
    assert not (tmp_path / "b" / "metrics.csv").exists()


@pytest.mark.parametrize("nodes, why", [
    ([{"agent-ids": "0-1"}, {"agent-ids": "1-2"}], "agent 1 is played by two nodes"),
    ([{"agent-ids": "0-3"}], r"unknown \[3\]"),
    ([{"agent-ids": "0"}, {"agent-id": 1}, {"agent-ids": "x-2"}], "failed to identify itself.*must list agent ids"),
    ([{"agent-ids": "0-1"}], r"holding 2 of 3 agents \(missing 2\)"),
])
def test_discovery_refuses_overlapping_unknown_or_missing_agents(nodes, why):
    with pytest.raises(AgentDiscoveryError, match=why):
        discover_agents(LocalGrid(nodes), 3, timeout=0.3, poll=0.05)


def test_discovery_binds_each_agent_to_its_node():
    grid = LocalGrid([{"agent-ids": "2-3"}, {"agent-id": 1}, {"agent-ids": "0"}])
    found = discover_agents(grid, 4, timeout=5)
    first, second, third = grid.get_node_ids()
    assert found.nodes == {2: first, 3: first, 1: second, 0: third}
    assert found.packed == {first, third}  # these two answered with a list: their messages go packed


# ---------------------------------------------------------------- the same run with K agents per node


def test_k_agents_per_node_give_the_metrics_of_one_node_each(tmp_path, monkeypatch):
    """4 agents, 3 rounds: K=2 (two nodes of two) and K=3 (a node of three and a node of
    one) against K=1, within the tolerance above; K=2 twice gives identical metrics."""
    stacked_groups: list[int] = []
    original = PPOLearner.train_stacked.__func__

    def spy(cls, jobs):
        stacked_groups.append(len(jobs))
        return original(cls, jobs)

    monkeypatch.setattr(PPOLearner, "train_stacked", classmethod(spy))
    reference, grid1 = run_local(small(tmp_path, "k1", strategy="independent"))
    assert stacked_groups == [] and sorted(len(m) for m in grid1.received.values()) == [1 + 3] * 4  # hello, 3 rounds
    two, grid2 = run_local(small(tmp_path, "k2", strategy="independent", agents_per_node=2))
    assert stacked_groups == [2, 2] * 3  # each node trained its two agents in one pass, every round
    three, _ = run_local(small(tmp_path, "k3", strategy="independent", agents_per_node=3))
    assert stacked_groups[6:] == [3] * 3  # the last node's one agent trains alone
    again, _ = run_local(small(tmp_path, "k2-again", strategy="independent", agents_per_node=2))
    assert reference[0]["trained_agents"] == two[0]["trained_agents"] == three[0]["trained_agents"] == 4
    assert_close(two, reference)
    assert_close(three, reference)
    assert digits(again) == digits(two)  # the same seed, the same metrics, to the last digit
    # one train message per node and round, not per agent
    assert sorted(len(m) for m in grid2.received.values()) == [1 + 3, 1 + 3]
    # the learners' diagnostics were compared, not only the returns
    assert any(k.startswith("agents_") and "loss" in k for k in reference[0])


def test_a_node_receives_only_its_own_agents_experience_and_records(tmp_path, upload_spy):
    """FPF with agent 0 the only participant, two nodes of two agents: each node's
    message holds its agents' records and experience only, each reply its own agents'
    records only, and the strategy still sees one reply per agent, without acting
    weights, where agent 1's parameters (beside agent 0 on its node) never appear."""
    cfg = small(tmp_path, "fpf", participation="ids:0", agents_per_node=2, rounds=2)
    solo, solo_grid = run_local(small(tmp_path, "fpf-solo", participation="ids:0", rounds=2))
    upload_spy.acting.clear()
    upload_spy.seen.clear()
    _, grid = run_local(cfg)

    # what each agent alone received in round 1 (K = 1): its own experience
    own = {int(m.content[protocol.CONFIG]["agent-id"]): m.content
           for msgs in solo_grid.received.values() for m in msgs
           if m.metadata.message_type == MessageType.TRAIN and m.content[protocol.CONFIG]["server-round"] == 1}
    holders = {}
    for node, msgs in grid.received.items():
        ids = protocol.node_agent_ids(grid.contexts[node].node_config, 4, 2)
        holders[node] = ids
        train = [m for m in msgs if m.metadata.message_type == MessageType.TRAIN]
        assert len(train) == 2  # one a round
        for msg in train:
            header, contents = protocol.unpack(msg.content)
            assert sorted(contents) == ids and header["agent-ids"] == ids
            assert all(k == protocol.AGENTS or int(k.split("/")[0]) in ids for k in msg.content.keys())
            if contents[ids[0]][protocol.CONFIG]["server-round"] != 1:
                continue
            for agent in range(4):  # its agents' experience, and nobody else's
                mine = own[agent][protocol.EXPERIENCE]
                for content in contents.values():
                    same = all(np.array_equal(content[protocol.EXPERIENCE][k].numpy(), mine[k].numpy())
                               for k in mine.keys())
                    assert same == (agent in ids and content[protocol.CONFIG]["agent-id"] == agent)
        for reply in grid.answered[node][1:]:
            assert all(k == protocol.AGENTS or int(k.split("/")[0]) in ids for k in reply.content.keys())
    assert sorted(holders.values()) == [[0, 1], [2, 3]]

    assert len(upload_spy.seen) == 2
    for call in upload_spy.seen:
        assert len(call) == 4  # one reply per agent
        assert all(protocol.ACTING not in keys for keys, _ in call)
    shared = [a for call in upload_spy.seen for _, arrays in call for a in arrays]
    assert len(shared) == 2  # agent 0's upload, once a round
    for vec in shared:
        assert any(np.array_equal(vec, a) for a in upload_spy.acting[0])
        for other in (1, 2, 3):
            assert not any(np.array_equal(vec, a) for a in upload_spy.acting[other])
    assert [r["uploads"] for r in solo] == [1.0, 1.0]


def test_a_failed_node_fails_each_of_its_agents_and_only_those(tmp_path):
    """A node of agents 2 and 3 answers with an error in round 1 and not at all in round 2:
    both of its agents, and no other, are recorded as failed, each by its own id."""
    cfg = small(tmp_path, "faults", strategy="independent", agents_per_node=2, rounds=2, max_missed_rounds=2)
    grid = LocalGrid(simulated_nodes(4, 2))
    federation = Federation(cfg)
    found = discover_agents(grid, 4, timeout=5, per_node=2)
    federation.bind(found.nodes, found.packed)
    broken = federation.agent_node[2]
    assert federation.agent_node[3] == broken and federation.agent_node[0] != broken

    def exchange(messages):
        replies = grid.send_and_receive(messages)
        if rnd == 1:
            return [Message(Error(5, "the node's machine failed"), reply_to=m) if m.metadata.dst_node_id == broken
                    else r for m, r in zip(messages, replies)]
        return [r for m, r in zip(messages, replies) if m.metadata.dst_node_id != broken]

    for rnd in (1, 2):
        row = federation.play(rnd, exchange)
        assert row["trained_agents"] == 2 and row["failed_agents"] == 2
    events = [(e["round"], e["kind"], e["detail"].split(":")[0].split(" did")[0]) for e in federation.recorder.events]
    assert events == [(1, "agent_error", "agent 2"), (1, "agent_error", "agent 3"),
                      (2, "agent_timeout", "agent 2"), (2, "agent_timeout", "agent 3")]
    assert federation.missed == {2: [1, 2], 3: [1, 2]}


# ---------------------------------------------------------------- Flower's transport


def test_deployment_plan_names_each_supernodes_agents(tmp_path):
    from tools.deploy import make_plan

    plan = make_plan(tmp_path / "deploy", "10.0.0.5", ["10.0.0.10", "10.0.0.11"], agents_per_node=3)
    nodes = {s.machine: s.commands[0] for s in plan.steps if s.machine.startswith("node-")}
    assert 'agent-ids="0-2"' in nodes["node-0"] and 'agent-ids="3-5"' in nodes["node-1"]
    assert "agent-id=" not in " ".join(nodes.values())
    assert "agents=6 " in plan.steps[-1].commands[2]
    with pytest.raises(ValueError, match="at least 1"):
        make_plan(tmp_path / "other", "10.0.0.5", ["10.0.0.10"], agents_per_node=0)


@pytest.mark.slow
def test_simulation_with_agents_per_node(tmp_path):
    """Flower's simulation runtime with ceil(N/K) supernodes: K=3 (an uneven last node)
    against one agent per node within the tolerance above; K=3 twice gives identical
    metrics. One agent per node runs in-process, which gives a simulation's metrics
    (tests/test_simulation.py); K=2 is covered on the local grid above."""
    from federation.simulation import simulate

    runs = {}
    for name, k in [("k1", 1), ("k3", 3), ("k3-again", 3)]:
        cfg = small(tmp_path, name, strategy="independent", agents_per_node=k, rounds=2)
        summary = run_in_process(cfg) if k == 1 else simulate(cfg)
        assert summary["events"] == []
        runs[name] = read_rows(cfg.out)
    assert_close(runs["k3"], runs["k1"])
    assert digits(runs["k3-again"]) == digits(runs["k3"])


@pytest.mark.deployment
def test_local_deployment_with_two_agents_on_one_supernode(tmp_path):
    """One SuperNode started with agent-ids="0-1" plays both agents of a two-round run:
    both train every round and keep their learners in that SuperNode's storage."""
    from pathlib import Path

    from tools.local_deployment import LocalDeployment, is_alive

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "out"
    run_config = {"rounds": 2, "strategy": "independent", "agents": 2, "batch": 2, "out": str(out), "steps": 20,
                  "hidden": 32, "ppo-epochs": 1, "ppo-minibatch": 64, "progress": False}
    with LocalDeployment(root, num_agents=2, agents_per_node=2) as dep:
        assert dep.num_nodes == 1 and dep.agent_config(0) == 'agent-ids="0-1"'
        result = dep.run(run_config, timeout=900)
        pids = dep.pids
        stored = [(dep.storage_dir(0) / f"agent_{a}" / "learner.pt").is_file() for a in (0, 1)]
    assert result.returncode == 0
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["trained_agents"]) for r in rows] == [2.0, 2.0]
    assert stored == [True, True]
    assert [pid for pid in pids if is_alive(pid)] == []
