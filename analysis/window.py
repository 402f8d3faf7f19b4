"""A run's final value: THE one definition used by every table and study.

The final value of a metric is the mean of that metric over a window of rounds, over the
rounds of the window where it was measured: a row whose cell is missing, empty or not
finite (NaN) is skipped (metrics measured every few rounds, the CV of a round where every
return is 0). A window where the metric was never measured gives NaN and a reason.

Windows, for a run of R rounds (R = the rows of its metrics.csv, one per round run):

- ``"last-quarter"`` (the default; also ``None`` or ``""``): the last ``max(1, floor(R/4))``
  rounds, that is rounds ``ceil(3R/4)+1 .. R`` when R >= 4, and round R alone when
  R < 4. R = 8: rounds 7-8; R = 10: rounds 9-10; R = 80: rounds 61-80; R = 3: round 3.
- ``"last:K"`` (K >= 1): the last K rounds run (all of them when R < K).
- ``"rounds:A-B"`` (1 <= A <= B): the rounds numbered A to B inclusive, by the ``round``
  column (by 1-based row position when there is none); those of them that were run.
- ``"all"``: every round run.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

DEFAULT = "last-quarter"
_SPECS = "'last-quarter', 'all', 'last:K' (K >= 1) or 'rounds:A-B' (1 <= A <= B)"


@dataclass(frozen=True)
class Window:
    """A parsed window spec: ``kind`` is "last-quarter", "all", "last" (``k`` rounds) or
    "rounds" (``first`` .. ``last`` inclusive)."""

    kind: str
    k: int = 0
    first: int = 0
    last: int = 0

    @property
    def spec(self) -> str:
        return {"last": f"last:{self.k}", "rounds": f"rounds:{self.first}-{self.last}"}.get(self.kind, self.kind)

    def describe(self) -> str:
        """The window in words, for table notes."""
        return {"last-quarter": "the last quarter of the rounds run (rounds ceil(3R/4)+1..R of R; round R if R < 4)",
                "all": "all rounds run",
                "last": f"the last {self.k} rounds run",
                "rounds": f"rounds {self.first}-{self.last}"}[self.kind]

    def indices(self, rows: list[dict]) -> list[int]:
        """The positions of the window's rows (in order)."""
        n = len(rows)
        if self.kind == "all":
            return list(range(n))
        if self.kind == "last-quarter":
            return list(range(n - max(1, n // 4), n)) if n else []
        if self.kind == "last":
            return list(range(max(0, n - self.k), n))
        return [i for i, row in enumerate(rows) if self.first <= round_of(row, i) <= self.last]

    def select(self, rows: list[dict]) -> list[dict]:
        """The rows of the window (in order)."""
        return [rows[i] for i in self.indices(rows)]

    def span(self, rows: list[dict]) -> tuple[int, int] | None:
        """The first and last round numbers of the window's rows (None when it has none)."""
        idx = self.indices(rows)
        return (round_of(rows[idx[0]], idx[0]), round_of(rows[idx[-1]], idx[-1])) if idx else None


def parse_window(spec: str | Window | None = None) -> Window:
    """Parse a window spec (see the module doc); ``None`` or ``""`` is the default.
    Raises ValueError naming the spec when it is not one of them."""
    if isinstance(spec, Window):
        return spec
    if spec is not None and not isinstance(spec, str):
        raise ValueError(f"bad window spec {spec!r}: expected a string, one of {_SPECS}")
    text = (spec or "").strip() or DEFAULT
    if text in ("last-quarter", "all"):
        return Window(text)
    if m := re.fullmatch(r"last:\s*(\d+)", text):
        k = int(m.group(1))
        if k >= 1:
            return Window("last", k=k)
        raise ValueError(f"bad window spec {spec!r}: K must be at least 1 in 'last:K'")
    if m := re.fullmatch(r"rounds:\s*(\d+)\s*-\s*(\d+)", text):
        a, b = int(m.group(1)), int(m.group(2))
        if 1 <= a <= b:
            return Window("rounds", first=a, last=b)
        raise ValueError(f"bad window spec {spec!r}: 'rounds:A-B' needs 1 <= A <= B")
    raise ValueError(f"bad window spec {spec!r}: expected {_SPECS}")


def round_of(row: dict, index: int) -> int:
    """A row's round number: its ``round`` cell, else its 1-based position ``index + 1``."""
    value = row.get("round")
    try:
        return int(value) if value is not None and math.isfinite(float(value)) else index + 1
    except (TypeError, ValueError):
        return index + 1


def measured(value) -> bool:
    """Whether a cell holds a measurement: present, non-empty, numeric and finite."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class Final:
    """A final value: ``value`` (NaN when none), the ``n`` rounds it averages, the rounds
    ``(first, last)`` the window spans (None when empty) and, when NaN, the ``reason``."""

    value: float
    n: int
    rounds: tuple[int, int] | None
    reason: str = ""


def final_value(rows: list[dict], metric: str, window: str | Window | None = None) -> Final:
    """The mean of ``metric`` over the window's rows where it was measured (see the module doc)."""
    win = parse_window(window)
    chosen, span = win.select(rows), win.span(rows)
    if span is None:
        reason = "the run has no rounds" if not rows else f"no round of the run is in {win.describe()}"
        return Final(math.nan, 0, None, reason)
    values = [float(row[metric]) for row in chosen if measured(row.get(metric))]
    if not values:
        where = "in no round of the run" if not any(metric in row for row in rows) else f"in rounds {span[0]}-{span[1]}"
        return Final(math.nan, 0, span, f"{metric!r} was not measured {where}")
    return Final(float(np.mean(values)), len(values), span)


def final_values(rows: list[dict], metrics: list[str] | tuple[str, ...],
                 window: str | Window | None = None) -> dict[str, float]:
    """``{metric: final value}`` (NaN where none) for several metrics over one window."""
    win = parse_window(window)
    return {m: final_value(rows, m, win).value for m in metrics}
