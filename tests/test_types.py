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
    """No strategy module imports or names a federation type; what they read of the run is
    strategies.base.RunSettings, of a round clients.rollout.Rollout."""
    for path in sorted((ROOT / "strategies").glob("*.py")):
        text = path.read_text()
        assert "RunConfig" not in text and "federation." not in text, path.name
