"""``python -m experiments report CAMPAIGN.toml | --all``: the tables, figures and claims of
a campaign's finished runs.

Into the campaign's ``out`` it writes:

- ``results.md`` / ``results.csv`` (``results-<name>.md`` / ``.csv`` when another campaign
  file beside this one has the same out, see :class:`Files`): per scenario x method, each
  metric of ``[report]`` (mean ± sd [± 95% t-CI half-width] over seeds) and rliable's IQM
  [95% stratified-bootstrap CI] of the first metric (:func:`analysis.tables.method_table`),
  and the seeds finished;
- ``<name>.md`` for each ``[[comparisons]]`` (A − B matched by seed,
  :func:`analysis.tables.paired_table`; the name made a file name: lower case, runs of other
  characters than letters, digits and ``._+-`` as one ``-``);
- ``curves-<scenario>.png`` (``curves-<name>-<scenario>.png`` for a scenario name that
  another campaign with the same out has too): learning curves (mean over seeds, 95% CI band) of
  collective_return and the other metrics, one panel each;
- whatever the ``[figures]`` module draws (``figures(campaign, runs, out) -> list[Path]``);
- ``claims.md`` (or ``claims-<name>.md``, as results.md): the campaign's ``[[claims]]``,
  each with its effect, 95% CI, n, verdict and, for a paired claim, P(A > B).

``--all`` does every campaign of experiments/campaigns/ and then writes
docs/results/CLAIMS.md, the claims of all of them grouped by paper.

Both claims files end with "Why claims do not reproduce" (:func:`why_markdown`): every
contradicted claim and every claim with a ``cause`` (text: why it does not reproduce, or
"unexplained: ..." with what was tried), with its ``ablation``, what measures the cause:
another claim's id (of any campaign: its test, effect, CI and verdict), or
``"scenario: A - B"``, the paired difference of two methods of the campaign on the claim's
metric and window (its effect and 95% CI); "not run yet" until a seed of it has finished.

Only finished runs (:mod:`experiments.status`, state ``done``) are read; the others are
left out and counted ("2 of 3 seeds finished"), in the tables and on the terminal. A run's
final value is :func:`analysis.window.final_value` over the window (the claim's, the
comparison's, else ``[report] window``, else the last quarter of the rounds).

**The verdict of a claim** (:func:`decide`). The effect (:func:`effect`) is the mean paired
difference A − B over the seeds both have finished, or, for a claim without ``b``, A's
mean, with its 95% Student-t CI [lo, hi] over those n seeds. A claim may qualify B
(``b_metric``: another metric, e.g. of the same method, ``b = a``; ``b_scenario``; ``b_scale``
s, the effect A − s·B, a ratio rule) and add a control pair (``c``, ``d``, ``c_metric``,
``d_metric``: the effect (A − B) − (C − D), a difference of differences); the effect is then
that contrast seed by seed over the seeds every part has (:func:`contrast`). With v =
``value`` (default 0 for a paired claim) and m = ``margin`` (default 0):

- ``greater``: reproduced if lo > v, contradicted if hi < v, else inconclusive;
- ``less``: reproduced if hi < v, contradicted if lo > v, else inconclusive;
- ``equal``: reproduced if [lo, hi] lies within [v − m, v + m], contradicted if it lies
  wholly outside (lo > v + m or hi < v − m), else inconclusive;
- ``at-least``: reproduced if lo >= v − m, contradicted if hi < v − m, else inconclusive;
- ``at-most``: reproduced if hi <= v + m, contradicted if lo > v + m, else inconclusive;
- fewer than 2 seeds: inconclusive ("n < 2").

(``margin`` is a tolerance: it is refused for ``greater`` and ``less``, where a minimum
difference d is ``at-least`` with value = d.) Beside the verdict, for a paired claim without
a control pair, rliable's probability of improvement P(A > s·B) over the same seeds with its
bootstrap CI.

Time: the bootstraps (rliable's, pure Python: ~0.3 ms a replication for the IQM, ~1.3 ms for
P(A > B)) dominate; they and the curve figures run in ``--jobs`` worker processes
(:class:`Bootstraps`; default the CPUs, at most 8), with REPS = 2000 replications for each
IQM and POI_REPS = 200 for each P(A > B).
"""

from __future__ import annotations

import csv
import difflib
import importlib
import math
import os
import re
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from analysis import stats, tables
from analysis.runs import Run, read_run
from analysis.window import Window, final_value, parse_window
from experiments import status
from experiments.campaign import DIRECTORY, Campaign, CampaignError, load

__all__ = ["report", "report_all", "decide", "effect", "Effect", "Verdict", "parse", "claims_markdown",
           "RULES", "CLAIMS_FILE"]

ROOT = Path(__file__).resolve().parents[1]
CLAIMS_FILE = ROOT / "docs" / "results" / "CLAIMS.md"
PAPERS_FILE = ROOT / "docs" / "PAPERS.md"

DEFAULT_METRICS = ("collective_return", "cv", "jain", "min_return")
LABELS = {"collective_return": "collective return", "cv": "CV", "jain": "Jain", "min_return": "min return",
          "mean_return": "mean return"}
RULES = ("greater", "less", "equal", "at-least", "at-most")
SETTINGS = ("paper", "authors")
PAPERS = ("FPF", "Pareto", "MD", "JAM-QL")  # the tags of docs/PAPERS.md, when it cannot be read
REPS = 2000       # bootstrap replications of the IQM's CI (rliable: ~0.3 ms a replication)
POI_REPS = 200    # ... of P(A > B)'s CI, one per paired claim (rliable: ~1.3 ms a replication)
REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"

REPORT_KEYS = ("metrics", "window")
COMPARISON_KEYS = ("name", "metric", "window", "scenarios", "pairs")
CLAIM_KEYS = ("id", "claim", "paper", "ref", "setting", "scenario", "metric", "window", "a", "b", "rule", "margin",
              "value", "figure", "note", "b_metric", "b_scenario", "b_scale", "c", "d", "c_metric", "d_metric",
              "cause", "ablation")
CLAIM_REQUIRED = ("id", "claim", "paper", "ref", "setting", "scenario", "metric", "a", "rule")
RESERVED_FILES = ("results", "claims")

RULES_TEXT = """\
**Decision rules.** A run's final value is the mean of the metric over the claim's window
of rounds (default: the last quarter). The effect is the mean paired difference A − B over
the seeds both methods have finished (or, for a claim against a number, A's mean), with its
95% Student-t CI [lo, hi] over those n seeds; v is the claim's value (0 for a paired claim
without one), m its margin (default 0). Where the test names more than two runs' values,
the effect is that contrast seed by seed: B's value may be another metric of the same runs
(`FPF[participants_return] − FPF[nonparticipants_return]`), a multiple of B (`A − 0.9·B`, a
ratio rule) or a difference of differences (`(A − B) − (C − D)`, a paired control).

| rule | reproduced | contradicted | otherwise |
|---|---|---|---|
| greater | lo > v | hi < v | inconclusive |
| less | hi < v | lo > v | inconclusive |
| equal | v − m ≤ lo and hi ≤ v + m | lo > v + m or hi < v − m | inconclusive |
| at-least | lo ≥ v − m | hi < v − m | inconclusive |
| at-most | hi ≤ v + m | lo > v + m | inconclusive |

Fewer than 2 seeds: inconclusive (n < 2). P(A>B): rliable's probability of improvement (a
run of A scores more than a run of B, or than s·B; ties count one half; not given for a
difference of differences) over the same seeds, with its
95% bootstrap CI. Runs not finished are left out and counted: n (of N) is the seeds used
and the seeds planned.

**Settings.** `paper`: the claim tested as the paper writes its method; `authors`: the same
claim as the authors' public code runs it, where that code differs from the paper (the FPF
authors' github.com/Shaokang-Agent/FPF-LMF: the scenarios named `*-authors`, their presets
in federation/presets/ with the source of every value). The Pareto mediator, JAM-QL and
mechanism-design papers link no code of their methods, so their claims have the `paper`
row only; where such a paper leaves a choice open, the choices are separate methods of the
same claim's campaign (e.g. md.toml's `md-paper`, Algorithm 1 as printed)."""


