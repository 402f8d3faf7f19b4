"""A campaign: an experiment as data, one TOML file (experiments/campaigns/*.toml).

A campaign names its scenarios (a game and its settings), its methods (what is compared)
and its seeds; every (seed, scenario, method) is one run, a :class:`PlannedRun` with its
validated :class:`federation.config.RunConfig`. The engine (experiments/engine.py) runs
what is not finished; the report layer reads the runs and the campaign's own tables::

    name = "fpf-ssd-3"
    description = "FPF's SSD panels with 3 agents"
    out = "docs/results/ssd"          # run directories: <out>/runs/<scenario>/<method>_seed<seed>/
    seeds = [0, 1, 2]
    runner = "in-process"             # or "simulation" (Flower's simulation runtime)

    [defaults]                        # flags of every run; may name a preset: preset = "fpf-ssd-harvest-3"
    learner = "dqn"

    [scenarios.harvest-3]             # flags, and optionally label, note, methods, preset, seeds, method_seeds, needs
    env = "harvest"
    agents = 3

    method_seeds = { fpf = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] }   # a method's own seeds here (a headline pair with more)

    [scenarios.harvest-3.overrides.fpf]   # flags of one method in this scenario only
    fed-updates = 100

    [methods.fpf]                     # flags, and optionally label, note
    strategy = "fpf"
    participation = "0.5"

    [[comparisons]]                   # for the report layer: kept as plain dicts
    ...

Flags are RunConfig's flat keys (the command-line flags, kebab- or snake-case). A run's
settings are merged, later wins: the preset (the scenario's, else the defaults') <
[defaults] < the scenario < the method < the scenario's override for the method <
{seed, out}. Text values may use ``{seed}``, ``{out}``, ``{scenario}`` and ``{method}``
(e.g. the policies of another scenario's run of the same seed); ``needs`` lists the
scenarios (or ``scenario/method``) whose runs of the same seed must be finished first.

Other top-level keys of the file:

- ``run_dir``: the run directory under ``out``, default ``"runs/{scenario}/{method}_seed{seed}"``;
- ``keep_state``: keep each finished run's checkpoint and agents' storage (default true,
  so ``rounds`` can be raised later and the run continues); false removes them;
- ``max_attempts``: how often a failing run is tried in all with ``--retry-failed`` (default 2);
- ``[[comparisons]]``, ``[[claims]]``, ``[figures]`` and any other top-level table: kept,
  unvalidated but for their shape, for the report layer (``Campaign.comparisons`` ...,
  ``Campaign.tables``).

**The report tables** (``python -m experiments report CAMPAIGN.toml | --all``,
experiments/report.py, which validates them with errors naming the file, table and key)::

    [report]                      # optional
    metrics = ["collective_return", "cv", "jain", "min_return"]   # columns of results.md / .csv (default these)
    window = "last-quarter"       # analysis.window spec of the final values (default last-quarter)

    [[comparisons]]               # each a paired table <out>/<name>.md (A − B matched by seed)
    name = "paired"               # the file name: lower case, other characters than a-z 0-9 . _ + - as "-"
    metric = "collective_return"
    window = "last-quarter"       # optional, default [report]'s
    scenarios = ["harvest-3"]     # optional, default all (a pair is shown where the scenario runs both)
    pairs = [["fpf", "independent"], ["dnf", "independent"]]

    [[claims]]                    # one row each of docs/results/CLAIMS.md
    id = "fpf-ssd-harvest3-beats-idqn"   # unique over all campaigns
    claim = "FPF attains a higher collective return than IDQN"      # one line
    paper = "FPF"                 # tag of docs/PAPERS.md: FPF, Pareto, MD, JAM-QL
    ref = "Fig. 4"                # figure / equation / proposition
    setting = "paper"             # "paper" (as the paper writes it) or "authors" (as the authors' code runs it)
    scenario = "harvest-3"
    metric = "collective_return"
    window = "last-quarter"       # optional, default [report]'s
    a = "fpf"
    b = "independent"             # paired A − B; or omit b and give `value` to compare A's mean with a number
    b_metric = "..."              # optional: B's metric (b = a: two metrics of the same runs)
    b_scenario = "..."            # optional: B's scenario (default `scenario`)
    b_scale = 0.9                 # optional: the effect A − 0.9·B (a ratio rule; default 1)
    c = "fpf"                     # optional, with d: the effect (A − B) − (C − D), a difference of differences
    d = "independent"             # (c_metric, d_metric: their metrics, default `metric`)
    rule = "greater"              # greater | less | equal | at-least | at-most
    value = 17.0                  # v: the number (required without b; with b, default 0)
    margin = 0.0                  # m, a tolerance of equal, at-least and at-most (refused for greater, less)
    figure = "collective_return.png"   # optional, relative to the campaign's out
    note = "..."                  # optional

    [figures]                     # optional: paper-specific figure code (other keys: for the module)
    module = "experiments.figures.fpf"   # figures(campaign, runs, out: Path) -> list[Path]; runs:
                                         # {(scenario, method, seed): analysis.runs.Run}, finished runs only

The verdict of a claim (experiments.report.decide): the effect is the mean paired difference
A − B over the seeds both have finished (or A's mean), with its 95% Student-t CI [lo, hi];
greater: reproduced if lo > v, contradicted if hi < v; less mirrors; equal: reproduced if
[lo, hi] lies within [v − m, v + m], contradicted if wholly outside; at-least: reproduced if
lo >= v − m, contradicted if hi < v − m; at-most mirrors; else, and with fewer than 2 seeds,
inconclusive. The report writes into ``out``: results.md / results.csv, ``<name>.md`` per
comparison, curves-<scenario>.png, claims.md and the [figures] module's files (when another
campaign file beside this one has the same ``out``: results-<name>.md, results-<name>.csv,
claims-<name>.md, and curves-<name>-<scenario>.png for a scenario name both have). Runs not
finished are left out and counted ("2 of 3 seeds finished").

The plan lists seed outermost (an interrupted campaign still has whole seeds), then the
scenarios in file order (a scenario after those it needs), then the methods in the order
of ``[methods]``.
"""

