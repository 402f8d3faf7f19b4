"""LMF's exchange diagnostic (experiments/campaigns/lmf-exchange.toml): ``exchange.md``.

Per scenario, over the campaign's window (``[report] window``, rounds 46-60): each seed's
collective return and CV of LMF with Eq. 13 (``lmf``), the independent learners
(``independent``) and each other exchange of the scenario (LMF's diffusion or gradient
exchange, FedAvg), then every exchange against Eq. 13 and against the independent learners,
paired by seed: mean ± sample sd [± 95% t-CI half-width] of the differences
(analysis.tables.fmt_mean_sd) and the paired t-test's p (analysis.stats.paired_differences).

A run counts only when it has every round of the window. Where the campaign's own runs of
the references are not finished, the runs named by ``[figures] references`` (a run-directory
template with ``{scenario}``, ``{method}``, ``{seed}``, relative to the repository's root: the
reproduction's 100-round runs) stand in, and the table says so.
"""

from __future__ import annotations

from pathlib import Path

from analysis import stats, tables
from analysis.runs import Run, read_run
from analysis.window import final_value, parse_window

REFERENCES = ("lmf", "independent")   # Eq. 13 and the independent learners
EXCHANGES = ("lmf", "fedavg")          # the strategies of the exchanges compared
KEYS = (("collective_return", 1), ("cv", 3))  # metric, decimals
WINDOW = "rounds:46-60"
ROOT = Path(__file__).resolve().parents[2]


def window_mean(run: Run | None, key: str, window: str = WINDOW) -> float | None:
    """The mean of ``key`` over the window; None unless the run has every round of it."""
    if run is None or not run.rows:
        return None
    win = parse_window(window)
    final = final_value(run.rows, key, win)
    if win.kind == "rounds":
        complete = final.rounds == (win.first, win.last) and final.n == win.last - win.first + 1
    else:
        complete = final.n > 0
    return final.value if complete else None


def reference_run(template: str | None, scenario: str, method: str, seed: int) -> Run | None:
    """The stand-in run of a reference method (``[figures] references``), or None."""
    if not template:
        return None
    path = Path(template.format(scenario=scenario, method=method, seed=seed))
    path = path if path.is_absolute() else ROOT / path
    return read_run(path) if (path / "metrics.csv").exists() else None


def methods_of(campaign, scenario: str) -> list[str]:
    """The references, then the scenario's other exchanges, in the campaign's order."""
    own = campaign.scenarios[scenario].methods
    rest = [m for m in campaign.methods if m in own and m not in REFERENCES
            and campaign.methods[m].flags.get("strategy") in EXCHANGES]
    return [m for m in REFERENCES if m in campaign.methods] + rest


def exchange_table(campaign, runs: dict, scenario: str, window: str = WINDOW, references: str | None = None) -> str:
    seeds = list(campaign.seeds_of(scenario))
    methods = methods_of(campaign, scenario)
    stand_in: set[str] = set()
    values: dict[tuple[str, str], dict[int, float | None]] = {}
    for m in methods:
        chosen = {}
        for s in seeds:
            run = runs.get((scenario, m, s))
            if run is None and m in REFERENCES:
                run = reference_run(references, scenario, m, s)
                if run is not None:
                    stand_in.add(m)
            chosen[s] = run
        for key, _ in KEYS:
            values[m, key] = {s: window_mean(chosen[s], key, window) for s in seeds}

    def name(m: str) -> str:
        return campaign.label(m) + (" (the reproduction's run)" if m in stand_in else "")

    span = parse_window(window)
    lines = [f"{scenario}, {span.describe()}, seeds {' · '.join(map(str, seeds))}\n",
             "| method | collective return | CV |", "|---|---|---|"]
    for m in methods:
        cells = [" · ".join("–" if values[m, key][s] is None else f"{values[m, key][s]:.{digits}f}" for s in seeds)
                 for key, digits in KEYS]
        lines.append(f"| {name(m)} | {cells[0]} | {cells[1]} |")
    lines += ["", "| comparison | seeds | Δ collective return | p |", "|---|---|---|---|"]
    for m in methods:
        if m in REFERENCES:
            continue
        for base in REFERENCES:
            if base not in methods:
                continue
            a = {s: v for s, v in values[m, "collective_return"].items() if v is not None}
            b = {s: v for s, v in values[base, "collective_return"].items() if v is not None}
            d = stats.paired_differences(a, b)
            if d.n < 2:
                continue
            lines.append(f"| {name(m)} − {name(base)} | {d.n} | {tables.fmt_mean_sd(list(d.differences))} | "
                         f"{d.p:.2g} |")
    return "\n".join(lines)


def figures(campaign, runs: dict, out: Path) -> list[Path]:
    out = Path(out)
    window = (campaign.tables.get("report") or {}).get("window") or WINDOW
    references = campaign.figures.get("references")
    parts = [exchange_table(campaign, runs, s, window, references) for s in campaign.scenarios]
    text = ("# LMF's exchange: Eq. 13, diffusion and the other exchanges against the independent learners\n\n"
            "Collective return and CV per seed over the window; then each exchange minus Eq. 13 and minus the "
            "independent learners, paired by seed: mean ± sample sd [± 95% t-CI half-width], paired t-test p. "
            "A run counts only when it has every round of the window.\n\n" + "\n\n".join(parts) + "\n")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "exchange.md"
    path.write_text(text)
    return [path]
