"""A run never fails silently: used output directories, resumes of moved or damaged runs,
agents that miss rounds, Ctrl-C, killed workers and the processes a killed run leaves.
(A SuperNode killed in a deployment: tests/test_deployment.py.)"""

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

import run_sim
from conftest import SMALL_ROUNDS, small_run_flags
from federation import processes
from federation.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
#: a fast run of the in-process runner (matrix game, tabular learners)
FAST = ["--env", "matrix", "--agents", "2", "--learner", "q-table", "--strategy", "independent", "--batch", "2",
        "--no-progress"]
#: a small Flower simulation (3 PPO agents) of SMALL_ROUNDS (4) rounds, as in tests/test_resume.py
SMALL = small_run_flags(rounds=SMALL_ROUNDS)


@pytest.fixture
def in_process(monkeypatch):
    """run_sim.py's runs go to the in-process runner; ``started`` lists the runs that started."""
    import federation.simulation
    from federation.in_process import run_in_process

    started: list[RunConfig] = []

    def run(cfg, verbose=False):
        started.append(cfg)
        return run_in_process(cfg)

    monkeypatch.setattr(federation.simulation, "simulate", run)
    return started


@pytest.fixture(autouse=True)
def own_state_dir(tmp_path, monkeypatch):
    """Process records of these tests go to their own directory."""
    monkeypatch.setenv("FEDGAMES_STATE_DIR", str(tmp_path / "state"))


def _rows(out: Path) -> list[dict]:
    with (out / "metrics.csv").open() as f:
        return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in csv.DictReader(f)]


