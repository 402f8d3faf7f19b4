"""analysis/: final values, statistics, tables and plots against values computed by hand."""

import functools
import json
import math
import re

import numpy as np
import pytest
from rliable import metrics as rly_metrics
from scipy import stats as sp_stats

from analysis import curves, plots, stats, tables
from analysis.runs import find_runs, read_run
from analysis.window import Window, final_value, final_values, parse_window


def rounds(n, key="x", scale=10.0):
    """Rows for rounds 1..n with x = 10 * round."""
    return [{"round": float(r), key: scale * r} for r in range(1, n + 1)]


# --- window -------------------------------------------------------------------------------

def test_the_default_window_is_the_last_quarter_of_the_rounds():
    # R = 8: rounds ceil(3*8/4)+1 .. 8 = 7..8, mean of 70 and 80
    f = final_value(rounds(8), "x")
    assert (f.value, f.n, f.rounds, f.reason) == (75.0, 2, (7, 8), "")
    # R = 10: floor(10/4) = 2 rounds, 9..10 = ceil(30/4)+1 .. 10
    assert final_value(rounds(10), "x").rounds == (9, 10)
    # R = 3 (< 4): the last round alone
    assert (final_value(rounds(3), "x").value, final_value(rounds(3), "x").rounds) == (30.0, (3, 3))
    assert final_value(rounds(1), "x").value == 10.0
    assert parse_window(None) == parse_window("") == parse_window("last-quarter") == Window("last-quarter")


def test_last_k_and_a_range_of_rounds():
    assert final_value(rounds(8), "x", "last:2").value == 75.0
    assert final_value(rounds(3), "x", "last:20").value == 20.0  # all 3 rounds: (10+20+30)/3
    f = final_value(rounds(8), "x", "rounds:2-4")
    assert (f.value, f.n, f.rounds) == (30.0, 3, (2, 4))  # (20+30+40)/3
    assert final_value(rounds(8), "x", "all").value == 45.0
    assert final_values(rounds(8), ["x", "y"], "last:1")["x"] == 80.0
    # without a round column, rounds are the 1-based row positions
    assert final_value([{"x": 1.0}, {"x": 2.0}, {"x": 4.0}], "x", "rounds:2-3").value == 3.0


def test_missing_values_are_skipped_and_an_empty_window_says_why():
    rows = rounds(8)
    rows[7]["x"] = math.nan  # round 8 not measured
    del rows[6]["x"]  # round 7 neither
    rows[5]["x"] = ""  # empty cell
    f = final_value(rows, "x")
    assert math.isnan(f.value) and f.n == 0 and f.reason == "'x' was not measured in rounds 7-8"
    assert final_value(rows, "x", "last:4").value == 50.0  # rounds 5..8: only round 5 measured
    assert "in no round of the run" in final_value(rows, "nope").reason
    out = final_value(rounds(8), "x", "rounds:20-30")
    assert math.isnan(out.value) and out.rounds is None and "no round of the run is in rounds 20-30" in out.reason
    assert final_value([], "x").reason == "the run has no rounds"


@pytest.mark.parametrize("spec", ["last", "last:0", "last:x", "last:-1", "rounds:4-2", "rounds:0-3", "rounds:3",
                                  "quarter", "first:2"])
def test_a_bad_window_spec_is_refused_by_name(spec):
    with pytest.raises(ValueError, match=re.escape(repr(spec))):
        parse_window(spec)


# --- runs ---------------------------------------------------------------------------------

def test_a_run_directory_is_read_as_floats(tmp_path):
    run = tmp_path / "study" / "fpf_seed3"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"strategy": "fpf", "seed": 3}))
    (run / "metrics.csv").write_text("round,collective_return,cv\n1,2.5,\n2,3.5,0.25\n")
    (run / "summary.json").write_text(json.dumps({"strategy": "fpf", "label": "fpf-ring", "seed": 3}))
    (tmp_path / "study" / "empty").mkdir()
    r = read_run(run)
    assert r.rows[0]["collective_return"] == 2.5 and math.isnan(r.rows[0]["cv"]) and r.rows[1]["cv"] == 0.25
    assert (r.config["strategy"], r.label, r.seed) == ("fpf", "fpf-ring", 3)
    assert find_runs(tmp_path) == [run]
    assert read_run(tmp_path / "study" / "empty").rows == []


# --- statistics ---------------------------------------------------------------------------

def test_mean_sd_and_t_interval_by_hand():
    s = stats.mean_sd_ci([1.0, 2.0, 3.0, math.nan, None])
    # sample sd of 1, 2, 3 is 1; t(0.975, 2) = 4.302653; half-width 4.302653 / sqrt(3)
    assert (s.mean, s.sd, s.n) == (2.0, 1.0, 3) and s.ci == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    one = stats.mean_sd_ci([5.0])
    assert one.mean == 5.0 and one.n == 1 and math.isnan(one.sd) and math.isnan(one.ci)
    assert stats.mean_sd_ci([]).n == 0


