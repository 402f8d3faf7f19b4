"""FPF's mechanism end to end: no pull is no federation, and only participants are pulled."""

import csv

import numpy as np

from clients.networks import flat
from federation.in_process import run_in_process  # gives a simulation's metrics (tests/test_simulation.py)
from federation.world import World


def returns(out):
    with open(f"{out}/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if k.startswith("return_agent_") or k == "collective_return"} for r in rows]


def record_acting(monkeypatch):
    """Every acting record the world receives, per agent, in order."""
    seen: dict[int, list[np.ndarray]] = {}
    original = World.set_acting

    def spy(self, agent, record, spec=None):
        seen.setdefault(agent, []).append(flat(record))
        return original(self, agent, record, spec)

    monkeypatch.setattr(World, "set_acting", spy)
    return seen


def test_fpf_without_pull_is_independent_learning(tiny, tmp_path, monkeypatch):
    fpf = run_in_process(tiny.replace(rounds=3, lambda_u=0.0, lambda_e=0.0, eval_every=0, out=str(tmp_path / "fpf")))
    ind = run_in_process(tiny.replace(rounds=3, strategy="independent", out=str(tmp_path / "ind")))
    assert fpf["rounds_completed"] == ind["rounds_completed"] == 3
    assert returns(tmp_path / "fpf") == returns(tmp_path / "ind")


def test_a_non_participant_learns_exactly_as_an_independent_learner(tiny, tmp_path, monkeypatch):
    """Agent 0 participates and is pulled (strongly); agents 1 and 2 are not pulled, so
    their policies equal independent learners' as long as the game (shared with agent 0)
    hands them the same experience: in round 1 it does, since every agent starts at the
    common initial policy."""
    seen = record_acting(monkeypatch)
    run_in_process(tiny.replace(rounds=1, participation="ids:0", fed_alpha=0.4, lambda_u=1.0, lambda_e=0.5,
                          out=str(tmp_path / "fpf")))
    fpf = {a: v[-1] for a, v in seen.items()}
    seen.clear()
    run_in_process(tiny.replace(rounds=1, strategy="independent", out=str(tmp_path / "ind")))
    ind = {a: v[-1] for a, v in seen.items()}
    for agent in (1, 2):
        np.testing.assert_array_equal(fpf[agent], ind[agent])
    assert not np.allclose(fpf[0], ind[0])  # the participant was pulled
