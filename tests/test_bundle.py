"""A message's arrays travel as one (clients.protocol.bundle_arrays): the same records come
back, and a message is a few Flower objects whatever its number of arrays."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects
from flwr.supercore.task_identity import TaskIdentity

from clients import protocol


def content() -> RecordDict:
    return RecordDict({
        "config": ConfigRecord({"agent-id": 3, "share": "parameters"}),
        "experience": ArrayRecord({
            "obs": Array(np.arange(6, dtype=np.float32).reshape(2, 3)),
            "scalar": Array(np.array(3.5)),  # 0-d
            "none": Array(np.zeros((0, 4), np.int64)),  # empty
            "mask": Array(np.array([True, False, True])),
            "pixels": Array(np.arange(24, dtype=np.uint8).reshape(2, 3, 4).transpose(2, 0, 1)),  # not contiguous
        }),
        "metrics": MetricRecord({"loss": 0.25}),
        "omega": ArrayRecord({"w": Array(np.array([[1.0, -2.0]], np.float64)), "b": Array(np.array([7], np.int32))}),
        "nothing": ArrayRecord(),
    })


def test_the_records_come_back_equal_in_their_order():
    before = content()
    after = protocol.unbundle_arrays(protocol.bundle_arrays(before))
    assert list(after.keys()) == list(before.keys())
    for key, rec in before.items():
        if not isinstance(rec, ArrayRecord):
            assert after[key] is rec  # config and metric records travel as they are
            continue
        assert list(after[key].keys()) == list(rec.keys())
        for name in rec:
            want, got = rec[name].numpy(), after[key][name].numpy()
            assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), (key, name)
            assert got.flags.writeable


def test_the_bundle_by_hand():
    """float32 (2, 3) at bytes 0-23, then a 0-d float64 at 24-31, in one 32-byte array."""
    rec = RecordDict({"x": ArrayRecord({"w": Array(np.arange(6, dtype=np.float32).reshape(2, 3)),
                                        "b": Array(np.array(3.5))})})
    bundled = protocol.bundle_arrays(rec)
    assert sorted(bundled.keys()) == [protocol.BUNDLE, protocol.BUNDLE_INDEX]
    index = bundled[protocol.BUNDLE_INDEX]
    assert index["names"] == ["w", "b"] and index["offsets"] == [0, 24] and index["shapes"] == ["2,3", ""]
    assert index["dtypes"] == ["<f4", "<f8"] and index["records"] == ["x"] and index["owners"] == [0, 0]
    data = bundled[protocol.BUNDLE]["data"].numpy()
    assert data.dtype == np.uint8 and data.size == 32
    assert np.frombuffer(data[24:], np.float64)[0] == 3.5


def test_without_arrays_and_unbundled_contents_are_left_alone():
    plain = RecordDict({"config": ConfigRecord({"a": 1})})
    assert protocol.bundle_arrays(plain) is plain
    assert protocol.unbundle_arrays(plain) is plain
    rec = content()
    assert protocol.unbundle_arrays(rec) is rec


def test_a_broken_bundle_is_refused():
    bundled = protocol.bundle_arrays(content())
    index = bundled[protocol.BUNDLE_INDEX]
    index["offsets"] = [o + 10_000 for o in index["offsets"]]
    with pytest.raises(ValueError, match="outside the bundle"):
        protocol.unbundle_arrays(bundled)
    bundled = protocol.bundle_arrays(content())
    bundled[protocol.BUNDLE_INDEX]["order"] = ["config", "experience"]
    with pytest.raises(ValueError, match="not the ones it lists"):
        protocol.unbundle_arrays(bundled)


def _objects(rec: RecordDict) -> int:
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    return len(get_all_nested_objects(Message(content=rec, dst_node_id=1, message_type=MessageType.TRAIN)))


@pytest.mark.parametrize("arrays", [1, 5, 40])
def test_a_bundled_message_is_the_same_few_objects_whatever_its_arrays(arrays):
    """Flower moves each object in a request of its own, per hop: unbundled, each array adds
    two (the array and its chunk); bundled, the message is message + record dict + config
    record + bundle record + its array + one chunk + index = 7 objects."""
    rec = RecordDict({"config": ConfigRecord({"a": 1}),
                      "experience": ArrayRecord({f"a{i}": Array(np.full(10, i, np.float32)) for i in range(arrays)})})
    assert _objects(rec) == 4 + 2 * arrays
    assert _objects(protocol.bundle_arrays(rec)) == 7


# ---------------------------------------------------------------- prompt pulls (clients/pulls.py)


@pytest.fixture
def flower_pull_defaults():
    from flwr.supercore.inflatable import inflatable_utils

    pulls = (inflatable_utils.pull_objects, inflatable_utils.pull_and_inflate_object_from_tree)
    saved = [dict(p.__kwdefaults__) for p in pulls]
    yield
    for pull, defaults in zip(pulls, saved):
        pull.__kwdefaults__.clear()
        pull.__kwdefaults__.update(defaults)


def test_an_object_not_there_yet_is_pulled_again_after_a_hundredth_of_a_second(monkeypatch, flower_pull_defaults):
    """Flower waits 1 s, then 2 s, ... before pulling again an object that has not arrived;
    after prompt_pulls the ServerApp's grid and the SuperNode (which call the same function)
    wait 0.01 s, then 0.02 s (each ±20% jitter), and get the object on the third try."""
    import threading

    from flwr.superlink.grid import http_grid
    from flwr.supercore.inflatable import inflatable_utils
    from flwr.supernode import start_client_internal

    from clients import pulls

    assert inflatable_utils.pull_objects.__kwdefaults__["initial_backoff"] == 1  # Flower's own
    pulls.prompt_pulls()
    assert http_grid.pull_objects is start_client_internal.pull_objects is inflatable_utils.pull_objects
    waits: list[float] = []

    class Event(threading.Event):
        def wait(self, timeout=None):
            if timeout is None:  # the executor waiting for its futures
                return super().wait()
            waits.append(timeout)  # a pull backing off before its next try
            return False

    monkeypatch.setattr(inflatable_utils.threading, "Event", Event)
    tries = []

    def pull(object_id: str) -> bytes:
        tries.append(object_id)
        if len(tries) < 3:
            raise inflatable_utils.ObjectUnavailableError(object_id)
        return b"content"

    assert inflatable_utils.pull_objects(["x"], pull) == {"x": b"content"}
    assert len(tries) == 3 and len(waits) == 2
    assert 0.008 <= waits[0] <= 0.012 and 0.016 <= waits[1] <= 0.024


def test_prompt_pulls_refuses_a_flower_whose_pulls_changed(monkeypatch, flower_pull_defaults):
    from flwr.supercore.inflatable import inflatable_utils

    from clients import pulls

    def pull_objects(object_ids, pull_object_fn, *, max_time=None):  # no backoff arguments
        return {}

    monkeypatch.setattr(inflatable_utils, "pull_objects", pull_objects)
    with pytest.raises(RuntimeError, match="no longer takes initial_backoff"):
        pulls.prompt_pulls()


def test_the_clientapp_answers_a_bundled_message_bundled_with_the_same_reply(tmp_path):
    """Agent 0's round-1 FPF message, sent as it is and bundled: the reply to the bundled
    one is bundled, and unbundled it holds the same records and arrays as the other."""
    from flwr.app import Context

    from clients import client_app
    from federation.config import RunConfig
    from federation.server_app import Federation

    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    cfg = RunConfig.of(agents=3, rounds=1, batch=2, steps=20, hidden=16, minibatch=64, epochs=1,
                       strategy="fpf", participation="ids:0", out=str(tmp_path / "run"))
    federation = Federation(cfg)
    federation.bind({a: a + 1 for a in range(3)})
    contexts = {a + 1: Context(run_id=1, node_id=a + 1, node_config={"agent-id": a}, state=RecordDict(),
                               run_config={}) for a in range(3)}
    sent: list[Message] = []

    def exchange(messages):
        sent.extend(messages)
        return [client_app.train(m, contexts[m.metadata.dst_node_id]) for m in messages]

    federation.play(1, exchange)
    message, context = next(m for m in sent if m.metadata.dst_node_id == 1), contexts[1]
    # round 1 again: the agent starts afresh, as it did

    plain = client_app.train(message, context)
    bundled_message = Message(content=protocol.bundle_arrays(message.content), dst_node_id=1,
                              message_type=MessageType.TRAIN)
    bundled = client_app.train(bundled_message, context)
    assert protocol.BUNDLE not in plain.content and protocol.BUNDLE in bundled.content
    back = protocol.unbundle_arrays(bundled.content)
    assert list(back.keys()) == list(plain.content.keys())
    for key, rec in plain.content.items():
        if isinstance(rec, ArrayRecord):
            assert all(np.array_equal(rec[n].numpy(), back[key][n].numpy()) for n in rec)
