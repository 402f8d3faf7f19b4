"""Flower's SuperNode with its ClientApp tasks handled in its own process.

``flower-supernode`` (flwr 1.42, isolation ``subprocess``) starts ``flower-superexec``,
which starts a fresh ``flwr-clientapp`` process for every message: Python, Flower's
import, the app bundle, then the ClientApp. Its loop also waits a fixed 3 s after every
pull from the SuperLink that brought no message, so a round's messages wait up to 3 s
before a node sees them. This command runs the same SuperNode (Flower's own code and
options) with isolation ``process`` and serves its ClientApp tasks itself, one after
another, in a thread: Flower's Runtime API calls of ``flwr-clientapp`` (take the task,
pull the message, context and bundle, install the bundle, push the reply and the task's
status, send the task's heartbeats), with the message handed to the node's learner
process (``clients.node_app.NodeWorker``, started from the bundle's code, ending with this
process). The SuperNode's idle wait becomes ``--poll-interval``.

Usage (every option but ``--poll-interval`` is ``flower-supernode``'s; ``--isolation`` and
the Runtime API's TLS options are not accepted: the Runtime API stays on loopback)::

    python -m tools.supernode --superlink 10.0.0.5:9092 --root-certificates ca.crt \\
        --auth-supernode-private-key agent-0 --node-config 'agent-id=0 storage-dir="/data/fedgames"'
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flwr.app import Context, Message
from flwr.app.error import Error
from flwr.cli.install import install_from_fab
from flwr.common.config import get_project_dir
from flwr.common.constant import ErrorCode, SubStatus
from flwr.proto.runtime_pb2 import AcquireTaskRequest  # pylint: disable=no-name-in-module
from flwr.supercore import log
from flwr.supercore.constant import SUPERNODE_UVICORN_DEFAULT_PORT, UVICORN_DEFAULT_HOST, TaskType
from flwr.supercore.heartbeat import HeartbeatSender, make_task_heartbeat_fn_http
from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor, RuntimeVersionHttpInterceptor
from flwr.supercore.retry import make_simple_http_retry_invoker
from flwr.supercore.runtime import RuntimeHttpClient
from flwr.supernode import start_client_internal
from flwr.supernode.runtime.run_clientapp import pull_task_input, push_message, push_task_output

from clients.node_app import NodeWorker, relay
from clients.pulls import prompt_pulls

DEFAULT_POLL_INTERVAL = 0.5  # seconds between pulls from the SuperLink while idle (Flower: 3)
TASK_POLL_INTERVAL = 0.05  # seconds between looks for the reply to a message, on this node
TASK_WAKE_TIMEOUT = 1.0  # seconds between looks for a new task when nothing says one came
REFUSED = ("--isolation", "--ssl-certfile", "--ssl-keyfile", "--ssl-ca-certfile")


class _Clock:
    """``time`` as Flower's SuperNode loop sees it: its 3 s idle wait becomes ``idle``
    seconds and its waits for a reply ``TASK_POLL_INTERVAL``. The loop waits for a reply
    right after it stored a message: such a wait sets ``pending``, which wakes the thread
    that runs the tasks."""

    def __init__(self, idle: float, pending: threading.Event | None = None) -> None:
        self.idle = idle
        self.pending = pending or threading.Event()

    def sleep(self, seconds: float) -> None:
        if seconds >= 1.0:
            time.sleep(self.idle)
            return
        self.pending.set()
        time.sleep(min(seconds, TASK_POLL_INTERVAL))

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def _runtime_client(address: str, component: str, token: str | None = None) -> RuntimeHttpClient:
    interceptors: list[Any] = [RuntimeVersionHttpInterceptor(component_name=component)]
    if token is not None:
        interceptors.append(RuntimeTokenHttpInterceptor(token))
    return RuntimeHttpClient.from_server_address(server_address=address, insecure=True, root_certificates=None,
                                                 interceptors=interceptors,
                                                 retry_invoker=make_simple_http_retry_invoker())


def run_task(address: str, token: str, handle: Callable[[Path, Message, Context], Message]) -> None:
    """One ClientApp task, as ``flwr-clientapp`` runs it, with ``handle(app_dir, message,
    context)`` in place of loading and calling the ClientApp. An exception becomes the
    error reply ``flwr-clientapp`` makes of it."""
    client = _runtime_client(address, "flwr-clientapp", token)
    heartbeat = HeartbeatSender(make_task_heartbeat_fn_http(client))
    heartbeat.start()
    message: Message | None = None
    context: Context | None = None
    reply: Message | None = None
    status, details = SubStatus.FAILED, "ClientApp task failed due to unknown reason"
    try:
        message, context, run, fab = pull_task_input(client)
        app_dir = get_project_dir(run.fab_id, run.fab_version, fab.hash_str)
        if not app_dir.is_dir():  # Flower extracts and checks the whole bundle, then keeps an installed one
            install_from_fab(fab.content, skip_prompt=True)
        reply = handle(app_dir, message, context)
        status, details = SubStatus.COMPLETED, ""
    except Exception as ex:  # pylint: disable=broad-exception-caught
        details = str(type(ex)) + ":<'" + str(ex) + "'>"
        log(logging.ERROR, "ClientApp raised an exception", exc_info=ex)
        if message is not None:
            reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=details), reply_to=message)
    finally:
        try:
            if reply is not None and context is not None:
                push_message(client, reply, context)
        except Exception as ex:  # pylint: disable=broad-exception-caught
            log(logging.ERROR, "Failed to push reply message", exc_info=ex)
        push_task_output(client, context, status, details)
        heartbeat.stop()
        client.close()


def serve_tasks(address: str, pending: threading.Event) -> None:
    """Take the node's ClientApp tasks from its Runtime API at ``address`` and run them,
    one at a time, each message relayed to this node's learner process; look for one when
    ``pending`` is set, and every ``TASK_WAKE_TIMEOUT`` seconds anyway."""
    client = _runtime_client(address, "SuperExec")

    def handle(app_dir: Path, message: Message, context: Context) -> Message:
        return relay(NodeWorker([os.getpid()], root=app_dir), message, context)

    while True:
        try:
            res = client.AcquireTask(AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP]))
        except Exception:  # pylint: disable=broad-exception-caught  # the Runtime API is not up yet
            time.sleep(TASK_POLL_INTERVAL)
            continue
        if res.HasField("task") and res.token:
            try:
                run_task(address, res.token, handle)
            except Exception as ex:  # pylint: disable=broad-exception-caught  # its end went unreported
                log(logging.ERROR, "ClientApp task %s did not finish", res.task.task_id, exc_info=ex)
        else:
            pending.wait(TASK_WAKE_TIMEOUT)
            pending.clear()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ours = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=False)
    ours.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_INTERVAL,
                      help=f"seconds between pulls from the SuperLink while idle (default {DEFAULT_POLL_INTERVAL})")
    ours.add_argument("--host", default=UVICORN_DEFAULT_HOST)
    ours.add_argument("--port", type=int, default=SUPERNODE_UVICORN_DEFAULT_PORT)
    args, rest = ours.parse_known_args(argv)
    refused = [a for a in rest if a.split("=", 1)[0] in REFUSED]
    if refused:
        ours.error(f"{', '.join(refused)}: not with tools.supernode, which serves the ClientApps itself "
                   "over the Runtime API on loopback (use flower-supernode for them)")
    if not 0.01 <= args.poll_interval <= 60:
        ours.error(f"--poll-interval must be between 0.01 and 60 seconds, got {args.poll_interval}")
    if start_client_internal.time is not time:
        ours.error("tools.supernode expects flwr 1.42's SuperNode loop")
    prompt_pulls()  # a message's objects pulled as soon as they are there (clients/pulls.py)
    clock = _Clock(args.poll_interval)
    start_client_internal.time = clock  # type: ignore[assignment]
    host = f"[{args.host}]" if ":" in args.host else args.host
    threading.Thread(target=serve_tasks, args=(f"{host}:{args.port}", clock.pending), daemon=True,
                     name="clientapp-tasks").start()

    from flwr.supernode.cli.flower_supernode import flower_supernode  # pylint: disable=import-outside-toplevel

    sys.argv = ["flower-supernode", *rest, "--host", args.host, "--port", str(args.port), "--isolation", "process"]
    flower_supernode()


if __name__ == "__main__":
    main()
