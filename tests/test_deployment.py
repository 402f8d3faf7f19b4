"""End-to-end runs of the app on a real local deployment (SuperLink + 3 SuperNodes).

The tests of this module share one deployment (over TLS, SuperNodes authenticated),
started once; the last one kills a SuperNode. When the module is done the deployment
is stopped and none of its processes may be left.
"""

import csv
import json
import math
import shutil
from pathlib import Path

import pytest

from tools.local_deployment import DeploymentError, LocalDeployment, is_alive

ROOT = Path(__file__).resolve().parents[1]
# only flags the runs read: `flwr run` refuses one that differs from its default and that the
# strategy and learners do not read, as run_sim.py does
SMALL_RUN = {"steps": 20, "hidden": 32, "ppo-epochs": 1, "ppo-minibatch": 64, "progress": False}


#: agents whose SuperNode a test killed (started again before the next test)
KILLED: set[int] = set()


@pytest.fixture(scope="module")
def deployment(request):
    """One SuperLink and 3 SuperNodes over TLS with SuperNode authentication (each
    SuperNode's key registered with `flwr supernode register` first), for the whole
    module; afterwards every process it started has ended. Its logs are kept if a test
    failed."""
    failed_before = request.session.testsfailed
    with LocalDeployment(ROOT, num_agents=3, auth=True, keep_logs=True) as dep:
        yield dep
        pids = dep.pids
    if request.session.testsfailed == failed_before:
        shutil.rmtree(dep.tmp_dir, ignore_errors=True)
    assert pids
    assert [pid for pid in pids if is_alive(pid)] == []


@pytest.fixture
def dep(deployment):
    """The module's deployment with all 3 SuperNodes up."""
    while KILLED:
        deployment.start_supernode(KILLED.pop())
    return deployment


def _rounds_done(out: Path) -> int:
    try:
        return max(0, len((out / "metrics.csv").read_text().strip().splitlines()) - 1)
    except FileNotFoundError:
        return 0


@pytest.mark.deployment
def test_two_rounds_on_local_deployment(dep, tmp_path):
    """Over TLS with SuperNode authentication (each SuperNode's key registered with
    `flwr supernode register` first), two rounds with 3 agents (PPO and DQN) finish, write finite metrics, keep each agent's
    learner, the DQN replay buffer included, across messages (every message is a fresh
    process) in the SuperNode's own storage directory and not in the messages, and leave
    no process behind."""
    out = tmp_path / "out"
    run_config = {"rounds": 2, "strategy": "independent", "learner": "ppo:0-1,dqn:2", "agents": 3, "batch": 2,
                  "out": str(out), "dqn-updates": 4, "dqn-batch": 32, **SMALL_RUN}

    assert "insecure" not in (dep.flwr_home / "config.toml").read_text()  # over TLS
    assert "Uvicorn running on https://" in dep.read_log("superlink")
    joined = {i: f"SuperNode ID: {dep.node_ids[i]}" in dep.read_log(f"supernode-{i}") for i in range(3)}
    result = dep.run(run_config, timeout=900)
    stored = [(dep.storage_dir(i) / f"agent_{i}" / "learner.pt").is_file() for i in range(3)]
    assert result.returncode == 0
    assert joined == {0: True, 1: True, 2: True}  # each under the node id registered for its key

    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    assert len({row["round"] for row in rows}) == 2
    agent_cols = [c for c in rows[0] if c.startswith("return_agent_")]
    assert len(agent_cols) == 3
    for row in rows:
        assert all(math.isfinite(float(row[c])) for c in agent_cols)
    assert (out / "summary.json").exists()
    assert stored == [True, True, True]  # each in its SuperNode's storage-dir, not the server's out
    assert not (out / "agents").exists()
    assert [float(row["agents_buffer_size"]) for row in rows] == [2 * 20, 2 * 2 * 20]  # the DQN agent's buffer
    assert [float(row["agents_context_records"]) for row in rows] == [0, 0]
    steps = [float(row["agents_optimizer_steps"]) for row in rows]
    assert steps[0] > 0 and steps[1] == 2 * steps[0]  # optimisers carried over between processes
    assert json.loads((out / "summary.json").read_text())["events"] == []  # nobody had to start over


@pytest.mark.deployment
def test_supernode_without_registered_key_cannot_join(dep):
    """With SuperNode authentication on, a SuperNode whose public key was not registered
    (and one with no key, which tries to register itself) is refused by the SuperLink and
    exits, and the SuperLink lists only the registered SuperNodes, online."""
    intruder = dep.start_unregistered_supernode("intruder", wait=False)
    keyless = dep.start_unregistered_supernode("keyless", with_key=False, wait=False)
    codes = (intruder.wait(timeout=300), keyless.wait(timeout=300))
    logs = {name: dep.read_log(name) for name in ("intruder", "keyless", "superlink")}
    nodes = {n["node-id"]: n["status"] for n in dep.supernodes()}

    assert codes[0] != 0 and codes[1] != 0
    assert "SuperNode ID:" not in logs["intruder"] + logs["keyless"]
    assert "Failed to activate SuperNode" in logs["intruder"]
    assert "All SuperNodes must be registered via the CLI" in logs["keyless"]
    assert "No SuperNode found with the given public key" in logs["superlink"]
    assert nodes == {str(dep.node_ids[i]): "online" for i in range(3)}


@pytest.mark.deployment
def test_a_supernode_killed_and_not_restarted_ends_the_run_non_zero(dep, tmp_path):
    """SuperNode 1 is killed after round 1 and never comes back; the run goes to its end
    and fails (`flwr run` reports it), with agent 1's missed rounds in summary.json."""
    out = tmp_path / "out"
    # enough rounds that at least two are left when the kill lands (a round takes ~1 s)
    run_config = {"rounds": 10, "strategy": "independent", "agents": 3, "batch": 2, "out": str(out), **SMALL_RUN}
    killed = []

    def chaos(deployment):
        if not killed and _rounds_done(out) >= 1:
            deployment.kill_supernode(1)
            KILLED.add(1)
            killed.append(_rounds_done(out))

    dep.poll_interval = 0.5
    try:
        # a run that does not finish as completed is an error of the deployment's run
        with pytest.raises(DeploymentError, match=r"finished:failed(.|\n)*agent 1 missed \d rounds"):
            dep.run(run_config, timeout=1200, on_poll=chaos)
    finally:
        dep.poll_interval = 2.0
    assert killed
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["missed_rounds"]) == ["1"] and len(summary["missed_rounds"]["1"]) >= 2
