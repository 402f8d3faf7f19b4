"""experiments/report.py: the verdict rules at their boundaries, the effect by hand, the
report of hand-made run directories (unfinished runs left out and counted), the
validation of the report tables, and docs/results/CLAIMS.md's rows (report --all)."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
from scipy import stats as sp_stats

from experiments import report
from experiments.__main__ import main as cli
from experiments.campaign import CampaignError, load
from experiments.report import Effect, decide, effect

ROOT = Path(__file__).resolve().parents[1]
FAST = {"reps": 100, "poi_reps": 50}  # bootstrap replications: enough for the tests

HEAD = """name = "{name}"
out = "{out}"
seeds = [0, 1, 2]

[defaults]
env = "matthew"
agents = 3
rounds = 4
batch = 2
steps = 10
hidden = 8
minibatch = 64
epochs = 2
eval-every = 0

[scenarios.m3]
label = "Matthew (3)"

[methods.a]
label = "A"
strategy = "independent"

[methods.b]
label = "B"
strategy = "avg"

[methods.c]
label = "C"
strategy = "min"
"""

CLAIM = """
[[claims]]
id = "{id}"
claim = "A beats B"
paper = "{paper}"
ref = "Fig. 1"
setting = "paper"
scenario = "m3"
metric = "collective_return"
a = "a"
"""


def campaign_file(directory: Path, body: str = "", name: str = "tiny", out: Path | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(HEAD.format(name=name, out=out or directory / f"out-{name}") + body)
    return path


def claim(id_: str = "x", paper: str = "FPF", **keys) -> str:
    return CLAIM.format(id=id_, paper=paper) + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())


def write_run(cfg, value: float, rounds: int | None = None, finished: bool = True) -> None:
    """A run directory of ``cfg`` whose every round has collective_return = ``value`` (cv,
    jain, min_return derived from it); ``finished``: with its summary.json."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(cfg.to_json())
    with (out / "metrics.csv").open("w") as f:
        f.write("round,collective_return,cv,jain,min_return,round_s\n")
        for r in range(1, (rounds or cfg.rounds) + 1):
            f.write(f"{r},{value},{value / 100},{1 - value / 1000},{value / 3},0.1\n")
    if finished:
        (out / "summary.json").write_text(json.dumps({"rounds_completed": cfg.rounds}))


# values of collective_return per (method, seed); None: not written. Seed 2 of B is partial
# (2 of 4 rounds), C has finished seed 0 only.
VALUES = {("a", 0): 10.0, ("a", 1): 11.1, ("a", 2): 12.0, ("b", 0): 5.0, ("b", 1): 6.0, ("b", 2): 99.0,
          ("c", 0): 1.0}


def make_runs(path: Path) -> None:
    for run in load(path).plan():
        value = VALUES.get((run.method, run.seed))
        if value is None:
            continue
        partial = (run.method, run.seed) == ("b", 2)
        write_run(run.cfg, value, rounds=2 if partial else None, finished=not partial)


# ---------------------------------------------------------------------- verdicts
def E(lo: float, hi: float, n: int = 3) -> Effect:
    return Effect((lo + hi) / 2, lo, hi, n)