# ====================================================================== verdicts
@dataclass(frozen=True)
class Effect:
    """What a claim is judged on: the mean paired difference A − B over ``seeds`` (both
    finished, both finite), or A's mean when ``paired`` is false, with its 95% Student-t CI
    [lo, hi] over the n seeds (NaN for n < 2)."""

    mean: float
    lo: float
    hi: float
    n: int
    seeds: tuple = ()
    paired: bool = True


@dataclass(frozen=True)
class Verdict:
    """``outcome``: reproduced, contradicted or inconclusive; ``reason``: why, in a few words."""

    outcome: str
    reason: str


def effect(a: Mapping, b: Mapping | None = None, confidence: float = stats.CONFIDENCE) -> Effect:
    """The effect of ``a`` (seed -> final value) against ``b`` (paired by seed), or A's mean
    when ``b`` is None, with its Student-t CI (:func:`analysis.stats.paired_differences`,
    :func:`analysis.stats.mean_sd_ci`); values that are not finite are left out."""
    if b is None:
        seeds = tuple(s for s, v in a.items() if math.isfinite(float(v)))
        s = stats.mean_sd_ci([a[k] for k in seeds], confidence)
        return Effect(s.mean, s.mean - s.ci, s.mean + s.ci, s.n, seeds, paired=False)
    d = stats.paired_differences(a, b, confidence)
    return Effect(d.mean, d.mean - d.ci, d.mean + d.ci, d.n, d.seeds, paired=True)


def contrast(parts: Sequence[tuple[float, Mapping]], confidence: float = stats.CONFIDENCE) -> Effect:
    """The effect of a linear contrast Σ cᵢ·Xᵢ (``parts``: (cᵢ, seed -> final value)), seed by
    seed over the seeds every part has with a finite value, with its Student-t CI: A − B is
    ``[(1, a), (-1, b)]`` (equal to :func:`effect`), A − 0.9·B a ratio rule, (A − B) − (C − D)
    a difference of differences. One part is A's mean (not paired)."""
    if len(parts) == 1 and parts[0][0] == 1.0:
        return effect(parts[0][1])
    if len(parts) == 2 and parts[0][0] == 1.0 and parts[1][0] == -1.0:
        return effect(parts[0][1], parts[1][1], confidence)
    seeds = tuple(s for s in parts[0][1]
                  if all(s in x and math.isfinite(float(x[s])) for _, x in parts))
    values = [sum(c * float(x[s]) for c, x in parts) for s in seeds]
    m = stats.mean_sd_ci(values, confidence)
    return Effect(m.mean, m.mean - m.ci, m.mean + m.ci, m.n, seeds, paired=True)


def decide(rule: str, eff: Effect, value: float = 0.0, margin: float = 0.0) -> Verdict:
    """The verdict on a claim: ``rule`` applied to the effect's CI [lo, hi], against v =
    ``value`` with the tolerance m = ``margin`` (see the module doc):

    - greater: reproduced if lo > v, contradicted if hi < v;
    - less: reproduced if hi < v, contradicted if lo > v;
    - equal: reproduced if v − m <= lo and hi <= v + m, contradicted if lo > v + m or hi < v − m;
    - at-least: reproduced if lo >= v − m, contradicted if hi < v − m;
    - at-most: reproduced if hi <= v + m, contradicted if lo > v + m;

    else inconclusive; inconclusive with fewer than 2 seeds ("n < 2")."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; the rules: {', '.join(RULES)}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    if rule in ("greater", "less") and margin:
        raise ValueError(f"margin applies to equal, at-least and at-most, not {rule!r}")
    if eff.n < 2:
        return Verdict(INCONCLUSIVE, "n < 2")
    lo, hi = eff.lo, eff.hi
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return Verdict(INCONCLUSIVE, "no CI")
    v, m = float(value), float(margin)
    if rule == "greater":
        if lo > v:
            return Verdict(REPRODUCED, f"CI above {_n(v)}")
        if hi < v:
            return Verdict(CONTRADICTED, f"CI below {_n(v)}")
        return Verdict(INCONCLUSIVE, f"CI contains {_n(v)}")
    if rule == "less":
        if hi < v:
            return Verdict(REPRODUCED, f"CI below {_n(v)}")
        if lo > v:
            return Verdict(CONTRADICTED, f"CI above {_n(v)}")
        return Verdict(INCONCLUSIVE, f"CI contains {_n(v)}")
    if rule == "equal":
        band = f"[{_n(v - m)}, {_n(v + m)}]"
        if v - m <= lo and hi <= v + m:
            return Verdict(REPRODUCED, f"CI within {band}")
        if lo > v + m or hi < v - m:
            return Verdict(CONTRADICTED, f"CI outside {band}")
        return Verdict(INCONCLUSIVE, f"CI overlaps the edge of {band}")
    if rule == "at-least":
        t = v - m
        if lo >= t:
            return Verdict(REPRODUCED, f"CI at or above {_n(t)}")
        if hi < t:
            return Verdict(CONTRADICTED, f"CI below {_n(t)}")
        return Verdict(INCONCLUSIVE, f"CI contains {_n(t)}")
    t = v + m  # at-most
    if hi <= t:
        return Verdict(REPRODUCED, f"CI at or below {_n(t)}")
    if lo > t:
        return Verdict(CONTRADICTED, f"CI above {_n(t)}")
    return Verdict(INCONCLUSIVE, f"CI contains {_n(t)}")


def _n(x: float) -> str:
    return f"{x:.4g}"


# ====================================================================== the report tables
@dataclass(frozen=True)
class ReportSpec:
    metrics: tuple[str, ...] = DEFAULT_METRICS
    window: Window = Window("last-quarter")


@dataclass(frozen=True)
class Comparison:
    name: str
    file: str          # the file name, without .md
    metric: str
    window: Window
    scenarios: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str
    paper: str
    ref: str
    setting: str
    scenario: str
    metric: str
    window: Window
    a: str
    b: str | None
    rule: str
    margin: float = 0.0
    value: float | None = None
    figure: str | None = None
    note: str = ""
    b_metric: str | None = None      # B's metric (default ``metric``)
    b_scenario: str | None = None    # B's scenario (default ``scenario``)
    b_scale: float = 1.0             # s of A − s·B (a ratio rule: A ≥ 0.9·B is A − 0.9·B ≥ 0)
    c: str | None = None             # the control pair of a difference of differences (A − B) − (C − D)
    d: str | None = None
    c_metric: str | None = None
    d_metric: str | None = None
    cause: str = ""                  # why it does not reproduce (CLAIMS.md's "Why claims do not reproduce")
    ablation: str | None = None      # what measures the cause: a claim id, or "scenario: A - B" of this campaign

    @property
    def threshold(self) -> float:
        return 0.0 if self.value is None else self.value

    def terms(self) -> list[tuple[float, str, str, str]]:
        """The effect as a sum over (coefficient, scenario, method, metric), seed by seed:
        A − s·B − (C − D) with the parts the claim names."""
        out = [(1.0, self.scenario, self.a, self.metric)]
        if self.b:
            out.append((-self.b_scale, self.b_scenario or self.scenario, self.b, self.b_metric or self.metric))
        if self.c and self.d:
            out += [(-1.0, self.scenario, self.c, self.c_metric or self.metric),
                    (1.0, self.scenario, self.d, self.d_metric or self.metric)]
        return out


@dataclass(frozen=True)
class Spec:
    """A campaign's report tables, validated."""

    report: ReportSpec
    comparisons: tuple[Comparison, ...]
    claims: tuple[Claim, ...]
    figures: str | None  # the [figures] module


