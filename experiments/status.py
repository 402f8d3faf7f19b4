"""Where a planned run stands: THE finished-run rule, defined once here.

A run directory holds config.json (written when the run starts), metrics.csv (one row per
finished round, rewritten atomically), checkpoint.pt (after every round, atomically),
summary.json (at the end) and, if the engine saw the run fail, failure.json. Its state
against the planned configuration:

- ``done``: summary.json present AND metrics.csv has exactly ``cfg.rounds`` rows numbered
  1..rounds AND config.json's settings equal the planned ones (all but ``out`` and the
  execution settings);
- ``stale``: config.json's settings differ from the planned ones (``rounds`` aside), or the
  directory holds more rounds than planned, or files that cannot be read: reported, never
  overwritten without ``--force``;
- ``failed``: not done, and failure.json (written by the engine) says why and how often;
- ``partial``: the same settings, r < rounds rounds in metrics.csv (or a checkpoint); it
  continues from its checkpoint if it has one (``resumable``), else it starts again. A run
  that finished with fewer rounds than now planned is partial: raising ``rounds`` extends it;
- ``missing``: nothing of the run yet (or only the config.json of a start that wrote no
  round).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from clients.settings import ConfigError
from federation.config import RunConfig, owner

__all__ = ["State", "RunStatus", "check", "read_failure", "write_failure", "clear_failure", "FAILURE",
           "comparable", "differences"]

FAILURE = "failure.json"
CHECKPOINT = "checkpoint.pt"


class State(str, Enum):
    DONE = "done"
    PARTIAL = "partial"
    STALE = "stale"
    FAILED = "failed"
    MISSING = "missing"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RunStatus:
    state: State
    rounds_done: int       # rows in metrics.csv (finished rounds)
    rounds: int            # the planned rounds
    resumable: bool = False  # a checkpoint to continue from (settings match)
    reason: str = ""       # stale: what differs; failed: the failure's one-line reason
    attempts: int = 0      # failed attempts so far (failure.json)

    @property
    def progress(self) -> str:
        return f"{self.rounds_done}/{self.rounds}"


def comparable(cfg: RunConfig) -> dict[str, Any]:
    """The settings two runs must share to be the same run: every flat key but ``out``,
    ``rounds`` and the execution settings (how a run executes, not what it computes)."""
    return {k: v for k, v in cfg.to_flat().items() if k not in ("out", "rounds") and owner(k) != "execution"}


def differences(planned: RunConfig, found: RunConfig, limit: int = 4) -> str:
    """``key: found -> planned`` for the settings that differ, the first ``limit`` of them."""
    a, b = comparable(found), comparable(planned)
    keys = [k for k in b if a.get(k) != b.get(k)]
    text = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys[:limit])
    return text + (f" (and {len(keys) - limit} more)" if len(keys) > limit else "")


def check(cfg: RunConfig, out: str | Path | None = None) -> RunStatus:
    """The state of the run planned as ``cfg`` in its directory (``out``, default ``cfg.out``)."""
    path = Path(cfg.out if out is None else out)
    rounds = cfg.rounds
    files = {name: (path / name).is_file() for name in ("config.json", "metrics.csv", CHECKPOINT, "summary.json",
                                                        FAILURE)}
    if not any(files.values()):
        return RunStatus(State.MISSING, 0, rounds)
    has_rounds = files["metrics.csv"] or files[CHECKPOINT] or files["summary.json"]

    # settings
    found: RunConfig | None = None
    if files["config.json"]:
        try:
            found = RunConfig.from_json((path / "config.json").read_text())
        except (ConfigError, OSError, UnicodeDecodeError) as err:
            if has_rounds:
                return RunStatus(State.STALE, 0, rounds, reason=f"config.json cannot be read: {err}")
            found = None  # a start killed while writing its config: nothing of it to keep
    elif has_rounds:
        return RunStatus(State.STALE, 0, rounds, reason="results without a config.json")
    if found is not None and comparable(found) != comparable(cfg):
        return RunStatus(State.STALE, _count_rows(path), rounds, reason="other settings: " + differences(cfg, found))

    # rounds
    done = 0
    if files["metrics.csv"]:
        try:
            numbers = _round_numbers(path / "metrics.csv")
        except (OSError, ValueError, csv.Error) as err:
            return RunStatus(State.STALE, 0, rounds, reason=f"metrics.csv cannot be read: {err}")
        if numbers != list(range(1, len(numbers) + 1)):
            return RunStatus(State.STALE, len(numbers), rounds, reason="metrics.csv's rounds are not numbered 1..n")
        done = len(numbers)
    if done > rounds:
        return RunStatus(State.STALE, done, rounds, reason=f"{done} rounds, more than the {rounds} planned")
    resumable = files[CHECKPOINT] and found is not None
    if (done == rounds and found is not None and found.rounds == rounds and files["summary.json"]
            and _readable_json(path / "summary.json")):
        return RunStatus(State.DONE, done, rounds, resumable)
    failure = read_failure(path)
    if failure is not None:
        return RunStatus(State.FAILED, done, rounds, resumable, failure.get("reason", "?"),
                         int(failure.get("attempts", 1)))
    if done or files[CHECKPOINT]:
        return RunStatus(State.PARTIAL, done, rounds, resumable)
    return RunStatus(State.MISSING, 0, rounds)


def _round_numbers(path: Path) -> list[int]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            return []
        if "round" not in reader.fieldnames:
            raise ValueError("no 'round' column")
        return [int(float(row["round"])) for row in reader]


def _count_rows(path: Path) -> int:
    try:
        return len(_round_numbers(path / "metrics.csv"))
    except (OSError, ValueError, csv.Error):
        return 0


def _readable_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
        return True
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------------- failure marker
def read_failure(out: str | Path) -> dict | None:
    """The run's failure.json, or None (also when it cannot be read)."""
    try:
        data = json.loads((Path(out) / FAILURE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_failure(out: str | Path, reason: str, traceback: str = "", attempts: int | None = None) -> dict:
    """Write failure.json atomically (never half-written); ``attempts`` defaults to the
    previous count plus one."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    if attempts is None:
        attempts = int((read_failure(path) or {}).get("attempts", 0)) + 1
    data = {"reason": reason, "attempts": attempts, "traceback": traceback,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    fd, tmp = tempfile.mkstemp(prefix=".failure-", suffix=".tmp", dir=path)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, path / FAILURE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return data


def clear_failure(out: str | Path) -> None:
    (Path(out) / FAILURE).unlink(missing_ok=True)


# ---------------------------------------------------------------------- a campaign's table
def of_plan(plan) -> list[tuple[Any, RunStatus]]:
    """Each planned run (experiments.campaign.PlannedRun) with its status."""
    return [(run, check(run.cfg)) for run in plan]


def table(rows: list[tuple[Any, RunStatus]]) -> str:
    """The status table: scenario, method, seed, state, round/rounds, reason; then the
    count of each state."""
    header = ("scenario", "method", "seed", "state", "rounds", "reason")
    lines = [(run.scenario, run.method, str(run.seed), str(s.state)
              + (f" ({s.attempts}x)" if s.state is State.FAILED else "")
              + (" resumable" if s.state is State.PARTIAL and s.resumable else ""), s.progress,
              s.reason or (f"waits for: {', '.join(f'{a} {b} seed {c}' for a, b, c in run.needs)}"
                           if run.needs and s.state is State.MISSING else ""))
             for run, s in rows]
    widths = [max([len(h)] + [len(line[i]) for line in lines]) for i, h in enumerate(header[:-1])]

    def fmt(cells) -> str:
        return ("  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + cells[-1]).rstrip()

    counts = {state: sum(s.state is state for _, s in rows) for state in State}
    total = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    return "\n".join([fmt(header), *map(fmt, lines), f"{len(rows)} runs: {total or 'none'}"]) + "\n"