from __future__ import annotations

import difflib
import re
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clients.settings import ConfigError
from federation import presets
from federation.config import ALIASES, RunConfig, check_applies

__all__ = ["Campaign", "CampaignError", "Method", "PlannedRun", "Scenario", "load", "DIRECTORY"]

#: where the campaign files live (``status --all``)
DIRECTORY = Path(__file__).resolve().parent / "campaigns"

RUNNERS = ("in-process", "simulation")
RUN_DIR = "runs/{scenario}/{method}_seed{seed}"
TOP_KEYS = ("name", "description", "out", "seeds", "runner", "run_dir", "keep_state", "max_attempts",
            "defaults", "scenarios", "methods")
#: top-level tables of the report layer: kept as they are (lists of tables, or a table)
REPORT_LISTS = ("comparisons", "claims")
REPORT_TABLES = ("figures",)
SCENARIO_KEYS = ("label", "note", "methods", "preset", "seeds", "method_seeds", "needs", "overrides")
METHOD_KEYS = ("label", "note")
DEFAULTS_KEYS = ("preset",)
#: flags the engine sets itself
RESERVED = {"seed": "every run's seed comes from `seeds`", "out": "every run's directory comes from `out` and `run_dir`",
            "resume": "the engine resumes a run that has a checkpoint"}
TEMPLATE_FIELDS = ("seed", "out", "scenario", "method")


class CampaignError(ValueError):
    """A campaign file is invalid; the message names the file, the table and the key."""


@dataclass(frozen=True)
class Scenario:
    """A game and its settings; ``methods``: the methods run on it (all by default)."""

    name: str
    flags: dict[str, Any]
    label: str
    methods: tuple[str, ...]
    preset: str | None = None
    seeds: tuple[int, ...] | None = None   # None: the campaign's
    needs: tuple[tuple[str, str | None], ...] = ()  # (scenario, method or None for all its methods)
    note: str = ""
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> flags
    method_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)  # method -> its own seeds here


@dataclass(frozen=True)
class Method:
    """What is compared: the flags that make the method (strategy, its settings)."""

    name: str
    flags: dict[str, Any]
    label: str
    note: str = ""


