"""The grouped configuration: help per group and per flag, ranges checked before anything
starts, flags the chosen strategy does not read refused, presets, deprecated spellings."""

import dataclasses
import json
import warnings
from pathlib import Path

import pytest

import run_sim
import strategies
from clients.settings import Settings, check_value, setting
from federation import presets
from federation.config import ALIASES, GROUPS, ConfigError, RunConfig, check_applies

ROOT = Path(__file__).resolve().parents[1]


def run(argv, tmp_path, capsys):
    """run_sim's exit status (argparse's too) and its stderr; nothing may be written to OUT."""
    out = tmp_path / "never-written"
    try:
        code = run_sim.main(argv + ["--out", str(out)] if "--out" not in argv and "--resume" not in argv else argv)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert not out.exists()
    assert "Traceback" not in err
    return code, err


# ---------------------------------------------------------------------- help
def test_help_has_one_section_per_group_and_a_sentence_per_flag():
    parser = run_sim.parser()
    titles = [g.title for g in parser._action_groups]
    assert all(cls.title in titles for cls in GROUPS.values()) and RunConfig.title in titles
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        flag = action.option_strings[0].removeprefix("--")
        text = (action.help or "").split(" (default:")[0]
        assert text.lower() not in (flag, flag.replace("-", " "), action.dest, action.dest.replace("_", " "))
        assert len(text.split()) >= 3, f"--{flag}: help '{text}' is not a sentence"


def test_every_field_has_help_and_a_unique_flag():
    keys = RunConfig.keys()
    assert len(keys) == sum(len(dataclasses.fields(c)) for c in GROUPS.values()) + 7
    for key, (_, f) in keys.items():
        assert f.metadata.get("help"), key


def test_help_shows_range_and_choices(capsys):
    with pytest.raises(SystemExit):
        run_sim.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--dqn-lr X Adam learning rate of the Q-network (default: 0.001; range: (0, 1])" in out
    assert "choices: round, sgd, adam" in out
    assert "Mechanism design (md, md-nomrp):" in out


# ---------------------------------------------------------------------- fuzz
@pytest.mark.parametrize("argv, expected", [
    (["--ppo-vf-coef", "-1"], "--ppo-vf-coef must be in [0, 1e+06], got -1"),
    (["--vf-coef", "-1"], "--ppo-vf-coef must be in [0, 1e+06], got -1"),
    (["--ppo-max-grad-norm", "-1"], "--ppo-max-grad-norm must be in (0, 1e+09], got -1"),
    (["--max-grad-norm", "-1"], "--ppo-max-grad-norm must be in (0, 1e+09], got -1"),
    (["--seed", "-1"], "--seed must be in [0, 2147483647], got -1"),
    (["--seed", str(10**20)], "--seed must be at most 2147483647"),
    (["--seed", "1e20"], "argument --seed: invalid int value: '1e20'"),
    (["--batch", str(10**20)], "--batch must be at most 2147483647"),
    (["--batch", "100000"], "--batch must be in [1, 65536], got 100000"),
    (["--hidden", str(10**20)], "--hidden must be at most 2147483647"),
    (["--hidden", "100000"], "--hidden must be in [1, 65536], got 100000"),
    (["--torch-threads", str(10**20)], "--torch-threads must be at most"),
    (["--torch-threads", "5000"], "--torch-threads must be in [1, 1024], got 5000"),
    (["--client-cpus", "1e300"], "--client-cpus must be in (0, "),
    (["--ppo-lr-actor", "1e300"], "--ppo-lr-actor must be in (0, 1], got 1e+300"),
    (["--lr-actor", "1e300"], "--ppo-lr-actor must be in (0, 1], got 1e+300"),
    (["--attack", "sign-flip", "--attackers", "0", "--attack-scale", "1e300"],
     "--attack-scale must be in [0, 1e+06], got 1e+300"),
    (["--participation", "ids:0,0,1"], "participation list 'ids:0,0,1' names an agent twice"),
    (["--participation", "ids:"], "participation list 'ids:' names no agent"),
    (["--strategy", "lmf", "--agents", "1"], "lmf needs at least 2 agents"),
    (["--agents", str(10**20)], "--agents must be at most 2147483647"),
    (["--agents", "200000"], "--agents must be in [1, 100000], got 200000"),
    (["--env", "cleanup", "--agents", "2", "--game-options", "map=5"],
     "cleanup: map must be a map's name (canonical, lio-7, lio-10) or rows of text, got 5"),
    (["--env", "matthew", "--game-options", "map=lio-7"], "--game-options: matthew takes no option 'map'"),
    (["--q-epsilon-schedule", "sometimes", "--env", "matrix", "--agents", "2", "--learner", "q-table"],
     "--q-epsilon-schedule: unknown value 'sometimes'; valid choices: constant, 1/t"),
])
def test_bad_values_exit_2_naming_the_flag_and_its_range(argv, expected, tmp_path, capsys):
    code, err = run(argv, tmp_path, capsys)
    assert code == 2
    assert expected in err


