"""The ClientApp a SuperNode runs: a relay to the node's learner process.

Flower's SuperNode starts a fresh ``flwr-clientapp`` process for every message. Were that
process to import torch and the project and reload the agent's learner from storage, as
``clients.client_app`` does, every message would pay seconds before training starts. This
module imports nothing but Flower and the standard library: it hands the message and the
context, serialised with Flower's own protobuf serde, over a local socket to the node's
learner process (``clients.node_worker``), which holds torch, the project and the agents'
learners in memory and answers with ``clients.client_app.app``'s reply.

The learner process is started by the first message that finds none (the ``hello``
query before round 1 starts it, so its imports are not paid in a round), from the code
of the submitted app (its directory is this file's), and is keyed by the node's process
(the SuperExec that starts the ClientApps) and that directory: another run of the same
code reuses it, other code gets its own. It ends when the node's processes end. If it
dies while handling a message, the message fails with a ``NodeWorkerLost`` error (the
server records it as the agent's error and the agent misses that round) and the next
message starts a new learner process, which reloads the learners from their storage.

Flower's simulation (its nodes have a ``partition-id``) and nodes started with
``--node-config 'node-worker=false'`` run ``clients.client_app`` in this process instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Client, Connection
from pathlib import Path

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.common.serde import context_from_proto, context_to_proto, message_from_proto, message_to_proto
from flwr.proto.message_pb2 import Context as ProtoContext  # pylint: disable=no-name-in-module
from flwr.proto.message_pb2 import Message as ProtoMessage  # pylint: disable=no-name-in-module

#: the directory that holds ``clients/`` (the installed app bundle in deployment)
APP_ROOT = Path(__file__).resolve().parents[1]
#: frames of a request: CALL, the message, the context; of an answer: OK, the reply, the
#: context (its state) or ERROR, the exception's type and text
CALL, PING, OK, ERROR = b"call", b"ping", b"ok", b"error"
STARTUP_TIMEOUT = 600.0  # seconds a new learner process may take to listen (torch's import on a busy machine)
#: reply metrics this relay adds: the ClientApp process's age when the handler started
#: (Python's start, Flower's import, the bundle, this module) and the relay's own share of
#: the handler (serialising, the socket, the learner process's work outside ``client_s``)
STARTUP_METRIC, RELAY_METRIC = "clientapp_start_s", "relay_s"


class NodeWorkerLost(RuntimeError):
    """The node's learner process ended while it handled a message."""


class NodeWorkerError(RuntimeError):
    """The node's learner process could not be started, or the ClientApp raised there."""


