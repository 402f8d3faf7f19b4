"""A run's result directory: config.json, metrics.csv, summary.json and plots."""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.curves import smooth  # noqa: E402

SUMMARY_KEYS = ("collective_return", "mean_return", "cv", "jain", "min_return",
                "participants_return", "nonparticipants_return", "participation_rate")
#: summarised too when a run reports them (mediators' delegation, games' reference welfare)
OPTIONAL_KEYS = ("delegation_rate", "planner_return", "oracle_return")
TIME_KEYS = ("rollout_s", "train_s", "aggregate_s", "flower_s", "round_s")


class RunRecorder:
    """Writes metrics.csv after every round (so an interrupted run keeps its data)."""

    def __init__(self, out: str | Path, config_json: str, notes: list[str] | None = None, tensorboard: bool = False,
                 write_config: bool = True):
        """``tensorboard``: also write each row's numbers as TensorBoard scalars to
        OUT/tensorboard, step = the round (a resumed run appends to the same log).
        ``write_config=False`` leaves config.json to ``write_config()`` (a resumed run
        rewrites it only once its checkpoint has loaded)."""
        self.out = Path(out)
        self._board: Any = None  # a SummaryWriter once config.json is written
        self.out.mkdir(parents=True, exist_ok=True)
        config = json.loads(config_json)
        if notes:
            config["notes"] = notes
        self._config = json.dumps(config, indent=2)
        self._tensorboard = tensorboard
        if write_config:
            self.write_config()
        self.rows: list[dict] = []
        self.events: list[dict] = []

    def write_config(self) -> None:
        """Write OUT/config.json (and open the TensorBoard log, if asked for)."""
        if self._tensorboard and self._board is None:
            from torch.utils.tensorboard import SummaryWriter

            self._board = SummaryWriter(str(self.out / "tensorboard"))
        (self.out / "config.json").write_text(self._config)

    def add(self, row: dict) -> None:
        self.rows.append(row)
        columns = list(dict.fromkeys(k for r in self.rows for k in r))
        tmp = self.out / "metrics.csv.tmp"
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.out / "metrics.csv")
        if self._board is not None:
            step = int(row.get("round", len(self.rows)))
            for key, value in row.items():
                if key != "round" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._board.add_scalar(key, value, step)
            self._board.flush()

    def event(self, server_round: int, kind: str, detail: str) -> None:
        """A survivable incident (a crashed or silent agent), kept in summary.json (without
        terminal colour codes) and said on the console in one line."""
        detail = _ANSI.sub("", detail)
        self.events.append({"round": server_round, "kind": kind, "detail": detail})
        _log.warning("round %d: %s: %s", server_round, kind, one_line(detail))

    def finish(self, extra: dict) -> dict:
        """Plot the curves, then write summary.json (with ``finish_s``, the time this took)."""
        start = time.perf_counter()
        plot_run(self.rows, self.out / "curves.png", title=f"{extra.get('strategy', '')} on {extra.get('env', '')}")
        summary = summarise(self.rows) | extra | {"events": self.events}
        summary["finish_s"] = time.perf_counter() - start
        if self._board is not None:
            self._board.close()
        (self.out / "summary.json").write_text(json.dumps(_finite(summary), indent=2, default=_json_default, allow_nan=False))
        return summary


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_log = logging.getLogger("fedgames")


def one_line(detail: str) -> str:
    """The gist of a reason that may hold a traceback: its first line and, if different, its last."""
    lines = [ln.strip() for ln in _ANSI.sub("", detail).strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    return lines[0] if len(lines) == 1 or lines[-1] in lines[0] else f"{lines[0]} ... {lines[-1]}"


def summarise(rows: list[dict], window: float = 0.1) -> dict:
    """Means over all rounds and over the last ``window`` fraction of rounds (at least one)."""
    if not rows:
        return {"rounds_completed": 0}
    last = rows[-max(1, int(round(len(rows) * window))):]
    out: dict[str, float] = {"rounds_completed": len(rows), "last_rounds": len(last)}
    for key in SUMMARY_KEYS + tuple(k for k in OPTIONAL_KEYS if any(k in r for r in rows)):
        out[f"{key}_last"] = _nanmean([r.get(key) for r in last])
        out[f"{key}_avg"] = _nanmean([r.get(key) for r in rows])
    for key in TIME_KEYS:
        out[f"{key}_total"] = float(np.nansum([r.get(key, math.nan) for r in rows]))
    return out


def _nanmean(values) -> float:
    arr = np.array([math.nan if v is None or v == "" else float(v) for v in values], dtype=float)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else math.nan


def _finite(value):
    """NaN (e.g. the CV of a round where every return is 0) becomes null: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    raise TypeError(type(obj))


def plot_run(rows: list[dict], path: Path, title: str = "") -> None:
    """Collective return, CV, and participants vs non-participants over rounds."""
    if not rows:
        return
    rounds = np.array([r["round"] for r in rows])
    col = lambda k: np.array([float(r.get(k, math.nan)) for r in rows])  # noqa: E731
    w = max(1, len(rows) // 20)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, key, label in ((axes[0], "collective_return", "collective return"), (axes[1], "cv", "CV (std/mean)")):
        ax.plot(rounds, col(key), alpha=0.3, color="C0")
        ax.plot(rounds, smooth(col(key), w), color="C0")
        ax.set(xlabel="round", ylabel=label, title=label)
    for key, label, c in (("participants_return", "participants", "C2"), ("nonparticipants_return", "non-participants", "C3")):
        y = col(key)
        if np.isfinite(y).any():
            axes[2].plot(rounds, y, alpha=0.3, color=c)
            axes[2].plot(rounds, smooth(y, w), color=c, label=label)
    axes[2].set(xlabel="round", ylabel="mean return per agent", title="participants vs non-participants")
    if axes[2].lines:
        axes[2].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def read_metrics(run_dir: Path) -> list[dict]:
    with (Path(run_dir) / "metrics.csv").open() as f:
        return [{k: (float(v) if v not in ("", None) else math.nan) for k, v in row.items()} for row in csv.DictReader(f)]


def discard_state(out: str | Path) -> None:
    """Remove what only resuming a run needs (OUT/checkpoint.pt and the agents' storage in
    OUT/agents) once it has finished; its results stay. For studies of many runs."""
    import shutil

    out = Path(out)
    summary = out / "summary.json"
    if summary.exists() and '"interrupted"' not in summary.read_text():  # an interrupted run still resumes
        (out / "checkpoint.pt").unlink(missing_ok=True)
        shutil.rmtree(out / "agents", ignore_errors=True)
