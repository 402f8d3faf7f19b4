"""The round loop's handling of replies: crashed and silent agents are survivable events."""

import numpy as np
from conftest import actor, world
from flwr.app import ConfigRecord, MetricRecord, RecordDict

import envs
from clients.networks import flat, to_record
from federation.results import RunRecorder
from federation.server_app import deliver
from strategies.independent import Independent
from strategies.participation import Participation


class Meta:
    def __init__(self, node, reply_to=""):
        self.src_node_id, self.reply_to_message_id = node, reply_to


class Error:
    reason = "ValueError: boom"


class Reply:
    def __init__(self, node, content=None):
        self.metadata, self.content, self._error = Meta(node), content, content is None
        self.error = Error()

    def has_error(self):
        return self._error


def test_crashed_and_silent_agents_are_recorded_and_keep_their_policy(tmp_path):
    game = envs.make_batched("matthew", 3, batch_size=1, episode_length=5)
    init = to_record(actor(seed=0))
    w = world(game, seed=0)
    new = to_record(actor(seed=1))
    spec = ConfigRecord({"learner": "ppo", "kind": "softmax", "epsilon": 0.0})
    strategy = Independent(Participation.parse("voluntary", "fixed", 3), 0)
    recorder = RunRecorder(tmp_path, "{}")
    ok = Reply(10, RecordDict({"acting": new, "acting-spec": spec, "metrics": MetricRecord({"train_s": 1.0, "join-next": 0.0})}))
    replies = [ok, Reply(11)]  # agent 1 crashed, agent 2 never answered
    stats = deliver(4, replies, w, strategy, {10: 0, 11: 1, 12: 2}, recorder, timeout=60)

    assert stats == [{"train_s": 1.0, "join-next": 0.0}]
    assert "acting" not in ok.content  # the strategy never sees acting weights
    kinds = [(e["round"], e["kind"]) for e in recorder.events]
    assert kinds == [(4, "agent_error"), (4, "agent_timeout")]
    assert "agent 1: ValueError: boom" in recorder.events[0]["detail"]
    acting = w.flat_policies([0, 1, 2])
    expected_new, expected_init = flat(new), flat(init)
    np.testing.assert_allclose(acting[0], expected_new, rtol=1e-6)
    np.testing.assert_allclose(acting[1], expected_init, rtol=1e-6)  # keeps its last policy
    np.testing.assert_allclose(acting[2], expected_init, rtol=1e-6)
    assert np.sum(acting ** 2) > 0 and not np.allclose(expected_new, expected_init)


def test_a_round_where_no_agent_trained_stops_the_run_saying_why_in_one_line(tiny):
    import pytest

    from flwr.supercore.task_identity import TaskIdentity

    from federation.server_app import Federation, NoAgentTrained

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1  # as in a ServerApp
    fed = Federation(tiny)
    fed.bind({0: 10, 1: 11, 2: 12})
    traceback = "\x1b[31mTraceback (most recent call last):\n  File \"x.py\", line 1\nValueError: lambda is inf\x1b[0m"

    class Crashed(Reply):
        def __init__(self, node):
            super().__init__(node)
            self.error = type("E", (), {"reason": traceback})()

    with pytest.raises(NoAgentTrained) as err:
        fed.play(1, lambda messages: [Crashed(10), Crashed(11)])  # agent 2 silent
    assert str(err.value) == ("round 1: no agent trained (3 failed or silent; first: agent 0: Traceback "
                              "(most recent call last): ... ValueError: lambda is inf)")
    assert "\x1b" not in fed.recorder.events[0]["detail"]  # colour codes are not kept
    TaskIdentity.run_id = TaskIdentity.node_id = TaskIdentity.task_id = None


def test_the_results_table_says_when_agents_failed():
    from federation.compare import format_summary

    ok = {"strategy": "fpf", "seed": 0, "collective_return_last": 1.0, "events": []}
    bad = {"strategy": "fpf", "seed": 1, "collective_return_last": 2.0,
           "events": [{"round": 3, "kind": "agent_error", "detail": "agent 2: boom"}] * 2}
    assert "Warning" not in format_summary([ok])
    assert "Warning: agents failed or stayed silent (events per run: fpf seed 1: 2)" in format_summary([ok, bad])


