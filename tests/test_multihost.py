"""docs/DEPLOYMENT.md followed on separate hosts: each machine a Linux network namespace.

A SuperLink (10.77.0.1 on the fleet network, 10.77.1.1 towards the operator), an
operator's CLI (10.77.1.2), three SuperNodes (10.77.0.10-12) and a machine whose key is
not registered (10.77.0.13); each has its own directory, HOME and FLWR_HOME, and runs
exactly the commands `python -m tools.deploy` prints (read from its plan.json). The
fleet network is a bridge in a namespace of its own, so nothing changes on the host.
"""

import csv
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import OwnProcesses
from tools.certificates import generate_supernode_keys
from tools.deploy import make_plan
from tools.flwr_connection import write_connection
from tools.local_deployment import JOINED

ROOT = Path(__file__).resolve().parents[1]
FLEET = {"superlink": "10.77.0.1", "node-0": "10.77.0.10", "node-1": "10.77.0.11",
         "node-2": "10.77.0.12", "stranger": "10.77.0.13"}
# node 1 misses round 2 (killed) and whatever rounds start before it is back (~60 s until
# the SuperLink marks it offline, then its restart): 5 rounds, up to 3 of them missed
SMALL_RUN = ("rounds=5 batch=2 steps=20 hidden=32 ppo-epochs=1 ppo-minibatch=64 "
             "max-missed-rounds=3 progress=false out='runs/deployed'")


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)


