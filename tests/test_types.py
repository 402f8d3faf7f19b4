"""A type checker runs clean over the layers that talk to each other (clients/, strategies/,
federation/): a renamed attribute of a rollout, a configuration group or a strategy hook
fails here, not at run time."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), "--no-error-summary"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


def test_strategies_read_the_run_through_their_protocol():
    """No strategy module names a federation type in its code (docstrings aside); what they
    read of the run is strategies.base.RunSettings, of a round clients.rollout.Rollout, and
    every strategy's from_config and check_config take a RunSettings."""
    import ast

    for path in sorted((ROOT / "strategies").glob("*.py")):
        tree = ast.parse(path.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert not names & {"RunConfig", "WorldConfig", "ExecutionConfig", "World", "Federation"}, path.name
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name in ("from_config", "check_config"):
                cfg = node.args.args[1]
                if path.name != "participation.py":  # Participation.from_config takes the joining group
                    assert ast.unparse(cfg.annotation) == "RunSettings", f"{path.name}: {node.name}"
