"""Checkpoint and resume: a killed simulation continues with no metric row lost, repeated or changed."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import run_sim
from clients.storage import AgentStorage
from conftest import SMALL_ROUNDS, SMALL_RUN, small_run_flags
from federation.config import RunConfig
from federation.simulation import simulate

ROOT = Path(__file__).resolve().parents[1]
TINY = SMALL_RUN


def test_storage_keeps_the_previous_round_and_loads_the_newest_before_a_round(tmp_path):
    storage = AgentStorage(tmp_path, 0)
    for rnd in (1, 2, 3):
        storage.save({"learner": {"w": torch.tensor(float(rnd))}}, rnd)
    assert storage.load_before(4)["round"] == 3
    # a run killed after the agent saved round 3 but before the server recorded it resumes at round 3
    assert storage.load_before(3)["learner"]["w"] == 2.0
    assert storage.load_before(2) is None  # only one earlier round is kept
    storage.clear()
    assert storage.load_before(4) is None and not storage.exists()


def _rows(out: Path) -> list[dict]:
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if not k.endswith("_s") and k != "agents_context_records"} for r in rows]


def _checkpoint_round(out: Path) -> int:
    try:
        return int(torch.load(out / "checkpoint.pt", weights_only=False)["round"])
    except (FileNotFoundError, RuntimeError, EOFError, KeyError):
        return 0


def test_a_killed_simulation_resumes_to_the_metrics_of_an_uninterrupted_run(tmp_path, uninterrupted_small_run,
                                                                           own_processes):
    whole, rounds = uninterrupted_small_run, SMALL_ROUNDS  # 4

    killed = tmp_path / "killed"
    log = (tmp_path / "killed.log").open("w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_sim.py"),
                             *small_run_flags(rounds=rounds, out=killed)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=own_processes.env())
    try:
        deadline = time.time() + 600
        while _checkpoint_round(killed) < 2 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be killed: " + (tmp_path / "killed.log").read_text()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, its Ray workers and Ray's own processes
        proc.wait()
    log.close()
    done = _checkpoint_round(killed)
    assert 2 <= done < rounds, (tmp_path / "killed.log").read_text()[-2000:]
    assert not (killed / "summary.json").exists()

    assert run_sim.main(["--resume", str(killed), "--no-progress"]) == 0
    resumed, reference = _rows(killed), _rows(whole)
    assert [r["round"] for r in resumed] == ["1", "2", "3", "4"]
    # the same numbers; diagnostics of float32 networks may differ in the 7th digit, as they do
    # between two uninterrupted runs in different processes (rounds 1-2 here)
    assert [set(r) for r in resumed] == [set(r) for r in reference]
    for got, want in zip(resumed, reference):
        for key in want:
            if "return" in key or key in ("cv", "participation_rate", "uploads") or "" in (got[key], want[key]):
                assert got[key] == want[key], (got["round"], key)
            else:
                assert float(got[key]) == pytest.approx(float(want[key]), rel=1e-5, abs=1e-9, nan_ok=True), key


def test_a_resume_with_other_settings_is_refused(tmp_path, uninterrupted_small_run):
    out = tmp_path / "run"
    shutil.copytree(uninterrupted_small_run, out)  # a finished run of SMALL_ROUNDS (4) rounds
    cfg = RunConfig.of(**{k.replace("-", "_"): v for k, v in TINY.items()}, rounds=SMALL_ROUNDS + 1, out=str(out),
                       progress=False, lambda_u=0.5, resume=True).validated()
    from federation.simulation import RunFailed

    with pytest.raises(RunFailed, match=r"belongs to a run with other settings \(lambda-u\)"):
        simulate(cfg)
    # a checkpoint written before a setting existed resumes while the run leaves it at its
    # default, and is refused otherwise
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    older = json.loads(state["config"])
    del older["ia-envy"]
    state["config"] = json.dumps(older, sort_keys=True)
    torch.save(state, out / "checkpoint.pt")
    from federation.server_app import Federation

    same = cfg.replace(lambda_u=RunConfig().fpf.lambda_u)  # the settings of the first run
    with pytest.raises(ValueError, match=r"other settings \(ia-envy\)"):
        Federation(same.replace(ia_envy=1.0)).restore()
    assert Federation(same).restore() == SMALL_ROUNDS


def test_resume_of_a_directory_without_a_run_is_refused(tmp_path, capsys):
    assert run_sim.main(["--resume", str(tmp_path / "nothing")]) == 2
    assert "no config.json there" in capsys.readouterr().err