def runtime_dir() -> Path:
    """A directory only this user can enter, for the learner processes' sockets."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    path = base / f"fedgames-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    if path.stat().st_uid != os.getuid() or path.stat().st_mode & 0o077:
        raise NodeWorkerError(f"{path} must belong to this user and be closed to others")
    return path


def node_pids() -> list[int]:
    """The node's processes this ClientApp belongs to: the process that started it
    (Flower's SuperExec) and, where /proc tells, that process's parent (the SuperNode)."""
    parent = os.getppid()
    pids = [parent]
    with contextlib.suppress(OSError, IndexError, ValueError):
        grandparent = int(Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[1])
        if grandparent > 1:
            pids.append(grandparent)
    return pids


@dataclass
class NodeWorker:
    """The learner process of one node and one app directory; ``call`` relays a message.

    ``watch``: the node's processes; the learner process ends as soon as one of them has
    ended. ``root``: the app directory whose code it runs. ``directory``: where its socket
    and lock live.
    """

    watch: Sequence[int]
    root: Path = APP_ROOT
    directory: Path = field(default_factory=runtime_dir)

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.watch[0]}:{self.root}".encode()).hexdigest()[:20]

    @property
    def socket(self) -> Path:
        return self.directory / f"worker-{self.key}.sock"

    def call(self, message: Message, context: Context) -> Message:
        """The learner process's reply to ``message``; ``context.state`` takes its changes."""
        frames = [CALL, message_to_proto(message).SerializeToString(), context_to_proto(context).SerializeToString()]
        conn, pid = self._connect(), "unknown"
        try:
            conn.send_bytes(PING)
            pid = conn.recv_bytes().decode()
            for frame in frames:
                conn.send_bytes(frame)
            status = conn.recv_bytes()
            answer = [conn.recv_bytes(), conn.recv_bytes()]
        except (EOFError, OSError) as err:
            raise NodeWorkerLost(
                f"the node's learner process (pid {pid}) ended while handling a {message.metadata.message_type} "
                f"message ({type(err).__name__}); the next message starts a new one, which reloads the learners "
                "from their storage") from err
        finally:
            conn.close()
        if status != OK:
            raise NodeWorkerError(f"{answer[0].decode()}: {answer[1].decode()}")
        reply = message_from_proto(ProtoMessage.FromString(answer[0]))
        context.state = context_from_proto(ProtoContext.FromString(answer[1])).state
        return reply

    def pid(self) -> int:
        """The learner process's pid (starting it if there is none)."""
        conn = self._connect()
        try:
            conn.send_bytes(PING)
            return int(conn.recv_bytes())
        finally:
            conn.close()

    def _connect(self) -> Connection:
        with contextlib.suppress(OSError):
            return Client(str(self.socket), family="AF_UNIX")
        with open(self.socket.with_suffix(".lock"), "w", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one ClientApp of the node starts it
            with contextlib.suppress(OSError):
                return Client(str(self.socket), family="AF_UNIX")
            return self._start()

    def _start(self) -> Connection:
        self.socket.unlink(missing_ok=True)  # a process killed before it could remove it
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(self.root), os.environ.get("PYTHONPATH", "")])}
        cmd = [sys.executable, "-m", "clients.node_worker", "--socket", str(self.socket),
               "--watch", *map(str, self.watch)]
        # in the node's process group, with its output in the node's log
        proc = subprocess.Popen(cmd, cwd=os.getcwd(), env=env,  # pylint: disable=consider-using-with
                                stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            with contextlib.suppress(OSError):
                return Client(str(self.socket), family="AF_UNIX")
            if proc.poll() is not None:
                raise NodeWorkerError(f"the node's learner process exited with status {proc.returncode} "
                                      "before it listened (its output is in the node's log)")
            if time.monotonic() > deadline:
                proc.kill()
                raise NodeWorkerError(f"the node's learner process did not listen within {STARTUP_TIMEOUT:.0f} s")
            time.sleep(0.02)


def process_age() -> float | None:
    """Seconds since this process started (Linux), else None."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def in_process(context: Context) -> bool:
    """Whether this node runs the agents here: Flower's simulation, or ``node-worker=false``."""
    return "partition-id" in context.node_config or context.node_config.get("node-worker", True) is False


def _seconds(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def relay(worker: NodeWorker, message: Message, context: Context, age: float | None = None) -> Message:
    """``worker``'s reply to ``message``, each agent's metrics with the relay's own timings
    (``age``: how old the process was when the message reached it)."""
    start = time.perf_counter()
    reply = worker.call(message, context)
    if reply.has_content():  # each agent's metrics (one agent's, or a node's packed agents')
        elapsed = time.perf_counter() - start
        records = [r for k, r in reply.content.metric_records.items() if k == "metrics" or k.endswith("/metrics")]
        work = sum(_seconds(r.get("client_s", 0.0)) for r in records)
        for metrics in records:
            metrics[RELAY_METRIC] = max(0.0, elapsed - work)
            if age is not None:
                metrics[STARTUP_METRIC] = age
    return reply


class _Relay(ClientApp):
    """A ClientApp that hands every message, whatever its type, to the node's learner process."""

    def __call__(self, message: Message, context: Context) -> Message:
        if in_process(context):
            local: ClientApp = importlib.import_module("clients.client_app").app
            return local(message, context)
        return relay(NodeWorker(node_pids()), message, context, process_age())


app = _Relay()
