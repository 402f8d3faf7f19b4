"""Run the Flower app on a real local deployment: one SuperLink + N SuperNodes.

Everything binds to 127.0.0.1 and runs in insecure (no TLS) mode by default;
``tls=True`` uses throw-away certificates (tools/certificates.py) and ``auth=True``
adds SuperNode authentication (each SuperNode's public key is registered with
``flwr supernode register`` before it starts). SuperNode ``i`` is started with
``--node-config "agent-id=<i>"``, or, with ``agents_per_node=K`` (``--agents-per-node``),
SuperNode ``j`` holds agents ``jK .. jK+K-1`` (``agent-ids="<first>-<last>"``). A temporary ``FLWR_HOME`` holds the CLI connection
(``config.toml``), the installed app bundles and the process logs, so the user's
``~/.flwr`` is never touched.

Library use::

    with LocalDeployment(".", num_agents=3) as dep:
        result = dep.run({"rounds": 2, "strategy": "fpf"}, timeout=600)

Command line::

    python -m tools.local_deployment --agents 3 --run-config 'rounds=2 strategy="fpf"'
    python -m tools.local_deployment --agents 3 --auth --run-config 'rounds=2'

Every process started here (and everything they spawn, found through a marker
environment variable) is stopped by PID / process group on exit.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tools.certificates import NodeKeyPair, TlsFiles, generate_supernode_keys, generate_tls_certificates

CONNECTION = "local-deployment"  # SuperLink connection name in config.toml
MARKER_ENV = "LOCAL_DEPLOYMENT_ID"  # inherited by every process we start
FINISHED_OK = "finished:completed"
JOINED = "SuperNode ID:"  # a SuperNode logs this once the SuperLink has accepted it
# Flower marks a SuperNode offline after HEARTBEAT_PATIENCE (2) missed heartbeats of
# HEARTBEAT_DEFAULT_INTERVAL (30 s); a killed one stays "online" that long.
HEARTBEAT_EXPIRY = 60.0
_PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 36, 37


class DeploymentError(RuntimeError):
    """The deployment could not start, or a run did not complete."""


class DeploymentTimeout(DeploymentError):
    """A run did not finish within the allowed time."""


def toml_value(value: Any) -> str:
    """Format a Python value as a TOML literal (strings quoted, bools lowercase)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def format_run_config(run_config: Mapping[str, Any]) -> str:
    """Turn ``{"rounds": 2, "strategy": "fpf"}`` into ``rounds=2 strategy="fpf"``."""
    return " ".join(f"{key}={toml_value(val)}" for key, val in run_config.items())


def is_alive(pid: int) -> bool:
    """Return True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def pids_with_env(name: str, value: str) -> set[int]:
    """PIDs of the processes (this one aside) whose environment sets ``name=value``: how
    the processes a deployment or a test started are found again, whatever became of
    their parents."""
    tag = f"{name}={value}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if tag in (entry / "environ").read_bytes().split(b"\0"):
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def _free_ports(count: int) -> list[int]:
    """Pick ``count`` distinct free TCP ports on 127.0.0.1."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _executable(name: str) -> str:
    """Find a Flower executable, preferring the current Python environment."""
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise DeploymentError(f"`{name}` not found; is flwr installed?")
    return found


def _parse_json(text: str) -> dict[str, Any]:
    """Parse the JSON object printed by ``flwr ... --format json``."""
    start = text.find("{")
    if start < 0:
        raise ValueError(f"no JSON in output: {text!r}")
    return json.JSONDecoder().raw_decode(text[start:])[0]