@pytest.mark.parametrize("rule, lo, hi, value, margin, outcome", [
    # greater: reproduced iff lo > v; contradicted iff hi < v
    ("greater", 0.1, 2.0, 0, 0, "reproduced"),
    ("greater", 0.0, 2.0, 0, 0, "inconclusive"),
    ("greater", -1.0, 0.0, 0, 0, "inconclusive"),
    ("greater", -2.0, -0.1, 0, 0, "contradicted"),
    ("greater", 2.5, 3.0, 2, 0, "reproduced"),
    ("greater", 1.0, 1.9, 2, 0, "contradicted"),
    # less mirrors
    ("less", -2.0, -0.1, 0, 0, "reproduced"),
    ("less", -2.0, 0.0, 0, 0, "inconclusive"),
    ("less", 0.0, 1.0, 0, 0, "inconclusive"),
    ("less", 0.1, 1.0, 0, 0, "contradicted"),
    # equal: within [v - m, v + m] (closed), wholly outside, else inconclusive
    ("equal", -1.0, 1.0, 0, 1, "reproduced"),
    ("equal", -0.5, 1.01, 0, 1, "inconclusive"),
    ("equal", 1.0, 2.0, 0, 1, "inconclusive"),
    ("equal", 1.01, 2.0, 0, 1, "contradicted"),
    ("equal", -3.0, -1.01, 0, 1, "contradicted"),
    ("equal", 0.0, 0.0, 0, 0, "reproduced"),
    ("equal", 0.6, 1.4, 1, 0.5, "reproduced"),
    # at-least v: lo >= v - m reproduces, hi < v - m contradicts
    ("at-least", 17.0, 18.0, 17, 0, "reproduced"),
    ("at-least", 16.99, 18.0, 17, 0, "inconclusive"),
    ("at-least", 15.0, 17.0, 17, 0, "inconclusive"),
    ("at-least", 15.0, 16.99, 17, 0, "contradicted"),
    ("at-least", 16.0, 16.5, 17, 1, "reproduced"),
    ("at-least", 15.0, 15.99, 17, 1, "contradicted"),
    # at-most mirrors
    ("at-most", 16.0, 17.0, 17, 0, "reproduced"),
    ("at-most", 16.0, 17.01, 17, 0, "inconclusive"),
    ("at-most", 17.0, 18.0, 17, 0, "inconclusive"),
    ("at-most", 17.01, 18.0, 17, 0, "contradicted"),
    ("at-most", 17.5, 18.0, 17, 1, "reproduced"),
])
def test_every_verdict_rule_at_its_boundaries(rule, lo, hi, value, margin, outcome):
    v = decide(rule, E(lo, hi), value, margin)
    assert v.outcome == outcome, v


def test_fewer_than_two_seeds_is_inconclusive_and_bad_rules_are_refused():
    assert decide("greater", E(5.0, 6.0, n=1), 0) == report.Verdict("inconclusive", "n < 2")
    assert decide("at-least", Effect(math.nan, math.nan, math.nan, 0), 1).reason == "n < 2"
    assert decide("greater", E(1.0, 2.0)).reason == "CI above 0"
    assert decide("equal", E(1.01, 2.0), 0, 1).reason == "CI outside [-1, 1]"
    with pytest.raises(ValueError, match="unknown rule"):
        decide("bigger", E(1.0, 2.0))
    with pytest.raises(ValueError, match="margin applies to"):
        decide("greater", E(1.0, 2.0), 0, 0.5)


def test_the_effect_is_the_paired_mean_or_a_mean_with_its_t_interval():
    t = sp_stats.t.ppf(0.975, 2)
    eff = effect({0: 3.0, 1: 5.0, 2: 7.0, 3: 1.0}, {0: 1.0, 1: 2.0, 2: 3.0})  # seed 3: A only
    assert (eff.mean, eff.n, eff.seeds, eff.paired) == (3.0, 3, (0, 1, 2), True)  # differences 2, 3, 4
    assert eff.lo == pytest.approx(3 - t / math.sqrt(3)) and eff.hi == pytest.approx(3 + t / math.sqrt(3))
    mean = effect({0: 3.0, 1: 5.0, 2: 7.0, 3: math.nan})  # NaN left out
    assert (mean.mean, mean.n, mean.paired) == (5.0, 3, False)
    assert mean.hi - mean.mean == pytest.approx(t * 2 / math.sqrt(3))
    same = effect({0: 2.0, 1: 3.0}, {0: 1.0, 1: 2.0})  # zero variance: the CI is the mean
    assert (same.lo, same.hi) == (1.0, 1.0) and decide("greater", same).outcome == "reproduced"


