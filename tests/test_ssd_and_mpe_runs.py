"""Cleanup with PPO and DQN agents under FPF, and LMF on an MPE game, end to end."""

import sys
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


def _reproduce_fpf():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "experiments" / "reproduce_fpf.py"
    spec = importlib.util.spec_from_file_location("reproduce_fpf", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_the_reproduction_plans_whole_seeds_first_and_draws_only_what_was_run(tmp_path):
    """An interrupted reproduction holds whole seeds (seed outermost); a figure none of whose
    methods was run is not written, and panels are only the games that have runs."""
    rep = _reproduce_fpf()
    runs = rep.plan({"harvest-3": 100, "mpe-crypto": 100}, [0, 1], tmp_path, None)
    assert [cfg.seed for _, _, cfg in runs] == [0] * 9 + [1] * 9  # 6 SSD methods + 3 MPE methods per seed
    assert {v for g, v, _ in runs if g == "mpe-crypto"} == {"independent", "dnf", "lmf"}
    metrics = [{"round": r, "collective_return": float(r)} for r in range(1, 5)]
    results = {("mpe-crypto", "lmf"): [({"seed": 0, "learner": "ppo"}, metrics)]}
    assert rep.with_runs(results, ["harvest-3", "mpe-crypto"], ["lmf", "dnf"]) == ["mpe-crypto"]
    rep.plot(results, ["harvest-3", "mpe-crypto"], ["lmf-fix", "lmf-dynamic"], "collective_return",
             tmp_path / "variants.png", "t", "y")
    assert not (tmp_path / "variants.png").exists()
    rep.plot(results, ["harvest-3", "mpe-crypto"], ["lmf"], "collective_return", tmp_path / "lmf.png", "t", "y")
    assert (tmp_path / "lmf.png").exists()


def test_the_exchange_comparison_pairs_seeds_over_the_window(tmp_path):
    """experiments/lmf_exchange.py: window means by hand, the paired difference against
    Eq. 13, and the same settings as the reproduction's LMF but for the exchange."""
    _reproduce_fpf()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import lmf_exchange

    def write(path, returns):
        path.mkdir(parents=True)
        lines = ["round,collective_return,cv"] + [f"{r},{c},0.5" for r, c in enumerate(returns, 1)]
        (path / "metrics.csv").write_text("\n".join(lines) + "\n")

    ref, out = tmp_path / "ref", tmp_path / "diag"
    for seed, (eq13, diffusion) in enumerate([([0, 10, 20, 99], [0, 30, 50, 99]), ([0, 4, 6, 99], [0, 9, 11, 99])]):
        write(ref / f"lmf_seed{seed}", eq13)
        write(ref / f"independent_seed{seed}", [0, 0, 0, 0])
        write(out / f"harvest-3_lmf-diffusion_seed{seed}", diffusion)
    assert lmf_exchange.window_mean(ref / "lmf_seed0", "collective_return", (2, 3)) == 15.0
    assert lmf_exchange.window_mean(ref / "lmf_seed0", "collective_return", (4, 5)) is None  # not reached
    text = lmf_exchange.report("harvest-3", ["diffusion"], [0, 1], out, ref, (2, 3))
    assert "| LMF, Eq. 13 (the reproduction's) | 15.0 · 5.0 |" in text
    assert "| lmf-diffusion | 40.0 · 10.0 |" in text
    # differences 25 and 5: mean 15, sample sd 14.1
    assert "| lmf-diffusion − LMF, Eq. 13 (the reproduction's) | 2 | 15 ± 14 [" in text
    cfg = lmf_exchange.config("harvest-3", "diffusion", 0, 60, tmp_path)
    reproduction = _reproduce_fpf().plan({"harvest-3": 60}, [0], tmp_path, ["lmf"])[0][2]
    assert cfg.lmf.mode == "diffusion" and reproduction.lmf.mode == "parameters"
    assert cfg.replace(lmf_mode="parameters", out=reproduction.out) == reproduction