def test_an_error_the_superlink_writes_for_an_unreachable_node_is_the_agents(tmp_path):
    """The SuperLink answers for a dead node from its own node id; the reply names the
    message it answers, and that message's agent is the one recorded."""
    game = envs.make_batched("matthew", 2, batch_size=1, episode_length=5)
    w = world(game, seed=0)
    strategy = Independent(Participation.parse("0.0", "fixed", 2), 0)
    recorder = RunRecorder(tmp_path, "{}")
    unreachable = Reply(1)  # node 1: the SuperLink
    unreachable.metadata = Meta(1, reply_to="msg-of-agent-1")
    deliver(3, [unreachable], w, strategy, {10: 0, 11: 1}, recorder, timeout=60,
            sent={"msg-of-agent-0": 0, "msg-of-agent-1": 1})
    assert [(e["kind"], e["detail"][:8]) for e in recorder.events] == [("agent_error", "agent 1:"),
                                                                       ("agent_timeout", "agent 0 ")]


def test_agents_metric_means_do_not_depend_on_reply_order():
    """Replies arrive in any order (Flower vs in-process); the row must be the same to the bit."""
    from types import SimpleNamespace

    from federation.server_app import round_row

    rollout = SimpleNamespace(returns=np.array([1.0, 2.0, 3.0]), agent_steps=60, mediator_metrics=dict)
    # 0.1 + 0.2 + 0.3 rounds differently from 0.3 + 0.2 + 0.1 in float64
    stats = [{"update_norm": v, "client_s": 0.0} for v in (0.1, 0.2, 0.3)]
    assert (0.1 + 0.2) + 0.3 != (0.3 + 0.2) + 0.1
    timings = {"exchange_s": 0.0}
    rows = [round_row(1, rollout, None, frozenset(), order, timings, 3) for order in (stats, stats[::-1])]
    assert rows[0]["agents_update_norm"] == rows[1]["agents_update_norm"]
    assert abs(rows[0]["agents_update_norm"] - 0.2) < 1e-15


def test_every_numeric_metric_the_agents_report_is_averaged_but_the_bookkeeping():
    from types import SimpleNamespace

    from federation.server_app import BOOKKEEPING, round_row

    rollout = SimpleNamespace(returns=np.array([1.0, 2.0]), agent_steps=40, mediator_metrics=dict)
    stats = [{"foo": 1.0, "train_s": 2.0, "client_s": 3.0, "pid": 7.0, "join-next": 1.0, "fresh-start": 0.0,
              "num-examples": 40.0, "hist": [1.0, 2.0]},
             {"foo": 4, "bar": 0.5, "resting": 1.0, "train_s": 0.0}]
    row = round_row(1, rollout, None, frozenset(), stats, {"exchange_s": 0.0}, 2)
    assert row["agents_foo"] == 2.5 and row["agents_bar"] == 0.5  # over the agents that report it
    assert not {f"agents_{k}" for k in BOOKKEEPING} & set(row) and "agents_hist" not in row
    assert row["train_s"] == 2.0 and row["client_s"] == 3.0


def test_a_new_learner_metric_becomes_an_agents_column(tiny, monkeypatch):
    """A learner that reports ``foo`` (here PPO with one more diagnostic) gets ``agents_foo``
    in metrics.csv, the mean over the agents, with no change to the round loop."""
    import csv

    from clients.ppo import PPOLearner
    from federation.in_process import run_in_process

    original = PPOLearner.train

    def train(self, exp, anchors, seed):
        return original(self, exp, anchors, seed) | {"foo": float(self.agent_id)}

    monkeypatch.setattr(PPOLearner, "train", train)
    original_init = PPOLearner.__init__

    def init(self, space, num_actions, cfg, net, seed, agent):
        original_init(self, space, num_actions, cfg, net, seed, agent)
        self.agent_id = agent

    monkeypatch.setattr(PPOLearner, "__init__", init)
    run_in_process(tiny.replace(strategy="independent"), checkpoints=False)
    with open(f"{tiny.out}/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["agents_foo"]) for r in rows] == [1.0, 1.0]  # agents 0, 1, 2
