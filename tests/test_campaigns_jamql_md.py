"""The JAM-QL and mechanism-design reproductions as campaigns (experiments/campaigns/jamql.toml,
md.toml): their plans are exactly the committed runs (docs/results/jamql/runs,
docs/results/md/runs), every committed run is planned and finished, their claims and
comparisons name what the runs measure, and their figure modules (experiments/figures/)
draw the committed figures' files from the runs."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import pytest

from analysis.runs import read_run
from analysis.stats import mean_sd_ci, paired_differences
from analysis.window import final_value
from experiments import status
from experiments.campaign import load
from experiments.figures import jamql as jamql_figures
from experiments.figures import md as md_figures
from federation.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGNS = ROOT / "experiments" / "campaigns"
#: campaign file -> (its runs, its committed figures); the runs planned since the reproductions
#: (JAM-QL's grid with the game state, MD's headline with 10 seeds and as Algorithm 1 writes
#: it) are not committed yet
EXPECTED = {"jamql.toml": (165, ["min_welfare.png"]),
            "md.toml": (95, ["fig3_escape_room.png", "fig4_bidding_bandwidth.png", "fig8_mrp_ablation.png",
                             "fig9_fairness.png"])}
RULES = {"greater", "less", "equal", "at-least", "at-most"}
PAPERS = {"FPF", "Pareto", "MD", "JAM-QL"}


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def campaign(request):
    return load(CAMPAIGNS / request.param)


def _committed(campaign) -> set[Path]:
    return {p.parent for p in (ROOT / campaign.out / "runs").glob("*/*/config.json")}


def test_the_plan_equals_the_committed_configs_and_covers_every_committed_run(campaign):
    """Every planned run whose directory is committed was run with the planned settings
    (all but out and the execution settings), and every committed run directory is planned."""
    plan = campaign.plan()
    assert len(plan) == EXPECTED[campaign.path.name][0]
    assert len({r.cfg.out for r in plan}) == len(plan)
    checked = 0
    for run in plan:
        path = ROOT / run.cfg.out / "config.json"
        if not path.exists():
            continue
        committed = RunConfig.from_json(path.read_text())
        assert status.comparable(committed) == status.comparable(run.cfg), \
            f"{run.name}: {status.differences(run.cfg, committed)}"
        ours, theirs = asdict(run.cfg), asdict(committed)  # rounds too, and nothing comparable() leaves out
        for d in (ours, theirs):
            d.pop("out"), d.pop("execution")
        assert ours == theirs, run.name
        checked += 1
    unplanned = _committed(campaign) - {ROOT / r.cfg.out for r in plan}
    assert not unplanned, f"committed runs that {campaign.path.name} does not plan: {sorted(map(str, unplanned))}"
    assert checked == len(_committed(campaign))


def test_every_committed_run_is_done(campaign):
    states = {r.name: status.check(r.cfg, ROOT / r.cfg.out).state for r in campaign.plan()
              if (ROOT / r.cfg.out / "config.json").exists()}
    assert {name: s for name, s in states.items() if s is not status.State.DONE} == {}


def test_the_jamql_plan_is_the_former_scripts():
    """Seed outermost; the matrix games with 5 seeds, the grid with 3; every method on every game."""
    c = load(CAMPAIGNS / "jamql.toml")
    plan = [r for r in c.plan() if r.scenario != "grid-2-state"]
    methods = ["jamql", "jamql-naive", "fixed-leader", "alternating-leader", "vote-leader"]
    assert [(r.scenario, r.method) for r in plan[:25]] == [
        (s, m) for s in ("pd-2", "chicken-2", "pd-4", "chicken-4", "grid-2") for m in methods]
    assert [r.seed for r in plan] == [0] * 25 + [1] * 25 + [2] * 25 + [3] * 20 + [4] * 20
    state = [r for r in c.plan() if r.scenario == "grid-2-state"]  # the paper's mediator, 10 seeds
    assert len(state) == 50 and {r.cfg.leaders.mediator_state for r in state} == {"game"}
    assert {r.cfg.leaders.mediator_state for r in plan if r.scenario == "grid-2"} == {"none"}
    grid = c.planned("grid-2", "jamql", 0).cfg.to_flat()
    assert [grid[k] for k in ("rounds", "learner", "batch", "dqn-updates")] == [1200, "dqn", 32, 80]
    pd4 = c.planned("pd-4", "vote-leader", 3).cfg.to_flat()
    assert [pd4[k] for k in ("agents", "rounds", "learner", "q-epsilon-schedule")] == [4, 200, "q-table", "1/t"]


def test_the_md_plan_is_the_former_scripts():
    """Figures 3, 4, 8, 9: md, iql, cen everywhere; md-nomrp and λ = 0.5, 1, 2 on Escape Room (5, 3),
    λ = 1 and 50 on bidding and bandwidth (7, 3) too."""
    c = load(CAMPAIGNS / "md.toml")
    plan = c.plan()
    er53 = {r.method for r in plan if r.scenario == "er-5-3"}
    assert er53 == {"md", "md-nomrp", "iql", "cen", "md-lambda-0.5", "md-lambda-1", "md-lambda-2", "md-paper"}
    assert c.seeds_of("er-5-3", "md") == c.seeds_of("er-5-3", "md-paper") == tuple(range(10))
    paper = c.planned("er-5-3", "md-paper", 0).cfg.md
    assert (paper.reshape_time, paper.denominator, paper.exact_max) == ("minibatch", "own", "auto")
    assert {r.method for r in plan if r.scenario not in ("er-5-3", "bidding", "bw-7-3")} == {"md", "iql", "cen"}
    # the ablation of R̄'s scale where MD is contradicted without a diagnosis (bidding, bandwidth (7, 3))
    assert {r.method for r in plan if r.scenario in ("bidding", "bw-7-3")} == {"md", "iql", "cen", "md-lambda-1", "md-lambda-50"}
    lam = {r.method: r.cfg.to_flat()["md-lambda"] for r in plan if r.scenario == "er-5-3" and r.cfg.strategy == "md"
           and r.method != "md-paper"}
    assert lam == {"md": 0.0, "md-lambda-0.5": 0.5, "md-lambda-1": 1.0, "md-lambda-2": 2.0}
    cen = c.planned("bw-8-4", "cen", 2).cfg.to_flat()
    assert [cen[k] for k in ("rounds", "dqn-eps-decay", "dqn-updates", "md-updates")] == [300, 8000, 64, 64]


# ---------------------------------------------------------------------- claims and comparisons
def _final(campaign, scenario: str, method: str, metric: str, window=None) -> dict[int, float]:
    """seed -> the committed run's final value of ``metric`` (analysis.window)."""
    out = {}
    for seed in campaign.seeds_of(scenario, method):
        path = ROOT / campaign.directory(scenario, method, seed)
        if (path / "metrics.csv").exists():
            out[seed] = final_value(read_run(path).rows, metric, window).value
    return out