# ---------------------------------------------------------------------- output directories
def test_a_used_out_needs_resume_or_overwrite(tmp_path, in_process, capsys):
    out = tmp_path / "run"
    assert run_sim.main(FAST + ["--rounds", "2", "--out", str(out)]) == 0
    (out / "notes.txt").write_text("mine")
    first = (out / "config.json").read_bytes()
    capsys.readouterr()

    assert run_sim.main(FAST + ["--rounds", "3", "--seed", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and f"--resume {out}" in err and "--overwrite" in err
    assert len(in_process) == 1 and (out / "config.json").read_bytes() == first  # nothing started, nothing written

    assert run_sim.main(FAST + ["--rounds", "3", "--seed", "1", "--out", str(out), "--overwrite"]) == 0
    assert [r["round"] for r in _rows(out)] == ["1", "2", "3"]
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    assert (out / "notes.txt").read_text() == "mine"  # only the run's own files are replaced

    # several runs: each directory is checked before the first starts
    grid = ["--strategy", "independent", "fedavg", "--out", str(tmp_path / "grid")]
    assert run_sim.main(FAST[:6] + FAST[8:] + ["--rounds", "1"] + grid) == 0
    shutil.rmtree(tmp_path / "grid" / "independent-q-table_seed0")
    started = len(in_process)
    assert run_sim.main(FAST[:6] + FAST[8:] + ["--rounds", "1"] + grid) == 2
    assert len(in_process) == started


def test_an_empty_out_is_refused(capsys):
    assert run_sim.main(FAST + ["--out", ""]) == 2
    assert "out must name a directory" in capsys.readouterr().err


# ---------------------------------------------------------------------- resume
def test_a_moved_run_resumes_to_the_metrics_of_an_uninterrupted_one(tmp_path, in_process):
    assert run_sim.main(FAST + ["--rounds", "2", "--out", str(tmp_path / "a")]) == 0
    shutil.move(tmp_path / "a", tmp_path / "moved")  # its checkpoint still names nothing of the old place
    assert run_sim.main(["--resume", str(tmp_path / "moved") + "/", "--rounds", "4"]) == 0
    assert run_sim.main(FAST + ["--rounds", "4", "--out", str(tmp_path / "whole")]) == 0
    assert _rows(tmp_path / "moved") == _rows(tmp_path / "whole") and len(_rows(tmp_path / "whole")) == 4
    assert json.loads((tmp_path / "moved" / "config.json").read_text())["out"] == str(tmp_path / "moved")


@pytest.mark.parametrize("damage, words", [
    (lambda p: p.write_bytes(p.read_bytes()[:1000]), "cannot be read (1000 bytes"),
    (lambda p: p.write_bytes(b""), "cannot be read (0 bytes"),
    (lambda p: p.unlink(), None),  # no checkpoint: starts from round 1 (killed before its first)
])
def test_a_damaged_checkpoint_is_refused_before_anything_starts(tmp_path, in_process, capsys, damage, words):
    out = tmp_path / "run"
    assert run_sim.main(FAST + ["--rounds", "2", "--out", str(out)]) == 0
    damage(out / "checkpoint.pt")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    rc = run_sim.main(["--resume", str(out), "--rounds", "3"])
    if words is None:
        assert rc == 0 and [r["round"] for r in _rows(out)] == ["1", "2", "3"]
        return
    err = capsys.readouterr().err
    assert rc == 2 and words in err and "--overwrite" in err and "Traceback" not in err
    assert len(in_process) == 1  # refused before the run started
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # config.json byte-identical


def test_resume_cannot_shorten_a_run_or_take_other_settings(tmp_path, in_process, capsys):
    out = tmp_path / "run"
    assert run_sim.main(FAST + ["--rounds", "3", "--out", str(out)]) == 0
    config = (out / "config.json").read_bytes()
    capsys.readouterr()
    assert run_sim.main(["--resume", str(out), "--rounds", "2"]) == 2
    assert "holds 3 rounds, more than --rounds 2" in capsys.readouterr().err
    assert run_sim.main(["--resume", str(out), "--overwrite"]) == 2
    assert "--overwrite cannot be given with it" in capsys.readouterr().err
    # a config.json edited to other settings than its checkpoint's is refused, and left as it is
    edited = json.loads(config)
    edited["seed"] = 5
    (out / "config.json").write_text(json.dumps(edited))
    assert run_sim.main(["--resume", str(out), "--rounds", "4"]) == 2
    assert "other settings (seed)" in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["seed"] == 5 and len(in_process) == 1


# ---------------------------------------------------------------------- agents that miss rounds
def _dropping(federation, agent: int, rounds: set[int]):
    """An in-process exchange in which ``agent``'s worker fails in ``rounds``."""
    from flwr.app import Context, Error, Message, RecordDict

    from clients import client_app

    federation.bind({a: a + 1 for a in range(federation.cfg.agents)})
    contexts = {a + 1: Context(run_id=1, node_id=a + 1, node_config={"agent-id": a}, state=RecordDict(),
                               run_config={}) for a in range(federation.cfg.agents)}

    def exchange(messages):
        replies = []
        for m in messages:
            rnd = int(m.content["config"]["server-round"])
            if federation.node_agent[m.metadata.dst_node_id] == agent and rnd in rounds:
                replies.append(Message(Error(code=0, reason="the worker died"), reply_to=m))
            else:
                replies.append(client_app.train(m, contexts[m.metadata.dst_node_id]))
        return replies

    return exchange


@pytest.mark.parametrize("allowed, fails", [(1, True), (2, False)])
def test_an_agent_that_misses_too_many_rounds_ends_the_run_with_its_name(tmp_path, allowed, fails):
    from flwr.supercore.task_identity import TaskIdentity

    from federation.server_app import AgentsLost, Federation

    cfg = RunConfig.of(env="matrix", agents=2, learner="q-table", strategy="independent", rounds=4, batch=2,
                       progress=False, max_missed_rounds=allowed, out=str(tmp_path / "run"))
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    federation = Federation(cfg)
    exchange = _dropping(federation, 1, {2, 3})
    if fails:
        with pytest.raises(AgentsLost, match=r"agent 1 missed 2 rounds \(2, 3\): more than --max-missed-rounds 1"):
            federation.run(exchange, 0, time.perf_counter(), {})
    else:
        federation.run(exchange, 0, time.perf_counter(), {})
    rows = _rows(tmp_path / "run")
    assert [r["trained_agents"] for r in rows] == ["2", "1", "1", "2"]
    assert [r["failed_agents"] for r in rows] == ["0", "1", "1", "0"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())  # written before the error
    assert summary.get("missed_rounds") == ({"1": [2, 3]} if fails else None)


# ---------------------------------------------------------------------- stop requests, costs
def test_a_stop_request_finishes_a_round_about_to_end_and_drops_a_long_one(monkeypatch):
    from federation import server_app
    from federation.server_app import StopRequest

    clock = [100.0]
    monkeypatch.setattr(server_app.time, "perf_counter", lambda: clock[0])
    stop = StopRequest(grace=10.0)
    assert "no round is in progress" in stop.request() and stop.mode == "now"

    stop = StopRequest(grace=10.0)
    stop.begin(1)
    clock[0] = 104.0
    assert "round 1" in stop.request() and stop.mode == "now"  # the first round: no estimate
    stop = StopRequest(grace=10.0)
    clock[0] = 100.0
    stop.begin(1)
    clock[0] = 130.0
    stop.end()  # round 1 took 30 s
    stop.begin(2)
    clock[0] = 151.0  # 9 s left < 10 s
    assert stop.request().startswith("stopping after round 2 (about 9 s)") and stop.mode == "after-round"
    assert stop.request().startswith("stopping at once") and stop.mode == "now"  # a second Ctrl-C
    stop = StopRequest(grace=10.0)
    stop.last_round_s = 30.0
    clock[0] = 160.0
    stop.begin(3)
    clock[0] = 171.0  # 30 - 11 = 19 s left > 10 s
    assert "about 19 s more" in stop.request() and stop.mode == "now"


def test_a_costly_run_is_announced_after_its_first_round():
    from federation.server_app import cost_note

    assert cost_note(10.0, 10_000_000, 79) is None  # 13 min in all, 10 MB
    note = cost_note(130.0, 800_000_000, 79)
    assert "130 s" in note and "800 MB" in note and "79 rounds left" in note and "2.9 h" in note  # 79 * 130 s
    assert cost_note(1.0, 300_000_000, 5) is not None  # a large checkpoint alone
    assert "about 5.6 h" in cost_note(2.0, 0, 10_000)  # many cheap rounds


# ---------------------------------------------------------------------- leftover processes
def test_the_leftovers_of_a_killed_run_are_ended_by_pid_and_live_runs_are_left_alone(tmp_path):
    state = tmp_path / "state"
    # a "driver" records a child it started, then dies without ending it (as a SIGKILLed run)
    driver = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "from pathlib import Path\n"
        "from federation import processes\n"
        f"r = processes.Registry('out', Path({str(state)!r}))\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "r.update()\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n")], cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    child = int(driver.stdout.readline())
    try:
        assert processes.start_time(child) is not None
        assert processes.cleanup(state) == []  # the driver lives: its processes are its own
        assert processes.start_time(child) is not None
        driver.kill()
        driver.wait()
        ended = processes.cleanup(state, grace=2.0)
        assert ended == [(str((ROOT / "out").absolute()), [child])]
        assert processes.start_time(child) is None and list(state.glob("*.json")) == []
    finally:
        for pid in (driver.pid, child):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def test_a_recorded_pid_that_now_belongs_to_another_process_is_not_touched():
    me = processes.start_time(os.getpid())
    assert processes.end({os.getpid(): me + 1}) == []  # same PID, other start time: another process
    assert processes.start_time(os.getpid()) == me


# ---------------------------------------------------------------------- real simulations
def _descendants_while(proc: subprocess.Popen, done) -> dict[int, int]:
    seen: dict[int, int] = {}
    deadline = time.time() + 600
    while not done() and proc.poll() is None and time.time() < deadline:
        seen |= processes.descendants(proc.pid)
        time.sleep(0.05)
    return seen | processes.descendants(proc.pid)


def _rounds_done(out: Path) -> int:
    try:
        return max(0, len((out / "metrics.csv").read_text().strip().splitlines()) - 1)
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_ctrl_c_stops_a_simulation_cleanly_and_it_resumes_to_the_uninterrupted_metrics(
        tmp_path, uninterrupted_small_run, own_processes):
    out, log = tmp_path / "run", (tmp_path / "run.log").open("w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_sim.py"), *SMALL, "--out", str(out)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env=own_processes.env())
    try:
        seen = _descendants_while(proc, lambda: _rounds_done(out) >= 1)
        assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
        assert seen  # Ray's processes
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to the whole process group
        rc = proc.wait(timeout=60)  # the round in progress is dropped, not waited for
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    text = (tmp_path / "run.log").read_text()
    assert rc == 130, text[-3000:]
    assert "Ctrl-C: stopping" in text and f"--resume {out}" in text and "Traceback" not in text
    assert processes.alive(seen) == {}  # every process the run started has ended
    summary = json.loads((out / "summary.json").read_text())
    done = summary["rounds_completed"]
    assert summary["interrupted"] is True and 1 <= done < 4 and (out / "curves.png").is_file()

    assert run_sim.main(["--resume", str(out)]) == 0
    resumed, reference = _rows(out), _rows(uninterrupted_small_run)
    assert [r["round"] for r in resumed] == ["1", "2", "3", "4"]
    assert [set(r) for r in resumed] == [set(r) for r in reference]
    for got, want in zip(resumed, reference):  # as in tests/test_resume.py
        for key in want:
            if key == "agents_context_records":
                continue
            if "return" in key or key in ("cv", "participation_rate", "trained_agents") or "" in (got[key], want[key]):
                assert got[key] == want[key], (got["round"], key)
            else:
                assert float(got[key]) == pytest.approx(float(want[key]), rel=1e-5, abs=1e-9, nan_ok=True), key


@pytest.mark.slow
def test_a_killed_worker_trains_again_or_the_run_fails_with_the_reason(tmp_path, own_processes):
    out, log = tmp_path / "run", (tmp_path / "run.log").open("w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_sim.py"), *SMALL, "--out", str(out)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env=own_processes.env())
    try:
        seen = _descendants_while(proc, lambda: _rounds_done(out) >= 1)
        assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
        # one agent's worker: a ClientAppActor among the run's own processes, by its PID
        actors = [pid for pid in processes.alive(seen)
                  if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::ClientAppActor")]
        assert actors
        killed_after = _rounds_done(out)
        os.kill(actors[0], signal.SIGKILL)
        rc = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    text = (tmp_path / "run.log").read_text()
    trained = [int(float(r["trained_agents"])) for r in _rows(out)]
    if rc == 0:  # recovered: every agent trains again within two rounds of the kill
        assert len(trained) == 4 and all(n == 3 for n in trained[killed_after + 2:]), (trained, text[-3000:])
        assert sum(3 - n for n in trained) <= 1  # at most the round it died in
    else:
        assert "missed" in text and "max-missed-rounds" in text, text[-3000:]
    assert processes.alive(seen) == {}