def parse(campaign: Campaign, papers: tuple[str, ...] | None = None) -> Spec:
    """Validate the campaign's ``[report]``, ``[[comparisons]]``, ``[[claims]]`` and
    ``[figures]``; a CampaignError names the file, the table and the key."""
    path = campaign.path
    papers = papers or tuple(paper_anchors())

    def fail(where: str, message: str) -> CampaignError:
        return CampaignError(f"{path}: {where}: {message}")

    # [report]
    data = campaign.tables.get("report", {})
    if not isinstance(data, dict):
        raise fail("[report]", f"must be a table, got {data!r}")
    _unknown(data, REPORT_KEYS, "[report]", fail)
    metrics = data.get("metrics", list(DEFAULT_METRICS))
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) and m.strip() for m in metrics):
        raise fail("[report]: 'metrics'", f"must be a non-empty list of metric names (metrics.csv columns), got "
                                          f"{metrics!r}")
    if len(set(metrics)) != len(metrics):
        raise fail("[report]: 'metrics'", f"lists a metric twice: {metrics}")
    window = _window(data.get("window"), lambda m: fail("[report]: 'window'", m))
    spec = ReportSpec(tuple(metrics), window)

    # [[comparisons]]
    comparisons: list[Comparison] = []
    files: dict[str, str] = {}
    for i, item in enumerate(campaign.comparisons, 1):
        where = f"[[comparisons]] #{i}" + (f" ({item['name']!r})" if isinstance(item.get("name"), str) else "")
        _unknown(item, COMPARISON_KEYS, where, fail)
        for key in ("name", "metric", "pairs"):
            if key not in item:
                raise fail(where, f"'{key}' is missing; a comparison takes {', '.join(COMPARISON_KEYS)}")
        name = _text(item["name"], lambda m: fail(f"{where}: 'name'", m))
        file = slug(name)
        if not file:
            raise fail(f"{where}: 'name'", f"{name!r} gives no file name: use letters or digits")
        if file in RESERVED_FILES:
            raise fail(f"{where}: 'name'", f"{file}.md is the report's own; choose another name")
        if file in files:
            raise fail(f"{where}: 'name'", f"writes {file}.md, as the comparison {files[file]!r} does")
        files[file] = name
        metric = _text(item["metric"], lambda m: fail(f"{where}: 'metric'", m))
        win = _window(item.get("window", window.spec), lambda m: fail(f"{where}: 'window'", m))
        scenarios = item.get("scenarios", list(campaign.scenarios))
        if not isinstance(scenarios, list) or not scenarios or not all(isinstance(s, str) for s in scenarios):
            raise fail(f"{where}: 'scenarios'", f"must be a non-empty list of scenario names, got {scenarios!r}")
        for s in scenarios:
            if s not in campaign.scenarios:
                raise fail(f"{where}: 'scenarios'", f"unknown scenario {s!r}{_close(s, campaign.scenarios)}; the "
                                                    f"campaign's scenarios: {', '.join(campaign.scenarios)}")
        pairs = item["pairs"]
        if not isinstance(pairs, list) or not pairs:
            raise fail(f"{where}: 'pairs'", f"must be a non-empty list of [A, B] method pairs, got {pairs!r}")
        checked = []
        for pair in pairs:
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                raise fail(f"{where}: 'pairs'", f"each pair is [A, B], two method names; got {pair!r}")
            for m in pair:
                if m not in campaign.methods:
                    raise fail(f"{where}: 'pairs'", f"unknown method {m!r}{_close(m, campaign.methods)}; the "
                                                    f"campaign's methods: {', '.join(campaign.methods)}")
            if pair[0] == pair[1]:
                raise fail(f"{where}: 'pairs'", f"compares {pair[0]!r} with itself")
            if not any(pair[0] in campaign.scenarios[s].methods and pair[1] in campaign.scenarios[s].methods
                       for s in scenarios):
                raise fail(f"{where}: 'pairs'", f"{pair}: no scenario of the comparison runs both methods")
            checked.append((pair[0], pair[1]))
        comparisons.append(Comparison(name, file, metric, win, tuple(scenarios), tuple(checked)))

    # [[claims]]
    claims: list[Claim] = []
    ids: set[str] = set()
    for i, item in enumerate(campaign.claims, 1):
        where = f"[[claims]] #{i}" + (f" (id {item['id']!r})" if isinstance(item.get("id"), str) else "")
        _unknown(item, CLAIM_KEYS, where, fail)
        for key in CLAIM_REQUIRED:
            if key not in item:
                raise fail(where, f"'{key}' is missing; a claim needs {', '.join(CLAIM_REQUIRED)} (and b, or value)")
        text = {k: _text(item[k], lambda m, k=k: fail(f"{where}: '{k}'", m))
                for k in ("id", "claim", "paper", "ref", "setting", "scenario", "metric", "a", "rule")}
        for k in ("b", "figure", "note", "b_metric", "b_scenario", "c", "d", "c_metric", "d_metric", "cause",
                  "ablation"):
            if k in item:
                text[k] = _text(item[k], lambda m, k=k: fail(f"{where}: '{k}'", m))
        for k in ("id", "claim", "ref", "metric"):
            if not text[k].strip():
                raise fail(f"{where}: '{k}'", "must not be empty")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", text["id"]):
            raise fail(f"{where}: 'id'", f"{text['id']!r}: use letters, digits and . _ + - only")
        if text["id"] in ids:
            raise fail(f"{where}: 'id'", f"{text['id']!r} is the id of an earlier claim")
        ids.add(text["id"])
        if "\n" in text["claim"]:
            raise fail(f"{where}: 'claim'", "must be one line")
        if text["paper"] not in papers:
            raise fail(f"{where}: 'paper'", f"must be a tag of docs/PAPERS.md: {', '.join(papers)}; got "
                                            f"{text['paper']!r}{_close(text['paper'], papers)}")
        if text["setting"] not in SETTINGS:
            raise fail(f"{where}: 'setting'", f"must be \"paper\" (as the paper writes it) or \"authors\" (as the "
                                              f"authors' code runs it), got {text['setting']!r}")
        if text["rule"] not in RULES:
            raise fail(f"{where}: 'rule'", f"must be one of {', '.join(RULES)}, got "
                                           f"{text['rule']!r}{_close(text['rule'], RULES)}")
        scenario = text["scenario"]
        if scenario not in campaign.scenarios:
            raise fail(f"{where}: 'scenario'", f"unknown scenario {scenario!r}{_close(scenario, campaign.scenarios)}; "
                                               f"the campaign's scenarios: {', '.join(campaign.scenarios)}")
        for k in ("b_metric", "b_scenario", "b_scale"):
            if k in item and "b" not in text:
                raise fail(f"{where}: '{k}'", "qualifies B: give b too (b = a for another metric of the same runs)")
        if ("c" in text) != ("d" in text):
            raise fail(where, "a difference of differences (A − B) − (C − D) needs both c and d")
        for k in ("c_metric", "d_metric"):
            if k in text and "c" not in text:
                raise fail(f"{where}: '{k}'", "qualifies the control pair: give c and d too")
        if "c" in text and "b" not in text:
            raise fail(where, "a difference of differences (A − B) − (C − D) needs b")
        b_scenario = text.get("b_scenario", scenario)
        if b_scenario not in campaign.scenarios:
            raise fail(f"{where}: 'b_scenario'", f"unknown scenario {b_scenario!r}{_close(b_scenario, campaign.scenarios)}"
                                                 f"; the campaign's scenarios: {', '.join(campaign.scenarios)}")
        for k in ("a", "b", "c", "d"):
            where_k = b_scenario if k == "b" else scenario
            own = campaign.scenarios[where_k].methods
            if k in text and text[k] not in own:
                raise fail(f"{where}: '{k}'", f"{text[k]!r} is not a method of scenario {where_k!r}"
                                              f"{_close(text[k], own)}; its methods: {', '.join(own)}")
        if (text.get("b") == text["a"] and text.get("b_metric", text["metric"]) == text["metric"]
                and b_scenario == scenario):
            raise fail(f"{where}: 'b'", f"compares {text['a']!r} with itself (give b_metric or b_scenario to compare "
                                        f"another metric or scenario of it)")
        b_scale = _number(item.get("b_scale", 1.0), lambda m: fail(f"{where}: 'b_scale'", m))
        if b_scale is None or b_scale <= 0:
            raise fail(f"{where}: 'b_scale'", f"must be > 0, got {item.get('b_scale')!r}")
        value = _number(item.get("value"), lambda m: fail(f"{where}: 'value'", m))
        margin = _number(item.get("margin", 0.0), lambda m: fail(f"{where}: 'margin'", m))
        if margin < 0:
            raise fail(f"{where}: 'margin'", f"must be >= 0, got {margin!r}")
        if "b" not in text and value is None:
            raise fail(where, "give b (a paired claim, A − B) or value (A's mean against a number)")
        if text["rule"] in ("greater", "less") and margin:
            raise fail(f"{where}: 'margin'", f"is a tolerance of equal, at-least and at-most, not of "
                                             f"{text['rule']!r}; for a minimum difference d use rule = \"at-least\" "
                                             f"with value = d")
        figure = text.get("figure")
        if figure is not None and (not figure.strip() or Path(figure).is_absolute() or ".." in Path(figure).parts):
            raise fail(f"{where}: 'figure'", f"must be a path relative to the campaign's out ({campaign.out}), "
                                             f"without '..', got {figure!r}")
        win = _window(item.get("window", window.spec), lambda m: fail(f"{where}: 'window'", m))
        if "ablation" in text:
            text["ablation"] = _ablation(text["ablation"], text["id"], campaign,
                                         lambda m: fail(f"{where}: 'ablation'", m))
            if not text.get("cause", "").strip():
                raise fail(f"{where}: 'ablation'", "measures a cause: give cause too")
        if "\n" in text.get("cause", ""):
            raise fail(f"{where}: 'cause'", "must be one paragraph (no line breaks)")
        claims.append(Claim(text["id"], text["claim"], text["paper"], text["ref"], text["setting"], scenario,
                            text["metric"], win, text["a"], text.get("b"), text["rule"], margin, value, figure,
                            text.get("note", ""), text.get("b_metric"), text.get("b_scenario"), b_scale,
                            text.get("c"), text.get("d"), text.get("c_metric"), text.get("d_metric"),
                            text.get("cause", "").strip(), text.get("ablation")))

    # [figures]
    module = None
    if campaign.figures:
        if "module" not in campaign.figures:
            raise fail("[figures]", "'module' is missing: the module that draws the campaign's figures, e.g. "
                                    "module = \"experiments.figures.fpf\"")
        module = _text(campaign.figures["module"], lambda m: fail("[figures]: 'module'", m))
        if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", module):
            raise fail("[figures]: 'module'", f"must be a module's dotted name, got {module!r}")
    return Spec(spec, tuple(comparisons), tuple(claims), module)