def test_a_contrast_is_the_seed_by_seed_sum_with_its_t_interval():
    t = sp_stats.t.ppf(0.975, 2)
    a, b = {0: 10.0, 1: 12.0, 2: 14.0, 3: 1.0}, {0: 10.0, 1: 10.0, 2: 10.0}
    ratio = report.contrast([(1.0, a), (-0.9, b)])  # A − 0.9·B: 1, 3, 5 (seed 3: A only)
    assert (ratio.mean, ratio.n, ratio.seeds) == (pytest.approx(3.0), 3, (0, 1, 2))
    assert ratio.hi - ratio.mean == pytest.approx(t * 2 / math.sqrt(3))
    c, d = {0: 1.0, 1: 2.0, 2: math.nan}, {0: 0.0, 1: 0.0, 2: 0.0}
    did = report.contrast([(1.0, a), (-1.0, b), (-1.0, c), (1.0, d)])  # (A − B) − (C − D): 0 − 1, 2 − 2; seed 2 NaN
    assert (did.mean, did.n, did.seeds) == (pytest.approx(-0.5), 2, (0, 1))
    assert report.contrast([(1.0, a), (-1.0, b)]) == effect(a, b)
    assert report.contrast([(1.0, a)]) == effect(a)


def test_claims_on_another_metric_a_ratio_and_a_difference_of_differences(tmp_path):
    # write_run: min_return = value / 3, cv = value / 100; A 10, 11.1, 12; B 5, 6 (seed 2 partial)
    body = (claim("a-above-its-min", b="a", b_metric="min_return", rule="greater")
            + claim("a-above-half-b", b="b", b_scale=0.5, rule="at-least", value=7.0)
            + claim("did", b="b", c="a", d="b", c_metric="cv", d_metric="cv", rule="greater"))
    path = campaign_file(tmp_path, body)
    make_runs(path)
    campaign = load(path)
    assert report.report(campaign, log=lambda *a: None, **FAST) == 0
    claims = {line.split(" | ")[0].strip("| `"): line.split(" | ") for line in
              (Path(campaign.out) / "claims.md").read_text().splitlines() if line.startswith("| `")}
    t = sp_stats.t.ppf(0.975, 2)
    own = [10 * 2 / 3, 11.1 * 2 / 3, 12 * 2 / 3]
    mean = sum(own) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in own) / 2)
    row = claims["a-above-its-min"]
    assert row[5] == "A[collective_return] − A[min_return] > 0" and row[6] == "3 (of 3)"
    assert row[7] == f"{mean:.3g} [{mean - t * sd / math.sqrt(3):.3g}, {mean + t * sd / math.sqrt(3):.3g}]"
    assert row[8].startswith("**reproduced**") and row[9].startswith("1.00")
    row = claims["a-above-half-b"]  # 10 − 2.5 = 7.5, 11.1 − 3 = 8.1
    half = sp_stats.t.ppf(0.975, 1) * (0.6 / math.sqrt(2)) / math.sqrt(2)  # sd of 7.5, 8.1 over sqrt(n)
    assert row[5] == "A − 0.5·B ≥ 7" and row[6:8] == ["2 (of 3)", f"7.8 [{7.8 - half:.3g}, {7.8 + half:.3g}]"]
    row = claims["did"]  # (A − B) − (A[cv] − B[cv]) = 5 − 0.05, 5.1 − 0.051
    assert row[5] == "(A[collective_return] − B[collective_return]) − (A[cv] − B[cv]) > 0"
    assert row[6] == "2 (of 3)" and row[7].startswith("5 [") and row[9] == "–"  # no P(A>B) for a control pair


def test_bootstraps_in_worker_processes_equal_those_in_process():
    from analysis import stats

    calls = [(stats.iqm, ([1.0, 2.0, 4.0, 8.0],), {"reps": 100}),
             (stats.probability_of_improvement, ([1.0, 2.0, 3.0], [1.5, 2.5, 0.0]), {"reps": 100}),
             (stats.iqm, ([3.0, 1.0, 2.0],), {"reps": 100, "seed": 7})]
    with report.Bootstraps(1) as here, report.Bootstraps(2) as there:
        assert here.map(calls) == there.map(calls)


