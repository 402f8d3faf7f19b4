"""Cleanup with PPO and DQN agents under FPF, and LMF on an MPE game, end to end."""

from pathlib import Path

import numpy as np
import pytest
import torch

from federation.results import read_metrics
from federation.simulation import simulate


@pytest.mark.parametrize("learner", ["ppo", "dqn"])
def test_fpf_on_cleanup_with_five_agents_learns_from_pixels(tiny, learner):
    """Five agents see 15x15 RGB views through a CNN; half of them upload to FPF; DQN
    agents keep their uint8 frames in the replay buffer."""
    cfg = tiny.replace(env="cleanup", agents=5, strategy="fpf", learner=learner, channels=4, eval_every=0,
                       game_options="episode_length=20", dqn_updates=3, dqn_batch=16)
    summary = simulate(cfg)
    assert summary["events"] == []
    table = read_metrics(cfg.out)
    assert [int(r["uploads"]) for r in table] == [2, 2]  # round(0.5 * 5) participants
    returns = np.array([[r[f"return_agent_{i}"] for i in range(5)] for r in table])
    assert np.isfinite(returns).all()
    state = torch.load(Path(cfg.out) / "agents" / "agent_0" / "learner.pt", weights_only=False)["learner"]
    policy = state["policy" if learner == "dqn" else "actor"]
    conv = [k for k, v in policy.items() if v.dim() == 4]  # Conv2d kernels [out, in, 3, 3]
    assert conv and policy[conv[0]].shape[:2] == (4, 3)  # 4 channels from RGB
    if learner == "dqn":
        buffer = state["buffer"]
        assert buffer["obs"].dtype == np.uint8 and buffer["obs"].shape[1:] == (15, 15, 3)
        assert buffer["size"] == 2 * cfg.world.batch * cfg.world.steps


def test_lmf_on_an_mpe_game_mixes_the_team(tiny):
    """Two learners of physical deception over LMF's ring: the consensus gap is measured
    and the random adversary does not count among the agents."""
    cfg = tiny.replace(env="mpe-deception", agents=2, strategy="lmf", participation="1.0", rounds=3,
                       game_options="episode_length=20", eval_every=0)
    summary = simulate(cfg)
    assert summary["events"] == []
    table = read_metrics(cfg.out)
    assert len(table) == 3 and "return_agent_2" not in table[0]
    assert all(r["consensus_gap"] >= 0 for r in table)
    assert table[-1]["consensus_gap"] > 0  # the agents' own training pulls them apart between mixes


def test_the_fpf_campaigns_plan_whole_seeds_first_and_draw_only_what_was_run(tmp_path):
    """An interrupted campaign holds whole seeds (seed outermost); a figure none of whose
    methods was run is not written, and panels are only the games that have runs
    (experiments/campaigns/fpf-*.toml, experiments/figures/fpf.py)."""
    from analysis.runs import Run
    from experiments.campaign import DIRECTORY, load
    from experiments.figures import fpf

    ssd, mpe = load(DIRECTORY / "fpf-ssd-3.toml"), load(DIRECTORY / "fpf-mpe.toml")
    runs = ssd.plan(scenarios=["harvest-3"], seeds=[0, 1]) + mpe.plan(scenarios=["mpe-crypto"], seeds=[0, 1])
    assert [r.seed for r in runs[:12]] == [0] * 6 + [1] * 6  # 6 SSD methods per seed
    assert [r.seed for r in runs[12:]] == [0] * 3 + [1] * 3  # 3 MPE methods per seed
    assert {r.method for r in runs if r.scenario == "mpe-crypto"} == {"independent", "dnf", "lmf"}
    metrics = [{"round": float(r), "collective_return": float(r)} for r in range(1, 5)]
    groups = fpf.group({("mpe-crypto", "lmf", 0): Run(tmp_path, {"seed": 0}, metrics)})
    assert fpf.with_runs(groups, ["harvest-3", "mpe-crypto"], ["lmf", "dnf"]) == ["mpe-crypto"]
    names, notes = fpf.labels(mpe), fpf.notes(mpe)
    assert fpf.plot(groups, ["harvest-3", "mpe-crypto"], ["lmf-fix", "lmf-dynamic"], "collective_return",
                    tmp_path / "variants.png", "t", "y", names, notes) is None
    assert not (tmp_path / "variants.png").exists()
    fpf.plot(groups, ["harvest-3", "mpe-crypto"], ["lmf"], "collective_return", tmp_path / "lmf.png", "t", "y",
             names, notes)
    assert (tmp_path / "lmf.png").exists()
