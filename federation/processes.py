"""The processes a run starts (Ray's), known by PID and start time, so that they are ended
by PID and never by name: at the end of the run, and by a later run (or
``run_sim.py --cleanup``) when the run that started them was killed before it could.

While a simulation runs, ``Registry`` keeps a small JSON file in a per-user state
directory (``$FEDGAMES_STATE_DIR``, else ``$XDG_STATE_HOME/fedgames/processes``, else
``~/.local/state/fedgames/processes``) naming the driver and the processes it started;
``cleanup`` ends the processes of every recorded driver that is no longer alive. A
process counts as the recorded one only if its start time matches, so a reused PID is
never touched. Linux only (``/proc``); elsewhere nothing is recorded or ended.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

PROC = Path("/proc")


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), None if it is gone or a zombie."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rfind(")") + 2:].split()  # after the command name, which may hold spaces
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process visible in /proc."""
    parents = {}
    for entry in PROC.glob("[0-9]*"):
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        if len(fields) > 1:
            parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int | None = None) -> dict[int, int]:
    """{pid: start time} of every living descendant of ``pid`` (default: this process)."""
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found: dict[int, int] = {}
    todo = list(children.get(root, []))
    while todo:
        child = todo.pop()
        if (started := start_time(child)) is not None:
            found[child] = started
        todo.extend(children.get(child, []))
    return found


def alive(processes: dict[int, int]) -> dict[int, int]:
    """The recorded processes that still run (same PID and start time)."""
    return {pid: started for pid, started in processes.items() if start_time(pid) == started}


def end(processes: dict[int, int], grace: float = 3.0) -> list[int]:
    """End the recorded processes that still run: SIGTERM, then SIGKILL after ``grace``
    seconds. Returns the PIDs that were running."""
    running = alive(processes)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in alive(running):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while alive(running) and time.monotonic() < deadline:
            time.sleep(0.05)
    return sorted(running)


def state_dir() -> Path:
    if os.environ.get("FEDGAMES_STATE_DIR"):
        return Path(os.environ["FEDGAMES_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "fedgames" / "processes"


class Registry:
    """The record of one run's processes: the driver (this process) and what it started."""

    def __init__(self, out: str, directory: Path | None = None):
        self.path = (directory or state_dir()) / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        self.out = str(Path(out).absolute())
        self.driver = (os.getpid(), start_time(os.getpid()))
        self.before = set(descendants())  # processes this run did not start
        self.processes: dict[int, int] = {}

    def update(self) -> dict[int, int]:
        """Record the processes started since the registry was made; returns them all."""
        if self.driver[1] is None:  # no /proc
            return {}
        new = {pid: t for pid, t in descendants().items() if pid not in self.before}
        if not set(new.items()) <= set(self.processes.items()):
            self.processes |= new
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"driver": list(self.driver), "out": self.out,
                                       "processes": {str(p): t for p, t in self.processes.items()}}))
            tmp.replace(self.path)
        return self.processes

    def close(self, grace: float = 3.0) -> list[int]:
        """End every recorded process still running, then drop the record; returns their PIDs."""
        self.update()
        ended = end(self.processes, grace)
        self.path.unlink(missing_ok=True)
        return ended


def cleanup(directory: Path | None = None, grace: float = 3.0) -> list[tuple[str, list[int]]]:
    """End the leftover processes of recorded runs whose driver is gone; returns
    (the run's output directory, the PIDs ended) for each such run."""
    directory = directory or state_dir()
    ended = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            record = json.loads(path.read_text())
            driver_pid, driver_start = record["driver"]
            processes = {int(p): int(t) for p, t in record["processes"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # unreadable: it can name nothing safely
            continue
        if driver_start is not None and start_time(int(driver_pid)) == driver_start:
            continue  # that run is still going
        pids = end(processes, grace)
        path.unlink(missing_ok=True)
        if pids:
            ended.append((str(record.get("out", "?")), pids))
    return ended
