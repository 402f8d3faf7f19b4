"""The command line: bad input exits non-zero naming the problem and the valid choices."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import envs
import run_sim
import strategies
from federation.config import ConfigError, RunConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args, expected", [
    (["--env", "chess"], "--env: unknown value 'chess'; valid choices: " + ", ".join(envs.available())),
    (["--strategy", "fpf", "magic"], "--strategy: unknown value 'magic'; valid choices: "
     + ", ".join(strategies.available())),
    (["--participation", "1.5"], "participation must be a fraction in [0, 1], got 1.5"),
    (["--participation", "-0.1"], "participation must be a fraction in [0, 1]"),
    (["--participation", "ids:0,7", "--agents", "3"], "participation names unknown agents [7]; valid agent ids: 0..2"),
    (["--participation", "half"], "must be a fraction in [0, 1] or a list like ids:0,3,7"),
    (["--draw", "sometimes"], "--draw: unknown value 'sometimes'; valid choices: fixed, first, random"),
    (["--lambda-u", "-1"], "--lambda-u must be in [0, 1e+06], got -1"),
    (["--lambda-e", "-0.5"], "--lambda-e must be in [0, 1e+06], got -0.5"),
    (["--fed-conservative", "-0.1"], "--fed-conservative must be in [0, 1e+06]"),
    (["--rounds", "0"], "--rounds must be in [1, 10000000], got 0"),
    (["--agents", "0"], "--agents must be in [1, 100000], got 0"),
    (["--eta", "0"], "--eta must be in (0, 2]"),
    (["--lambda-u", "nan"], "--lambda-u must be a finite number, got nan"),
    (["--lambda-u", "inf"], "--lambda-u must be a finite number, got inf"),
    (["--ppo-lr-actor=-inf"], "--ppo-lr-actor must be a finite number, got -inf"),
    (["--anchor-step", "lbfgs"], "--anchor-step: unknown value 'lbfgs'; valid choices: round, sgd, adam"),
])
def test_bad_input_is_rejected_with_a_clear_message(args, expected, capsys):
    assert run_sim.main(args + ["--out", "/nonexistent/never-written"]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert not Path("/nonexistent/never-written").exists()


def test_registries_list_the_built_in_choices():
    assert {"matthew"} <= set(envs.available())
    assert {"fpf", "dnf", "independent"} <= set(strategies.available())


def test_bad_input_exits_non_zero_from_the_shell():
    proc = subprocess.run([sys.executable, "run_sim.py", "--strategy", "nope"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--strategy: unknown value 'nope'" in proc.stderr and "fpf" in proc.stderr


def test_run_config_keys_match_pyproject():
    """`flwr run --run-config` only accepts keys declared in pyproject, with the same defaults."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    assert declared == RunConfig().to_flat()
    assert RunConfig.from_mapping(declared) == RunConfig()


def test_from_mapping_rejects_unknown_keys_and_bad_types():
    with pytest.raises(ConfigError, match="unknown config key 'round'"):
        RunConfig.from_mapping({"round": 3})
    with pytest.raises(ConfigError, match="agents must be an integer"):
        RunConfig.from_mapping({"agents": 2.5})
    assert RunConfig.from_mapping({"lambda-u": "0.5", "progress": "false"}).fpf.lambda_u == 0.5


def test_several_strategies_and_seeds_plan_one_directory_each(tmp_path):
    args = run_sim.parser().parse_args(["--strategy", "fpf", "dnf", "--seeds", "0", "1", "--out", str(tmp_path)])
    runs = run_sim.plan(args)
    assert [(r.strategy, r.seed) for r in runs] == [("fpf", 0), ("fpf", 1), ("dnf", 0), ("dnf", 1)]
    assert runs[3].out == str(tmp_path / "dnf_seed1")
    args = run_sim.parser().parse_args(["--strategy", "lmf", "avg", "--graph", "ring", "fixed", "--out", str(tmp_path)])
    runs = run_sim.plan(args)
    assert [(r.label, r.lmf.graph) for r in runs] == [("lmf-ring", "ring"), ("lmf-fixed", "fixed"), ("avg", "ring")]
    assert runs[1].out == str(tmp_path / "lmf-fixed_seed0")


def test_one_comparison_table_across_graphs_and_baselines(tmp_path, capsys):
    """Two LMF graphs and a baseline on Job Scheduling, one round each, compared in one table
    (in-process: the table is the same whichever runner made the runs)."""
    code = run_sim.main(["--runner", "in-process", "--env", "job", "--agents", "3", "--strategy", "lmf", "ia", "--graph", "ring", "dynamic",
                         "--participation", "1.0", "--rounds", "1", "--batch", "2", "--steps", "10", "--hidden", "8",
                         "--ppo-minibatch", "32", "--no-progress", "--out", str(tmp_path)])
    assert code == 0
    # ia has no federation: the run says that --participation does not apply, on the console and in config.json
    assert "note: --participation does not apply: ia has no federation: nobody participates" in capsys.readouterr().err
    notes = json.loads((tmp_path / "ia_seed0" / "config.json").read_text())["notes"]
    assert notes == ["--participation 1.0 does not apply: ia has no federation: nobody participates"]
    lmf_notes = json.loads((tmp_path / "lmf-ring_seed0" / "config.json").read_text())["notes"]
    # the default constant step (--lmf-beta 0) is outside [FPF Thm. 2]: said, not refused
    assert lmf_notes == ["participation set: agents [0, 1, 2]",
                         "lmf: the step schedule breaks [FPF Thm. 2]: --lmf-beta 0 is outside [FPF Thm. 2]'s "
                         "β ∈ (1/2, 1) (β = 0: constant steps)"]
    table = (tmp_path / "comparison.md").read_text()
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:5]] == ["lmf-ring", "lmf-dynamic", "ia"]
    assert (tmp_path / "comparison.png").stat().st_size > 10_000
    assert len((tmp_path / "comparison.csv").read_text().splitlines()) == 4


def test_an_unwritable_out_is_rejected_before_anything_starts(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert run_sim.main(["--rounds", "1", "--out", str(blocker / "run")]) == 2
    assert f"out '{blocker / 'run'}' cannot be written: Not a directory" in capsys.readouterr().err
    assert run_sim.main(["--rounds", "1", "--storage-dir", str(blocker / "agents"), "--out", str(tmp_path / "o")]) == 2
    assert "storage-dir" in capsys.readouterr().err


def test_help_lists_voluntary_participation(capsys):
    with pytest.raises(SystemExit):
        run_sim.main(["--help"])
    assert "voluntary" in capsys.readouterr().out


def test_game_options_reach_the_game_and_bad_ones_are_refused():
    cfg = RunConfig.of(env="matthew", agents=3, game_options="episode_length=7, num_resources=2")
    assert cfg.game_options() == {"episode_length": 7, "num_resources": 2}
    game = envs.make_batched(cfg.env, cfg.agents, **cfg.game_options())
    assert game.episode_length == 7
    with pytest.raises(ConfigError, match="matthew takes no option 'map'; it takes: num_resources, episode_length"):
        RunConfig.of(env="matthew", agents=3, game_options="map=lio-7")
    with pytest.raises(ConfigError, match="cannot set 'seed'; it has its own flag"):
        RunConfig.of(game_options="seed=3")
    with pytest.raises(ConfigError, match="key=value pairs"):
        RunConfig.of(game_options="episode_length")
    with pytest.raises(ConfigError, match="episode_length must be"):
        RunConfig.of(env="matthew", game_options="episode_length=0")
