"""The deployed ClientApp's relay (clients/node_app.py) and the node's learner process
(clients/node_worker.py): the relay imports neither torch nor the project, a relayed run
learns exactly what the in-process run learns, the learner process ends with its node,
and one that dies in the middle of a message costs its agent that round only."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from flwr.app import Context, Message, RecordDict
from flwr.app.error import Error
from flwr.common.constant import ErrorCode
from flwr.supercore.task_identity import TaskIdentity

from clients import client_app
from clients.node_app import NodeWorker, NodeWorkerLost
from clients.node_worker import alive
from federation.config import RunConfig
from federation.in_process import run_in_process
from federation.server_app import Federation

ROOT = Path(__file__).resolve().parents[1]
TINY = {"strategy": "independent", "agents": 2, "batch": 2, "steps": 12, "hidden": 8, "minibatch": 8, "epochs": 1,
        "eval_every": 0, "progress": False}


@pytest.fixture
def node() -> Iterator[subprocess.Popen[bytes]]:
    """A stand-in for a node's process (the learner process watches it)."""
    proc = subprocess.Popen(["sleep", "600"])  # pylint: disable=consider-using-with
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def sockets() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="nw-"))  # short: a Unix socket's path has at most 107 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        try:  # our own child: reap it
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return not alive(pid)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _wait_gone(pid)


def _relayed_run(cfg: RunConfig, worker: NodeWorker, crash_in_round: int = 0) -> dict:
    """``run_in_process`` with every message relayed through ``worker``, as a deployed
    SuperNode's ClientApp does; an exception becomes the error reply Flower's
    ``flwr-clientapp`` makes of it. In ``crash_in_round`` the learner process is frozen
    before the first message and killed while the relay waits for its answer."""
    torch.manual_seed(cfg.seed)
    federation = Federation(cfg)
    federation.bind({a: a + 1 for a in range(cfg.agents)})
    contexts = {a + 1: Context(run_id=1, node_id=a + 1, node_config={"agent-id": a}, state=RecordDict(),
                               run_config={}) for a in range(cfg.agents)}
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1

    def exchange(messages: list[Message]) -> list[Message]:
        replies = []
        for i, msg in enumerate(messages):
            if msg.content["config"]["server-round"] == crash_in_round and i == 0:
                pid = worker.pid()
                os.kill(pid, signal.SIGSTOP)  # it can take the message but never answer
                threading.Timer(0.5, _kill, [pid]).start()
            try:
                replies.append(worker.call(msg, contexts[msg.metadata.dst_node_id]))
            except Exception as ex:  # pylint: disable=broad-exception-caught
                reason = str(type(ex)) + ":<'" + str(ex) + "'>"
                replies.append(Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=msg))
        return replies

    return federation.run(exchange, 0, time.perf_counter(), {"startup_s": 0.0, "build_s": 0.0})


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_the_relay_imports_neither_torch_nor_the_project():
    code = ("import sys, clients.node_app; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('clients.', 'federation', 'envs'))"
            " and m != 'clients.node_app'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_relayed_run_learns_what_the_in_process_run_learns(tmp_path, node, sockets):
    direct = run_in_process(RunConfig.of(**TINY, rounds=3, out=str(tmp_path / "direct")).validated())
    worker = NodeWorker([node.pid], directory=sockets)
    pid = worker.pid()
    try:
        assert pid != os.getpid() and alive(pid)
        relayed = _relayed_run(RunConfig.of(**TINY, rounds=3, out=str(tmp_path / "relayed")).validated(), worker)
        assert worker.pid() == pid  # the same process all along
    finally:
        _kill(pid)
    assert relayed["events"] == [] and direct["events"] == []
    a, b = _rows(tmp_path / "direct"), _rows(tmp_path / "relayed")
    assert len(a) == len(b) == 3
    for ra, rb in zip(a, b):  # the same rollouts, hence the same learning, bit for bit
        for key in ("collective_return", "cv", "agents_update_norm"):
            assert ra[key] == rb[key], key
        assert rb["trained_agents"] == "2"


def test_the_learner_process_ends_with_its_node(node, sockets):
    worker = NodeWorker([node.pid], directory=sockets)
    pid = worker.pid()
    assert alive(pid) and worker.socket.exists()
    node.kill()
    node.wait()
    assert _wait_gone(pid, timeout=10.0), "the learner process outlived its node"
    assert list(sockets.iterdir()) == []  # its socket and lock went with it


def test_a_learner_process_that_dies_mid_message_costs_its_agent_that_round(tmp_path, node, sockets):
    worker = NodeWorker([node.pid], directory=sockets)
    first = worker.pid()
    try:
        summary = _relayed_run(RunConfig.of(**TINY, rounds=3, out=str(tmp_path / "run")).validated(), worker,
                               crash_in_round=2)
        second = worker.pid()
    finally:
        _kill(worker.pid())
    assert not alive(first) and second != first
    errors = [e for e in summary["events"] if e["kind"] == "agent_error"]
    assert [e["round"] for e in errors] == [2]
    assert errors[0]["detail"].startswith("agent 0:") and NodeWorkerLost.__name__ in errors[0]["detail"]
    assert not [e for e in summary["events"] if e["kind"] == "agent_fresh_start"]  # the new process reloaded it
    rows = _rows(tmp_path / "run")
    assert [r["failed_agents"] for r in rows] == ["0", "1", "0"]
    assert [r["trained_agents"] for r in rows] == ["2", "1", "2"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["events"] == summary["events"]


def test_the_relay_reports_the_learner_processs_errors(node, sockets):
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    worker = NodeWorker([node.pid], directory=sockets)
    msg = Message(RecordDict(), dst_node_id=3, message_type="query")
    context = Context(run_id=1, node_id=3, node_config={}, state=RecordDict(), run_config={})
    try:
        with pytest.raises(RuntimeError, match="no agent"):  # clients.client_app's own message
            worker.call(msg, context)
        context.node_config["agent-id"] = 4
        reply = worker.call(msg, context)  # and goes on answering
        assert reply.content["config"]["agent-id"] == 4
        assert reply.content == client_app.app(msg, context).content
    finally:
        _kill(worker.pid())


def test_the_supernode_launcher_refuses_what_it_replaces(capsys):
    from tools.supernode import main  # pylint: disable=import-outside-toplevel

    for argv in (["--isolation", "subprocess"], ["--ssl-certfile=x.pem"], ["--poll-interval", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2, argv
    err = capsys.readouterr().err
    assert "--isolation" in err and "--ssl-certfile" in err and "--poll-interval must be between" in err


def test_the_supernode_launcher_shortens_only_flowers_idle_wait():
    from tools.supernode import TASK_POLL_INTERVAL, _Clock  # pylint: disable=import-outside-toplevel

    clock = _Clock(0.2)
    for asked, at_most, wakes in ((3.0, 0.2, False), (0.5, TASK_POLL_INTERVAL, True)):
        start = time.monotonic()
        clock.sleep(asked)
        took = time.monotonic() - start
        assert min(at_most, 0.04) <= took < at_most + 0.5, (asked, took)
        assert clock.pending.is_set() == wakes  # a wait for a reply: a message came, a task is there
    assert clock.time is time.time  # everything else is the time module's