ABLATION_PAIR = re.compile(r"\s*([^:\s][^:]*?)\s*:\s*(\S+)\s+-\s+(\S+)\s*")


def _ablation(value: str, own_id: str, campaign: Campaign, fail) -> str:
    """A claim's ``ablation``, checked: another claim's id (of any campaign; report --all
    checks that it exists), or ``"scenario: A - B"``, a paired difference of two methods of
    this campaign on the claim's metric and window. Returned normalised."""
    value = value.strip()
    if ":" not in value:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", value):
            raise fail(f"{value!r} is neither a claim id nor \"scenario: A - B\"")
        if value == own_id:
            raise fail("names the claim itself")
        return value
    match = ABLATION_PAIR.fullmatch(value)
    if not match:
        raise fail(f"{value!r}: write a paired difference as \"scenario: A - B\" (two methods of the scenario)")
    scenario, a, b = match.groups()
    if scenario not in campaign.scenarios:
        raise fail(f"unknown scenario {scenario!r}{_close(scenario, campaign.scenarios)}; the campaign's scenarios: "
                   f"{', '.join(campaign.scenarios)}")
    own = campaign.scenarios[scenario].methods
    for m in (a, b):
        if m not in own:
            raise fail(f"{m!r} is not a method of scenario {scenario!r}{_close(m, own)}; its methods: {', '.join(own)}")
    if a == b:
        raise fail(f"compares {a!r} with itself")
    return f"{scenario}: {a} - {b}"


def slug(name: str) -> str:
    """A comparison's file name: lower case, every run of characters other than letters,
    digits and ``._+-`` one ``-``, no ``-`` or ``.`` at the ends."""
    return re.sub(r"[^a-z0-9._+-]+", "-", name.lower()).strip("-.")


def _unknown(table: dict, keys: tuple[str, ...], where: str, fail) -> None:
    for key in table:
        if key not in keys:
            raise fail(f"{where}: '{key}'", f"unknown key{_close(key, keys)}; valid keys: {', '.join(keys)}")


def _close(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _text(value: Any, fail) -> str:
    if not isinstance(value, str):
        raise fail(f"must be text, got {value!r}")
    return value


def _number(value: Any, fail) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(f"must be a number, got {value!r}")
    return float(value)


def _window(spec: Any, fail) -> Window:
    try:
        return parse_window(spec)
    except ValueError as err:
        raise fail(str(err)) from None


def paper_anchors(path: Path = PAPERS_FILE) -> dict[str, str]:
    """``{tag: GitHub anchor}`` of docs/PAPERS.md's sections ``## TAG: title``."""
    try:
        text = path.read_text()
    except OSError:
        return {tag: "" for tag in PAPERS}
    found = {}
    for line in text.splitlines():
        if m := re.match(r"## ([A-Za-z][\w-]*): ", line):
            heading = line[3:].strip().lower()
            found[m.group(1)] = re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")
    return found or {tag: "" for tag in PAPERS}


# ====================================================================== the runs
@dataclass
class Runs:
    """A campaign's planned runs: the finished ones read (metrics.csv, config, summary), the
    others with their status."""

    campaign: Campaign
    planned: dict[tuple[str, str], list[int]]                  # (scenario, method) -> seeds planned
    finished: dict[tuple[str, str, int], Run]
    unfinished: dict[tuple[str, str, int], status.RunStatus]
    _finals: dict = field(default_factory=dict)

    def seeds(self, scenario: str, method: str) -> list[int]:
        """The finished seeds of (scenario, method), in the plan's order."""
        return [s for s in self.planned.get((scenario, method), []) if (scenario, method, s) in self.finished]

    def count(self, scenario: str, method: str) -> tuple[int, int]:
        """(finished, planned) seeds of (scenario, method)."""
        return len(self.seeds(scenario, method)), len(self.planned.get((scenario, method), []))

    def finished_text(self, scenario: str, method: str) -> str:
        """"" when every planned seed finished, else e.g. "2 of 3 seeds finished"."""
        done, planned = self.count(scenario, method)
        return "" if done == planned else f"{done} of {planned} seeds finished"

    def finals(self, scenario: str, method: str, metric: str, window: Window) -> dict[int, float]:
        """seed -> final value of ``metric`` over ``window`` (NaN where not measured), finished runs only."""
        out = {}
        for seed in self.seeds(scenario, method):
            key = (scenario, method, seed, metric, window)
            if key not in self._finals:
                self._finals[key] = final_value(self.finished[scenario, method, seed].rows, metric, window).value
            out[seed] = self._finals[key]
        return out

    def columns(self, scenarios=None) -> set[str]:
        """The metrics.csv columns of the finished runs (of ``scenarios``, default all)."""
        cols: set[str] = set()
        for (scenario, _, _), run in self.finished.items():
            if scenarios is None or scenario in scenarios:
                for row in run.rows[:1]:
                    cols.update(row)
        return cols

    def any_finished(self, scenarios=None) -> bool:
        return any(scenarios is None or k[0] in scenarios for k in self.finished)

    def left_out(self, scenario: str, method: str) -> str:
        """The unfinished seeds of (scenario, method) and why, e.g. "seeds 1, 2: missing;
        seed 3: partial 40/100" ("" when none)."""
        groups: dict[str, list[int]] = {}
        for seed in self.planned.get((scenario, method), []):
            st = self.unfinished.get((scenario, method, seed))
            if st is not None:
                what = str(st.state) + (f" {st.progress}" if st.rounds_done else "") + (f" ({st.reason})"
                                                                                        if st.reason else "")
                groups.setdefault(what, []).append(seed)
        return "; ".join(f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}: {what}"
                         for what, seeds in groups.items())