@dataclass(frozen=True)
class PlannedRun:
    """One run of the plan. ``deferred``: the configuration could not be validated yet
    (it refers to what a needed run writes, e.g. its policies.pt); the engine validates it
    once the runs it needs are finished."""

    scenario: str
    method: str
    seed: int
    cfg: RunConfig
    needs: tuple[tuple[str, str, int], ...] = ()  # (scenario, method, seed) of the runs it needs
    deferred: str = ""

    @property
    def key(self) -> tuple[str, str, int]:
        return self.scenario, self.method, self.seed

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def name(self) -> str:
        return f"{self.scenario} {self.method} seed {self.seed}"


@dataclass
class Campaign:
    """A loaded, validated campaign file."""

    path: Path
    name: str
    description: str
    out: str
    seeds: tuple[int, ...]
    runner: str
    scenarios: dict[str, Scenario]
    methods: dict[str, Method]
    defaults: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None  # the defaults' preset
    run_dir: str = RUN_DIR
    keep_state: bool = True
    max_attempts: int = 2
    comparisons: list[dict] = field(default_factory=list)
    claims: list[dict] = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)  # other top-level tables, for the report layer

    # ------------------------------------------------------------------ plan
    def label(self, name: str) -> str:
        """The display name of a scenario or a method."""
        item = self.scenarios.get(name) or self.methods.get(name)
        if item is None:
            raise KeyError(name)
        return item.label

    def seeds_of(self, scenario: str, method: str | None = None) -> tuple[int, ...]:
        """The seeds of a scenario (its own, else the campaign's), or of one method in it
        (``method_seeds``, else the scenario's)."""
        sc = self.scenarios[scenario]
        if method is not None and method in sc.method_seeds:
            return sc.method_seeds[method]
        return sc.seeds or self.seeds

    def all_seeds(self) -> list[int]:
        """Every seed some run of the campaign has, in the order they first appear."""
        return list(dict.fromkeys([*self.seeds, *(s for sc in self.scenarios.values() for s in sc.seeds or ()),
                                   *(s for sc in self.scenarios.values() for seeds in sc.method_seeds.values()
                                     for s in seeds)]))

    def directory(self, scenario: str, method: str, seed: int) -> Path:
        """The run directory of (scenario, method, seed)."""
        return Path(self.out) / self.run_dir.format(scenario=scenario, method=method, seed=seed)

    def settings(self, scenario: str, method: str, seed: int) -> tuple[dict[str, Any], dict[str, str]]:
        """The merged flat settings of one run (snake_case keys, templates filled in) and,
        for each key, the table that set it."""
        sc, me = self.scenarios[scenario], self.methods[method]
        layers: list[tuple[str, dict[str, Any]]] = []
        preset = sc.preset or self.preset
        if preset:
            layers.append((f"preset {preset!r}", presets.load(preset)))
        layers += [("[defaults]", self.defaults), (f"[scenarios.{scenario}]", sc.flags),
                   (f"[methods.{method}]", me.flags),
                   (f"[scenarios.{scenario}.overrides.{method}]", sc.overrides.get(method, {}))]
        out = str(self.directory(scenario, method, seed))
        merged: dict[str, Any] = {}
        source: dict[str, str] = {}
        fill = {"seed": seed, "out": self.out, "scenario": scenario, "method": method}
        for where, flags in layers:
            for key, value in flags.items():
                key = _snake(key)
                merged[key] = value.format(**fill) if isinstance(value, str) and "{" in value else value
                source[key] = where
        merged.update(seed=seed, out=out)
        return merged, source

    def plan(self, scenarios: list[str] | None = None, methods: list[str] | None = None,
             seeds: list[int] | None = None) -> list[PlannedRun]:
        """The runs, seed outermost; ``scenarios``, ``methods``, ``seeds`` select a part."""
        self._check_selection(scenarios, methods, seeds)
        order = self._scenario_order()
        runs = []
        for seed in self.all_seeds():
            if seeds is not None and seed not in seeds:
                continue
            for scenario in order:
                if scenarios is not None and scenario not in scenarios:
                    continue
                for method in self.methods:
                    if method not in self.scenarios[scenario].methods or methods is not None and method not in methods:
                        continue
                    if seed not in self.seeds_of(scenario, method):
                        continue
                    runs.append(self.planned(scenario, method, seed))
        return runs

    def planned(self, scenario: str, method: str, seed: int) -> PlannedRun:
        """One run of the plan, its configuration validated (or deferred, see PlannedRun)."""
        values, source = self.settings(scenario, method, seed)
        needs = self._needs(scenario, seed)
        where = f"{self.path}: scenario {scenario!r}, method {method!r}, seed {seed}"
        try:
            return PlannedRun(scenario, method, seed, RunConfig.from_mapping(values), needs)
        except ConfigError as err:
            if not needs:
                raise CampaignError(f"{where}: {err}{_provenance(str(err), source)}") from None
            try:  # it may refer to what a needed run writes: validated once that has run
                cfg = RunConfig()._with(values)
            except ConfigError as err2:
                raise CampaignError(f"{where}: {err2}{_provenance(str(err2), source)}") from None
            return PlannedRun(scenario, method, seed, cfg, needs, deferred=f"{err}{_provenance(str(err), source)}")

    def _needs(self, scenario: str, seed: int) -> tuple[tuple[str, str, int], ...]:
        out = []
        for other, method in self.scenarios[scenario].needs:
            mine = [(other, m, seed) for m in self.scenarios[other].methods
                    if (method is None or m == method) and seed in self.seeds_of(other, m)]
            if not mine:
                raise CampaignError(f"{self.path}: [scenarios.{scenario}] needs {other!r}, which has no seed {seed}")
            out += mine
        return tuple(out)

    def _scenario_order(self) -> list[str]:
        """File order, each scenario after those it needs."""
        order: list[str] = []

        def visit(name: str) -> None:
            if name not in order:
                for other, _ in self.scenarios[name].needs:
                    visit(other)
                order.append(name)

        for name in self.scenarios:
            visit(name)
        return order

    def _check_selection(self, scenarios, methods, seeds) -> None:
        for kind, chosen, known in (("scenario", scenarios, list(self.scenarios)), ("method", methods, list(self.methods)),
                                    ("seed", seeds, sorted(self.all_seeds()))):
            for item in chosen or ():
                if item not in known:
                    raise CampaignError(f"{self.path}: no {kind} {item!r} in this campaign; its {kind}s: "
                                        f"{', '.join(map(str, known))}")

    def check(self) -> list[PlannedRun]:
        """Build the whole plan (every configuration validated) and refuse a flag that no run
        of its table reads (it would be silently ignored); returns the plan."""
        runs = self.plan()
        scopes: list[tuple[str, dict, list[PlannedRun]]] = [("[defaults]", self.defaults, runs)]
        scopes += [(f"[scenarios.{n}]", sc.flags, [r for r in runs if r.scenario == n])
                   for n, sc in self.scenarios.items()]
        scopes += [(f"[methods.{n}]", me.flags, [r for r in runs if r.method == n]) for n, me in self.methods.items()]
        scopes += [(f"[scenarios.{n}.overrides.{m}]", flags, [r for r in runs if r.scenario == n and r.method == m])
                   for n, sc in self.scenarios.items() for m, flags in sc.overrides.items()]
        for where, flags, mine in scopes:
            if flags and mine:
                try:
                    check_applies(list(flags), [r.cfg for r in mine])
                except ConfigError as err:
                    raise CampaignError(f"{self.path}: {where}: {err}") from None
        return runs


