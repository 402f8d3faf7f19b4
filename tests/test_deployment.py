"""End-to-end run of the app on a real local deployment (SuperLink + 3 SuperNodes)."""

import csv
import math
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also works with a plain `pytest` run
    sys.path.insert(0, str(ROOT))

from tools.local_deployment import LocalDeployment, is_alive  # noqa: E402

# Keys that shrink the workload, used only if the app defines them.
SMALL_RUN = {
    "steps": 20, "hidden": 32, "epochs": 1, "minibatch": 64, "fed-updates": 1,
    "fed-batch": 64, "progress": False,
}


def _app_config() -> dict:
    """The app's default run config from pyproject.toml ({} if not declared)."""
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.exists():
        return {}
    tool = tomllib.loads(pyproject.read_text()).get("tool", {})
    return tool.get("flwr", {}).get("app", {}).get("config", {})


@pytest.mark.deployment
def test_two_rounds_on_local_deployment(tmp_path):
    """Two rounds with 3 agents finish, write finite metrics, and leave no process."""
    config = _app_config()
    if not config or shutil.which("flower-superlink") is None:
        pytest.skip("no Flower app declared in pyproject.toml, or flwr missing")
    out = tmp_path / "out"
    run_config = {
        "rounds": 2, "strategy": "fpf", "agents": 3, "participation": 0.5,
        "batch": 2, "out": str(out),
        **{k: v for k, v in SMALL_RUN.items() if k in config},
    }

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

    assert pids
    assert [pid for pid in pids if is_alive(pid)] == []