def collect(campaign: Campaign) -> Runs:
    """Each planned run's status (:func:`experiments.status.check`); the finished ones read.
    The plan is built by :meth:`Campaign.check` (every configuration validated)."""
    planned: dict[tuple[str, str], list[int]] = {}
    finished, unfinished = {}, {}
    for run in campaign.check():
        planned.setdefault((run.scenario, run.method), []).append(run.seed)
        st = status.check(run.cfg)
        if st.state is status.State.DONE:
            finished[run.key] = read_run(run.out)
        else:
            unfinished[run.key] = st
    return Runs(campaign, planned, finished, unfinished)


def default_jobs() -> int:
    """The processes the bootstraps run in: the CPUs this process may use, at most 8."""
    try:
        return max(1, min(8, len(os.sched_getaffinity(0))))
    except AttributeError:
        return max(1, min(8, os.cpu_count() or 1))


def _noop() -> None:
    return None


class Bootstraps:
    """Runs the bootstraps of analysis.stats (rliable's IQM and P(A > B): pure Python, about
    a millisecond a replication) in ``jobs`` worker processes, or in this process for
    ``jobs <= 1``. Each call seeds its own generator (analysis.stats), so the intervals are
    the same wherever they run. Use as a context manager (the workers start on entry)."""

    def __init__(self, jobs: int = 1):
        self.jobs = jobs
        self._pool = None

    def __enter__(self) -> Bootstraps:
        if self.jobs > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            methods = multiprocessing.get_all_start_methods()
            # fork: the workers share what this process imported; started here, before a
            # [figures] module could start threads
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self._pool = ProcessPoolExecutor(self.jobs, mp_context=context)
            for f in [self._pool.submit(_noop) for _ in range(self.jobs)]:
                f.result()
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def map(self, calls: list[tuple[Any, tuple, dict]]) -> list[Any]:
        """``[func(*args, **kwargs) for func, args, kwargs in calls]``."""
        if self._pool is None or len(calls) < 2:
            return [func(*args, **kwargs) for func, args, kwargs in calls]
        futures = [self._pool.submit(func, *args, **kwargs) for func, args, kwargs in calls]
        return [f.result() for f in futures]


# ====================================================================== writing
@dataclass
class ClaimResult:
    claim: Claim
    campaign: str        # its name
    path: Path           # its file
    out: Path            # its out
    effect: Effect
    verdict: Verdict
    poi: stats.Interval | None   # paired claims
    planned: int         # seeds planned (the fewer of A's and B's)
    test: str            # the rule in symbols, e.g. "FPF − IDQN > 0"
    missing: str = ""    # why n is short: e.g. "FPF: 2 of 3 seeds finished"
    ablation: ClaimResult | None = None  # a "scenario: A - B" ablation's paired difference, judged


def label(name: str) -> str:
    return LABELS.get(name, name)


@dataclass(frozen=True)
class Files:
    """The names of the report's own files in the campaign's out: ``results.md``,
    ``results.csv``, ``claims.md`` and ``curves-<scenario>.png``, unless another campaign file
    beside this one writes into the same out (then ``results-<name>.md``, ``results-<name>.csv``,
    ``claims-<name>.md``, and ``curves-<name>-<scenario>.png`` for a scenario name that both
    have); ``claims-<name>.md`` also where claims.md would be docs/results/CLAIMS.md on a
    case-insensitive file system."""

    results: str
    csv: str
    claims: str
    curves: dict[str, str]
    shared: tuple[str, ...] = ()   # the other campaign files with the same out


def files_of(campaign: Campaign, spec: Spec | None = None) -> Files:
    """The report's own file names (see :class:`Files`); a CampaignError when a comparison
    of another campaign with the same out writes the same file."""
    import tomllib

    out = Path(campaign.out).resolve()
    me = Path(campaign.path).resolve()
    shared, scenarios, comparisons = [], set(), {}
    for other in sorted(me.parent.glob("*.toml")):
        if other.resolve() == me:
            continue
        try:
            data = tomllib.loads(other.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data.get("out"), str) or Path(data["out"]).resolve() != out:
            continue
        shared.append(other.name)
        if isinstance(data.get("scenarios"), dict):
            scenarios.update(data["scenarios"])
        for item in data.get("comparisons", []) if isinstance(data.get("comparisons"), list) else []:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                comparisons[slug(item["name"])] = other.name
    for comp in spec.comparisons if spec else ():
        if comp.file in comparisons:
            raise CampaignError(f"{campaign.path}: [[comparisons]] {comp.name!r}: 'name': {comp.file}.md is also "
                                f"written by {comparisons[comp.file]} (the same out, {campaign.out}): rename one")
    tag = f"-{campaign.name}" if shared else ""
    claims = f"claims{tag}.md"
    if str(out / claims).lower() == str(CLAIMS_FILE.resolve()).lower():
        claims = f"claims-{campaign.name}.md"
    curves = {s: f"curves-{campaign.name}-{s}.png" if s in scenarios else f"curves-{s}.png"
              for s in campaign.scenarios}
    return Files(f"results{tag}.md", f"results{tag}.csv", claims, curves, tuple(shared))


def report(campaign: Campaign, *, reps: int | None = None, poi_reps: int | None = None, jobs: int = 1,
           log=print) -> int:
    """Write the campaign's report into its out (see the module doc); 0 when everything was
    written, 1 when the [figures] module failed (the rest is written). ``reps``, ``poi_reps``:
    bootstrap replications (default REPS, POI_REPS); ``jobs``: processes for the bootstraps
    (:class:`Bootstraps`)."""
    with Bootstraps(jobs) as boot:
        code, _ = _report(campaign, boot, reps=reps or REPS, poi_reps=poi_reps or POI_REPS, log=log)
    return code


