"""The Pareto reproduction and the project's smaller FPF studies as campaigns: pareto.toml
(docs/results/pareto), pull-sweep.toml (docs/results/pull_sweep), attack-defence.toml
(docs/results/attack_defence), lmf-exchange.toml and lmf-exchange-seed0.toml
(docs/results/ssd/diagnostics). Their plans are exactly the committed runs' settings, every
committed run directory is planned, their report tables are valid, and their figure modules
(experiments/figures/) rebuild the committed figures and tables from the runs."""

from __future__ import annotations

import csv
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import pytest

from analysis.runs import Run, find_runs, read_run
from experiments import status
from experiments.campaign import load
from experiments.figures import attack_defence, lmf_exchange, pareto, pull_sweep
from experiments.report import parse
from federation.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGNS = ROOT / "experiments" / "campaigns"
#: campaign file -> (runs planned, of them committed, [[comparisons]], [[claims]])
EXPECTED = {"pareto.toml": (138, 138, 3, 58), "pull-sweep.toml": (22, 22, 4, 2),
            "attack-defence.toml": (36, 36, 2, 0), "lmf-exchange.toml": (33, 9, 1, 11),
            "lmf-exchange-seed0.toml": (3, 3, 0, 0)}
#: committed results directory -> the campaigns that plan its runs
OUTS = {"docs/results/pareto": ["pareto.toml"], "docs/results/pull_sweep": ["pull-sweep.toml"],
        "docs/results/attack_defence": ["attack-defence.toml"],
        "docs/results/ssd/diagnostics": ["lmf-exchange.toml", "lmf-exchange-seed0.toml"]}
#: lmf-exchange's references: planned with 60 rounds, run (by the reproduction) with 100
REFERENCES = ("lmf", "independent")
#: methods planned since the reproductions, not run yet: LMF with Theorem 2's step schedule,
#: D&F and D&F with a conservative ω
PLANNED = ("lmf-theorem2", "dnf", "dnf-cql")


@lru_cache(maxsize=None)
def campaign_of(name: str):
    """A shipped campaign, loaded once (pareto.toml's 138 configurations take seconds)."""
    return load(CAMPAIGNS / name)


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def campaign(request):
    return campaign_of(request.param)


def without_out_and_execution(cfg: RunConfig) -> dict:
    d = asdict(cfg)
    d.pop("out"), d.pop("execution")
    return d


def test_the_plan_equals_the_committed_configs(campaign):
    """Every planned run whose directory is committed was run with the planned settings (all
    but out and the execution settings; rounds too) and is finished."""
    plan = campaign.plan()
    planned, committed_n, _, _ = EXPECTED[campaign.path.name]
    assert len(plan) == planned and len({r.cfg.out for r in plan}) == planned
    checked = 0
    for run in plan:
        path = ROOT / run.cfg.out / "config.json"
        if not path.exists():
            assert run.method in REFERENCES + PLANNED, f"{run.name}: not committed"
            continue
        committed = RunConfig.from_json(path.read_text())
        assert status.comparable(committed) == status.comparable(run.cfg), \
            f"{run.name}: {status.differences(run.cfg, committed)}"
        assert without_out_and_execution(run.cfg) == without_out_and_execution(committed), run.name
        assert status.check(run.cfg, ROOT / run.cfg.out).state is status.State.DONE, run.name
        checked += 1
    assert checked == committed_n or campaign.path.name == "lmf-exchange.toml" and checked >= committed_n


@pytest.mark.parametrize("out", sorted(OUTS))
def test_every_committed_run_directory_is_planned(out):
    planned = {Path(r.cfg.out) for name in OUTS[out] for r in campaign_of(name).plan()}
    committed = {p.relative_to(ROOT) for p in find_runs(ROOT / out)}
    assert committed and committed <= planned, sorted(map(str, committed - planned))


def test_the_report_tables_are_valid(campaign):
    spec = parse(campaign)
    _, _, comparisons, claims = EXPECTED[campaign.path.name]
    assert (len(spec.comparisons), len(spec.claims)) == (comparisons, claims)
    for claim in spec.claims:
        assert claim.paper in ("Pareto", "FPF") and claim.ref.startswith(("Fig.", "Thm."))
    if campaign.figures:
        assert spec.figures.startswith("experiments.figures.")


def test_the_pareto_plan_is_the_reproductions():
    """Seeds outermost; Figs. 3-5 run original, Pareto and Punishing on 13 tabular games with
    epsilon = 1/t agents; Cleanup's mediated runs read the joint policies pretrained on the
    same seed, and the two any-step variants delegate at any step."""
    c = campaign_of("pareto.toml")
    plan = c.plan()
    assert [r.seed for r in plan] == [0] * 46 + [1] * 46 + [2] * 46
    tabular = [r for r in plan if r.cfg.learner == "q-table"]
    assert len(tabular) == 117 and {r.method for r in tabular} == {"independent", "pareto", "punishing"}
    assert all(r.cfg.get("q_epsilon_schedule") == "1/t" and r.cfg.world.batch == 32 for r in tabular)
    run = c.planned("cleanup", "punishing-any", 2)
    assert run.needs == (("cleanup-pretrain-avg", "avg", 2), ("cleanup-pretrain-spite", "spite", 2))
    assert run.cfg.delegation.mediator_policy == "docs/results/pareto/runs/cleanup-pretrain-avg/avg_seed2/policies.pt"
    assert run.cfg.delegation.delegate == "any" and c.planned("cleanup", "pareto", 2).cfg.delegation.delegate == "first"


