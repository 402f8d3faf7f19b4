"""Learners chosen per agent, end to end: what runs, what is refused, what persists."""

import csv
from pathlib import Path

import pytest

import run_sim
from federation.simulation import simulate


def rows(out):
    with open(Path(out) / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_mixed_learners_train_independently_and_keep_their_state_out_of_messages(tiny):
    """PPO, DQN and tabular Q agents side by side on Job Scheduling's discrete observations.

    The DQN agent's replay buffer holds both rounds' transitions after round 2, though the
    learner's state never rides in the messages (context.state stays empty): it lives in
    the agent's storage directory."""
    cfg = tiny.replace(env="job", observation="discrete", strategy="independent", learner="ppo:0,dqn:1,q-table:2",
                       dqn_updates=5, dqn_batch=32)
    summary = simulate(cfg)
    assert summary["events"] == []
    table = rows(cfg.out)
    steps_per_round = cfg.world.batch * cfg.world.steps
    assert [float(r["agents_buffer_size"]) for r in table] == [steps_per_round, 2 * steps_per_round]
    assert [float(r["agents_context_records"]) for r in table] == [0.0, 0.0]
    for agent in range(3):
        assert (Path(cfg.out) / "agents" / f"agent_{agent}" / "learner.pt").stat().st_size > 0
    assert float(table[0]["agents_epsilon"]) > 0  # the DQN and q-table agents explore


def test_fpf_with_dqn_agents_trains_value_based_anchors(tiny):
    cfg = tiny.replace(learner="dqn", dqn_updates=5, dqn_batch=32)
    simulate(cfg)
    table = rows(cfg.out)
    assert all(float(r["uploads"]) == 2 for r in table)  # round(0.5 * 3) participants
    assert all(float(r["omega_td_loss"]) >= 0 and float(r["omega_samples"]) > 0 for r in table)
    assert float(table[1]["agents_dist_to_omega"]) > 0


@pytest.mark.parametrize("args, message", [
    (["--strategy", "lmf", "--learner", "ppo:0-4,dqn:5-9"],
     "lmf mixes policy parameters, so every agent needs the same learner; got ppo for agents [0, 1, 2, 3, 4]; "
     "dqn for agents [5, 6, 7, 8, 9]"),
    (["--strategy", "fedavg", "--learner", "ppo:0-4,dqn:5-9"], "fedavg mixes policy parameters"),
    (["--strategy", "fpf", "--learner", "ppo:0-4,dqn:5-9"], "fpf mixes policy parameters"),
    (["--strategy", "fpf", "--env", "job", "--agents", "4", "--observation", "discrete", "--learner", "q-table"],
     "fpf cannot federate q-table agents"),
    (["--strategy", "independent", "--learner", "q-table"], "learner q-table needs discrete observations"),
    (["--learner", "ppo:0-4,dqn:4-9"], "assigns agent 4 twice"),
    (["--learner", "ppo:0-4"], "assigns no learner to agents [5, 6, 7, 8, 9]"),
    (["--learner", "sarsa"], "unknown learner 'sarsa'; valid choices: ddpg, dqn, ppo, q-table"),
    (["--env", "job", "--agents", "4", "--observation", "pixels"], "valid choices"),
])
def test_learners_a_strategy_cannot_federate_are_refused(args, message, capsys):
    assert run_sim.main(args + ["--out", "/nonexistent/never-written"]) == 2
    assert message in capsys.readouterr().err


def test_mixed_learners_run_with_independent_learners_from_the_command_line(tmp_path, monkeypatch):
    """The command line's learner assignment, run by the in-process runner (the same runs
    as Flower's runtime, tests/test_simulation.py; mixed learners in Flower's: above)."""
    import federation.simulation
    from federation.in_process import run_in_process

    started = []
    monkeypatch.setattr(federation.simulation, "simulate", lambda cfg, verbose=False: started.append(cfg) or
                        run_in_process(cfg))
    code = run_sim.main(["--strategy", "independent", "--learner", "ppo:0-1,dqn:2", "--agents", "3", "--rounds", "1",
                         "--batch", "2", "--steps", "10", "--hidden", "8", "--minibatch", "16", "--dqn-updates", "2",
                         "--dqn-batch", "8", "--no-progress", "--out", str(tmp_path)])
    assert code == 0
    assert [c.learners() for c in started] == [["ppo", "ppo", "dqn"]]
    assert rows(tmp_path)[0]["failed_agents"] == "0"