def _report(campaign: Campaign, boot: Bootstraps, *, reps: int = REPS, poi_reps: int = POI_REPS,
            log=print) -> tuple[int, list[ClaimResult]]:
    spec = parse(campaign)
    names = files_of(campaign, spec)
    runs = collect(campaign)
    _check_metrics(campaign, spec, runs)
    out = Path(campaign.out)
    out.mkdir(parents=True, exist_ok=True)
    total, done = len(runs.finished) + len(runs.unfinished), len(runs.finished)
    log(f"campaign {campaign.name} ({_rel(campaign.path)}): {done} of {total} runs finished"
        + ("" if done == total else "; left out of the report:"))
    for scenario, method in runs.planned:
        if runs.finished_text(scenario, method):
            log(f"  {scenario} {method}: {runs.finished_text(scenario, method)}; {runs.left_out(scenario, method)}")
    if names.shared:
        log(f"  note: {', '.join(names.shared)} write(s) into {campaign.out} too: this report's tables are "
            f"{names.results}, {names.csv} and {names.claims}")
    # every bootstrap of the report at once: the IQM of each scenario x method, P(A > B) of
    # each paired claim
    first = spec.report.metrics[0]
    cells = [(s, m) for s in campaign.scenarios for m in _scenario_methods(campaign, s)]
    calls = [(stats.iqm, (list(runs.finals(s, m, first, spec.report.window).values()),), {"reps": reps})
             for s, m in cells]
    judged = [_judge(campaign, c, runs) for c in spec.claims]
    for r in judged:
        if r.claim.ablation and ":" in r.claim.ablation:
            r.ablation = _judge(campaign, _ablation_claim(r.claim), runs)
    paired = [r for r in judged if r.claim.b and not r.claim.c and r.effect.n >= 2]
    for r in paired:
        (_, sa, a, ma), (scale, sb, b, mb) = r.claim.terms()
        xa = runs.finals(sa, a, ma, r.claim.window)
        xb = runs.finals(sb, b, mb, r.claim.window)
        calls.append((stats.probability_of_improvement, ([xa[k] for k in r.effect.seeds],
                                                         [-scale * xb[k] for k in r.effect.seeds]), {"reps": poi_reps}))
    done_calls = boot.map(calls)
    intervals = dict(zip(cells, done_calls[:len(cells)]))
    for r, poi in zip(paired, done_calls[len(cells):]):
        r.poi = poi
    results = judged
    written = [_results(campaign, spec, runs, out, reps, names, intervals)]
    written += [_comparison(campaign, c, runs, out) for c in spec.comparisons]
    written += _curves(campaign, spec, runs, out, names, boot)
    code = 0
    if spec.figures:
        try:
            module = importlib.import_module(spec.figures)
            draw = getattr(module, "figures", None)
            if not callable(draw):
                raise CampaignError(f"{campaign.path}: [figures]: 'module': {spec.figures} defines no "
                                    f"figures(campaign, runs, out)")
            made = draw(campaign, dict(runs.finished), out)
            written += [Path(p) for p in made or ()]
        except Exception as err:  # the tables and claims are still written
            missing = isinstance(err, ModuleNotFoundError) and spec.figures.startswith(err.name or "?")
            if not isinstance(err, CampaignError) and not missing:
                traceback.print_exc()
            log(f"error: {campaign.path}: [figures]: 'module' = {spec.figures!r} failed: "
                f"{type(err).__name__}: {err}")
            code = 1
    for r in results:
        if r.claim.figure and not (out / r.claim.figure).exists():
            log(f"warning: {campaign.path}: claim {r.claim.id!r}: figure {str(out / r.claim.figure)!r} does not exist")
    if spec.claims:
        path = out / names.claims
        path.write_text(claims_markdown(results, title=f"{campaign.name}: claims", base=out,
                                        command=f"python -m experiments report {_rel(campaign.path)}"))
        written.append(path)
        counts = {o: sum(r.verdict.outcome == o for r in results) for o in (REPRODUCED, CONTRADICTED, INCONCLUSIVE)}
        log(f"  {len(results)} claims: " + ", ".join(f"{n} {o}" for o, n in counts.items()))
    log("  wrote " + ", ".join(str(p) for p in written))
    return code, results


def _check_metrics(campaign: Campaign, spec: Spec, runs: Runs) -> None:
    """A metric in no finished run's metrics.csv (where there are finished runs) is a typo."""
    def check(metric: str, scenarios, where: str) -> None:
        if runs.any_finished(scenarios):
            cols = runs.columns(scenarios)
            if metric not in cols:
                raise CampaignError(f"{campaign.path}: {where}: {metric!r} is not a column of the finished runs' "
                                    f"metrics.csv{_close(metric, cols)}")

    for m in spec.report.metrics:
        check(m, None, "[report]: 'metrics'")
    for i, c in enumerate(spec.comparisons, 1):
        check(c.metric, c.scenarios, f"[[comparisons]] #{i} ({c.name!r}): 'metric'")
    for i, c in enumerate(spec.claims, 1):
        for _, scenario, _, metric in c.terms():
            check(metric, [scenario], f"[[claims]] #{i} (id {c.id!r}): 'metric'")


def _scenario_methods(campaign: Campaign, scenario: str) -> list[str]:
    return [m for m in campaign.methods if m in campaign.scenarios[scenario].methods]


def _results(campaign: Campaign, spec: Spec, runs: Runs, out: Path, reps: int, names: Files,
             iqms: dict[tuple[str, str], stats.Interval]) -> Path:
    metrics, window = spec.report.metrics, spec.report.window
    first = metrics[0]
    lines = [f"# {campaign.name}: results", ""]
    if campaign.description:
        lines += [campaign.description, ""]
    total, done = len(runs.finished) + len(runs.unfinished), len(runs.finished)
    lines += [f"Generated by `python -m experiments report {_rel(campaign.path)}` from the finished runs under "
              f"`{campaign.out}` ({done} of {total} runs finished). A run's final value: the mean of the metric "
              f"over {window.describe()} (`{window.spec}`). Cells: mean ± sd [± 95% t-CI half-width] over the "
              f"finished seeds; {label(first)} IQM [95% CI]: rliable's interquartile mean with its stratified "
              f"bootstrap CI ({reps} replications).", ""]
    csv_rows = []
    for scenario, sc in campaign.scenarios.items():
        lines += [f"## {scenario}: {sc.label}", ""]
        if sc.note:
            lines += [sc.note, ""]
        groups: dict[str, list[dict]] = {}
        methods = _scenario_methods(campaign, scenario)
        finals: dict[str, dict[str, dict[int, float]]] = {}
        for method in methods:
            finals[method] = {m: runs.finals(scenario, method, m, window) for m in metrics}
            groups[campaign.label(method)] = [{"seed": s, **{m: finals[method][m][s] for m in metrics}}
                                              for s in runs.seeds(scenario, method)]
        # method_table's layout with iqm_of=(first, ...): the IQM column right after the first
        # metric's; computed once (by the caller), for the table and the CSV
        intervals = {m: iqms[scenario, m] for m in methods}
        header, rows = tables.method_table(groups, [(m, label(m)) for m in metrics])
        header.insert(3, f"{label(first)} IQM [95% CI]")
        for row, method in zip(rows, methods):
            row.insert(3, tables.fmt_interval(intervals[method]))
            extra = runs.finished_text(scenario, method)
            if extra:
                row[1] = (row[1] + " " if row[1] else "") + f"({extra})"
        lines += [tables.markdown(header, rows), ""]
        left = [f"{campaign.label(m)} {runs.left_out(scenario, m)}" for m in methods if runs.left_out(scenario, m)]
        if left:
            lines += ["Not finished, left out: " + "; ".join(left) + ".", ""]
        for method in methods:
            seeds = runs.seeds(scenario, method)
            row = {"scenario": scenario, "method": method, "label": campaign.label(method), "window": window.spec,
                   "seeds": " ".join(map(str, seeds)), "n": len(seeds), "planned": runs.count(scenario, method)[1]}
            for m in metrics:
                s = stats.mean_sd_ci([finals[method][m][k] for k in seeds])
                row.update({f"{m}_mean": s.mean, f"{m}_sd": s.sd, f"{m}_ci95": s.ci, f"{m}_n": s.n})
            iv = intervals[method]
            row.update({f"{first}_iqm": iv.point, f"{first}_iqm_lo": iv.lo, f"{first}_iqm_hi": iv.hi})
            csv_rows.append(row)
    path = out / names.results
    path.write_text("\n".join(lines).rstrip() + "\n")
    if csv_rows:
        with (out / names.csv).open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(csv_rows[0]))
            writer.writeheader()
            writer.writerows(csv_rows)
    return path