# ---------------------------------------------------------------------- a campaign's report
def test_the_report_of_hand_made_runs_leaves_out_and_counts_the_unfinished(tmp_path):
    body = ("\n[report]\nwindow = \"last:2\"\n"
            "\n[[comparisons]]\nname = \"A against the others\"\nmetric = \"collective_return\"\n"
            "pairs = [[\"a\", \"b\"], [\"a\", \"c\"]]\n"
            + claim("a-beats-b", b="b", rule="greater", figure="curves-m3.png")
            + claim("a-at-least-8", value=8.0, rule="at-least")
            + claim("a-at-most-5", value=5.0, rule="at-most", note="a | pipe")
            + claim("c-beats-a", rule="greater").replace('a = "a"', 'a = "c"\nb = "a"'))
    path = campaign_file(tmp_path, body)
    make_runs(path)
    campaign = load(path)
    assert report.report(campaign, log=lambda *a: None, **FAST) == 0
    out = Path(campaign.out)

    results = (out / "results.md").read_text()
    assert "6 of 9 runs finished" in results
    rows = {line.split(" | ")[0].strip("| "): line for line in results.splitlines() if line.startswith("| ")}
    assert rows["A"].startswith("| A | 0,1,2 | 11 ± 1 [±2.5] | 11 [")
    assert "| B | 0,1 (2 of 3 seeds finished) | 5.5 ± 0.71 [±6.4] |" in rows["B"]
    assert "| C | 0 (1 of 3 seeds finished) | 1 |" in rows["C"]
    assert "Not finished, left out: B seed 2: partial 2/4; C seeds 1, 2: missing." in results
    with (out / "results.csv").open() as f:
        table = {r["method"]: r for r in csv.DictReader(f)}
    assert (table["b"]["seeds"], table["b"]["n"], table["b"]["planned"]) == ("0 1", "2", "3")
    assert float(table["a"]["collective_return_mean"]) == pytest.approx(11.0333333)

    paired = (out / "a-against-the-others.md").read_text()
    assert "| m3: A − B | 0,1 | 5.05 | 0.071 |" in paired and "B: 2 of 3 seeds finished" in paired
    assert "one pair: no sd, CI or test; C: 1 of 3 seeds finished" in paired
    assert (out / "curves-m3.png").stat().st_size > 0

    claims = {line.split(" | ")[0].strip("| `"): line.split(" | ") for line in
              (out / "claims.md").read_text().splitlines() if line.startswith("| `")}
    # columns: id, claim, paper, setting, scenario, test, n, effect, verdict, P(A>B), figure, note
    a_b = claims["a-beats-b"]
    assert a_b[5:9] == ["A − B > 0", "2 (of 3)", "5.05 [4.41, 5.69]", "**reproduced** (CI above 0)"]
    assert a_b[9] == "1.00 [1.00, 1.00]" and a_b[10] == "[curves-m3.png](curves-m3.png)"
    assert "B: 2 of 3 seeds finished" in a_b[11]
    assert claims["a-at-least-8"][5:9] == ["mean A ≥ 8", "3 (of 3)", "11 [8.55, 13.5]",
                                           "**reproduced** (CI at or above 8)"]
    assert claims["a-at-least-8"][9] == "–"  # no P(A>B) against a number
    assert claims["a-at-most-5"][8] == "**contradicted** (CI above 5)" and claims["a-at-most-5"][11] == "a \\| pipe |"
    assert claims["c-beats-a"][6:9] == ["1 (of 3)", "-9", "inconclusive (n < 2)"]
    assert "C: 1 of 3 seeds finished" in claims["c-beats-a"][11]


