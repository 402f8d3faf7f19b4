"""The ``flwr`` CLI's SuperLink connections and the outcome of a run.

``flwr`` reads its connections from ``$FLWR_HOME/config.toml`` (default
``~/.flwr/config.toml``), one ``[superlink.<name>]`` table each, and has no command
to add one. ``flwr run --stream`` shows a run's log but exits 0 whether the run
completed or failed. This module fills both gaps::

    python -m tools.flwr_connection add NAME ADDRESS --insecure [--wait 60]
    python -m tools.flwr_connection add NAME ADDRESS --root-certificates ca.crt
    python -m tools.flwr_connection outcome NAME [--run-id ID]

``add`` writes (or replaces) the connection, keeping the file's other tables, and with
``--wait`` waits until the SuperLink answers. ``outcome`` asks the SuperLink
(``flwr ls NAME --format json``) for the run (by default the newest), prints
``run <id>: <status> <details>`` and exits 0 only for ``finished:completed``
(1 for a failed or stopped run, 2 when the SuperLink cannot tell).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import tomli_w

COMPLETED = "finished:completed"


def flwr_home() -> Path:
    """``$FLWR_HOME``, or ``~/.flwr`` as Flower uses."""
    return Path(os.environ.get("FLWR_HOME") or Path.home() / ".flwr")


def write_connection(config_file: Path, name: str, address: str,
                     root_certificates: str | None = None) -> Path:
    """Set ``[superlink.<name>]`` in ``config_file`` (created if missing): ``address`` and
    either ``insecure = true`` or ``root-certificates`` (made absolute, as ``flwr``
    resolves it against the directory it is run from)."""
    config = tomllib.loads(config_file.read_text()) if config_file.exists() else {}
    superlink = config.setdefault("superlink", {})
    entry: dict[str, Any] = {"address": address}
    if root_certificates:
        entry["root-certificates"] = str(Path(root_certificates).resolve())
    else:
        entry["insecure"] = True
    superlink[name] = entry
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(tomli_w.dumps(config))
    return config_file


def superlink_answers(address: str, root_certificates: str | None = None) -> bool:
    """True if ``GET /health`` on ``address`` answers 200 (https with the CA if given)."""
    scheme = "https" if root_certificates else "http"
    context = ssl.create_default_context(cafile=root_certificates) if root_certificates else None
    try:
        with urllib.request.urlopen(f"{scheme}://{address}/health", timeout=2,
                                    context=context) as res:
            return bool(res.status == 200)
    except OSError:
        return False


def run_status(name: str, run_id: int | None = None) -> dict[str, Any]:
    """The run's entry of ``flwr ls NAME [--run-id ID] --format json`` (the newest run
    without ``run_id``); raises RuntimeError if the SuperLink gives none."""
    flwr = shutil.which("flwr") or "flwr"
    cmd = [flwr, "ls", name, "--format", "json"]
    if run_id is not None:
        cmd += ["--run-id", str(run_id)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    try:
        start = res.stdout.index("{")
        payload = json.JSONDecoder().raw_decode(res.stdout[start:])[0]
        runs = payload["runs"]
    except (ValueError, KeyError) as err:
        raise RuntimeError(f"`{' '.join(cmd[1:])}` gave no runs: {res.stdout}{res.stderr}") from err
    if not runs:
        raise RuntimeError(f"no run on SuperLink connection {name!r}")
    return max(runs, key=lambda r: r.get("pending-at", ""))


def main(argv: list[str] | None = None) -> int:
    """Command line: ``add`` a connection, or report a run's ``outcome``."""
    parser = argparse.ArgumentParser(prog="python -m tools.flwr_connection",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="write a connection into $FLWR_HOME/config.toml")
    add.add_argument("name")
    add.add_argument("address", help="the SuperLink's Control API host:port")
    security = add.add_mutually_exclusive_group(required=True)
    security.add_argument("--insecure", action="store_true", help="plain http")
    security.add_argument("--root-certificates", help="CA certificate (TLS)")
    add.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                     help="wait until the SuperLink answers (exit 1 if it does not)")
    outcome = sub.add_parser("outcome", help="status of a run; exit 0 only if it completed")
    outcome.add_argument("name")
    outcome.add_argument("--run-id", type=int, default=None, help="default: the newest run")
    args = parser.parse_args(argv)

    if args.command == "add":
        if args.root_certificates and not Path(args.root_certificates).is_file():
            parser.error(f"--root-certificates: no such file: {args.root_certificates}")
        path = write_connection(flwr_home() / "config.toml", args.name, args.address,
                                args.root_certificates)
        print(f"connection {args.name!r} -> {args.address} in {path}")
        deadline = time.monotonic() + args.wait
        if args.wait > 0:
            while not superlink_answers(args.address, args.root_certificates):
                if time.monotonic() > deadline:
                    print(f"error: no SuperLink answers on {args.address} after "
                          f"{args.wait:g} s", file=sys.stderr)
                    return 1
                time.sleep(0.5)
        return 0

    try:
        run = run_status(args.name, args.run_id)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    status = run.get("status", "unknown")
    details = run.get("status-details", "")
    line = f"run {run.get('run-id')}: {status}"
    if details and details != "N/A":
        line += f": {details}"
    print(line, file=sys.stdout if status == COMPLETED else sys.stderr)
    return 0 if status == COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main())