def _comparison(campaign: Campaign, comp: Comparison, runs: Runs, out: Path) -> Path:
    pairs: dict[str, stats.Paired] = {}
    for scenario in comp.scenarios:
        own = campaign.scenarios[scenario].methods
        for a, b in comp.pairs:
            if a not in own or b not in own:
                continue
            d = stats.paired_differences(runs.finals(scenario, a, comp.metric, comp.window),
                                         runs.finals(scenario, b, comp.metric, comp.window))
            short = [f"{campaign.label(m)}: {runs.finished_text(scenario, m)}" for m in (a, b)
                     if runs.finished_text(scenario, m)]
            if short:
                d = replace(d, note="; ".join(filter(None, [d.note, *short])))
            pairs[f"{scenario}: {campaign.label(a)} − {campaign.label(b)}"] = d
    header, rows = tables.paired_table(pairs)
    text = [f"# {campaign.name}: {comp.name}", "",
            f"Generated by `python -m experiments report {_rel(campaign.path)}`. {label(comp.metric)} "
            f"(`{comp.metric}`), A − B matched by seed over the seeds both have finished; a run's final value: the "
            f"mean over {comp.window.describe()} (`{comp.window.spec}`). Cells: mean, sample sd and 95% t-CI "
            f"half-width of the per-seed differences; p: two-sided paired t-test.", "",
            tables.markdown(header, rows), ""]
    path = out / f"{comp.file}.md"
    path.write_text("\n".join(text))
    return path


def _curves(campaign: Campaign, spec: Spec, runs: Runs, out: Path, names: Files, boot: Bootstraps) -> list[Path]:
    """curves-<scenario>.png: a panel per metric (collective_return first), drawn by the
    workers of ``boot`` (each figure is independent)."""
    keys = ["collective_return"] + [m for m in spec.report.metrics if m != "collective_return"]
    calls = []
    for scenario, sc in campaign.scenarios.items():
        cols = runs.columns([scenario])
        panels = [k for k in keys if k in cols]
        curves = {campaign.label(m): [[{k: row.get(k, math.nan) for k in panels}
                                       for row in runs.finished[scenario, m, s].rows]
                                      for s in runs.seeds(scenario, m)]
                  for m in _scenario_methods(campaign, scenario)}
        curves = {k: v for k, v in curves.items() if v}
        if curves and panels:
            calls.append((draw_curves, (out / names.curves[scenario], curves, panels,
                                        f"{scenario}: {sc.label}; finished runs, mean over seeds and 95% CI"), {}))
    return boot.map(calls)


def draw_curves(path: Path, curves: dict[str, list[list[dict]]], panels: list[str], title: str) -> Path:
    """One figure: a panel per metric of ``panels``, the learning curves of every method
    (:func:`analysis.plots.plot_learning_curves`)."""
    from analysis import plots  # matplotlib only when drawing

    fig, axes = plots.plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, key in zip(axes[0], panels):
        plots.plot_learning_curves(ax, curves, key, ylabel=label(key), title=label(key))
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    plots.save(fig, path)
    return path


def _judge(campaign: Campaign, claim: Claim, runs: Runs) -> ClaimResult:
    """The claim's effect and verdict (P(A > B) is filled in by the caller)."""
    terms = claim.terms()
    eff = contrast([(c, runs.finals(s, m, metric, claim.window)) for c, s, m, metric in terms])
    verdict = decide(claim.rule, eff, claim.threshold, claim.margin)
    cells = list(dict.fromkeys((s, m) for _, s, m, _ in terms))
    planned = min(runs.count(s, m)[1] for s, m in cells)
    missing = "; ".join(f"{campaign.label(m)}{f' ({s})' if s != claim.scenario else ''}: {runs.finished_text(s, m)}"
                        for s, m in cells if runs.finished_text(s, m))
    return ClaimResult(claim, campaign.name, campaign.path, Path(campaign.out), eff, verdict, None, planned,
                       _test_text(campaign, claim), missing)


def _ablation_claim(claim: Claim) -> Claim:
    """A "scenario: A - B" ablation as a paired claim A − B > 0 on the claim's metric and window."""
    match = ABLATION_PAIR.fullmatch(claim.ablation or "")
    assert match, claim.ablation
    scenario, a, b = match.groups()
    return Claim(f"{claim.id}:ablation", f"ablation of {claim.id}", claim.paper, claim.ref, claim.setting, scenario,
                 claim.metric, claim.window, a, b, "greater")


def _term_text(campaign: Campaign, claim: Claim, method: str, metric: str, scenario: str) -> str:
    """A method's label, with the metric in brackets where the claim's terms use several
    metrics, and the scenario where it is not the claim's."""
    metrics = {m for _, _, _, m in claim.terms()}
    text = campaign.label(method)
    if len(metrics) > 1:
        text += f"[{metric}]"
    if scenario != claim.scenario:
        text += f" ({scenario})"
    return text


def _test_text(campaign: Campaign, claim: Claim) -> str:
    """The rule in symbols: "FPF − IDQN > 0", "mean MD ≥ 17 − 1", "(FPF[in] − FPF[out]) − (IPPO[in] − IPPO[out]) > 0"."""
    (_, sa, a, ma), *rest = claim.terms()
    x = _term_text(campaign, claim, a, ma, sa)
    if claim.b:
        _, sb, b, mb = rest[0]
        scale = "" if claim.b_scale == 1.0 else f"{_n(claim.b_scale)}·"
        x = f"{x} − {scale}{_term_text(campaign, claim, b, mb, sb)}"
        if claim.c:
            (_, sc, c, mc), (_, sd, d, md) = rest[1:]
            x = f"({x}) − ({_term_text(campaign, claim, c, mc, sc)} − {_term_text(campaign, claim, d, md, sd)})"
    else:
        x = f"mean {x}"
    v, m = _n(claim.threshold), _n(claim.margin)
    tol = f" − {m}" if claim.margin else ""
    return {"greater": f"{x} > {v}", "less": f"{x} < {v}",
            "equal": f"{x} = {v} ± {m}" if claim.margin else f"{x} = {v}",
            "at-least": f"{x} ≥ {v}{tol}",
            "at-most": f"{x} ≤ {v}" + (f" + {m}" if claim.margin else "")}[claim.rule]


def _fmt_effect(eff: Effect) -> str:
    if eff.n == 0 or not math.isfinite(eff.mean):
        return tables.MISSING
    if eff.n < 2:
        return f"{eff.mean:.3g}"
    return f"{eff.mean:.3g} [{eff.lo:.3g}, {eff.hi:.3g}]"


def _fmt_poi(poi: stats.Interval | None) -> str:
    if poi is None or not math.isfinite(poi.point):
        return tables.MISSING
    return f"{poi.point:.2f} [{poi.lo:.2f}, {poi.hi:.2f}]"


def _fmt_verdict(v: Verdict) -> str:
    return f"**{v.outcome}**" if v.outcome != INCONCLUSIVE else v.outcome