def test_figures_module_is_called_with_the_finished_runs(tmp_path, monkeypatch):
    import sys
    import types

    seen = {}

    def figures(campaign, runs, out):
        seen.update(runs=sorted(runs), out=out)
        (out / "mine.png").write_bytes(b"png")
        return [out / "mine.png"]

    monkeypatch.setitem(sys.modules, "fake_figures", types.SimpleNamespace(figures=figures))
    path = campaign_file(tmp_path, "\n[figures]\nmodule = \"fake_figures\"\noption = 1\n"
                         + claim("x", b="b", rule="greater", figure="mine.png"))
    make_runs(path)
    campaign = load(path)
    assert report.report(campaign, log=lambda *a: None, **FAST) == 0
    assert seen["runs"] == [("m3", "a", 0), ("m3", "a", 1), ("m3", "a", 2), ("m3", "b", 0), ("m3", "b", 1),
                            ("m3", "c", 0)]
    assert "(missing)" not in (Path(campaign.out) / "claims.md").read_text()
    path.write_text(path.read_text().replace("fake_figures", "no_such_figures"))
    lines = []
    assert report.report(load(path), log=lines.append, **FAST) == 1  # the rest is still written
    assert any("[figures]: 'module' = 'no_such_figures' failed" in line for line in lines)


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize("body, where, words", [
    (claim(rule="greater").replace('ref = "Fig. 1"\n', ""), "[[claims]] #1 (id 'x')", "'ref' is missing"),
    (claim(b="b", rule="greter"), "[[claims]] #1 (id 'x'): 'rule'", "did you mean 'greater'?"),
    (claim(paper="FPFF", b="b", rule="greater"), "[[claims]] #1 (id 'x'): 'paper'", "a tag of docs/PAPERS.md"),
    (claim(b="b", rule="greater").replace('"paper"\n', '"papers"\n'), "[[claims]] #1 (id 'x'): 'setting'",
     '"paper" (as the paper writes it) or "authors"'),
    (claim(b="b", rule="greater").replace('"m3"', '"m4"'), "[[claims]] #1 (id 'x'): 'scenario'",
     "unknown scenario 'm4'"),
    (claim(b="d", rule="greater"), "[[claims]] #1 (id 'x'): 'b'", "'d' is not a method of scenario 'm3'"),
    (claim(b="a", rule="greater"), "[[claims]] #1 (id 'x'): 'b'", "with itself"),
    (claim(rule="greater"), "[[claims]] #1 (id 'x')", "give b (a paired claim, A − B) or value"),
    (claim(rule="greater", b_metric="cv"), "[[claims]] #1 (id 'x'): 'b_metric'", "give b too"),
    (claim(b="b", c="a", rule="greater"), "[[claims]] #1 (id 'x')", "needs both c and d"),
    (claim(b="b", b_scale=0, rule="greater"), "[[claims]] #1 (id 'x'): 'b_scale'", "must be > 0"),
    (claim(b="b", b_scenario="m4", rule="greater"), "[[claims]] #1 (id 'x'): 'b_scenario'", "unknown scenario"),
    (claim(b="b", c="a", d="e", rule="greater"), "[[claims]] #1 (id 'x'): 'd'", "'e' is not a method"),
    (claim(b="b", rule="greater", margin=0.5), "[[claims]] #1 (id 'x'): 'margin'", "use rule = \"at-least\""),
    (claim(b="b", rule="equal", margin=-1), "[[claims]] #1 (id 'x'): 'margin'", "must be >= 0"),
    (claim(b="b", rule="greater", vaule=1), "[[claims]] #1 (id 'x'): 'vaule'", "did you mean 'value'?"),
    (claim(value="17", rule="at-least"), "[[claims]] #1 (id 'x'): 'value'", "must be a number"),
    (claim(b="b", rule="greater", window="last-half"), "[[claims]] #1 (id 'x'): 'window'", "bad window spec"),
    (claim(b="b", rule="greater", figure="../x.png"), "[[claims]] #1 (id 'x'): 'figure'", "without '..'"),
    (claim(b="b", rule="greater").replace('"A beats B"', '"two\\nlines"'), "[[claims]] #1 (id 'x'): 'claim'",
     "one line"),
    (claim(b="b", rule="greater") * 2, "[[claims]] #2 (id 'x'): 'id'", "the id of an earlier claim"),
    ('\n[report]\nmetrics = "cv"\n', "[report]: 'metrics'", "non-empty list"),
    ('\n[report]\nwindows = "all"\n', "[report]: 'windows'", "did you mean 'window'?"),
    ('\n[[comparisons]]\nname = "p"\nmetric = "cv"\npairs = [["a", "z"]]\n', "[[comparisons]] #1 ('p'): 'pairs'",
     "unknown method 'z'"),
    ('\n[[comparisons]]\nname = "p"\nmetric = "cv"\npairs = [["a", "b", "c"]]\n',
     "[[comparisons]] #1 ('p'): 'pairs'", "each pair is [A, B]"),
    ('\n[[comparisons]]\nname = "Results"\nmetric = "cv"\npairs = [["a", "b"]]\n',
     "[[comparisons]] #1 ('Results'): 'name'", "results.md is the report's own"),
    ('\n[[comparisons]]\nmetric = "cv"\npairs = [["a", "b"]]\n', "[[comparisons]] #1", "'name' is missing"),
    ('\n[figures]\nmodul = "x.y"\n', "[figures]", "'module' is missing"),
    (claim(b="b", rule="greater", ablation="m3: a - b"), "[[claims]] #1 (id 'x'): 'ablation'", "give cause too"),
    (claim(b="b", rule="greater", cause="c", ablation="m4: a - b"), "[[claims]] #1 (id 'x'): 'ablation'",
     "unknown scenario 'm4'"),
    (claim(b="b", rule="greater", cause="c", ablation="m3: a - z"), "[[claims]] #1 (id 'x'): 'ablation'",
     "'z' is not a method of scenario 'm3'"),
    (claim(b="b", rule="greater", cause="c", ablation="m3: a b"), "[[claims]] #1 (id 'x'): 'ablation'",
     '"scenario: A - B"'),
    (claim(b="b", rule="greater", cause="c", ablation="x"), "[[claims]] #1 (id 'x'): 'ablation'", "the claim itself"),
    (claim(b="b", rule="greater", cause="two\nlines"), "[[claims]] #1 (id 'x'): 'cause'", "one paragraph"),
])
def test_report_tables_are_validated_with_file_table_and_key(tmp_path, body, where, words):
    path = campaign_file(tmp_path, body)
    with pytest.raises(CampaignError) as err:
        report.parse(load(path))
    message = str(err.value)
    assert message.startswith(f"{path}: ") and where in message and words in message, message