def test_claims_are_well_formed_and_decidable_from_the_committed_runs(campaign):
    claims = campaign.claims
    assert claims and len({c["id"] for c in claims}) == len(claims)
    for c in claims:
        where = f"{campaign.path.name}: claim {c.get('id')}"
        assert {"id", "claim", "paper", "ref", "setting", "scenario", "metric", "a", "rule"} <= set(c), where
        assert c["paper"] in PAPERS and c["setting"] == "paper" and c["rule"] in RULES, where
        assert "\n" not in c["claim"], where
        assert ("b" in c) != ("value" in c), f"{where}: give b (paired A - B) or value, not both"
        assert c["scenario"] in campaign.scenarios, where
        for method in (c["a"], c.get("b", c["a"])):
            assert method in campaign.scenarios[c["scenario"]].methods, f"{where}: {method}"
        methods = [c["a"]] + ([c["b"]] if "b" in c else [])
        seeds = {m: campaign.seeds_of(c["scenario"], m) for m in methods}
        if any(not (ROOT / campaign.directory(c["scenario"], m, s) / "metrics.csv").exists()
               for m in methods for s in seeds[m]):
            continue  # planned since the reproductions, not all run yet
        a = _final(campaign, c["scenario"], c["a"], c["metric"], c.get("window"))
        if "b" in c:
            d = paired_differences(a, _final(campaign, c["scenario"], c["b"], c["metric"], c.get("window")))
            assert d.n == len(set(seeds[c["a"]]) & set(seeds[c["b"]])) and math.isfinite(d.mean), where
        else:
            assert mean_sd_ci(list(a.values())).n == len(seeds[c["a"]]), where
        if "figure" in c:
            assert c["figure"] in EXPECTED[campaign.path.name][1], where


def test_comparisons_name_methods_of_their_scenarios(campaign):
    for comp in campaign.comparisons:
        assert {"name", "metric", "pairs"} <= set(comp), comp
        for scenario in comp.get("scenarios", list(campaign.scenarios)):
            for a, b in comp["pairs"]:
                assert {a, b} <= set(campaign.scenarios[scenario].methods), (comp["name"], scenario, a, b)
                d = paired_differences(_final(campaign, scenario, a, comp["metric"]),
                                       _final(campaign, scenario, b, comp["metric"]))
                assert d.n == 0 or math.isfinite(d.mean), (comp["name"], scenario, a, b)  # n = 0: not run yet
    report = campaign.tables["report"]
    assert report["window"] == "last-quarter" and report["metrics"]
    assert campaign.figures["module"] == f"experiments.figures.{campaign.path.stem}"