def claims_markdown(results: list[ClaimResult], *, title: str, base: Path, command: str,
                    anchors: dict[str, str] | None = None, papers_link: str | None = None,
                    failed: list[str] | None = None, by_paper: bool = False) -> str:
    """The claims as Markdown: a header (how it is generated, the decision rules) and one
    table (or, ``by_paper``, one per paper); figure links relative to ``base``."""
    anchors = anchors if anchors is not None else paper_anchors()
    if papers_link is None:
        papers_link = os.path.relpath(PAPERS_FILE, base.resolve())
    counts = {o: sum(r.verdict.outcome == o for r in results) for o in (REPRODUCED, CONTRADICTED, INCONCLUSIVE)}
    lines = [f"# {title}", "",
             f"Generated by `{command}` from the finished runs: do not edit by hand; the claims are the "
             f"`[[claims]]` of the campaign files (experiments/campaigns/). {len(results)} claims: "
             + ", ".join(f"{n} {o}" for o, n in counts.items()) + ".", "", RULES_TEXT, ""]
    if failed:
        lines += ["**Campaigns not reported** (their claims are missing below):", ""]
        lines += [f"- {f}" for f in failed] + [""]
    header = ["id", "claim", "paper", "setting", "scenario", "test", "n (of N)", "effect [95% CI]", "verdict",
              "P(A>B) [95% CI]", "figure", "note"]

    def row(r: ClaimResult) -> list[str]:
        c = r.claim
        anchor = anchors.get(c.paper, "")
        paper = f"[{c.paper} {c.ref}]({papers_link}" + (f"#{anchor}" if anchor else "") + ")"
        figure = tables.MISSING
        if c.figure:
            target = (r.out / c.figure).resolve()
            figure = f"[{c.figure}]({os.path.relpath(target, base.resolve())})"
            if not target.exists():
                figure += " (missing)"
        note = "; ".join(filter(None, [r.missing, c.note]))
        return [f"`{c.id}`", c.claim, paper, c.setting, f"{c.scenario} ({r.campaign})", r.test,
                f"{r.effect.n} (of {r.planned})", _fmt_effect(r.effect),
                f"{_fmt_verdict(r.verdict)} ({r.verdict.reason})", _fmt_poi(r.poi), figure, _cell(note)]

    if not by_paper:
        lines += [tables.markdown(header, [row(r) for r in results]), ""]
        lines += why_markdown(results, anchors, papers_link)
        return "\n".join(lines)
    order = list(anchors) + sorted({r.claim.paper for r in results} - set(anchors))
    for paper in order:
        mine = [r for r in results if r.claim.paper == paper]
        if not mine:
            continue
        n = {o: sum(r.verdict.outcome == o for r in mine) for o in (REPRODUCED, CONTRADICTED, INCONCLUSIVE)}
        anchor = anchors.get(paper, "")
        lines += [f"## {paper}", "",
                  f"[{paper} in docs/PAPERS.md]({papers_link}" + (f"#{anchor}" if anchor else "") + "): "
                  f"{len(mine)} claim{'s' if len(mine) != 1 else ''}: "
                  + ", ".join(f"{k} {o}" for o, k in n.items()) + ".", "",
                  tables.markdown(header, [row(r) for r in mine]), ""]
    lines += why_markdown(results, anchors, papers_link)
    return "\n".join(lines)


WHY_TEXT = """\
Every contradicted claim, and every claim whose campaign file gives a `cause`: the cause (the
claim's `cause`, or "unexplained"), and the ablation that measures it (the claim's `ablation`:
another claim, with its test, effect [95% CI] and verdict, or a paired difference A − B of two
methods on the claim's metric and window, with its effect [95% CI]); "not run yet" while no
seed of the ablation has finished."""


def _ablation_text(r: ClaimResult, by_id: Mapping[str, ClaimResult]) -> str:
    """What the claim's ablation measured, in one sentence."""
    c = r.claim
    if not c.ablation:
        return "no ablation measures it yet."
    if r.ablation is not None:  # "scenario: A - B"
        a = r.ablation
        what = f"`{c.ablation}` ({a.test.removesuffix(' > 0')}, {label(c.metric)})"
        if a.effect.n == 0:
            return f"{what}: not run yet."
        if a.effect.n < 2 or not math.isfinite(a.effect.lo):
            return f"{what}: {_fmt_effect(a.effect)}, n = {a.effect.n} (of {a.planned}): too few seeds for a CI."
        moves = "excludes 0" if a.effect.lo > 0 or a.effect.hi < 0 else "includes 0"
        return f"{what}: {_fmt_effect(a.effect)}, n = {a.effect.n} (of {a.planned}); the CI {moves}."
    other = by_id.get(c.ablation)
    if other is None:
        return f"`{c.ablation}` (a claim of another campaign: docs/results/CLAIMS.md)."
    what = f"`{c.ablation}` ({other.test})"
    if other.effect.n == 0:
        return f"{what}: not run yet."
    return (f"{what}: {_fmt_effect(other.effect)}, n = {other.effect.n} (of {other.planned}), "
            f"{other.verdict.outcome} ({other.verdict.reason}).")


def why_markdown(results: list[ClaimResult], anchors: Mapping[str, str], papers_link: str) -> list[str]:
    """The section "Why claims do not reproduce": one item per contradicted claim or claim
    with a ``cause`` (none: no section)."""
    listed = [r for r in results if r.verdict.outcome == CONTRADICTED or r.claim.cause]
    if not listed:
        return []
    by_id = {r.claim.id: r for r in results}
    lines = ["## Why claims do not reproduce", "", WHY_TEXT, ""]
    for r in listed:
        c = r.claim
        anchor = anchors.get(c.paper, "")
        paper = f"[{c.paper} {c.ref}]({papers_link}" + (f"#{anchor}" if anchor else "") + ")"
        cause = c.cause or "unexplained: no cause recorded."
        lines.append(f"- `{c.id}` ({paper}, {c.setting}, {c.scenario} ({r.campaign})): {_fmt_verdict(r.verdict)} "
                     f"({r.verdict.reason}). **Cause:** {cause} **Ablation:** {_ablation_text(r, by_id)}")
    return lines + [""]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rel(path: Path) -> str:
    """A path relative to the working directory when it is below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# ====================================================================== --all
def _report_one(path: Path, boot: Bootstraps, failed: list[str], *, reps: int, poi_reps: int,
                log) -> tuple[int, list[ClaimResult]]:
    """One campaign of --all: (exit code, its claims); a failure is logged and listed in ``failed``."""
    t0 = time.perf_counter()
    try:
        campaign = load(path, check=False)  # collect() checks it
        rc, mine = _report(campaign, boot, reps=reps, poi_reps=poi_reps, log=log)
    except CampaignError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        failed.append(_cell(str(err)))
        return 2, []
    except Exception as err:  # a campaign's failure does not stop the others
        traceback.print_exc()
        failed.append(f"`{_rel(path)}`: {type(err).__name__}: {_cell(str(err))}")
        return 2, []
    log(f"  ({time.perf_counter() - t0:.1f} s)\n")
    return rc, mine


def report_all(directory: Path = DIRECTORY, claims_path: Path = CLAIMS_FILE, *, reps: int | None = None,
               poi_reps: int | None = None, jobs: int = 1, log=print) -> int:
    """Report every campaign of ``directory``, then write ``claims_path`` (docs/results/
    CLAIMS.md): every campaign's claims, grouped by paper. A campaign that cannot be read or
    reported is named there and on stderr, and the exit code is 2 (1 when only a [figures]
    module failed)."""
    start = time.perf_counter()
    reps, poi_reps = reps or REPS, poi_reps or POI_REPS
    paths = sorted(Path(directory).glob("*.toml"))
    results: list[ClaimResult] = []
    failed: list[str] = []
    code = 0
    with Bootstraps(jobs) as boot:
        for path in paths:
            rc, mine = _report_one(path, boot, failed, reps=reps, poi_reps=poi_reps, log=log)
            code = max(code, rc)
            results += mine
    seen: dict[str, str] = {}
    for r in results:
        if r.claim.id in seen and seen[r.claim.id] != r.campaign:
            print(f"error: claim id {r.claim.id!r} is in campaigns {seen[r.claim.id]} and {r.campaign}",
                  file=sys.stderr)
            code = 2
        seen.setdefault(r.claim.id, r.campaign)
    for r in results:
        if r.claim.ablation and r.ablation is None and r.claim.ablation not in seen:
            print(f"error: {r.path}: claim {r.claim.id!r}: 'ablation': no campaign has a claim "
                  f"{r.claim.ablation!r}{_close(r.claim.ablation, seen)}", file=sys.stderr)
            code = 2
    claims_path = Path(claims_path)
    claims_path.parent.mkdir(parents=True, exist_ok=True)
    claims_path.write_text(claims_markdown(results, title="Claims of the papers, checked against our runs",
                                           base=claims_path.parent, command="python -m experiments report --all",
                                           failed=failed, by_paper=True))
    log(f"wrote {claims_path}: {len(results)} claims of {len(paths) - len(failed)} campaigns "
        f"({time.perf_counter() - start:.0f} s)")
    return code
