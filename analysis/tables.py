"""Tables of final values over seeds, as Markdown or CSV.

Cells:

- ``fmt_mean_sd``: "mean ± sd [±h]", h the half-width of the 95% t-CI of the mean
  (:func:`analysis.stats.mean_sd_ci`); just the mean for one value; "–" for none.
- ``fmt_interval``: "IQM [lo, hi]", rliable's interquartile mean with its 95% stratified
  bootstrap CI (:func:`analysis.stats.iqm`); "–" for none.
- ``fmt_paired``: "mean ± sd [±h]" of paired differences, and their p-value.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from analysis import stats

MISSING = "–"


def fmt_mean_sd(values: Sequence[float]) -> str:
    """"mean ± sd [±h]" of the finite values (3 significant digits for the mean, 2 for sd and h)."""
    s = stats.mean_sd_ci(values)
    if s.n == 0:
        return MISSING
    return f"{s.mean:.3g}" if s.n == 1 else f"{s.mean:.3g} ± {s.sd:.2g} [±{s.ci:.2g}]"


def fmt_interval(interval: stats.Interval) -> str:
    """"point [lo, hi]" (3 significant digits)."""
    if not math.isfinite(interval.point):
        return MISSING
    return f"{interval.point:.3g} [{interval.lo:.3g}, {interval.hi:.3g}]"


def fmt_p(p: float) -> str:
    return MISSING if not math.isfinite(p) else ("<0.001" if 0 < p < 0.001 else f"{p:.3g}")


def fmt_paired(d: stats.Paired) -> str:
    """"mean ± sd [±h] (p=...)" of paired differences ("–" with no pair, the mean alone with one)."""
    if d.n == 0:
        return MISSING
    if d.n == 1:
        return f"{d.mean:.3g}"
    return f"{d.mean:.3g} ± {d.sd:.2g} [±{d.ci:.2g}] (p={fmt_p(d.p)})"


def method_table(groups: Mapping[str, Sequence[Mapping]], columns: Sequence[tuple[str, str]],
                 iqm_of: tuple[str, str] | None = None, reps: int = stats.REPS,
                 seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a table with one row per method: its name, its seeds, a
    "mean ± sd [±h]" cell per column ``(key, label)`` over its runs (dicts of final values,
    each with a ``seed``), and, with ``iqm_of = (key, label)``, an "label IQM [95% CI]"
    column right after that key's column (at the end when that key is not a column)."""
    header = ["method", "seeds"] + [label for _, label in columns]
    keys = [key for key, _ in columns]
    at = None
    if iqm_of:
        at = 2 + (keys.index(iqm_of[0]) + 1 if iqm_of[0] in keys else len(keys))
        header.insert(at, f"{iqm_of[1]} IQM [95% CI]")
    rows = []
    for method, runs in groups.items():
        row = [method, ",".join(str(r.get("seed", "?")) for r in runs)]
        row += [fmt_mean_sd([r.get(key, math.nan) for r in runs]) for key in keys]
        if iqm_of and at is not None:
            row.insert(at, fmt_interval(stats.iqm([r.get(iqm_of[0], math.nan) for r in runs], reps=reps, seed=seed)))
        rows.append(row)
    return header, rows


def paired_table(pairs: Mapping[str, stats.Paired]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of paired comparisons ("X - Y": differences matched by seed)."""
    header = ["comparison", "seeds", "mean diff", "sd", "95% CI ±", "p", "note"]
    rows = [[name, ",".join(str(s) for s in d.seeds), _g(d.mean, 3), _g(d.sd, 2), _g(d.ci, 2), fmt_p(d.p), d.note]
            for name, d in pairs.items()]
    return header, rows


def _g(value: float, digits: int) -> str:
    return MISSING if not math.isfinite(value) else f"{value:.{digits}g}"


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: str | Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """The same table as CSV."""
    with Path(path).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
