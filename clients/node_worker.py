"""A node's learner process: ``clients.client_app.app`` kept in memory between messages.

    python -m clients.node_worker --socket PATH --watch PID [PID ...]

Started by the node's ClientApp (``clients.node_app``) with the submitted app's directory
first on ``sys.path``. It listens on the Unix socket ``PATH`` and answers one connection
at a time: ``PING`` gets its pid; ``CALL`` with a serialised message and context gets
``OK`` with the ClientApp's serialised reply and context, or ``ERROR`` with the exception
(its traceback goes to the node's log). Torch, the project and the agents' learners stay
loaded (``clients.client_app`` reuses a learner as long as its storage file is still the
one it wrote), so a message costs the training and little else.

It exits, removing its socket, as soon as one of the ``--watch`` processes (the node's)
has ended, and at SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from types import FrameType

from flwr.common.serde import context_from_proto, context_to_proto, message_from_proto, message_to_proto
from flwr.proto.message_pb2 import Context as ProtoContext  # pylint: disable=no-name-in-module
from flwr.proto.message_pb2 import Message as ProtoMessage  # pylint: disable=no-name-in-module

from clients.node_app import CALL, ERROR, OK, PING

WATCH_INTERVAL = 0.2  # seconds between checks that the node's processes are alive


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def serve(socket: Path, watch: Sequence[int]) -> None:
    """Answer the node's ClientApps on ``socket`` until a watched process ends."""

    def leave(*_: object) -> None:
        socket.unlink(missing_ok=True)
        socket.with_suffix(".lock").unlink(missing_ok=True)  # the node's ClientApps' start lock
        os._exit(0)  # at once, even in the middle of a message: the node is gone

    def watchdog() -> None:
        while all(alive(pid) for pid in watch):
            time.sleep(WATCH_INTERVAL)
        leave()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        leave()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=watchdog, daemon=True).start()
    from clients.client_app import app  # pylint: disable=import-outside-toplevel  # torch and the project

    with Listener(str(socket), family="AF_UNIX") as listener:
        os.chmod(socket, 0o600)
        while True:
            try:
                conn = listener.accept()
            except OSError:
                continue
            with conn:
                try:
                    _answer(conn, app)
                except (EOFError, OSError):
                    pass  # the ClientApp went away (its node stopped it): wait for the next


def _answer(conn: Connection, app) -> None:
    if conn.recv_bytes() != PING:
        return
    conn.send_bytes(str(os.getpid()).encode())
    if conn.recv_bytes() != CALL:
        return
    message = message_from_proto(ProtoMessage.FromString(conn.recv_bytes()))
    context = context_from_proto(ProtoContext.FromString(conn.recv_bytes()))
    try:
        reply = app(message, context)
        frames = [OK, message_to_proto(reply).SerializeToString(), context_to_proto(context).SerializeToString()]
    except Exception as err:  # pylint: disable=broad-exception-caught  # the ClientApp's error, for the server
        traceback.print_exc()
        frames = [ERROR, type(err).__name__.encode(), str(err).encode()]
    for frame in frames:
        conn.send_bytes(frame)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", type=Path, required=True, help="the Unix socket to listen on")
    parser.add_argument("--watch", type=int, nargs="+", required=True, help="the node's processes")
    args = parser.parse_args(argv)
    serve(args.socket, args.watch)


if __name__ == "__main__":
    main()