def test_a_bad_graph_file_a_bad_policy_file_and_a_bad_config_json_exit_2(tmp_path, capsys):
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps({"graphs": [[[None, 1]]]}))
    code, err = run(["--strategy", "lmf", "--agents", "3", "--participation", "1.0", "--graph-file", str(graph)],
                    tmp_path, capsys)
    assert code == 2 and "graph 1 has edge [None, 1]; an edge joins two agent ids" in err
    graph.write_text(json.dumps({"graphs": [[[0, 1], [1, 2]]], "weights": [[["x", 1], [1, 0]]]}))
    code, err = run(["--strategy", "lmf", "--agents", "3", "--participation", "1.0", "--graph-file", str(graph)],
                    tmp_path, capsys)
    assert code == 2 and "'weights' must be a list of square matrices" in err
    policy = tmp_path / "p.pt"
    policy.write_text("not a torch file")
    code, err = run(["--env", "cleanup", "--agents", "2", "--strategy", "pareto", "--mediator-policy", str(policy),
                     "--punishing-policy", str(policy)], tmp_path, capsys)
    assert code == 2 and "is not a joint-policy file" in err and "torch cannot load it" in err
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for text, message in (("[1, 2]", "config.json must hold a JSON object, got list"),
                          ("{", "config.json is not valid JSON"),
                          ('{"world": 3}', "config.json: 'world' must be a JSON object")):
        (run_dir / "config.json").write_text(text)
        code, err = run(["--resume", str(run_dir)], tmp_path, capsys)
        assert code == 2 and message in err


def test_run_config_values_are_checked_like_flags():
    """``flwr run --run-config`` hands strings and floats: the same ranges apply."""
    for values, message in (({"seed": 1e20}, "--seed must be at most"), ({"batch": "1e20"}, "batch must be of type int"),
                            ({"seed": float("nan")}, "seed must be an integer"),
                            ({"client-cpus": 1e300}, "--client-cpus must be in"),
                            ({"agents": True}, "agents must be a number")):
        with pytest.raises(ConfigError, match=message):
            RunConfig.from_mapping(values)


# ---------------------------------------------------------------------- applies
@pytest.mark.parametrize("argv, flag, reader", [
    (["--strategy", "independent", "--lambda-u", "0.5"], "--lambda-u", "strategy dnf, fpf"),
    (["--strategy", "independent", "--md-dropout", "0.9"], "--md-dropout", "strategy md, md-nomrp"),
    (["--strategy", "independent", "--robust", "median"], "--robust", "strategy cen, dnf, fedavg, fpf, lmf"),
    (["--strategy", "fpf", "--mediator-policy", "x.pt"], "--mediator-policy", "strategy pareto, punishing"),
    (["--strategy", "fpf", "--dqn-lr", "0.01"], "--dqn-lr", "learner dqn"),
])
def test_a_flag_the_strategy_does_not_read_exits_2(argv, flag, reader, tmp_path, capsys):
    code, err = run(argv, tmp_path, capsys)
    assert code == 2
    assert f"{flag} (" in err and "does not apply" in err and f"it is read by {reader}" in err


def test_a_flag_read_by_one_of_several_strategies_is_accepted(tmp_path):
    args = run_sim.parser().parse_args(["--strategy", "fpf", "independent", "--lambda-u", "0.5", "--out",
                                        str(tmp_path)])
    runs = run_sim.plan(args, [])
    assert [r.fpf.lambda_u for r in runs] == [0.5, 0.5]
    with pytest.raises(ConfigError, match="--ia-envy"):
        check_applies(["ia_envy"], runs)
    check_applies(["lambda_u", "seed", "batch", "participation", "ppo_gamma"], runs)