def test_a_metric_no_finished_run_measured_is_refused(tmp_path):
    path = campaign_file(tmp_path, claim(b="b", rule="greater").replace('"collective_return"', '"colective_return"'))
    make_runs(path)
    with pytest.raises(CampaignError, match=r"\[\[claims\]\] #1 \(id 'x'\): 'metric': 'colective_return' is not a "
                                            r"column .* \(did you mean 'collective_return'\?\)"):
        report.report(load(path), log=lambda *a: None, **FAST)


def test_cli_report_takes_a_campaign_or_all(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(report, "REPS", 100)
    monkeypatch.setattr(report, "POI_REPS", 50)
    path = campaign_file(tmp_path, claim(b="b", rule="greater"))
    make_runs(path)
    assert cli(["report", str(path), "--jobs", "1"]) == 0
    assert "6 of 9 runs finished" in capsys.readouterr().out
    assert cli(["report"]) == 2
    assert "give a campaign file, or --all" in capsys.readouterr().err


# ---------------------------------------------------------------------- --all and CLAIMS.md
def test_claims_md_has_one_row_per_claim_grouped_by_paper(tmp_path):
    campaigns = tmp_path / "campaigns"
    one = campaign_file(campaigns, claim("md-claim", paper="MD", b="b", rule="greater", figure="curves-m3.png"),
                        name="one", out=tmp_path / "results" / "one")
    two = campaign_file(campaigns, claim("fpf-claim", paper="FPF", value=8.0, rule="at-least")
                        + claim("fpf-missing-figure", paper="FPF", b="c", rule="less", figure="nope.png"),
                        name="two", out=tmp_path / "results" / "two")
    (campaigns / "broken.toml").write_text("name = 3\n")
    for path in (one, two):
        make_runs(path)
    claims_path = tmp_path / "docs" / "results" / "CLAIMS.md"
    assert report.report_all(campaigns, claims_path, log=lambda *a: None, **FAST) == 2  # broken.toml
    text = claims_path.read_text()
    assert "Generated by `python -m experiments report --all`" in text and "**Decision rules.**" in text
    assert "| at-least | lo ≥ v − m | hi < v − m | inconclusive |" in text
    assert "3 claims: 2 reproduced, 0 contradicted, 1 inconclusive." in text
    assert re.search(r"^- .*broken\.toml: top level: 'name': must be non-empty text", text, re.M)
    assert text.index("## FPF") < text.index("## MD")  # in docs/PAPERS.md's order
    papers = Path(__import__("os").path.relpath(ROOT / "docs" / "PAPERS.md", claims_path.parent))
    rows = {line.split(" | ")[0].strip("| `"): line.split(" | ") for line in text.splitlines()
            if line.startswith("| `")}
    assert set(rows) == {"md-claim", "fpf-claim", "fpf-missing-figure"}
    md = rows["md-claim"]
    anchor = "md-aligning-self-interested-agents-with-welfare-maximization-via-mechanism-design"
    assert md[2] == f"[MD Fig. 1]({papers}#{anchor})"
    assert md[4:9] == ["m3 (one)", "A − B > 0", "2 (of 3)", "5.05 [4.41, 5.69]", "**reproduced** (CI above 0)"]
    assert md[10] == "[curves-m3.png](../../results/one/curves-m3.png)"  # relative to docs/results/
    assert rows["fpf-claim"][2].startswith(f"[FPF Fig. 1]({papers}#fpf-beyond-mandatory-federations")
    assert rows["fpf-claim"][9] == "–"
    assert rows["fpf-missing-figure"][8] == "inconclusive (n < 2)"
    assert rows["fpf-missing-figure"][10] == "[nope.png](../../results/two/nope.png) (missing)"


def test_campaigns_that_share_an_out_keep_their_own_tables(tmp_path):
    campaigns = tmp_path / "campaigns"
    shared = tmp_path / "shared"
    one = campaign_file(campaigns, claim("one-claim", b="b", rule="greater"), name="one", out=shared)
    two = campaign_file(campaigns, claim("two-claim", b="b", rule="less"), name="two", out=shared)
    make_runs(one)
    names = report.files_of(load(one))
    assert (names.results, names.csv, names.claims, names.curves) == (
        "results-one.md", "results-one.csv", "claims-one.md", {"m3": "curves-one-m3.png"})
    assert report.report_all(campaigns, tmp_path / "CLAIMS.md", log=lambda *a: None, **FAST) == 0
    assert {p.name for p in shared.glob("*.md")} == {"results-one.md", "results-two.md", "claims-one.md",
                                                      "claims-two.md"}
    assert "one-claim" in (shared / "claims-one.md").read_text()
    assert "two-claim" in (shared / "claims-two.md").read_text()
    two.write_text(two.read_text() + '\n[[comparisons]]\nname = "P"\nmetric = "cv"\npairs = [["a", "b"]]\n')
    one.write_text(one.read_text() + '\n[[comparisons]]\nname = "p"\nmetric = "cv"\npairs = [["a", "b"]]\n')
    with pytest.raises(CampaignError, match=r"'name': p\.md is also written by two\.toml"):
        report.report(load(one), log=lambda *a: None, **FAST)


# ---------------------------------------------------------------------- why claims do not reproduce
def why_items(text: str) -> dict[str, str]:
    section = text[text.index("## Why claims do not reproduce"):]
    return {m.group(1): m.group(0) for m in re.finditer(r"^- `([^`]+)`.*$", section, re.M)}


def test_why_claims_do_not_reproduce_renders_causes_and_ablations(tmp_path):
    # A 10, 11.1, 12; B 5, 6 (seed 2 partial); C 1 (seed 0 only)
    body = (claim("a-at-most-5", value=5.0, rule="at-most", cause="A is tuned better.", ablation="m3: a - b")
            + claim("b-beats-a", b="a", rule="greater").replace('a = "a"', 'a = "b"')
            + claim("a-beats-b", b="b", rule="greater", cause="Explained by another claim.", ablation="a-at-least-8")
            + claim("a-at-least-8", value=8.0, rule="at-least")
            + claim("c-above-b", b="b", rule="greater", cause="One seed.", ablation="m3: c - a")
            + claim("elsewhere", value=1.0, rule="at-least", cause="Measured elsewhere.", ablation="no-such-claim"))
    path = campaign_file(tmp_path, body)
    make_runs(path)
    campaign = load(path)
    assert report.report(campaign, log=lambda *a: None, **FAST) == 0
    text = (Path(campaign.out) / "claims.md").read_text()
    items = why_items(text)
    # listed: the contradicted claims and those with a cause; not a-at-least-8 (reproduced, no cause)
    assert set(items) == {"a-at-most-5", "b-beats-a", "a-beats-b", "c-above-b", "elsewhere"}
    # A − B over seeds 0, 1: 5, 5.1: mean 5.05, CI 5.05 ± t(0.975, 1)·0.0707/√2
    half = sp_stats.t.ppf(0.975, 1) * (0.1 / math.sqrt(2)) / math.sqrt(2)
    x = items["a-at-most-5"]
    assert "**contradicted** (CI above 5). **Cause:** A is tuned better." in x
    assert (f"**Ablation:** `m3: a - b` (A − B, collective return): 5.05 [{5.05 - half:.3g}, {5.05 + half:.3g}], "
            "n = 2 (of 3); the CI excludes 0." in x)
    assert "**contradicted**" in items["b-beats-a"] and "**Cause:** unexplained: no cause recorded." in items["b-beats-a"]
    assert "**Ablation:** no ablation measures it yet." in items["b-beats-a"]
    assert ("**Ablation:** `a-at-least-8` (mean A ≥ 8): 11 [8.55, 13.5], n = 3 (of 3), reproduced "
            "(CI at or above 8)." in items["a-beats-b"])
    assert "**reproduced** (CI above 0)" in items["a-beats-b"]
    assert "`m3: c - a` (C − A, collective return): -9, n = 1 (of 3): too few seeds for a CI." in items["c-above-b"]
    assert "`no-such-claim` (a claim of another campaign" in items["elsewhere"]
    # no run of an ablation finished: "not run yet"
    for run in load(path).plan():
        if run.method == "b":
            import shutil
            shutil.rmtree(run.cfg.out)
    assert report.report(campaign, log=lambda *a: None, **FAST) == 0
    items = why_items((Path(campaign.out) / "claims.md").read_text())
    assert "`m3: a - b` (A − B, collective return): not run yet." in items["a-at-most-5"]


def test_report_all_resolves_ablations_across_campaigns_and_refuses_unknown_ones(tmp_path, capsys):
    campaigns = tmp_path / "campaigns"
    campaign_file(campaigns, claim("one-claim", b="b", rule="less", cause="Tuning.", ablation="two-ablation"),
                  name="one", out=tmp_path / "results" / "one")
    campaign_file(campaigns, claim("two-ablation", value=8.0, rule="at-least"), name="two",
                  out=tmp_path / "results" / "two")
    for path in sorted(campaigns.glob("*.toml")):
        make_runs(path)
    claims_path = tmp_path / "CLAIMS.md"
    assert report.report_all(campaigns, claims_path, log=lambda *a: None, **FAST) == 0
    text = claims_path.read_text()
    assert text.index("## FPF") < text.index("## Why claims do not reproduce")
    item = why_items(text)["one-claim"]
    assert "**contradicted** (CI above 0)" in item and "(mean A ≥ 8): 11 [8.55, 13.5], n = 3 (of 3), reproduced" in item
    campaign_file(campaigns, claim("three", b="b", rule="less", cause="Tuning.", ablation="two-ablatoin"),
                  name="three", out=tmp_path / "results" / "three")
    make_runs(campaigns / "three.toml")
    assert report.report_all(campaigns, claims_path, log=lambda *a: None, **FAST) == 2
    assert "claim 'three': 'ablation': no campaign has a claim 'two-ablatoin' (did you mean 'two-ablation'?)" in (
        capsys.readouterr().err)