def _set_subreaper(value: int) -> int | None:
    """Make orphaned descendants our children, so they can be reaped (Linux).

    Returns the previous setting, or None where unsupported.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        old = ctypes.c_int(0)
        libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(old), 0, 0, 0)
        if libc.prctl(_PR_SET_CHILD_SUBREAPER, value, 0, 0, 0) != 0:
            return None
        return old.value
    except (OSError, AttributeError):
        return None


class LocalDeployment:
    """One SuperLink and ``num_agents`` SuperNodes on 127.0.0.1, as a context manager.

    Parameters
    ----------
    app_dir : path of the Flower app (the directory with ``pyproject.toml``); it is
        also the working directory of all processes, so relative output paths in
        the run config resolve against it.
    num_agents : number of agents; SuperNode ``i`` gets ``agent-id=i``.
    agents_per_node : agents each SuperNode holds (K): ceil(num_agents / K) SuperNodes,
        SuperNode ``j`` with ``agent-ids="<jK>-<min(jK+K, num_agents)-1>"``; 1: one agent per
        SuperNode with ``agent-id``. The methods that take an ``agent`` take a SuperNode's
        index ``j`` then.
    flwr_home : directory used as ``FLWR_HOME`` (its ``config.toml`` is
        overwritten); a fresh temporary directory by default.
    base_port : SuperLink port; SuperNodes use the following ports. Free ports
        are picked automatically by default.
    keep_logs : keep the temporary directory (logs) after a successful exit. It
        is always kept when something failed.
    tls : serve every SuperLink API over TLS with a throw-away CA and server
        certificate for 127.0.0.1 (``self.certs``); SuperNodes and the ``flwr`` CLI
        verify it with the CA certificate.
    auth : SuperNode authentication (implies ``tls``): the SuperLink runs with
        ``--enable-supernode-auth``, every SuperNode gets its own EC key pair
        (``self.node_keys``), whose public key is registered with
        ``flwr supernode register`` (``self.node_ids``) before the SuperNode starts.
    flower_supernode : start the SuperNodes with Flower's ``flower-supernode`` (a
        ``flwr-clientapp`` process per message) instead of ``python -m tools.supernode``
        (the same SuperNode, which handles its ClientApp tasks in its own process).
    """

    def __init__(
        self,
        app_dir: str | os.PathLike[str] = ".",
        num_agents: int = 3,
        flwr_home: str | os.PathLike[str] | None = None,
        base_port: int | None = None,
        keep_logs: bool = False,
        startup_timeout: float = 60.0,
        poll_interval: float = 2.0,
        tls: bool = False,
        auth: bool = False,
        agents_per_node: int = 1,
        flower_supernode: bool = False,
    ) -> None:
        if agents_per_node < 1:
            raise ValueError(f"agents_per_node must be at least 1, got {agents_per_node}")
        self.app_dir = Path(app_dir).resolve()
        self.num_agents = num_agents
        self.agents_per_node = agents_per_node
        self.flower_supernode = flower_supernode
        self.num_nodes = math.ceil(num_agents / agents_per_node)
        self.base_port = base_port
        self.keep_logs = keep_logs
        self.startup_timeout = startup_timeout
        self.poll_interval = poll_interval
        self.auth = auth
        self.tls = tls or auth  # Flower refuses --enable-supernode-auth without TLS
        self.tmp_dir = Path(tempfile.mkdtemp(prefix="flwr-deployment-"))
        self.log_dir = self.tmp_dir / "logs"
        self.flwr_home = Path(flwr_home).resolve() if flwr_home else self.tmp_dir / "home"
        self.superlink_port = 0
        self.supernode_ports: list[int] = []
        self.last_run: dict[str, Any] = {}
        self.certs: TlsFiles | None = None
        self.node_keys: dict[int, NodeKeyPair] = {}  # agent -> its key pair (auth)
        self.node_ids: dict[int, int] = {}  # agent -> node id registered for its key (auth)
        self._may_exit: set[str] = set()  # processes expected to exit (refused SuperNodes)
        self._marker = uuid.uuid4().hex
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._seen: set[int] = set()
        self._old_subreaper: int | None = None
        self._failed = False
        self.env = {
            **os.environ,
            "FLWR_HOME": str(self.flwr_home),
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "FLWR_TELEMETRY_ENABLED": "0",
            # SuperExec polls for new tasks every 1 s by default
            "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.2",
            "PYTHONUNBUFFERED": "1",
            MARKER_ENV: self._marker,
        }

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalDeployment:
        try:
            self.start()
        except BaseException:
            self._failed = True
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._failed = self._failed or exc_type is not None
        self.stop()

    @property
    def pids(self) -> list[int]:
        """PIDs of every process started by this deployment (seen so far)."""
        return sorted(self._seen | {p.pid for p in self._procs.values()})

    def start(self) -> None:
        """Write config.toml, start the SuperLink and SuperNodes, wait until ready."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        if self.base_port:
            ports = [self.base_port + i for i in range(self.num_nodes + 1)]
        else:
            ports = _free_ports(self.num_nodes + 1)
        self.superlink_port, self.supernode_ports = ports[0], ports[1:]
        if self.tls:
            self.certs = generate_tls_certificates(self.tmp_dir / "certs")
            security = f"root-certificates = {toml_value(str(self.certs.ca_cert))}\n"
            superlink_security = ["--ssl-ca-certfile", str(self.certs.ca_cert),
                                  "--ssl-certfile", str(self.certs.server_cert),
                                  "--ssl-keyfile", str(self.certs.server_key)]
            if self.auth:
                superlink_security.append("--enable-supernode-auth")
        else:
            security = "insecure = true\n"
            superlink_security = ["--insecure"]
        (self.flwr_home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n'
            f"[superlink.{CONNECTION}]\n"
            f'address = "127.0.0.1:{self.superlink_port}"\n{security}'
        )
        self._old_subreaper = _set_subreaper(1)

        self._spawn(
            "superlink",
            ["flower-superlink", *superlink_security, "--host", "127.0.0.1",
             "--port", str(self.superlink_port),
             "--disable-runtime-dependency-installation"],
        )
        self._wait_until("SuperLink is up", self._superlink_healthy)
        if self.auth:  # keys are registered through the SuperLink, before the nodes start
            self.register_supernodes(range(self.num_nodes))
        for i in range(self.num_nodes):
            self.start_supernode(i, wait=False)
        for i in range(self.num_nodes):
            self._wait_until(
                f"supernode-{i} registered",
                lambda i=i: JOINED in self.read_log(f"supernode-{i}"),
            )

    def register_supernodes(self, agents: Iterable[int]) -> dict[int, int]:
        """Generate a key pair for each of ``agents`` (if it has none) and register its
        public key with ``flwr supernode register``; returns ``{agent: node id}``.

        With ``--enable-supernode-auth`` the SuperLink only accepts SuperNodes whose
        public key was registered beforehand: a SuperNode with an unknown key is
        refused at activation and exits (status 1; Flower exit code 305 in its log).
        The registrations run concurrently (each ``flwr`` call spends seconds
        importing Flower).
        """
        pending = {}
        for agent in agents:
            if agent not in self.node_keys:
                self.node_keys[agent] = generate_supernode_keys(
                    self.tmp_dir / "keys", f"supernode-{agent}")
            pending[agent] = subprocess.Popen(  # pylint: disable=consider-using-with
                [_executable("flwr"), "supernode", "register",
                 str(self.node_keys[agent].public_key), CONNECTION,
                 "--name", f"agent-{agent}", "--format", "json"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=self.env, cwd=self.app_dir, start_new_session=True,
            )
        registered = {}
        for agent, proc in pending.items():
            try:
                out, err = proc.communicate(timeout=self.startup_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            try:
                registered[agent] = int(_parse_json(out)["node-id"])
            except (ValueError, KeyError, TypeError):
                self._fail(f"`flwr supernode register` failed for agent {agent} "
                           f"(exit code {proc.returncode}):\n{out}\n{err}")
        self.node_ids.update(registered)
        return registered

    def supernodes(self) -> list[dict[str, Any]]:
        """The SuperLink's node list (``flwr supernode ls --format json``): one dict per
        node with ``node-id`` (a string), ``status`` (registered/online/offline) ..."""
        res = self._flwr(["supernode", "ls", CONNECTION, "--format", "json"], timeout=60)
        try:
            return list(_parse_json(res.stdout)["nodes"])
        except (ValueError, KeyError, TypeError):
            self._fail(f"`flwr supernode ls` failed:\n{res.stdout}\n{res.stderr}")

    def start_supernode(self, agent: int, wait: bool = True) -> None:
        """Start (or restart, after ``kill_supernode``) the SuperNode of ``agent``; it keeps
        its storage-dir. Without ``auth`` a restarted SuperNode registers under a new
        node id. With ``auth`` it comes back under its registered node id (same key),
        which the SuperLink only lets in once it has marked the killed one offline
        (after up to ``HEARTBEAT_EXPIRY`` s): a restart waits for that first."""
        name = f"supernode-{agent}"
        restart = name in self._procs
        if restart:  # keep the old process's log
            self._seen.add(self._procs.pop(name).pid)
            old = self.log_dir / f"{name}.log"
            if old.exists():
                old.rename(self.log_dir / f"{name}.{int(time.time() * 1000)}.log")
        if self.auth:
            if agent not in self.node_ids:
                self.register_supernodes([agent])
            elif restart:
                node_id = str(self.node_ids[agent])
                self._wait_until(
                    f"node {node_id} of {name} offline",
                    lambda: all(n["node-id"] != node_id or n["status"] != "online"
                                for n in self.supernodes()),
                    timeout=HEARTBEAT_EXPIRY + self.startup_timeout,
                )
        self._spawn(
            name,
            [*self._supernode_command(), *self._supernode_security(self.node_keys.get(agent)),
             "--superlink", f"127.0.0.1:{self.superlink_port}",
             "--host", "127.0.0.1", "--port", str(self.supernode_ports[agent]),
             "--node-config", f'{self.agent_config(agent)} storage-dir="{self.storage_dir(agent)}"'],
        )
        if wait:
            self._wait_until(f"{name} registered", lambda: JOINED in self.read_log(name))

    def start_unregistered_supernode(
        self, name: str = "intruder", with_key: bool = True, wait: bool = True,
    ) -> subprocess.Popen[bytes]:
        """Start a SuperNode that is not an agent of this deployment and whose key was
        not registered (``with_key=False``: no key at all, so it tries to register
        itself). It uses the same TLS settings and ``agent-id=<num_agents>``.

        With ``auth`` the SuperLink refuses it and it exits; without, it joins. With
        ``wait`` this returns once it has exited or joined (its log has ``JOINED``).
        Its log is ``read_log(name)``; it is stopped with the deployment if still up.
        """
        key = generate_supernode_keys(self.tmp_dir / "keys", name) if with_key else None
        port = _free_ports(1)[0]
        self._may_exit.add(name)
        self._spawn(
            name,
            ["flower-supernode", *self._supernode_security(key),
             "--superlink", f"127.0.0.1:{self.superlink_port}",
             "--host", "127.0.0.1", "--port", str(port),
             "--node-config", f'agent-id={self.num_agents} storage-dir="{self.tmp_dir / name}"'],
        )
        proc = self._procs[name]
        if wait:
            self._wait_until(f"{name} exited or joined",
                             lambda: proc.poll() is not None or JOINED in self.read_log(name))
        return proc

    def _supernode_command(self) -> list[str]:
        return ["flower-supernode"] if self.flower_supernode else [sys.executable, "-m", "tools.supernode"]

    def _supernode_security(self, key: NodeKeyPair | None) -> list[str]:
        args = ["--root-certificates", str(self.certs.ca_cert)] if self.certs else ["--insecure"]
        if key is not None:
            args += ["--auth-supernode-private-key", str(key.private_key)]
        return args

    def kill_supernode(self, agent: int) -> None:
        """SIGKILL the SuperNode of ``agent`` and its ClientApp processes (a machine failure)."""
        proc = self._procs[f"supernode-{agent}"]
        self._snapshot()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def node_agents(self, node: int) -> list[int]:
        """The agents SuperNode ``node`` holds."""
        k = self.agents_per_node
        return list(range(node * k, min(self.num_agents, (node + 1) * k)))

    def agent_config(self, node: int) -> str:
        """The ``--node-config`` entry naming SuperNode ``node``'s agents."""
        if self.agents_per_node == 1:
            return f"agent-id={node}"
        agents = self.node_agents(node)
        return f'agent-ids="{agents[0]}-{agents[-1]}"'

    def storage_dir(self, agent: int) -> Path:
        """Where SuperNode ``agent`` keeps its learner's state (its own "disk")."""
        return self.tmp_dir / f"node-{agent}"

    def stop(self) -> None:
        """Stop every started process (TERM, then KILL), reap them, clean up."""
        self._snapshot()
        groups = [p.pid for p in self._procs.values()]
        self._signal(groups, self._marked_pids(), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._alive():
            self._reap()
            time.sleep(0.2)
        if self._alive():
            self._signal(groups, self._marked_pids(), signal.SIGKILL)
        for proc in self._procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 5
        while self._reap() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._old_subreaper is not None:
            _set_subreaper(self._old_subreaper)
            self._old_subreaper = None
        if not self._failed and not self.keep_logs:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)

    # ------------------------------------------------------------------ running
    def run(
        self,
        run_config: Mapping[str, Any] | None = None,
        timeout: float = 600.0,
        check: bool = True,
        on_poll: Any = None,
    ) -> subprocess.CompletedProcess[str]:
        """Submit the app with ``flwr run`` and wait until the run has finished.

        Returns a CompletedProcess whose ``returncode`` is 0 only if the run
        finished as completed, and whose ``stdout`` holds the ``flwr run`` output
        followed by the run's log (``flwr log --show``). Details are kept in
        ``self.last_run``. Raises DeploymentTimeout after ``timeout`` seconds, and
        DeploymentError if the run failed and ``check`` is true. ``on_poll(self)`` is
        called at every poll while the run goes on.
        """
        deadline = time.monotonic() + timeout
        self._refuse_legacy_federations()
        args = ["run", str(self.app_dir), CONNECTION, "--format", "json"]
        if run_config:
            args += ["--run-config", format_run_config(run_config)]
        submit = self._flwr(args, timeout=max(deadline - time.monotonic(), 1))
        try:
            run_id = int(_parse_json(submit.stdout)["run-id"])
        except (ValueError, KeyError, TypeError):
            self._fail(f"`flwr run` did not start a run (exit code {submit.returncode}):\n"
                       f"{submit.stdout}\n{submit.stderr}")
        self.last_run = {"run_id": run_id, "status": "pending", "started": time.time()}

        status: dict[str, Any] = {}
        while not str(status.get("status", "")).startswith("finished"):
            if time.monotonic() > deadline:
                self._flwr(["stop", str(run_id), CONNECTION], timeout=30)
                self._failed = True
                raise DeploymentTimeout(
                    f"run {run_id} did not finish within {timeout:.0f} s "
                    f"(last status: {status.get('status', 'unknown')})\n{self.logs()}"
                )
            time.sleep(self.poll_interval)
            self._snapshot()
            if on_poll is not None:  # e.g. a test that kills and restarts a SuperNode mid-run
                on_poll(self)
            status = self.run_status(run_id)

        run_log = self._flwr(["log", str(run_id), CONNECTION, "--show"], timeout=60)
        (self.log_dir / f"run-{run_id}.log").write_text(run_log.stdout + run_log.stderr)
        ok = status["status"] == FINISHED_OK
        self.last_run.update(
            status=status["status"], details=status.get("status-details", ""),
            elapsed=status.get("elapsed"), log=run_log.stdout,
        )
        if check and not ok:
            self._fail(
                f"run {run_id} ended as {status['status']}: "
                f"{status.get('status-details', '')}\n--- run log ---\n"
                f"{run_log.stdout[-6000:]}"
            )
        return subprocess.CompletedProcess(
            ["flwr", *args], 0 if ok else 1,
            stdout=submit.stdout + run_log.stdout, stderr=submit.stderr,
        )

    def run_status(self, run_id: int) -> dict[str, Any]:
        """Return the run's entry from ``flwr ls --run-id <id> --format json``."""
        res = self._flwr(
            ["ls", CONNECTION, "--run-id", str(run_id), "--format", "json"], timeout=60
        )
        try:
            return _parse_json(res.stdout)["runs"][0]
        except (ValueError, KeyError, IndexError):
            return {"status": "unknown", "error": res.stdout + res.stderr}

    def logs(self, lines: int = 40) -> str:
        """The last ``lines`` lines of every process log, for error messages."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path} (last {len(tail)} lines) ---\n" + "\n".join(tail))
        return "\n".join(parts)

    # ------------------------------------------------------------------ helpers
    def _flwr(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [_executable("flwr"), *args], capture_output=True, text=True,
                env=self.env, cwd=self.app_dir, timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired as err:
            self._fail(f"`flwr {' '.join(args)}` timed out after {timeout:.0f} s: {err}")

    def _spawn(self, name: str, cmd: list[str]) -> None:
        with open(self.log_dir / f"{name}.log", "wb") as log:
            self._procs[name] = subprocess.Popen(  # pylint: disable=consider-using-with
                [cmd[0] if os.path.isabs(cmd[0]) else _executable(cmd[0]), *cmd[1:]],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.app_dir, env=self.env,
                start_new_session=True,
            )

    def read_log(self, name: str) -> str:
        """The log of process ``name`` ("superlink", "supernode-<i>", ...) so far."""
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _superlink_healthy(self) -> bool:
        scheme = "https" if self.certs else "http"
        url = f"{scheme}://127.0.0.1:{self.superlink_port}/health"
        context = ssl.create_default_context(cafile=str(self.certs.ca_cert)) if self.certs else None
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as res:
                return res.status == 200
        except OSError:
            return False

    def _wait_until(self, what: str, ready: Any, timeout: float | None = None) -> None:
        timeout = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [n for n, p in self._procs.items()
                    if p.poll() is not None and n not in self._may_exit]
            if dead:
                self._fail(f"{', '.join(dead)} exited while waiting for: {what}")
            if time.monotonic() > deadline:
                self._fail(f"timed out after {timeout:.0f} s: {what}")
            time.sleep(0.2)

    def _fail(self, message: str) -> Any:
        self._failed = True
        raise DeploymentError(f"{message}\nLogs in {self.log_dir}\n{self.logs()}")

    def _refuse_legacy_federations(self) -> None:
        """`flwr run` would rewrite pyproject.toml if it had [tool.flwr.federations]."""
        pyproject = self.app_dir / "pyproject.toml"
        config = tomllib.loads(pyproject.read_text()) if pyproject.exists() else {}
        if "federations" in config.get("tool", {}).get("flwr", {}):
            self._fail(f"{pyproject} has [tool.flwr.federations]; `flwr run` would "
                       "migrate and comment it out. Move it to $FLWR_HOME/config.toml.")

    def _marked_pids(self) -> set[int]:
        """PIDs of live processes carrying this deployment's marker variable."""
        return pids_with_env(MARKER_ENV, self._marker)

    def _snapshot(self) -> None:
        self._seen |= self._marked_pids()

    def _alive(self) -> list[int]:
        return [pid for pid in self.pids if is_alive(pid)]

    @staticmethod
    def _signal(groups: list[int], pids: set[int], sig: signal.Signals) -> None:
        for pgid in groups:
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def _reap(self) -> bool:
        """Reap exited descendants re-parented to us; True if some are still running."""
        direct = {p.pid for p in self._procs.values()}
        pending = False
        for pid in self._seen - direct:
            try:
                if os.waitpid(pid, os.WNOHANG) == (0, 0):
                    pending = True
            except ChildProcessError:
                pass
        return pending


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: start a deployment, run the app once, stop."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app-dir", default=".", help="Flower app directory")
    parser.add_argument("--agents", type=int, default=3, help="number of agents")
    parser.add_argument("--agents-per-node", type=int, default=1,
                        help="agents each SuperNode holds (agent-ids=\"0-4\"); 1: agent-id=<i>")
    parser.add_argument("--flower-supernode", action="store_true",
                        help="Flower's flower-supernode (a process per message) instead of tools.supernode")
    parser.add_argument("--run-config", default="",
                        help="overrides, e.g. 'rounds=2 strategy=\"fpf\"'")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds")
    parser.add_argument("--base-port", type=int, default=None)
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--tls", action="store_true", help="TLS with throw-away certificates")
    parser.add_argument("--auth", action="store_true",
                        help="SuperNode authentication (implies --tls)")
    args = parser.parse_args(argv)

    from flwr.common.config import parse_config_args  # pylint: disable=C0415

    run_config = parse_config_args([args.run_config]) if args.run_config else {}
    with LocalDeployment(args.app_dir, args.agents, base_port=args.base_port,
                         keep_logs=args.keep_logs, tls=args.tls, auth=args.auth,
                         agents_per_node=args.agents_per_node,
                         flower_supernode=args.flower_supernode) as dep:
        print(f"SuperLink on 127.0.0.1:{dep.superlink_port}, SuperNodes on "
              f"{dep.supernode_ports}; logs in {dep.log_dir}", flush=True)
        started = time.monotonic()
        result = dep.run(run_config, timeout=args.timeout, check=False)
        print(dep.last_run.get("log", ""))
        print(f"run {dep.last_run['run_id']}: {dep.last_run['status']} "
              f"{dep.last_run.get('details', '')} in {time.monotonic() - started:.1f} s")
        if result.returncode:
            dep.keep_logs = True
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