def test_the_exchange_runs_differ_from_the_reproductions_lmf_only_in_the_exchange():
    """lmf-exchange's runs are the reproduction's LMF (fpf-ssd-3.toml) with 60 rounds and
    another exchange; its references are the reproduction's runs with 60 rounds."""
    exchange, ssd = campaign_of("lmf-exchange.toml"), load(CAMPAIGNS / "fpf-ssd-3.toml")
    for seed in (0, 1, 2):
        diffusion = exchange.planned("harvest-3", "lmf-diffusion", seed).cfg
        reproduction = ssd.planned("harvest-3", "lmf", seed).cfg
        assert diffusion.lmf.mode == "diffusion" and reproduction.lmf.mode == "parameters"
        assert diffusion.replace(lmf_mode="parameters", rounds=100, out=reproduction.out) == reproduction
        for method in REFERENCES:
            ours = exchange.planned("harvest-3", method, seed).cfg
            assert ours.replace(rounds=100, out=reproduction.out) == ssd.planned("harvest-3", method, seed).cfg.replace(
                out=reproduction.out)
            theirs = RunConfig.from_json((ROOT / f"docs/results/ssd/runs/harvest-5/{method}_seed{seed}/config.json")
                                         .read_text())
            ours = exchange.planned("harvest-5", method, seed).cfg
            assert without_out_and_execution(ours.replace(rounds=100)) == without_out_and_execution(theirs)


# ---------------------------------------------------------------------- figure modules
def _runs(campaign, scenarios=None) -> dict:
    """The committed runs of the campaign (of ``scenarios``), read."""
    return {r.key: read_run(ROOT / r.cfg.out) for r in campaign.plan(scenarios)
            if (ROOT / r.cfg.out / "summary.json").exists()}


def test_the_exchange_table_pairs_seeds_over_the_window(tmp_path):
    """exchange.md: window means (a run counts only with every round of the window), the
    paired difference against Eq. 13, and the reproduction's runs where the campaign's own
    references are not finished."""
    campaign = campaign_of("lmf-exchange.toml")

    def run(returns) -> Run:
        return Run(tmp_path, rows=[{"round": float(r), "collective_return": float(c), "cv": 0.5}
                                   for r, c in enumerate(returns, 1)])

    def write(path: Path, returns) -> None:
        path.mkdir(parents=True)
        (path / "metrics.csv").write_text("\n".join(["round,collective_return,cv"] + [
            f"{r},{c},0.5" for r, c in enumerate(returns, 1)]) + "\n")

    assert lmf_exchange.window_mean(run([0, 10, 20, 99]), "collective_return", "rounds:2-3") == 15.0
    assert lmf_exchange.window_mean(run([0, 10, 20, 99]), "collective_return", "rounds:4-5") is None  # not reached
    runs = {}
    for seed, (eq13, diffusion) in enumerate([([0, 10, 20, 99], [0, 30, 50, 99]), ([0, 4, 6, 99], [0, 9, 11, 99]),
                                              ([0, 1, 2, 3], [0, 1])]):
        write(tmp_path / "ref" / "harvest-3" / f"lmf_seed{seed}", eq13)
        runs["harvest-3", "independent", seed] = run([0, 0, 0, 0])
        runs["harvest-3", "lmf-diffusion", seed] = run(diffusion)
    text = lmf_exchange.exchange_table(campaign, runs, "harvest-3", "rounds:2-3",
                                       str(tmp_path / "ref" / "{scenario}" / "{method}_seed{seed}"))
    assert "| LMF, Eq. 13 (the reproduction's run) | 15.0 · 5.0 · 1.5 |" in text
    assert "| LMF, diffusion | 40.0 · 10.0 · – |" in text  # seed 2 stopped at round 2
    # differences 25 and 5: mean 15, sample sd 14.1
    assert "| LMF, diffusion − LMF, Eq. 13 (the reproduction's run) | 2 | 15 ± 14 [" in text
    assert "| LMF, diffusion − IDQN | 2 | 25 ± 21 [" in text


