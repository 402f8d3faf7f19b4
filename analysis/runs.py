"""A run directory as data: ``config.json``, ``metrics.csv`` (one row per round) and
``summary.json``.

Whether a run *finished* is not decided here: a :class:`Run` is whatever the directory holds.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Run:
    """One run: its directory, its config, its per-round rows (every cell a float; an empty
    or non-numeric cell is NaN) and its summary (``{}`` when there is no summary.json)."""

    path: Path
    config: dict = field(default_factory=dict)
    rows: list[dict[str, float]] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The method's name: the summary's or config's ``label``, else its ``strategy``, else the directory name."""
        for source in (self.summary, self.config):
            for key in ("label", "strategy"):
                if source.get(key):
                    return str(source[key])
        return self.path.name

    @property
    def seed(self) -> int | None:
        """The run's seed (summary, then config), or None."""
        for source in (self.summary, self.config):
            if source.get("seed") is not None:
                return int(source["seed"])
        return None


def _cell(value: str | None) -> float:
    if value is None or value.strip() == "":
        return math.nan
    try:
        return float(value)
    except ValueError:
        return math.nan


def read_rows(path: Path) -> list[dict[str, float]]:
    """The rows of a metrics.csv, each cell a float (missing, empty or non-numeric: NaN)."""
    with Path(path).open(newline="") as f:
        return [{k: _cell(v) for k, v in row.items() if k is not None} for row in csv.DictReader(f)]


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def read_run(path: str | Path) -> Run:
    """Read a run directory; files that are absent give an empty config, rows or summary."""
    path = Path(path)
    metrics = path / "metrics.csv"
    return Run(path=path, config=_json(path / "config.json"),
               rows=read_rows(metrics) if metrics.exists() else [], summary=_json(path / "summary.json"))


def find_runs(root: str | Path) -> list[Path]:
    """Every run directory under ``root`` (``root`` itself included): a directory holding a
    metrics.csv or a summary.json, sorted by path."""
    root = Path(root)
    found = {p.parent for name in ("metrics.csv", "summary.json") for p in root.rglob(name)}
    return sorted(found)
