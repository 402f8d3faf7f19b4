"""experiments/: campaign files (schema, merge order, plan), the finished-run rule, and the
engine (resume, failures, --jobs, needs, Ctrl-C), on tiny Matthew runs."""

from __future__ import annotations

import csv
import json
import re
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from experiments import engine, status
from experiments.__main__ import main as cli
from experiments.campaign import CampaignError, load
from experiments.status import State
from federation.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]

TINY = """
[defaults]
env = "matthew"
agents = 3
rounds = {rounds}
batch = 2
steps = 10
hidden = 8
minibatch = 64
epochs = 2
eval-every = 0
"""


def campaign_file(tmp_path: Path, body: str = "", *, rounds: int = 2, seeds=(0,), methods=("independent",),
                  scenarios: str = '[scenarios.m3]\nlabel = "Matthew (3)"\n', name: str = "c.toml") -> Path:
    """A tiny campaign under ``tmp_path``: ``scenarios`` (one by default), the given methods."""
    text = (f'name = "tiny"\nout = "{tmp_path / "out"}"\nseeds = {list(seeds)}\n' + TINY.format(rounds=rounds)
            + "\n" + scenarios + "".join(f'\n[methods.{m}]\nstrategy = "{m}"\n' for m in methods) + body)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_text(text)
    return path


def rows_without_timings(path: Path) -> list[dict]:
    with (path / "metrics.csv").open() as f:
        return [{k: v for k, v in row.items() if not k.endswith("_s")} for row in csv.DictReader(f)]