def test_claim_numbers_match_the_readmes():
    """The figures the READMEs quote, recomputed through analysis/ from the claims' metrics."""
    jam, md = load(CAMPAIGNS / "jamql.toml"), load(CAMPAIGNS / "md.toml")
    grid = paired_differences(_final(jam, "grid-2", "jamql", "min_welfare"),
                              _final(jam, "grid-2", "alternating-leader", "min_welfare"))
    assert grid.mean == pytest.approx(-0.25, abs=0.01) and grid.p == pytest.approx(0.78, abs=0.01)
    fair = mean_sd_ci(list(_final(jam, "chicken-2", "jamql", "fair_action_rate").values()))
    assert (fair.mean, fair.sd) == (pytest.approx(0.625, abs=1e-3), pytest.approx(0.029, abs=1e-3))
    welfare = mean_sd_ci(list(_final(md, "er-5-3", "md", "collective_return").values()))
    assert welfare.mean == pytest.approx(-6.50, abs=0.01)  # 10 seeds
    nomrp = mean_sd_ci(list(_final(md, "er-5-3", "md-nomrp", "collective_return").values()))
    assert nomrp.mean == pytest.approx(-3.72, abs=0.01)
    bw = paired_differences(_final(md, "bw-7-3", "iql", "collective_return"),
                            _final(md, "bw-7-3", "md", "collective_return"))
    assert bw.mean == pytest.approx(29.6, abs=0.1) and bw.p == pytest.approx(0.03, abs=0.005)


# ---------------------------------------------------------------------- figures
def _runs(campaign, scenarios=None, seeds=None) -> dict:
    return {r.key: read_run(ROOT / r.cfg.out) for r in campaign.plan(scenarios, None, seeds)
            if status.check(r.cfg, ROOT / r.cfg.out).state is status.State.DONE}


def test_jamql_figure_from_the_runs(tmp_path):
    c = load(CAMPAIGNS / "jamql.toml")
    runs = _runs(c, ["pd-2", "chicken-4"], [0, 1])
    assert jamql_figures.figures(c, runs, tmp_path) == [tmp_path / "min_welfare.png"]
    assert (tmp_path / "min_welfare.png").stat().st_size > 10_000
    curves = jamql_figures.curves(c, runs, "pd-2")
    assert list(curves) == ["JAM-QL", "JAM-QL (naive)", "fixed leader", "alternating leader", "vote-based leader"]
    assert [len(v) for v in curves.values()] == [2] * 5
    assert jamql_figures.figures(c, {}, tmp_path / "none") == []


def test_md_figures_from_the_runs(tmp_path):
    c = load(CAMPAIGNS / "md.toml")
    runs = _runs(c, ["er-5-3", "bidding"], [0, 1])
    written = md_figures.figures(c, runs, tmp_path)
    assert [p.name for p in written] == EXPECTED["md.toml"][1]  # fig. 3 and 4 panels not run say so
    assert all(p.stat().st_size > 10_000 for p in written)
    groups = md_figures.by_lambda(runs, "er-5-3")  # md is λ = 0; iql, cen, md-nomrp are not md runs
    assert list(groups) == [0.0, 0.5, 1.0, 2.0] and all(len(v) == 2 for v in groups.values())
    assert md_figures.optimum(runs, "er-5-3") == 17.0 and md_figures.optimum(runs, "bidding") == 30.0
    assert math.isnan(md_figures.optimum(_runs(c, ["bw-7-3"], [0]), "bw-7-3"))


def test_the_lambda_sweep_reads_both_config_shapes_and_leaves_out_algorithm_1_as_printed():
    old = {"strategy": "md", "md": {"md_lambda": 0.5, "md_eta": 0.5}}  # flat keys in the group
    new = {"strategy": "md", "md": {"lambda_": 1.0, "reshape_time": "play", "denominator": "heads"}}
    paper = {"strategy": "md", "md": {"lambda_": 0.0, "reshape_time": "minibatch", "denominator": "own",
                                      "exact_max": "auto"}}
    assert md_figures.md_lambda(old) == 0.5 and md_figures.md_lambda(new) == 1.0
    assert md_figures.md_lambda(paper) is None and md_figures.md_lambda({"strategy": "iql"}) is None
    assert md_figures.md_lambda({"strategy": "md", "md_lambda": 2.0}) == 2.0  # flat config.json
