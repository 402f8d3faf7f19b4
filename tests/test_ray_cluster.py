"""experiments/ray_cluster.py on a real two-node Ray cluster started on this machine: a tiny
campaign through ``python -m experiments run ... --ray-address``, spread over both nodes,
equals the same campaign run locally (one of its runs continued from a partial run shipped
with its task); an absolute ``out`` resumes too; a failing task reports its reason; a
stopped executor cancels its tasks. Those are marked slow; the file handling is not.

The nodes are ``ray start --block`` processes this test owns, each the leader of its own
process group with its own --temp-dir and ports; every Ray process of a node stays in its
group, so the teardown stops both groups and checks, by PID, that none of them is left.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from experiments import engine, status
from experiments.__main__ import main as cli
from experiments.campaign import load
from experiments.engine import Task
from experiments.ray_cluster import PREFIX, RayExecutor, _inputs, _worker_out, install, pack
from federation.config import RunConfig
from federation.in_process import run_in_process

RAY = Path(sys.executable).parent / "ray"
TINY = dict(env="matthew", agents=3, batch=2, steps=10, hidden=8, minibatch=64, epochs=2, eval_every=0,
            progress=False)
CAMPAIGN = """name = "ray-tiny"
out = "{out}"
seeds = [0]

[defaults]
env = "matthew"
rounds = {rounds}
batch = 2
steps = 10
hidden = 8
minibatch = 64
epochs = 2
eval-every = 0

[scenarios.m2]
agents = 2

[scenarios.m3]
agents = 3

[methods.independent]
strategy = "independent"

[methods.avg]
strategy = "avg"
"""


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _group(pgid: int) -> set[int]:
    """The PIDs of the live processes in process group ``pgid``."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.add(int(stat.parent.name))
    return pids