def test_resume_refuses_other_settings_and_extends_to_exactly_the_default_rounds(tmp_path, capsys):
    """``--rounds 80`` equals the default and was once read as 'not given'."""
    cfg = RunConfig.of(agents=3, rounds=50, batch=2, steps=10, hidden=8, out=str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(cfg.to_json())
    args = run_sim.parser().parse_args(["--resume", str(tmp_path / "run"), "--rounds", "80"])
    resumed = run_sim.plan(args, [])[0]
    assert resumed.rounds == 80 and resumed.execution.resume and resumed.agents == 3
    args = run_sim.parser().parse_args(["--resume", str(tmp_path / "run")])
    assert run_sim.plan(args, [])[0].rounds == 50
    code, err = run(["--resume", str(tmp_path / "run"), "--strategy", "dnf", "--agents", "5"], tmp_path, capsys)
    assert code == 2 and "--agents, --strategy cannot be given with it" in err


# ---------------------------------------------------------------------- presets
def test_presets_are_listed_and_each_validates(capsys):
    names = presets.available()
    assert names
    assert run_sim.main(["--list-presets"]) == 0
    out = capsys.readouterr().out
    for name, description in names.items():
        assert name in out and description in out
        values = presets.load(name)
        cfg = RunConfig.from_mapping(values | {"out": "/tmp/preset-check"})
        check_applies(values, [cfg])


def test_a_preset_sets_values_and_explicit_flags_win(tmp_path):
    preset = tmp_path / "mine.toml"
    preset.write_text('description = "test"\n[values]\nstrategy = "dnf"\nagents = 4\nlambda-u = 0.3\nbatch = 3\n')
    args = run_sim.parser().parse_args(["--preset", str(preset), "--agents", "6", "--out", str(tmp_path / "o")])
    cfg = run_sim.plan(args, [])[0]
    assert (cfg.strategy, cfg.agents, cfg.fpf.lambda_u, cfg.world.batch) == ("dnf", 6, 0.3, 3)
    args = run_sim.parser().parse_args(["--preset", str(preset), "--strategy", "independent", "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="--lambda-u .* does not apply"):  # the preset's FPF flag
        run_sim.plan(args, [])


def test_bad_presets_exit_2(tmp_path, capsys):
    code, err = run(["--preset", "no-such-preset"], tmp_path, capsys)
    assert code == 2 and "unknown preset 'no-such-preset'; shipped presets:" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("[values]\nagents = 3\n")
    code, err = run(["--preset", str(bad)], tmp_path, capsys)
    assert code == 2 and "needs a 'description' line" in err
    bad.write_text('description = "x"\n[values]\nagentz = 3\n')
    code, err = run(["--preset", str(bad)], tmp_path, capsys)
    assert code == 2 and "unknown config key 'agentz'" in err


# ---------------------------------------------------------------------- names
def test_old_spellings_still_work_with_a_deprecation_note(tmp_path, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = RunConfig.of(gamma=0.9, trim=0.1, out=str(tmp_path))
    assert cfg.ppo.gamma == 0.9 and cfg.robust.trim == 0.1
    assert any("--gamma is deprecated; use --ppo-gamma" in str(w.message) for w in caught)
    args = run_sim.parser().parse_args(["--gamma", "0.9", "--out", str(tmp_path)])
    assert run_sim.plan(args, ["--gamma", "0.9"])[0].ppo.gamma == 0.9
    assert "note: --gamma is deprecated; use --ppo-gamma" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="given twice"):
        RunConfig.of(gamma=0.9, ppo_gamma=0.8)
    assert ALIASES["minibatch"] == "ppo_minibatch"


def test_an_old_config_json_reads_as_the_same_configuration(tmp_path):
    """config.json of earlier runs named fields with their flag (``dqn_lr``); today's name them
    without the group's prefix (``lr``); both read to the same configuration."""
    cfg = RunConfig.of(learner="dqn", dqn_lr=0.01, robust="median", attack="noise", attackers="1", md_lambda=0.5,
                       trim=0.3, out=str(tmp_path))
    old = json.loads(cfg.to_json())
    old["dqn"] = {"dqn_lr": 0.01}
    old["robust"] = {"robust": "median", "robust_f": 1, "trim": 0.3}
    old["attack"] = {"attack": "noise", "attackers": "1", "attack_scale": 10.0}
    old["md"] = {"md_lambda": 0.5}
    assert RunConfig.from_json(json.dumps(old)) == cfg
    assert RunConfig.from_json(cfg.to_json()) == cfg


def test_no_strategy_reads_a_group_that_does_not_exist():
    for name in strategies.available():
        assert set(strategies.strategy_class(name).reads) <= set(GROUPS), name


def test_a_settings_group_checks_its_own_fields():
    @dataclasses.dataclass
    class Toy(Settings):
        prefix = "toy"
        rate: float = setting(0.5, "a rate in (0, 1]", gt=0.0, le=1.0)
        mode: str = setting("a", "a mode", choices=("a", "b"))

    Toy().validate()
    with pytest.raises(ConfigError, match=r"--toy-rate must be in \(0, 1\], got 0"):
        Toy(rate=0.0).validate()
    with pytest.raises(ConfigError, match="--toy-rate must be a finite number, got nan"):
        Toy(rate=float("nan")).validate()
    with pytest.raises(ConfigError, match="--toy-mode: unknown value 'c'; valid choices: a, b"):
        Toy(mode="c").validate()
    check_value("x", 1.0, dataclasses.fields(Toy)[0])


def test_resume_with_rounds_80_extends_a_50_round_run_to_80(tmp_path, monkeypatch):
    """Through the command line (in-process runner): 50 rounds, then ``--resume OUT --rounds
    80``, gives the same 80 rows as an uninterrupted 80-round run."""
    import csv

    import federation.simulation
    from federation.in_process import run_in_process

    monkeypatch.setattr(federation.simulation, "simulate", lambda cfg, verbose=False: run_in_process(cfg))
    common = ["--env", "matrix", "--agents", "2", "--learner", "q-table", "--strategy", "independent",
              "--batch", "2", "--no-progress"]
    assert run_sim.main(common + ["--rounds", "50", "--out", str(tmp_path / "a")]) == 0
    assert run_sim.main(["--resume", str(tmp_path / "a"), "--rounds", "80"]) == 0
    assert run_sim.main(common + ["--rounds", "80", "--out", str(tmp_path / "b")]) == 0

    def rows(run):
        with open(tmp_path / run / "metrics.csv") as f:
            return [{k: v for k, v in r.items() if not k.endswith("_s")} for r in csv.DictReader(f)]

    assert len(rows("a")) == 80 and rows("a") == rows("b")
    assert json.loads((tmp_path / "a" / "config.json").read_text())["rounds"] == 80


def test_tensorboard_scalars_equal_the_metrics(tmp_path):
    """``--tensorboard``: every numeric column of metrics.csv is a scalar, step = round."""
    import csv

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from federation.in_process import run_in_process

    cfg = RunConfig.of(env="matrix", agents=2, learner="q-table", strategy="independent", rounds=3, batch=2,
                       progress=False, tensorboard=True, out=str(tmp_path / "run"))
    run_in_process(cfg, checkpoints=False)
    board = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    board.Reload()
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    events = board.Scalars("collective_return")
    assert [e.step for e in events] == [1, 2, 3]
    assert [e.value for e in events] == pytest.approx([float(r["collective_return"]) for r in rows], rel=1e-6)
    assert "jain" in board.Tags()["scalars"]


def test_an_older_config_without_a_later_setting_reads_as_it_ran():
    """federation.config.LEGACY: a resource-grid config.json written before --mediator-state
    existed ran with one mediator state ("none"); one that names it, and other games, read as
    written or as today's default ("game")."""
    import json

    grid = json.loads(RunConfig(env="resource-grid", agents=2, strategy="jamql").to_json())
    assert RunConfig.from_json(json.dumps(grid)).leaders.mediator_state == "game"
    del grid["leaders"]["mediator_state"]
    assert RunConfig.from_json(json.dumps(grid)).leaders.mediator_state == "none"
    pd = json.loads(RunConfig(env="dilemma", agents=2, strategy="jamql").to_json())
    del pd["leaders"]["mediator_state"]
    assert RunConfig.from_json(json.dumps(pd)).leaders.mediator_state == "game"
    committed = ROOT / "docs/results/jamql/runs/grid-2/jamql_seed0/config.json"
    assert RunConfig.from_json(committed.read_text()).leaders.mediator_state == "none"
