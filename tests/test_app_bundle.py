"""The app bundle (FAB) that `flwr run` packs: the code the ServerApp and the ClientApps
import, nothing else (pyproject.toml's ``fab-include``; docs/DEPLOYMENT.md)."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

from flwr.cli.build import FAB_MAX_SIZE, build_fab_from_disk

ROOT = Path(__file__).resolve().parents[1]


def test_the_bundle_holds_the_apps_code_and_runs_from_itself(tmp_path):
    fab = build_fab_from_disk(ROOT)
    names = zipfile.ZipFile(io.BytesIO(fab)).namelist()
    assert len(fab) < FAB_MAX_SIZE / 4  # far below Flower's limit, whatever docs/results holds
    tops = {name.split("/")[0] for name in names}  # .info: Flower's own metadata (the bundle's hashes)
    assert tops <= {".info", "pyproject.toml", "analysis", "clients", "envs", "federation", "strategies", "tools"}, tops
    assert "federation/presets/fpf-authors-matthew.toml" in names
    assert not [n for n in names if n.startswith(("docs/", "tests/", "experiments/"))]
    # unpacked alone (the project not importable from anywhere else), the apps' modules import
    zipfile.ZipFile(io.BytesIO(fab)).extractall(tmp_path / "app")
    code = ("import sys, federation.server_app, clients.node_app, clients.node_worker, tools.supernode; "
            "print(federation.server_app.__file__); print(clients.node_worker.__file__)")
    done = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'app')!r}); "
                           + code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(line.startswith(str(tmp_path / "app")) for line in done.stdout.split()), done.stdout