def fake_run(cfg: RunConfig) -> dict:
    """A stand-in runner: writes a finished run's files (no training)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(cfg.to_json())
    write_metrics(out, cfg.rounds)
    (out / "summary.json").write_text(json.dumps({"rounds_completed": cfg.rounds}))
    return {"rounds_completed": cfg.rounds}


def write_metrics(out: Path, rounds: int, numbers=None) -> None:
    with (out / "metrics.csv").open("w") as f:
        f.write("round,collective_return,round_s\n")
        for r in numbers or range(1, rounds + 1):
            f.write(f"{r},1.0,0.1\n")


# ---------------------------------------------------------------------- schema
BAD = """name = "bad"
out = "o"
{top}
[defaults]
rounds = 2
{defaults}
[scenarios.m3]
env = "matthew"
agents = 3
{scenario}
[methods.independent]
strategy = "independent"
{method}
{tail}
"""


@pytest.mark.parametrize("parts, where, words", [
    ({"method": "lamda-u = 0.5"}, "[methods.independent]: 'lamda-u'", "unknown key; did you mean 'lambda-u'"),
    ({"scenario": 'methods = ["independent", "fpff"]'}, "[scenarios.m3]: 'methods'", "unknown method 'fpff'"),
    ({"top": "seeds = [0, 0]"}, "top level: 'seeds'", "lists a seed twice"),
    ({"top": 'seeds = "0 1"'}, "top level: 'seeds'", "non-empty list"),
    ({"top": "seeds = [-1]"}, "top level: 'seeds'", "whole number"),
    ({"top": "seeds = [true]"}, "top level: 'seeds'", "whole number"),
    ({"top": "seeds = []"}, "top level: 'seeds'", "non-empty list"),
    ({"top": "#"}, "top level", "'seeds' is missing"),
    ({"scenario": "seeds = [1.5]"}, "[scenarios.m3]: 'seeds'", "whole number"),
    ({"top": 'seeds = [0]\nrunner = "ray"'}, "'runner'", "in-process, simulation"),
    ({"defaults": "seed = 3"}, "[defaults]: 'seed'", "set by the engine"),
    ({"defaults": "fed-updates = 3"}, "[defaults]: --fed-updates", "does not apply"),
    ({"defaults": "agents = 3\nagents_ = 3"}, "[defaults]: 'agents_'", "did you mean 'agents'"),
    ({"defaults": "batch = 2\n'batch' = 3"}, "", "not valid TOML"),
    ({"defaults": "game-options = 'a=1'\ngame_options = 'b=2'"}, "[defaults]: 'game_options'", "given twice"),
    ({"defaults": "hidden = [8, 16]"}, "[defaults]: 'hidden'", "single value"),
    ({"tail": '[scenario.x]\nenv = "job"'}, "unknown key 'scenario'", "did you mean 'scenarios'"),
    ({"top": "seeds = [0]\nvolume = 3"}, "top level: unknown key 'volume'", "valid keys"),
    ({"scenario": 'needs = ["m3"]'}, "[scenarios.m3]: 'needs'", "cannot need itself"),
    ({"scenario": 'needs = ["other"]'}, "[scenarios.m3]: 'needs'", "unknown scenario 'other'"),
    ({"scenario": 'seeds = [1]', "tail": '[scenarios.n]\nenv = "matthew"\nneeds = ["m3"]'},
     "[scenarios.n] needs 'm3'", "no seed 0"),
    ({"scenario": 'batch = "three"'}, "scenario 'm3', method 'independent', seed 0",
     "(batch is set in [scenarios.m3])"),
    ({"scenario": 'preset = "no-such-preset"'}, "[scenarios.m3]: 'preset'", "unknown preset"),
    ({"scenario": 'game-options = "x={nope}"'}, "[scenarios.m3]: 'game-options'", "{nope}"),
    ({"scenario": "[scenarios.m3.overrides.fpf]\nlambda-u = 1.0"}, "[scenarios.m3.overrides]",
     "'fpf' is not a method of this scenario"),
    ({"top": 'seeds = [0]\nrun_dir = "runs/{method}_seed{seed}"'}, "top level: 'run_dir'", "must use"),
    ({"top": "seeds = [0]\ncomparisons = 3"}, "[[comparisons]]", "array of tables"),
    ({"tail": '[methods."D&F"]\nstrategy = "dnf"'}, '[methods.D&F]', "use letters, digits"),
    ({"scenario": 'method_seeds = { fpf = [0, 1] }'}, "[scenarios.m3]: 'method_seeds'", "'fpf' is not a method"),
    ({"scenario": 'method_seeds = { independent = [0.5] }'}, "[scenarios.m3]: 'method_seeds': 'independent'",
     "whole number"),
    ({"scenario": 'method_seeds = [0, 1]'}, "[scenarios.m3]: 'method_seeds'", "method = [seeds]"),
])
def test_schema_errors_name_the_file_table_and_key(tmp_path, parts, where, words):
    parts = {"top": "seeds = [0]", "defaults": "", "scenario": "", "method": "", "tail": ""} | parts
    path = tmp_path / "bad.toml"
    path.write_text(BAD.format(**parts))
    with pytest.raises(CampaignError) as err:
        load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and where in message and words in message, message


def test_missing_keys_and_report_tables(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('seeds = [0]\n[methods.a]\nstrategy = "independent"\n[scenarios.s]\nrounds = 1\n')
    with pytest.raises(CampaignError, match="'out' is missing"):
        load(path)
    path = campaign_file(tmp_path, '\n[[comparisons]]\na = "fpf"\nb = "independent"\n[[claims]]\ntext = "x"\n'
                                   '\n[figures.curves]\nmetric = "collective_return"\n\n[sweeps]\nk = 1\n')
    c = load(path)
    assert c.comparisons == [{"a": "fpf", "b": "independent"}] and c.claims == [{"text": "x"}]
    assert c.figures == {"curves": {"metric": "collective_return"}} and c.tables == {"sweeps": {"k": 1}}
    assert c.label("m3") == "Matthew (3)" and c.label("independent") == "independent"
    path.write_text("figures = 3\n" + path.read_text().split("[figures.curves]")[0])
    with pytest.raises(CampaignError, match=r"\[figures\]: must be a table"):
        load(path)


# ---------------------------------------------------------------------- plan
def test_merge_order_preset_defaults_scenario_method_override_then_seed_and_out(tmp_path):
    path = tmp_path / "merge.toml"
    path.write_text(f"""