def test_iqm_of_one_to_eight_is_the_mean_of_the_middle_four_with_a_reproducible_ci():
    scores = np.arange(1.0, 9.0)  # 8 seeds; the middle half is 3, 4, 5, 6
    iv = stats.iqm(scores, seed=7)
    assert iv.point == 4.5 == rly_metrics.aggregate_iqm(scores.reshape(-1, 1))
    assert iv.lo <= 4.5 <= iv.hi and iv.lo < iv.hi
    np.random.seed(1)
    assert stats.iqm(scores, seed=7) == iv  # same seed, same interval
    assert np.random.rand() == np.random.RandomState(1).rand()  # NumPy's global generator is left as it was
    assert stats.iqm(list(scores) + [math.nan], seed=7) == iv  # NaN runs are left out
    # one run of 8 tasks (1 x 8): the same IQM; one run: its score, no spread
    assert stats.iqm(scores.reshape(1, 8)).point == 4.5
    assert stats.iqm([3.0]) == stats.Interval(3.0, 3.0, 3.0)
    assert math.isnan(stats.iqm([]).point)
    assert stats.iqms({"a": scores, "b": [1.0]}, seed=7)["a"] == iv


def test_probability_of_improvement_by_hand():
    poi = functools.partial(stats.probability_of_improvement, reps=200)  # the point does not depend on reps
    x, y = [5.0, 6.0, 7.0], [0.0, 1.0, 2.0]
    assert poi(x, y) == stats.Interval(1.0, 1.0, 1.0)  # every X run beats every Y run
    assert poi(y, x) == stats.Interval(0.0, 0.0, 0.0)
    assert poi(x, x).point == 0.5  # identical
    # (1,2) loses, (1,1) and (2,2) tie (one half each), (2,1) wins: 2/4
    assert poi([1.0, 2.0], [2.0, 1.0]).point == 0.5
    # 1>0, 1<2, 2>0, 2=2 (half), 3>0, 3>2: 4.5 / 6
    p = poi([1.0, 2.0, 3.0], [0.0, 2.0], seed=3)
    assert p.point == pytest.approx(0.75) and p.lo <= 0.75 <= p.hi and p.lo < p.hi
    assert poi([1.0, 2.0, 3.0], [0.0, 2.0], seed=3) == p  # same seed, same interval
    assert math.isnan(poi([], y).point)


def test_paired_differences_on_three_seeds_by_hand():
    x = {0: 2.0, 1: 4.0, 2: 6.0, 5: 9.0}  # seed 5 has no partner
    y = {2: 3.0, 0: 1.0, 1: 2.0}
    d = stats.paired_differences(x, y)
    # differences 1, 2, 3: mean 2, sd 1, half-width t(0.975, 2) / sqrt(3)
    assert d.seeds == (0, 1, 2) and d.differences == (1.0, 2.0, 3.0) and d.n == 3
    assert (d.mean, d.sd) == (2.0, 1.0)
    assert d.ci == pytest.approx(sp_stats.t.ppf(0.975, 2) / math.sqrt(3)) == pytest.approx(2.484138, rel=1e-6)
    # t = 2 / (1 / sqrt 3) = 2 sqrt 3; with 2 degrees of freedom p = 1 - t / sqrt(2 + t^2)
    assert d.p == pytest.approx(1 - 2 * math.sqrt(3) / math.sqrt(14)) and d.note == ""


def test_the_zero_variance_and_small_n_guards():
    up = stats.paired_differences({0: 3.0, 1: 4.0}, {0: 1.0, 1: 2.0})  # differences 2, 2
    assert (up.mean, up.sd, up.ci, up.p) == (2.0, 0.0, 0.0, 0.0) and "zero variance" in up.note
    same = stats.paired_differences({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0})
    assert (same.mean, same.p) == (0.0, 1.0) and "p set to 1" in same.note
    one = stats.paired_differences({0: 3.0, 1: math.nan}, {0: 1.0, 1: 2.0})
    assert one.mean == 2.0 and one.n == 1 and math.isnan(one.p) and math.isnan(one.sd) and "one pair" in one.note
    none = stats.paired_differences({0: 1.0}, {1: 1.0})
    assert none.n == 0 and math.isnan(none.mean) and none.note == "no seed in common"


def test_mean_curve_by_hand():
    runs = [[{"x": 1.0}, {"x": 2.0}], [{"x": 3.0}, {"x": 4.0}, {"x": 9.0}]]  # cut to 2 rounds, no smoothing
    mean, half = curves.mean_curve(runs, "x")
    # sd of (1, 3) and of (2, 4) is sqrt 2: half-width t(0.975, 1) * sqrt 2 / sqrt 2
    assert mean.tolist() == [2.0, 3.0] and half == pytest.approx([sp_stats.t.ppf(0.975, 1)] * 2)
    assert curves.mean_curve(runs[:1], "x")[1].tolist() == [0.0, 0.0]
    assert curves.smooth([1.0, math.nan, 3.0], 2).tolist() == [1.0, 1.0, 3.0]


