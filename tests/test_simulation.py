"""Whole runs in Flower's simulation runtime: privacy of non-participants, reproducibility."""

import csv
import json

import numpy as np
import pytest

from clients import protocol
from federation.in_process import run_in_process
from federation.simulation import simulate

TIMING = {"rollout_s", "train_s", "client_s", "busiest_s", "aggregate_s", "flower_s", "exchange_s", "round_s", "agents_train_s"}


def read_rows(out):
    with open(f"{out}/metrics.csv") as f:
        return list(csv.DictReader(f))


def test_non_participant_parameters_never_reach_aggregation(tiny, upload_spy):
    """Agents 1 and 2 stay out: nothing of theirs may appear in FPF's aggregation."""
    summary = simulate(tiny.replace(participation="ids:0"))
    assert summary["rounds_completed"] == 2

    replies = [reply for call in upload_spy.seen for reply in call]
    assert len(replies) == 2 * 3  # every reply passed through, stripped
    assert all(protocol.ACTING not in keys for keys, _ in replies)
    shared = [a for _, arrays in replies for a in arrays]
    assert len(shared) == 2  # agent 0's upload, once per round
    for vec in shared:
        assert any(np.array_equal(vec, a) for a in upload_spy.acting[0])
        for other in (1, 2):
            assert not any(np.array_equal(vec, a) for a in upload_spy.acting[other])
    rows = read_rows(tiny.out)
    assert [float(r["participation_rate"]) for r in rows] == pytest.approx([1 / 3, 1 / 3])
    assert all(float(r["uploads"]) == 1 for r in rows)


def test_same_seed_same_metrics(tiny, tmp_path):
    simulate(tiny.replace(out=str(tmp_path / "a")))
    simulate(tiny.replace(out=str(tmp_path / "b")))
    rows_a, rows_b = read_rows(a_out := tmp_path / "a"), read_rows(tmp_path / "b")
    assert len(rows_a) == 2
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    assert strip(rows_a) == strip(rows_b)
    # the in-process runner (no Flower transport) plays the same run: reproductions may use either
    run_in_process(tiny.replace(out=str(tmp_path / "d")))
    assert strip(read_rows(tmp_path / "d")) == strip(rows_a)
    # another seed, another run (in-process, which plays the same runs as Flower's runtime)
    run_in_process(tiny.replace(out=str(tmp_path / "c"), seed=1))
    assert strip(read_rows(tmp_path / "c")) != strip(read_rows(tmp_path / "d"))
    summary = json.loads((a_out / "summary.json").read_text())
    assert summary["strategy"] == "fpf" and summary["events"] == []
    assert (a_out / "curves.png").stat().st_size > 10_000


def test_voluntary_participation_reaches_the_federation(tiny):
    """ε = 0: everyone starts in, then tries leaving (clients/volunteer.py): rates 1, 0, 0."""
    simulate(tiny.replace(participation="voluntary", vol_epsilon=0.0, rounds=3))
    rows = read_rows(tiny.out)
    assert [float(r["participation_rate"]) for r in rows] == [1.0, 0.0, 0.0]
    assert [float(r["uploads"]) for r in rows] == [3, 0, 0]


def test_fedavg_agents_all_act_with_the_averaged_policy(tiny):
    simulate(tiny.replace(strategy="fedavg"))
    rows = read_rows(tiny.out)
    assert [float(r["consensus_gap"]) for r in rows] == [0.0, 0.0]
    assert [float(r["uploads"]) for r in rows] == [3, 3]