name = "merge"
out = "{tmp_path / 'o'}"
seeds = [0, 1]
[defaults]
preset = "fpf-matthew"    # env matthew, agents 10, rounds 200, participation 0.5
agents = 4
rounds = 2
batch = 2
lambda-u = 0.2
[scenarios.a]
lambda_u = 0.3
batch = 3
[scenarios.a.overrides.fpf]
lambda-e = 0.07
[scenarios.b]
methods = ["fpf"]
seeds = [1]
needs = ["a/fpf"]
fed-lr = 0.002
[methods.independent]
strategy = "independent"
[methods.fpf]
strategy = "fpf"
lambda-u = 0.4
""")
    c = load(path)
    assert [(r.seed, r.scenario, r.method) for r in c.plan()] == [
        (0, "a", "independent"), (0, "a", "fpf"), (1, "a", "independent"), (1, "a", "fpf"), (1, "b", "fpf")]
    by = {r.key: r.cfg for r in c.plan(seeds=[0, 1])}
    ind, fpf, b = by["a", "independent", 0], by["a", "fpf", 1], by["b", "fpf", 1]
    assert (ind.env, ind.agents, ind.rounds, ind.world.batch, ind.fpf.lambda_u) == ("matthew", 4, 2, 3, 0.3)
    assert (fpf.fpf.lambda_u, fpf.fpf.lambda_e, fpf.seed) == (0.4, 0.07, 1)  # method over scenario; the override
    assert ind.fpf.lambda_e == RunConfig().fpf.lambda_e  # the override is fpf's only
    assert (b.world.batch, b.fpf.lambda_u, b.fpf.fed_lr, b.fpf.lambda_e) == (2, 0.4, 0.002, RunConfig().fpf.lambda_e)
    assert fpf.out == str(tmp_path / "o" / "runs" / "a" / "fpf_seed1")
    assert [r.key for r in c.plan(seeds=[1])] == [("a", "independent", 1), ("a", "fpf", 1), ("b", "fpf", 1)]
    assert c.plan(seeds=[1])[-1].needs == (("a", "fpf", 1),)
    with pytest.raises(CampaignError, match="no method 'dnf'"):
        c.plan(methods=["dnf"])


def test_a_method_may_have_more_seeds_than_its_scenario(tmp_path):
    path = campaign_file(tmp_path, seeds=(0, 1), methods=("independent", "avg"),
                         scenarios='[scenarios.m3]\nmethod_seeds = { independent = [0, 1, 2, 3] }\n'
                                   '[scenarios.other]\nseeds = [5]\n')
    c = load(path)
    plan = [(r.seed, r.scenario, r.method) for r in c.plan()]
    assert plan == [(0, "m3", "independent"), (0, "m3", "avg"), (1, "m3", "independent"), (1, "m3", "avg"),
                    (5, "other", "independent"), (5, "other", "avg"), (2, "m3", "independent"),
                    (3, "m3", "independent")]
    assert c.seeds_of("m3", "independent") == (0, 1, 2, 3) and c.seeds_of("m3", "avg") == (0, 1)
    assert [r.key for r in c.plan(seeds=[3])] == [("m3", "independent", 3)]
    with pytest.raises(CampaignError, match="no seed 7 in this campaign; its seeds: 0, 1, 2, 3, 5"):
        c.plan(seeds=[7])


def test_scenarios_follow_those_they_need_and_templates_fill_in(tmp_path):
    path = campaign_file(tmp_path, seeds=(3,), scenarios='[scenarios.zero]\nneeds = ["first"]\n'
                         '[scenarios.first]\nneeds = ["m3"]\nstorage-dir = "{out}/agents/{scenario}-{method}-{seed}"\n'
                         '[scenarios.m3]\n')
    c = load(path)
    assert [r.scenario for r in c.plan()] == ["m3", "first", "zero"]
    first = c.plan(scenarios=["first"])[0]
    assert first.cfg.execution.storage_dir == f"{tmp_path / 'out'}/agents/first-independent-3"
    assert first.needs == (("m3", "independent", 3),)
    path.write_text(path.read_text().replace('[scenarios.m3]\n', '[scenarios.m3]\nneeds = ["zero"]\n'))
    with pytest.raises(CampaignError, match="cycle: .*zero -> first -> m3 -> zero"):
        load(path)


def test_the_fpf_ssd_3_plan_equals_the_committed_configs():
    """experiments/campaigns/fpf-ssd-3.toml makes exactly the runs of the former reproduce_fpf.py's
    cleanup-3 and harvest-3 scenarios (docs/results/ssd/runs), in the same order, and the
    ablation planned since on Cleanup: LMF with diffusion."""
    c = load(ROOT / "experiments" / "campaigns" / "fpf-ssd-3.toml")
    ablation = [r for r in c.plan() if r.method == "lmf-diffusion"]
    assert [(r.scenario, r.seed) for r in ablation] == [("cleanup-3", s) for s in (0, 1, 2)]
    assert ablation[0].cfg.lmf.mode == "diffusion"
    plan = [r for r in c.plan() if r.method != "lmf-diffusion"]
    assert len(plan) == 36 and [r.seed for r in plan] == [0] * 12 + [1] * 12 + [2] * 12
    assert [(r.scenario, r.method) for r in plan[:12]] == [
        (s, m) for s in ("cleanup-3", "harvest-3") for m in ("independent", "avg", "min", "fpf", "dnf", "lmf")]
    for run in plan:
        assert run.cfg.out == f"docs/results/ssd/runs/{run.scenario}/{run.method}_seed{run.seed}"
        committed = RunConfig.from_json((ROOT / run.cfg.out / "config.json").read_text())
        ours, theirs = asdict(run.cfg), asdict(committed)
        for d in (ours, theirs):
            d.pop("out"), d.pop("execution")
        assert ours == theirs, run.name
    assert c.label("lmf") == "LMF" and c.runner == "in-process"


# ---------------------------------------------------------------------- the finished-run rule
def test_the_finished_run_rule_on_hand_made_directories(tmp_path):
    cfg = RunConfig.of(env="matthew", agents=3, rounds=3, batch=2, steps=10, hidden=8, out=str(tmp_path / "r"))
    out = Path(cfg.out)
    assert status.check(cfg) == status.RunStatus(State.MISSING, 0, 3)
    out.mkdir()
    (out / "config.json").write_text(cfg.to_json())
    assert status.check(cfg).state is State.MISSING  # a start that wrote no round
    write_metrics(out, 2)
    s = status.check(cfg)
    assert (s.state, s.rounds_done, s.resumable) == (State.PARTIAL, 2, False)
    (out / "checkpoint.pt").write_bytes(b"x")
    assert status.check(cfg).resumable and status.check(cfg).progress == "2/3"
    (out / "summary.json").write_text("{}")  # a summary of fewer rounds than planned: not done
    assert status.check(cfg).state is State.PARTIAL
    write_metrics(out, 3)
    assert status.check(cfg).state is State.DONE
    # out and execution settings are not the run's settings
    (out / "config.json").write_text(cfg.replace(out=str(tmp_path / "elsewhere"), torch_threads=2,
                                                 progress=False).to_json())
    assert status.check(cfg).state is State.DONE
    # a finished shorter run, planned longer now: partial, resumable (raising rounds extends it)
    (out / "config.json").write_text(cfg.replace(rounds=2).to_json())
    write_metrics(out, 2)
    assert (status.check(cfg).state, status.check(cfg).resumable) == (State.PARTIAL, True)
    # other settings: stale, saying what differs
    (out / "config.json").write_text(cfg.replace(lambda_u=0.7).to_json())
    s = status.check(cfg)
    assert s.state is State.STALE and "lambda-u: 0.7 -> 0.1" in s.reason
    # more rounds than planned, or rounds not 1..n: stale
    (out / "config.json").write_text(cfg.to_json())
    write_metrics(out, 4)
    assert status.check(cfg).state is State.STALE and "more than the 3" in status.check(cfg).reason
    write_metrics(out, 3, numbers=[1, 3, 4])
    assert status.check(cfg).state is State.STALE
    # failed: the engine's marker, unless the run is done
    write_metrics(out, 2)
    status.write_failure(out, "ValueError: boom", "Traceback ...", 1)
    s = status.check(cfg)
    assert (s.state, s.reason, s.attempts, s.rounds_done) == (State.FAILED, "ValueError: boom", 1, 2)
    assert status.write_failure(out, "ValueError: again")["attempts"] == 2
    write_metrics(out, 3)
    assert status.check(cfg).state is State.DONE
    # results without a readable config: stale
    (out / "config.json").write_text("{")
    assert status.check(cfg).state is State.STALE


# ---------------------------------------------------------------------- the engine
def test_a_half_finished_campaign_resumes_and_equals_an_uninterrupted_run(tmp_path, capsys):
    short = campaign_file(tmp_path, rounds=2)
    report = engine.run_campaign(load(short))
    assert report.complete and [o.rounds for o in report.outcomes.values()] == [2]
    run = load(short).plan()[0]
    assert status.check(run.cfg).state is State.DONE and (run.out / "checkpoint.pt").exists()
    longer = campaign_file(tmp_path, rounds=3)
    run = load(longer).plan()[0]
    s = status.check(run.cfg)
    assert (s.state, s.rounds_done, s.resumable) == (State.PARTIAL, 2, True)
    decisions = engine.run_campaign(load(longer), dry_run=True).decisions
    assert [(d.action, d.why) for d in decisions] == [("resume", "from round 2")]
    report = engine.run_campaign(load(longer))
    assert report.complete and status.check(run.cfg).state is State.DONE
    assert json.loads((run.out / "config.json").read_text())["execution"]["resume"] is True  # continued, not redone
    assert "m3 independent seed 0: done, 3 rounds" in capsys.readouterr().out
    reference = campaign_file(tmp_path / "ref", rounds=3)
    assert engine.run_campaign(load(reference)).complete
    ref = load(reference).plan()[0]
    assert rows_without_timings(run.out) == rows_without_timings(ref.out)
    assert len(rows_without_timings(run.out)) == 3
    # nothing left to do: nothing runs
    assert engine.run_campaign(load(longer)).outcomes == {}


def test_a_failing_run_is_reported_and_not_retried_forever(tmp_path, monkeypatch, capsys):
    calls = []

    def broken(cfg):
        calls.append(cfg.seed)
        raise ValueError("boom: the game exploded")

    monkeypatch.setitem(engine.RUNNERS, "in-process", broken)
    path = campaign_file(tmp_path, seeds=(0, 1))
    report = engine.run_campaign(load(path))
    assert calls == [0, 1] and len(report.failed) == 2 and not report.complete
    out = capsys.readouterr().out
    assert "FAILED (attempt 1): ValueError: boom: the game exploded" in out and "failed 2" in out
    run = load(path).plan()[0]
    failure = json.loads((run.out / "failure.json").read_text())
    assert failure["reason"] == "ValueError: boom: the game exploded" and failure["attempts"] == 1
    assert "Traceback" in failure["traceback"] and "broken" in failure["traceback"]
    s = status.check(run.cfg)
    assert (s.state, s.attempts) == (State.FAILED, 1)
    engine.run_campaign(load(path))  # not again without --retry-failed
    assert calls == [0, 1]
    assert "--retry-failed tries it again" in capsys.readouterr().out
    engine.run_campaign(load(path), retry_failed=True, seeds=[0])
    assert calls == [0, 1, 0] and status.check(run.cfg).attempts == 2
    engine.run_campaign(load(path), retry_failed=True, seeds=[0])  # max_attempts 2: no more
    assert calls == [0, 1, 0]
    assert "failed 2 times, the most allowed" in capsys.readouterr().out
    # the CLI says so and exits 1; status lists the reason
    assert cli(["run", str(path), "--retry-failed", "--seeds", "0"]) == 1
    assert cli(["status", str(path)]) == 0
    table = capsys.readouterr().out
    assert "failed (2x)" in table and "ValueError: boom" in table and "2 runs: 2 failed" in table
    # once it works, the marker goes
    monkeypatch.setitem(engine.RUNNERS, "in-process", fake_run)
    engine.run_campaign(load(path), retry_failed=True, max_attempts=3)
    assert status.check(run.cfg).state is State.DONE and not (run.out / "failure.json").exists()


def test_stale_runs_are_left_alone_unless_forced(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(engine.RUNNERS, "in-process", fake_run)
    path = campaign_file(tmp_path)
    run = load(path).plan()[0]
    fake_run(run.cfg.replace(lambda_u=0.9))
    report = engine.run_campaign(load(path))
    assert report.outcomes == {} and not report.complete
    assert "stale (other settings: lambda-u: 0.9 -> 0.1)" in capsys.readouterr().out
    assert json.loads((run.out / "config.json").read_text())["fpf"]["lambda_u"] == 0.9
    assert engine.run_campaign(load(path), force=True).complete
    assert status.check(run.cfg).state is State.DONE


def test_needs_wait_for_their_runs_and_a_failure_blocks_them(tmp_path, monkeypatch, capsys):
    order = []

    def runner(cfg):
        order.append(Path(cfg.out).parent.name)
        if Path(cfg.out).parent.name == "m3" and cfg.seed == 1:
            raise RuntimeError("no")
        return fake_run(cfg)

    monkeypatch.setitem(engine.RUNNERS, "in-process", runner)
    path = campaign_file(tmp_path, seeds=(0, 1), scenarios='[scenarios.after]\nneeds = ["m3"]\n[scenarios.m3]\n')
    report = engine.run_campaign(load(path))
    assert order == ["m3", "after", "m3"]
    assert list(report.blocked) == [("after", "independent", 1)]
    assert "not running after independent seed 1" in capsys.readouterr().out


def test_a_configuration_that_needs_another_runs_output_is_checked_once_that_has_run(tmp_path, monkeypatch):
    """The mediator's policy comes from another scenario's run: planned unvalidated, checked
    before it starts; still invalid then (here: the stand-in wrote no policies.pt), it fails."""
    monkeypatch.setitem(engine.RUNNERS, "in-process", fake_run)
    path = tmp_path / "p.toml"
    path.write_text(f"""