def test_the_exchange_table_of_the_committed_runs():
    campaign = campaign_of("lmf-exchange.toml")
    text = lmf_exchange.exchange_table(campaign, _runs(campaign), "harvest-3", "rounds:46-60",
                                       campaign.figures["references"])
    # the campaign's own references (docs/results/ssd/README.md quotes these)
    assert "| LMF, Eq. 13 | 100.9 · 93.7 · 85.4 | 0.359 · 0.379 · 0.456 |" in text
    assert "| IDQN | 147.8 · 145.8 · 145.9 | 0.042 · 0.043 · 0.057 |" in text
    assert "| LMF, diffusion | 150.1 · 151.2 · 148.2 | 0.036 · 0.034 · 0.062 |" in text
    assert " | 3 | 56.5 ± 6.8 [±17] | 0.0048 |" in text and " | 3 | 3.36 ± 1.8 [±4.5] | 0.084 |" in text


def test_the_pull_sweep_and_attack_tables_equal_the_committed(tmp_path):
    sweep = campaign_of("pull-sweep.toml")
    written = pull_sweep.figures(sweep, _runs(sweep), tmp_path)
    assert [p.name for p in written] == ["sweep.md", "sweep.csv", "sweep.png"]
    for name in ("sweep.md", "sweep.csv"):
        assert (tmp_path / name).read_text() == (ROOT / "docs/results/pull_sweep" / name).read_text(), name
    attack = campaign_of("attack-defence.toml")
    attack_defence.figures(attack, _runs(attack), tmp_path)
    assert (tmp_path / "attack_defence.csv").read_text() == (
        ROOT / "docs/results/attack_defence/attack_defence.csv").read_text()
    ours = (tmp_path / "attack_defence.md").read_text().splitlines()
    theirs = (ROOT / "docs/results/attack_defence/attack_defence.md").read_text().splitlines()
    assert ours[4:] == theirs[4:] and "experiments/campaigns/attack-defence.toml" in ours[2]


def test_the_attack_exploitation_by_hand(tmp_path):
    """Exploitation: the attacked run's honest_return minus the control's mean over the same
    (non-attacking) agents, per seed."""
    campaign = campaign_of("attack-defence.toml")
    config = {"strategy": "dnf", "agents": 3, "attack": {"attackers": "0"}}

    def run(**cols) -> Run:
        return Run(tmp_path, config=config, rows=[{"round": 1.0, **cols}])

    runs = {("mean", "none", 0): run(return_agent_0=9.0, return_agent_1=4.0, return_agent_2=6.0),
            ("mean", "noise", 0): run(honest_return=3.0, attackers_return=1.0),
            ("mean", "none", 1): run(return_agent_0=9.0, return_agent_1=2.0, return_agent_2=2.0),
            ("mean", "noise", 1): run(honest_return=4.0, attackers_return=3.0)}
    assert attack_defence.pairs(campaign, runs, "mean", "noise") == [(3.0, 5.0, 1.0), (4.0, 2.0, 3.0)]
    attack_defence.figures(campaign, runs, tmp_path)
    rows = list(csv.DictReader((tmp_path / "attack_defence.csv").open()))
    assert [(r["defence"], r["attack"], r["n"], float(r["exploitation_mean"])) for r in rows] == [
        ("mean", "noise", "2", 0.0)]


def test_the_pareto_figures_and_the_planner_table(tmp_path):
    """fig5.png and planner.md from the committed restaurant runs (Pareto 2.29 per agent
    against the planner's 2.05 at a = 2: docs/results/pareto/README.md); fig3, fig4 and
    cleanup.png are not drawn without their runs."""
    campaign = campaign_of("pareto.toml")
    runs = _runs(campaign, ["restaurant-a0", "restaurant-a2"])
    written = pareto.figures(campaign, runs, tmp_path)
    assert [p.name for p in written] == ["fig5.png", "planner.md"]
    text = (tmp_path / "planner.md").read_text()
    assert "| restaurant-a2 | Pareto | 0,1,2 | 2.29 ± 0.12 [±0.29] |" in text
    assert "| restaurant-a2 | planner (reference) | 0,1,2 | 2.05 ± 0.054 [±0.13] |" in text
    assert "| restaurant-a2: Pareto − planner | 0,1,2 | 0.235 | 0.17 | 0.42 |" in text


def test_the_planner_claims_equal_the_planner_table():
    """The claims against the planner (B another metric of the same runs, scaled by 1/20)
    give planner.md's paired difference: 0.235 [± 0.42] at a = 2."""
    from experiments import report

    campaign = campaign_of("pareto.toml")
    claims = {c.id: c for c in parse(campaign).claims}
    runs = report.collect(campaign)
    beats = report._judge(campaign, claims["pareto-restaurant-a2-beats-planner"], runs)
    assert beats.effect.n == 3 and round(beats.effect.mean, 3) == 0.235
    assert round(beats.effect.hi - beats.effect.mean, 2) == 0.42
    assert beats.test == "Pareto[mean_return] − 0.05·Pareto[planner_return] > 0"
    nearly = report._judge(campaign, claims["pareto-restaurant-a0-nearly-planner"], runs)
    # Pareto 0.924 per agent against 90% of the planner's 0.963 (planner.md's rounded means)
    assert nearly.effect.mean == pytest.approx(0.924 - 0.9 * 0.963, abs=2e-3)