# --- tables and plots ---------------------------------------------------------------------

def test_cells_are_mean_sd_ci_and_iqm_with_its_interval():
    assert tables.fmt_mean_sd([1.0, 2.0, 3.0]) == "2 ± 1 [±2.5]"
    assert tables.fmt_mean_sd([5.0]) == "5" and tables.fmt_mean_sd([math.nan]) == "–"
    assert tables.fmt_interval(stats.Interval(4.5, 2.25, 6.5)) == "4.5 [2.25, 6.5]"
    assert tables.fmt_interval(stats.NO_INTERVAL) == "–"
    assert tables.fmt_paired(stats.paired_differences({0: 2.0, 1: 4.0, 2: 6.0}, {0: 1.0, 1: 2.0, 2: 3.0})) \
        == "2 ± 1 [±2.5] (p=0.0742)"


def test_a_method_table_in_markdown_and_csv(tmp_path):
    groups = {"a": [{"seed": 0, "x": 1.0}, {"seed": 1, "x": 2.0}, {"seed": 2, "x": 3.0}], "b": [{"seed": 0, "x": 7.0}]}
    header, rows = tables.method_table(groups, [("x", "X"), ("y", "Y")], iqm_of=("x", "X"))
    assert header == ["method", "seeds", "X", "X IQM [95% CI]", "Y"]
    assert rows[0][:3] == ["a", "0,1,2", "2 ± 1 [±2.5]"] and rows[0][3].startswith("2 [") and rows[0][4] == "–"
    assert rows[1] == ["b", "0", "7", "7 [7, 7]", "–"]  # IQM of three values trims none: their mean
    text = tables.markdown(header, rows).splitlines()
    assert text[0] == "| method | seeds | X | X IQM [95% CI] | Y |" and text[1] == "|---|---|---|---|---|"
    tables.write_csv(tmp_path / "t.csv", header, rows)
    assert (tmp_path / "t.csv").read_text().splitlines()[2] == "b,0,7,\"7 [7, 7]\",–"
    pair_header, pair_rows = tables.paired_table({"a - b": stats.paired_differences({0: 3.0, 1: 4.0}, {0: 1.0, 1: 2.0})})
    assert pair_rows[0][:6] == ["a - b", "0,1", "2", "0", "0", "0"] and "zero variance" in pair_rows[0][6]


def test_the_plots_are_written(tmp_path):
    fig, ax = plots.plt.subplots()
    plots.plot_learning_curves(ax, {"a": [rounds(8), rounds(8, scale=11.0)], "b": [rounds(6)]}, "x")
    plots.save(fig, tmp_path / "curves.png")
    plots.plot_intervals(tmp_path / "iqm.png", {"a": stats.iqm(np.arange(1.0, 9.0)), "b": stats.iqm([2.0])})
    plots.plot_paired(tmp_path / "paired.png", {"a - b": stats.paired_differences({0: 2.0, 1: 5.0}, {0: 1.0, 1: 2.0}),
                                                "a - c": stats.paired_differences({0: 2.0}, {0: 1.0})})
    assert all((tmp_path / f).stat().st_size > 5_000 for f in ("curves.png", "iqm.png", "paired.png"))


def test_the_comparison_table_takes_final_values_from_the_window_and_shows_the_iqm(tmp_path):
    from federation.compare import compare, last_quarter

    dirs = []
    for label, seed, offset in (("a", 0, 0.0), ("a", 1, 2.0), ("b", 0, 5.0)):
        d = tmp_path / f"{label}_seed{seed}"
        d.mkdir()
        lines = ["round,collective_return,cv"] + [f"{r},{10 * r + offset},0.5" for r in range(1, 9)]
        (d / "metrics.csv").write_text("\n".join(lines) + "\n")
        (d / "summary.json").write_text(json.dumps({"strategy": label, "seed": seed, "collective_return_last": -1.0,
                                                    "collective_return_avg": -1.0, "last_rounds": 1, "events": []}))
        dirs.append(d)
    assert last_quarter(read_run(dirs[0]).rows, "collective_return") == 75.0
    table = compare(dirs, tmp_path / "out")
    head, _, row_a, row_b = table.splitlines()[:4]
    assert head.startswith("| method | seeds | collective | collective IQM [95% CI] | CV |")
    # a: 75 and 77 over rounds 7-8 (not summary.json's -1); IQM of two values is their mean
    assert row_a.startswith("| a | 0,1 | 76 ± 1.4 [±13] | 76 [75, 77] |") and row_b.startswith("| b | 0 | 80 | 80 [80, 80] |")
    assert "the last quarter of the rounds run" in table
    csv_lines = (tmp_path / "out" / "comparison.csv").read_text().splitlines()
    assert "final_rounds" in csv_lines[0] and len(csv_lines) == 4
    assert (tmp_path / "out" / "comparison.png").exists() and (tmp_path / "out" / "comparison.md").exists()