name = "mediated"
out = "{tmp_path / 'out'}"
seeds = [0]
[defaults]
env = "cleanup"
agents = 2
game-options = "map=lio-7,episode_length=20"
rounds = 2
[scenarios.mediated]
methods = ["pareto"]
needs = ["pretrain"]
mediator-policy = "{{out}}/runs/pretrain/avg_seed{{seed}}/policies.pt"
[scenarios.pretrain]
methods = ["avg"]
[methods.avg]
strategy = "avg"
[methods.pareto]
strategy = "pareto"
""")
    c = load(path)
    mediated = c.plan(scenarios=["mediated"])[0]
    assert "policies.pt does not exist" in mediated.deferred
    assert mediated.cfg.delegation.mediator_policy == f"{tmp_path / 'out'}/runs/pretrain/avg_seed0/policies.pt"
    report = engine.run_campaign(c)
    assert report.outcomes["pretrain", "avg", 0].ok and not report.outcomes["mediated", "pareto", 0].ok
    assert "policies.pt does not exist" in status.check(mediated.cfg).reason


def test_ctrl_c_stops_cleanly_without_a_failure_marker(tmp_path, monkeypatch, capsys):
    def interrupted(cfg):
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        raise KeyboardInterrupt

    monkeypatch.setitem(engine.RUNNERS, "in-process", interrupted)
    path = campaign_file(tmp_path, seeds=(0, 1))
    report = engine.run_campaign(load(path))
    assert report.interrupted and report.outcomes == {}
    assert "interrupted" in capsys.readouterr().out
    assert not list((tmp_path / "out").rglob("failure.json"))
    assert cli(["run", str(path)]) == 130


def test_two_jobs_give_the_same_metrics_as_one(tmp_path):
    one = campaign_file(tmp_path / "one", methods=("independent", "avg"))
    two = campaign_file(tmp_path / "two", methods=("independent", "avg"))
    assert engine.run_campaign(load(one), jobs=1).complete
    report = engine.run_campaign(load(two), jobs=2)
    assert report.complete and len(report.outcomes) == 2
    for a, b in zip(load(one).plan(), load(two).plan()):
        assert rows_without_timings(a.out) == rows_without_timings(b.out), a.name


def test_cli_status_dry_run_and_report_stub(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(engine.RUNNERS, "in-process", fake_run)
    path = campaign_file(tmp_path, seeds=(0, 1))
    assert cli(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 runs planned, 0 done, 2 to run" in out and "would start m3 independent seed 1" in out
    assert cli(["run", str(path), "--seeds", "1"]) == 0
    assert cli(["status", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-4].split() == ["scenario", "method", "seed", "state", "rounds", "reason"]
    assert lines[-3].split() == ["m3", "independent", "0", "missing", "0/2"]
    assert lines[-2].split() == ["m3", "independent", "1", "done", "2/2"]
    assert lines[-1] == "2 runs: 1 done, 1 missing"
    assert cli(["run", str(path), "--seeds", "7"]) == 2
    assert "no seed 7" in capsys.readouterr().err
    if not (ROOT / "experiments" / "report.py").exists():
        assert cli(["report", str(path)]) == 2
        assert "report: not available yet" in capsys.readouterr().err


def test_status_all_reads_every_shipped_campaign(capsys):
    assert cli(["status", "--all"]) == 0
    out = capsys.readouterr().out
    assert "campaign fpf-ssd-3" in out and re.search(r"39 runs: 3[6-9] done", out)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
