"""End-to-end run of the app on a real local deployment (SuperLink + 3 SuperNodes)."""

import csv
import math
from pathlib import Path

import pytest

from tools.local_deployment import LocalDeployment, is_alive

ROOT = Path(__file__).resolve().parents[1]
SMALL_RUN = {"steps": 20, "hidden": 32, "epochs": 1, "minibatch": 64, "fed-updates": 1, "fed-batch": 64,
             "progress": False}


@pytest.mark.deployment
def test_two_rounds_on_local_deployment(tmp_path):
    """Two rounds with 3 agents finish, write finite metrics, keep each agent's learner
    across messages (every message is a fresh process), and leave no process behind."""
    out = tmp_path / "out"
    run_config = {"rounds": 2, "strategy": "fpf", "agents": 3, "participation": 0.5, "batch": 2, "out": str(out),
                  **SMALL_RUN}

    with LocalDeployment(ROOT, num_agents=3) as dep:
        result = dep.run(run_config, timeout=900)
        pids = dep.pids
    assert result.returncode == 0

    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    assert len({row["round"] for row in rows}) == 2
    agent_cols = [c for c in rows[0] if c.startswith("return_agent_")]
    assert len(agent_cols) == 3
    for row in rows:
        assert all(math.isfinite(float(row[c])) for c in agent_cols)
    assert (out / "summary.json").exists()
    assert [float(row["uploads"]) for row in rows] == [2, 2]  # round(0.5·3) participants share
    steps = [float(row["agents_optimizer_steps"]) for row in rows]
    assert steps[0] > 0 and steps[1] == 2 * steps[0]  # Adam state carried over in context.state

    assert pids
    assert [pid for pid in pids if is_alive(pid)] == []