# ---------------------------------------------------------------------- loading
def load(path: str | Path, check: bool = True) -> Campaign:
    """Read and validate a campaign file; ``check``: also build and check every run's
    configuration (:meth:`Campaign.check`)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise CampaignError(f"{path}: no such campaign file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise CampaignError(f"{path}: not valid TOML: {err}") from None
    campaign = _parse(path, data)
    if check:
        campaign.check()
    return campaign


def _parse(path: Path, data: dict) -> Campaign:
    def fail(where: str, message: str) -> CampaignError:
        return CampaignError(f"{path}: {where}: {message}")

    tables: dict[str, Any] = {}
    for key, value in data.items():
        if key in TOP_KEYS or key in REPORT_LISTS or key in REPORT_TABLES:
            continue
        close = difflib.get_close_matches(key, TOP_KEYS + REPORT_LISTS + REPORT_TABLES, n=1, cutoff=0.85)
        if close or not _is_table(value):
            raise fail(f"top level: unknown key '{key}'", (f"did you mean '{close[0]}'? " if close else "")
                       + f"valid keys: {', '.join(TOP_KEYS)}; tables for the report layer: "
                       + ", ".join(REPORT_LISTS + REPORT_TABLES) + " (or any other table)")
        tables[key] = value

    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise fail("top level: 'name'", f"must be non-empty text, got {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail("top level: 'description'", f"must be text, got {description!r}")
    if "out" not in data:
        raise fail("top level", "'out' is missing: the directory the runs are written under (e.g. "
                                "out = \"docs/results/ssd\")")
    out = data["out"]
    if not isinstance(out, str) or not out.strip():
        raise fail("top level: 'out'", f"must be a directory, as text, got {out!r}")
    if "seeds" not in data:
        raise fail("top level", "'seeds' is missing (e.g. seeds = [0, 1, 2])")
    seeds = _seeds(data["seeds"], lambda m: fail("top level: 'seeds'", m))
    runner = data.get("runner", "in-process")
    if runner not in RUNNERS:
        raise fail("top level: 'runner'", f"must be one of {', '.join(RUNNERS)}, got {runner!r}")
    run_dir = data.get("run_dir", RUN_DIR)
    _check_run_dir(run_dir, lambda m: fail("top level: 'run_dir'", m))
    keep_state = data.get("keep_state", True)
    if not isinstance(keep_state, bool):
        raise fail("top level: 'keep_state'", f"must be true or false, got {keep_state!r}")
    max_attempts = data.get("max_attempts", 2)
    if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
        raise fail("top level: 'max_attempts'", f"must be a whole number >= 1, got {max_attempts!r}")

    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise fail("[defaults]", f"must be a table, got {defaults!r}")
    defaults_preset = _preset(defaults.get("preset"), lambda m: fail("[defaults]: 'preset'", m))
    defaults_flags = _flags(defaults, DEFAULTS_KEYS, lambda k, m: fail(f"[defaults]: '{k}'", m))

    methods_data = data.get("methods")
    if not isinstance(methods_data, dict) or not methods_data or not all(map(_is_dict, methods_data.values())):
        raise fail("[methods]", "needs at least one method table, e.g. [methods.fpf] with strategy = \"fpf\"")
    methods = {}
    for name_, table in methods_data.items():
        where = f"[methods.{name_}]"
        _check_name(name_, lambda m: fail(where, m))
        label = _text(table.get("label", name_), lambda m: fail(f"{where}: 'label'", m))
        note = _text(table.get("note", ""), lambda m: fail(f"{where}: 'note'", m))
        methods[name_] = Method(name_, _flags(table, METHOD_KEYS, lambda k, m: fail(f"{where}: '{k}'", m)), label, note)

    scenarios_data = data.get("scenarios")
    if not isinstance(scenarios_data, dict) or not scenarios_data or not all(map(_is_dict, scenarios_data.values())):
        raise fail("[scenarios]", "needs at least one scenario table, e.g. [scenarios.harvest-3] with env = \"harvest\"")
    scenarios = {}
    for name_, table in scenarios_data.items():
        where = f"[scenarios.{name_}]"
        _check_name(name_, lambda m: fail(where, m))
        chosen = table.get("methods", list(methods))
        if not isinstance(chosen, list) or not chosen or not all(isinstance(m, str) for m in chosen):
            raise fail(f"{where}: 'methods'", f"must be a non-empty list of method names, got {chosen!r}")
        for m in chosen:
            if m not in methods:
                raise fail(f"{where}: 'methods'", f"unknown method '{m}'; the campaign's methods: {', '.join(methods)}")
        if len(set(chosen)) != len(chosen):
            raise fail(f"{where}: 'methods'", f"lists a method twice: {chosen}")
        own_seeds = None
        if "seeds" in table:
            own_seeds = _seeds(table["seeds"], lambda m: fail(f"{where}: 'seeds'", m))
        method_seeds = {}
        by_method = table.get("method_seeds", {})
        if not isinstance(by_method, dict):
            raise fail(f"{where}: 'method_seeds'", f"must be a table of method = [seeds], e.g. method_seeds = "
                                                   f"{{ fpf = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] }}, got {by_method!r}")
        for m, value in by_method.items():
            if m not in chosen:
                raise fail(f"{where}: 'method_seeds'", f"'{m}' is not a method of this scenario; its methods: "
                                                       f"{', '.join(chosen)}")
            method_seeds[m] = _seeds(value, lambda msg, m=m: fail(f"{where}: 'method_seeds': '{m}'", msg))
        overrides_data = table.get("overrides", {})
        if not isinstance(overrides_data, dict) or not all(map(_is_dict, overrides_data.values())):
            raise fail(f"{where}: 'overrides'", "must hold one table per method, e.g. "
                                               f"[scenarios.{name_}.overrides.fpf]")
        overrides = {}
        for m, flags in overrides_data.items():
            if m not in chosen:
                raise fail(f"[scenarios.{name_}.overrides]", f"'{m}' is not a method of this scenario; its methods: "
                                                             f"{', '.join(chosen)}")
            overrides[m] = _flags(flags, (), lambda k, msg, m=m: fail(f"[scenarios.{name_}.overrides.{m}]: '{k}'", msg))
        needs_data = table.get("needs", [])
        if not isinstance(needs_data, list) or not all(isinstance(n, str) for n in needs_data):
            raise fail(f"{where}: 'needs'", f"must be a list of scenario names (or 'scenario/method'), got {needs_data!r}")
        needs = tuple((n.split("/", 1)[0], n.split("/", 1)[1] if "/" in n else None) for n in needs_data)
        scenarios[name_] = Scenario(
            name_, _flags(table, SCENARIO_KEYS, lambda k, m: fail(f"{where}: '{k}'", m)),
            _text(table.get("label", name_), lambda m: fail(f"{where}: 'label'", m)), tuple(chosen),
            _preset(table.get("preset"), lambda m: fail(f"{where}: 'preset'", m)), own_seeds, needs,
            _text(table.get("note", ""), lambda m: fail(f"{where}: 'note'", m)), overrides, method_seeds)
    _check_needs(scenarios, lambda where, m: fail(where, m))

    report: dict[str, Any] = {}
    for key in REPORT_LISTS:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(map(_is_dict, value)):
            raise fail(f"[[{key}]]", f"must be an array of tables ([[{key}]] ...), got {value!r}")
        report[key] = value
    for key in REPORT_TABLES:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise fail(f"[{key}]", f"must be a table, got {value!r}")
        report[key] = value

    return Campaign(path=path, name=name, description=description, out=out, seeds=seeds, runner=runner,
                    scenarios=scenarios, methods=methods, defaults=defaults_flags, preset=defaults_preset,
                    run_dir=run_dir, keep_state=keep_state, max_attempts=max_attempts, tables=tables, **report)


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) or isinstance(value, list) and bool(value) and all(map(_is_dict, value))


def _snake(key: str) -> str:
    return key.replace("-", "_")


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def _check_name(name: str, fail) -> None:
    """Scenario and method names name directories: letters, digits and . _ + - only."""
    if not _NAME.fullmatch(name):
        raise fail(f"the name {name!r} names the run directories: use letters, digits and . _ + - "
                   "(give the display name as label = ...)")


def _text(value: Any, fail) -> str:
    if not isinstance(value, str):
        raise fail(f"must be text, got {value!r}")
    return value


def _seeds(value: Any, fail) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise fail(f"must be a non-empty list of whole numbers, e.g. [0, 1, 2], got {value!r}")
    for seed in value:
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 2**31 - 1:
            raise fail(f"every seed must be a whole number in [0, 2^31 - 1], got {seed!r}")
    if len(set(value)) != len(value):
        raise fail(f"lists a seed twice: {value}")
    return tuple(value)


def _preset(value: Any, fail) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise fail(f"must be a preset's name, as text, got {value!r}")
    try:
        presets.load(value)
    except ConfigError as err:
        raise fail(str(err).removeprefix("--preset: ")) from None
    return value


def _flags(table: dict, meta: tuple[str, ...], fail) -> dict[str, Any]:
    """The flag entries of ``table`` (its other keys are ``meta``), checked: known keys,
    each given once, single values, no key the engine sets, templates with known fields."""
    keys = RunConfig.keys()
    flags: dict[str, Any] = {}
    for key, value in table.items():
        if key in meta:
            continue
        name = _snake(key)
        name = ALIASES.get(name, name)
        if name in RESERVED:
            raise fail(key, f"is set by the engine: {RESERVED[name]}")
        if name not in keys:
            close = difflib.get_close_matches(name, list(keys) + [_snake(m) for m in meta], n=3)
            hint = f"did you mean {' or '.join(repr(c.replace('_', '-')) for c in close)}? " if close else ""
            raise fail(key, f"unknown key; {hint}a table takes the run flags (python run_sim.py --help)"
                            + (f" and {', '.join(meta)}" if meta else ""))
        if name in flags:
            raise fail(key, "is given twice (kebab- and snake-case, or an old spelling)")
        if isinstance(value, (dict, list)):
            raise fail(key, f"must be a single value, got {value!r}")
        if hasattr(value, "isoformat"):
            raise fail(key, f"must be text, a number or true/false, got the date/time {value!r}")
        if isinstance(value, str) and "{" in value:
            try:
                fields_ = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
            except ValueError as err:
                raise fail(key, f"{value!r} is not a valid template ({err}); write {{{{ and }}}} for braces") from None
            unknown = sorted(f for f in fields_ if f not in TEMPLATE_FIELDS)
            if unknown:
                raise fail(key, f"{value!r} uses {', '.join('{' + f + '}' for f in unknown)}; a value may use "
                                + ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS))
        flags[name] = value
    return flags


def _check_run_dir(value: Any, fail) -> None:
    if not isinstance(value, str):
        raise fail(f"must be text, got {value!r}")
    try:
        fields_ = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
    except ValueError as err:
        raise fail(f"{value!r} is not a valid template: {err}") from None
    if fields_ - {"scenario", "method", "seed"}:
        raise fail(f"{value!r} may use only {{scenario}}, {{method}} and {{seed}}")
    if not {"scenario", "method", "seed"} <= fields_:
        raise fail(f"{value!r} must use {{scenario}}, {{method}} and {{seed}}, so that every run has its own directory")
    if Path(value).is_absolute() or ".." in Path(value).parts:
        raise fail(f"{value!r} must be a relative path inside 'out', without '..'")


def _check_needs(scenarios: dict[str, Scenario], fail) -> None:
    for name, sc in scenarios.items():
        for other, method in sc.needs:
            where = f"[scenarios.{name}]: 'needs'"
            if other not in scenarios:
                raise fail(where, f"unknown scenario '{other}'; the campaign's scenarios: {', '.join(scenarios)}")
            if other == name:
                raise fail(where, "a scenario cannot need itself")
            if method is not None and method not in scenarios[other].methods:
                raise fail(where, f"'{other}/{method}': {method!r} is not a method of {other!r} "
                                  f"({', '.join(scenarios[other].methods)})")

    state: dict[str, int] = {}  # 1: being visited, 2: done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name):] + [name]
            raise fail(f"[scenarios.{name}]: 'needs'", f"the scenarios need each other in a cycle: {' -> '.join(cycle)}")
        state[name] = 1
        for other, _ in scenarios[name].needs:
            visit(other, path + [name])
        state[name] = 2

    for name in scenarios:
        visit(name, [])


def _provenance(message: str, source: dict[str, str]) -> str:
    """Which table set the flags a ConfigError message names."""
    named = [k for k in source if k not in ("seed", "out")
             and re.search(r"(?<![\w-])" + re.escape(k.replace("_", "-")) + r"(?![\w-])", message)]
    if not named:
        return ""
    return " (" + "; ".join(f"{k.replace('_', '-')} is set in {source[k]}" for k in named) + ")"