def _mentioning(text: str) -> set[int]:
    """The PIDs of the live processes whose command line contains ``text``."""
    pids = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                pids.add(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


class Node:
    """One ``ray start --block`` process, leader of its own process group."""

    def __init__(self, name: str, root: Path, args: list[str]):
        self.name, self.log = name, root / f"{name}.log"
        self.temp = root / name
        node_ports = _free_ports(6)
        args = args + [f"--temp-dir={self.temp}", "--num-cpus=1", "--node-ip-address=127.0.0.1",
                       "--object-store-memory=100000000", "--disable-usage-stats", "--block",
                       f"--node-manager-port={node_ports[0]}", f"--object-manager-port={node_ports[1]}",
                       f"--dashboard-agent-listen-port={node_ports[2]}", f"--dashboard-agent-grpc-port={node_ports[3]}",
                       f"--metrics-export-port={node_ports[4]}", f"--runtime-env-agent-port={node_ports[5]}"]
        env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0"}
        env.pop("RAY_ADDRESS", None)
        with self.log.open("w") as log:
            self.process = subprocess.Popen([str(RAY), "start", *args], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.pgid = self.process.pid  # start_new_session: the leader of its own group

    def wait_started(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Ray runtime started" in self.log.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        raise RuntimeError(f"ray node {self.name} did not start:\n{self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> set[int]:
        """SIGTERM to the group, SIGKILL to what is left after 30 s; returns the PIDs still alive."""
        seen = _group(self.pgid)
        try:
            os.killpg(self.pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (_group(self.pgid) or self.process.poll() is None):
            time.sleep(0.3)
        for pid in _group(self.pgid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.5)
        return {pid for pid in seen | _group(self.pgid) if Path(f"/proc/{pid}").exists()
                and (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z")}


@pytest.fixture(scope="module")
def cluster():
    """A head and a second node, one CPU each: yields the address."""
    if not RAY.exists():
        pytest.skip(f"no ray console script at {RAY}")
    root = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp" if Path("/tmp").is_dir() else None))  # short: socket paths
    port, client_port, dashboard_port = _free_ports(3)
    nodes = []
    try:
        head = Node("head", root, ["--head", f"--port={port}", f"--ray-client-server-port={client_port}",
                                   "--include-dashboard=false", f"--dashboard-port={dashboard_port}"])
        nodes.append(head)
        head.wait_started()
        worker = Node("worker", root, [f"--address=127.0.0.1:{port}"])
        nodes.append(worker)
        worker.wait_started()
        yield f"127.0.0.1:{port}"
    finally:
        left = set()
        for node in reversed(nodes):
            left |= node.stop()
        left |= _mentioning(str(root))
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"Ray processes of the test still running: {sorted(left)}"
        assert not root.exists()


def _rows(path: Path) -> list[dict]:
    with (path / "metrics.csv").open() as f:
        return [{k: v for k, v in row.items() if not k.endswith("_s")} for row in csv.DictReader(f)]


def _leftover_worker_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob(f"{PREFIX}*")}


@pytest.mark.slow
def test_a_campaign_spreads_over_both_nodes_and_equals_a_local_run(cluster, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the campaign's out is relative, as in the shipped campaigns
    before = _leftover_worker_dirs()
    path = tmp_path / "ray.toml"
    # one run is partial (1 of 2 rounds, with its checkpoint): its task ships it and continues it
    path.write_text(CAMPAIGN.format(out="ray-out", rounds=1))
    assert cli(["run", str(path), "--only-scenarios", "m3", "--only-methods", "avg"]) == 0
    path.write_text(CAMPAIGN.format(out="ray-out", rounds=2))
    decisions = {d.run.name: d.action for d in engine.run_campaign(load(path), dry_run=True).decisions}
    assert decisions == {"m2 independent seed 0": "start", "m2 avg seed 0": "start",
                         "m3 independent seed 0": "start", "m3 avg seed 0": "resume"}
    capsys.readouterr()

    start = time.perf_counter()
    assert cli(["run", str(path), "--ray-address", cluster]) == 0
    ray_s = time.perf_counter() - start
    out = capsys.readouterr().out
    nodes = re.findall(r"^ray: node (\w+) \(([^)]*)\): (\d+) run", out, re.M)
    assert len(nodes) == 2, out  # both nodes ran runs
    assert sum(int(n) for _, _, n in nodes) == 4, out
    assert "every selected run is done" in out, out

    local = tmp_path / "local.toml"
    local.write_text(CAMPAIGN.format(out=str(tmp_path / "local-out"), rounds=2))
    assert cli(["run", str(local)]) == 0
    for remote, here in zip(load(path).plan(), load(local).plan()):
        assert status.check(remote.cfg).state is status.State.DONE, remote.name
        assert _rows(remote.out) == _rows(here.out), remote.name
        assert len(_rows(remote.out)) == 2
        for name in ("config.json", "metrics.csv", "summary.json", "checkpoint.pt", "agents"):
            assert (remote.out / name).exists(), (remote.name, name)
        assert json.loads((remote.out / "config.json").read_text())["out"] == str(remote.out)  # as planned
    # the swaps left nothing beside the run directories, the nodes no temporary directory
    assert not [p for p in (tmp_path / "ray-out").rglob(".*") if ".ray-" in p.name or ".old-" in p.name]
    assert _leftover_worker_dirs() <= before
    print(f"ray campaign: {ray_s:.1f} s\n" + "".join(f"  node {n} ({h}): {k} runs\n" for n, h, k in nodes),
          file=sys.stderr)


@pytest.mark.slow
def test_an_absolute_out_resumes_and_a_failing_task_reports_its_reason(cluster, tmp_path):
    before = _leftover_worker_dirs()
    partial = RunConfig.of(**TINY, rounds=1, out=str(tmp_path / "abs")).validated()
    run_in_process(partial)
    planned = partial.replace(rounds=2)
    reference = planned.replace(out=str(tmp_path / "reference"))
    run_in_process(reference)

    broken = json.loads(planned.replace(out=str(tmp_path / "broken")).to_json())
    broken["agents"] = 0
    tasks = [Task("t", "abs", 0, planned.replace(resume=True).to_json()), Task("t", "broken", 0, json.dumps(broken))]
    executor = RayExecutor(cluster)
    try:
        assert len(executor.node_cpus) == 2 and executor.jobs == 2
        good, bad = [f.result(timeout=300) for f in [executor.submit(t) for t in tasks]]
    finally:
        executor.stop()

    assert good.ok and good.rounds == 2, good
    out = Path(planned.out)
    assert _rows(out) == _rows(Path(reference.out))
    # the planned (absolute) out, not the node's temporary one, in config.json; the checkpoint
    # names no directory (a moved run resumes)
    assert json.loads((out / "config.json").read_text())["out"] == str(out)
    assert "out" not in json.loads(torch.load(out / "checkpoint.pt", weights_only=False)["config"])
    assert status.check(planned).state is status.State.DONE

    assert not bad.ok and "agents" in bad.reason, bad
    failure = status.read_failure(tmp_path / "broken")
    assert failure is not None and failure["reason"] == bad.reason and failure["attempts"] == 1
    assert {p.run for p in executor.placements} == {"t abs seed 0", "t broken seed 0"}
    assert _leftover_worker_dirs() <= before


@pytest.mark.slow
def test_stopping_cancels_a_running_task_without_a_failure_marker(cluster, tmp_path):
    """The engine's Ctrl-C: the task is cancelled, the run directory stays as it was, no
    failure.json, and the task's temporary directory on the node is removed."""
    before = _leftover_worker_dirs()
    cfg = RunConfig.of(**TINY, rounds=10_000, out=str(tmp_path / "long")).validated()
    executor = RayExecutor(cluster)
    future = executor.submit(Task("t", "long", 0, cfg.to_json()))
    deadline = time.monotonic() + 120
    while _leftover_worker_dirs() <= before and time.monotonic() < deadline:  # until the task runs
        time.sleep(0.2)
    assert not _leftover_worker_dirs() <= before and not future.done()
    time.sleep(2)  # into the run
    start = time.perf_counter()
    executor.stop(interrupted=True)
    assert time.perf_counter() - start < 60
    outcome = future.result(timeout=1)
    assert not outcome.ok and outcome.reason == "interrupted"
    assert not (tmp_path / "long").exists() and not executor.placements
    deadline = time.monotonic() + 30
    while not _leftover_worker_dirs() <= before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _leftover_worker_dirs() <= before


def test_a_stop_kills_the_workers_of_tasks_that_outlive_their_interrupt():
    """Ctrl-C cancels every running task, waits CANCEL_GRACE seconds for them to end, then
    kills the workers of those still running (an interrupt can be lost), and only those."""
    import concurrent.futures as cf
    import threading

    from experiments import ray_cluster

    calls, waits = [], []

    class FakeRay:
        def cancel(self, ref, force=False):
            calls.append((ref, force))

        def wait(self, refs, num_returns, timeout):
            waits.append((list(refs), num_returns, timeout))
            return ["ended"], ["stuck"]

        def is_initialized(self):
            return False

    executor = ray_cluster.RayExecutor.__new__(ray_cluster.RayExecutor)
    executor._ray, executor._stopped, executor._stopping = FakeRay(), False, False
    executor._lock, executor._pool = threading.Lock(), cf.ThreadPoolExecutor(1)
    executor._refs = {"ended": Task("t", "a", 0, "{}"), "stuck": Task("t", "b", 0, "{}")}
    executor.stop(interrupted=True)
    assert calls == [("ended", False), ("stuck", False), ("stuck", True)]
    assert waits == [(["ended", "stuck"], 2, ray_cluster.CANCEL_GRACE)]
    calls.clear()
    executor._stopped = False
    executor.stop(interrupted=False)  # the end of a campaign: nothing cancelled, nobody killed
    assert calls == []


def test_install_swaps_a_directory_in_and_inputs_travel_by_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "src"
    (src / "agents" / "0").mkdir(parents=True)
    (src / "metrics.csv").write_text("round\n1\n")
    (src / "agents" / "0" / "state.pt").write_bytes(b"\0" * 10)
    out = tmp_path / "runs" / "r"
    out.mkdir(parents=True)
    (out / "stale.txt").write_text("old")
    install(pack(src), out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "agents", "agents/0", "agents/0/state.pt", "metrics.csv"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["r"]  # nothing left beside it

    (tmp_path / "policies.pt").write_bytes(b"p")
    config = {"out": "runs/r", "mediator_policy": "policies.pt", "graph_file": str(tmp_path / "policies.pt"),
              "env": "matthew", "md": {"x": "runs/r/metrics.csv"}}
    (out / "metrics.csv").write_text("x")
    assert _inputs(config, "runs/r") == {"policies.pt": b"p"}  # not absolute paths, not the run's own files
    assert _worker_out("docs/results/r") == Path("docs/results/r")
    assert _worker_out("/data/r") == Path("elsewhere/data/r") and _worker_out("../r") == Path("elsewhere/up/r")