class Hosts:
    """The namespaces, their processes and their clean-up (by PID, then the namespaces)."""

    def __init__(self, root: Path, processes: OwnProcesses) -> None:
        self.tag = processes.tag[:6]
        self.processes = processes
        self.root = root
        self.ns = {m: f"fg{self.tag}-{m.replace('node-', 'n')[:5]}"
                   for m in [*FLEET, "operator", "bridge"]}
        self.procs: dict[str, subprocess.Popen] = {}
        self.old_procs: list[subprocess.Popen] = []
        self.created: list[str] = []

    def create(self) -> None:
        for name in self.ns.values():
            res = _ip("netns", "add", name)
            if res.returncode:
                raise RuntimeError(f"ip netns add {name}: {res.stderr.strip()}")
            self.created.append(name)
            self._must("-n", name, "link", "set", "lo", "up")
        br = self.ns["bridge"]
        self._must("-n", br, "link", "add", "br0", "type", "bridge")
        self._must("-n", br, "link", "set", "br0", "up")
        for i, (machine, address) in enumerate(FLEET.items()):
            ns = self.ns[machine]
            self._must("-n", br, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._must("-n", br, "link", "set", f"p{i}", "master", "br0", "up")
            self._must("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            self._must("-n", ns, "link", "set", "eth0", "up")
        # the operator's own link to the SuperLink, not bridged to the fleet network
        sl, op = self.ns["superlink"], self.ns["operator"]
        self._must("-n", sl, "link", "add", "op0", "type", "veth", "peer", "name", "eth0", "netns", op)
        self._must("-n", sl, "addr", "add", "10.77.1.1/24", "dev", "op0")
        self._must("-n", sl, "link", "set", "op0", "up")
        self._must("-n", op, "addr", "add", "10.77.1.2/24", "dev", "eth0")
        self._must("-n", op, "link", "set", "eth0", "up")

    def _must(self, *args: str) -> None:
        res = _ip(*args)
        if res.returncode:
            raise RuntimeError(f"ip {' '.join(args)}: {res.stderr.strip()}")

    def env(self, machine: str, home: Path, extra: dict | None = None) -> dict:
        """A machine's environment: its own HOME and FLWR_HOME, no project on the path."""
        env = {k: v for k, v in self.processes.env().items() if k not in ("PYTHONPATH", "FLWR_HOME")}
        env.update(HOME=str(home), FLWR_HOME=str(home / ".flwr"), FLWR_DISABLE_UPDATE_CHECK="1",
                   FLWR_TELEMETRY_ENABLED="0", PYTHONUNBUFFERED="1",
                   # a SuperExec polls for new tasks every 1 s by default (as tools.local_deployment)
                   FLWR_SUPEREXEC_TASK_POLL_INTERVAL="0.2", **(extra or {}))
        return env

    def start(self, name: str, machine: str, command: str, cwd: Path, env: dict) -> subprocess.Popen:
        """Start ``command`` (a shell line) on ``machine`` in the background, logged."""
        if name in self.procs:
            self.old_procs.append(self.procs[name])
        log = open(self.root / f"{name}.log", "ab")  # pylint: disable=consider-using-with
        self.procs[name] = subprocess.Popen(
            ["ip", "netns", "exec", self.ns[machine], "bash", "-c", f"exec {command}"],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        return self.procs[name]

    def run(self, machine: str, script: str, cwd: Path, env: dict, timeout: float = 300):
        """Run a shell script on ``machine`` and wait for it."""
        return subprocess.run(["ip", "netns", "exec", self.ns[machine], "bash", "-c", script],
                              cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False, start_new_session=True)

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def marked(self) -> set[int]:
        """Every live process started on the machines (the marker of ``OwnProcesses``)."""
        return self.processes.alive()

    def kill(self, name: str) -> None:
        """SIGKILL a started process and its process group (its SuperExec, ClientApps)."""
        proc = self.procs[name]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def stop(self) -> None:
        """Every started process by PID (TERM, then KILL), then the namespaces."""
        procs = [*self.procs.values(), *self.old_procs]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for proc in procs:
                try:
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            for pid in self.marked():  # detached ones (SuperExec, flwr-serverapp, ...)
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and (self.marked() or any(p.poll() is None for p in procs)):
                time.sleep(0.2)
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for name in self.created:
            _ip("netns", "del", name)


@pytest.fixture
def hosts(tmp_path, own_processes):
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (ip netns)")
    if shutil.which("ip") is None:
        pytest.skip("the `ip` command (iproute2) is not installed")
    net = Hosts(tmp_path, own_processes)
    try:
        try:
            net.create()
        except RuntimeError as err:
            pytest.skip(f"network namespaces unavailable here: {err}")
        yield net
    finally:
        net.stop()
        left = set(_ip("netns", "list").stdout.split()) & set(net.created)
        assert not left, f"namespaces left: {left}"


def wait_for(what: str, ready, timeout: float, hosts: Hosts, names=()) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n}\n{hosts.log(n)[-3000:]}" for n in names)
            raise AssertionError(f"timed out after {timeout:.0f} s: {what}\n{logs}")
        time.sleep(0.5)


def rows_of(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.deployment
def test_deployment_on_separate_hosts(hosts, tmp_path):
    """TLS and SuperNode authentication on; the Control API only on the operator's link.
    5 rounds: every agent's learner is on its own node's disk; a machine with an
    unregistered key can neither join, nor register itself, nor list runs; node 1,
    killed after round 1 and restarted as the doc says, misses round 2 (and any round
    sent while it was away) and trains again in the last round; everything is stopped
    and the namespaces deleted."""
    deploy = tmp_path / "deploy"
    plan = make_plan(deploy, FLEET["superlink"], [FLEET[f"node-{i}"] for i in range(3)],
                     control="10.77.1.1:9093", storage_dir="storage", run_config=SMALL_RUN)
    steps = {s.machine + ("-run" if s.machine == "operator" and "flwr run" in " ".join(s.commands) else ""): s
             for s in plan.steps}
    # each machine gets a copy of its folder, as a separate host would
    homes = {}
    for machine in ["superlink", "node-0", "node-1", "node-2"]:
        homes[machine] = tmp_path / "hosts" / machine
        shutil.copytree(deploy / machine, homes[machine])
    homes["operator"] = deploy / "operator"  # the operator generated the files: FLWR_HOME in place
    out = homes["superlink"] / "runs" / "deployed"

    # 1. the SuperLink (the project installed there: PYTHONPATH stands in for pip install)
    hosts.start("superlink", "superlink", steps["superlink"].commands[0], homes["superlink"],
                hosts.env("superlink", homes["superlink"], {"PYTHONPATH": str(ROOT)}))
    wait_for("SuperLink up", lambda: "Application startup complete" in hosts.log("superlink"), 90,
             hosts, ["superlink"])
    assert ("Control, Runtime and Fleet API on https://10.77.1.1:9093; Fleet API only on "
            "https://10.77.0.1:9092") in hosts.log("superlink")

    # 2. the operator registers the three keys (from the project checkout)
    op_env = hosts.env("operator", tmp_path / "operator-home")
    (tmp_path / "operator-home").mkdir()
    res = hosts.run("operator", "set -e\n" + "\n".join(steps["operator"].commands), ROOT, op_env)
    assert res.returncode == 0, res.stdout + res.stderr
    node_ids = [int(m) for m in re.findall(r"(\d{6,})", res.stdout)]
    assert len(node_ids) == 3, res.stdout

    # 3. the SuperNodes, each on its machine
    for i in range(3):
        step = steps[f"node-{i}"]
        assert f'storage-dir="storage"' in step.commands[0]
        hosts.start(f"node-{i}", f"node-{i}", step.commands[0], homes[f"node-{i}"],
                    hosts.env(f"node-{i}", homes[f"node-{i}"]))
    for i in range(3):
        wait_for(f"node-{i} joined", lambda i=i: JOINED in hosts.log(f"node-{i}"), 120, hosts,
                 [f"node-{i}", "superlink"])
        assert f"{JOINED} {node_ids[i]}" in hosts.log(f"node-{i}")

    # 4. the operator runs the app; node 1 is killed after round 1 and restarted
    run_step = steps["operator-run"]
    ls = hosts.run("operator", "\n".join(run_step.commands[:2]) + " --format json", ROOT, op_env)
    nodes = json.loads(ls.stdout[ls.stdout.index("{"):])["nodes"]
    assert sorted(int(n["node-id"]) for n in nodes) == sorted(node_ids)
    assert all(n["status"] == "online" for n in nodes), nodes
    hosts.start("operator-run", "operator", "bash -c " + shlex.quote(
        "\n".join([run_step.commands[0], run_step.commands[2], run_step.commands[3]])), ROOT, op_env)
    wait_for("round 1", lambda: len(rows_of(out / "metrics.csv")) >= 1, 400, hosts,
             ["operator-run", "superlink", "node-0"])
    hosts.kill("node-1")
    killed_at = time.time()

    # while the SuperLink still counts node 1 online (up to a minute), a stranger on the
    # fleet network, with the CA certificate and a key of its own, not registered, tries in
    # the middle of the run to join, to list the runs and to register itself
    stranger = tmp_path / "hosts" / "stranger"
    stranger.mkdir(parents=True)
    shutil.copy(deploy / "node-0" / "ca.crt", stranger / "ca.crt")
    key = generate_supernode_keys(stranger, "stranger")
    s_env = hosts.env("stranger", stranger)
    write_connection(stranger / ".flwr" / "config.toml", "fleet", "10.77.0.1:9092", str(stranger / "ca.crt"))
    write_connection(stranger / ".flwr" / "config.toml", "control", "10.77.1.1:9093", str(stranger / "ca.crt"))
    hosts.start("stranger-node", "stranger", f"flower-supernode --superlink 10.77.0.1:9092 --root-certificates "
                f"ca.crt --auth-supernode-private-key {key.private_key.name} --node-config 'agent-id=1'",
                stranger, s_env)
    probes = hosts.run("stranger", "\n".join(
        f"flwr {cmd} {conn} --format json"
        for cmd in ("ls", f"supernode register {key.public_key}") for conn in ("fleet", "control")),
        stranger, s_env, timeout=240)
    # (with --format json flwr exits 0 and says "success": false)
    assert probes.stdout.count('"success": false') == 4, probes.stdout + probes.stderr
    assert '"success": true' not in probes.stdout and '"runs"' not in probes.stdout
    for path in ("list-runs", "register-node"):  # the fleet address serves no Control API
        assert f"404 Not Found' for url 'https://10.77.0.1:9092/v1/control/{path}'" in probes.stdout
    assert probes.stdout.count("Connection to the SuperLink is unavailable") == 2  # no route
    wait_for("the stranger's SuperNode refused", lambda: hosts.procs["stranger-node"].poll() is not None,
             120, hosts, ["stranger-node"])
    assert JOINED not in hosts.log("stranger-node")
    listings: list[list[dict]] = []

    def node1_offline() -> bool:
        res = hosts.run("operator", "\n".join(run_step.commands[:2]) + " --format json", ROOT, op_env, 120)
        listed = json.loads(res.stdout[res.stdout.index("{"):])["nodes"] if "{" in res.stdout else []
        listings.append(listed)
        return any(int(n["node-id"]) == node_ids[1] and n["status"] == "offline" for n in listed)

    wait_for("node 1 offline", node1_offline, 240, hosts, ["superlink"])
    # the stranger, refused, is not among the nodes
    assert sorted(int(n["node-id"]) for n in listings[-1]) == sorted(node_ids), listings[-1]
    hosts.start("node-1-again", "node-1", steps["node-1"].commands[0], homes["node-1"],
                hosts.env("node-1", homes["node-1"]))  # the doc's rejoin: the same command
    wait_for("node 1 rejoined", lambda: JOINED in hosts.log("node-1-again"), 180, hosts,
             ["node-1-again", "superlink"])
    assert f"{JOINED} {node_ids[1]}" in hosts.log("node-1-again")  # same key, same node id
    wait_for("the run finished", lambda: hosts.procs["operator-run"].poll() is not None, 600, hosts,
             ["operator-run", "superlink"])
    run_log = hosts.log("operator-run")
    assert hosts.procs["operator-run"].returncode == 0, run_log[-4000:]
    assert re.search(r"run \d+: finished:completed", run_log), run_log[-4000:]

    rows = rows_of(out / "metrics.csv")
    assert [int(r["round"]) for r in rows] == [1, 2, 3, 4, 5]
    failed = [int(float(r["failed_agents"])) for r in rows]
    assert failed[:2] == [0, 1] and failed[-1] == 0, failed  # lost in round 2, back by round 5
    assert all(int(float(r["trained_agents"])) == 3 - f for r, f in zip(rows, failed))
    for i in range(3):  # each learner on its own node's disk, none on the SuperLink's
        learner = homes[f"node-{i}"] / "storage" / f"agent_{i}" / "learner.pt"
        assert learner.is_file(), i
    assert (homes["node-1"] / "storage" / "agent_1" / "learner.pt").stat().st_mtime > killed_at
    assert not (out / "agents").exists()

    hosts.stop()
    assert hosts.marked() == set()
    assert all(p.poll() is not None for p in hosts.procs.values())
