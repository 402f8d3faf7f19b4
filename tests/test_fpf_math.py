"""FPF's equations against hand-computed values on tiny arrays."""

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces
from flwr.app import Array, ArrayRecord

from clients.anchors import Anchors
from clients.networks import NetworkConfig
from federation.metrics import cv, jain, welfare_row
from strategies.participation import Participation
from strategies.federated_policy import egalitarian_reward, utilitarian_reward
from strategies.fpf import FPF, fpf_aggregate, fpf_upload


def test_eq10_upload():
    omega = [np.array([1.0, 2.0]), np.array([[0.0]])]
    theta = [np.array([3.0, 0.0]), np.array([[4.0]])]
    up = fpf_upload(omega, theta, alpha=0.5, lambda_u=0.5)
    # ω - αλ(ω - θ) = ω - 0.25(ω - θ)
    np.testing.assert_allclose(up[0], [1.5, 1.5])
    np.testing.assert_allclose(up[1], [[1.0]])


def test_eq11_aggregate_divides_by_participants():
    omega = [np.array([0.0, 0.0])]
    uploads = [[np.array([2.0, 4.0])], [np.array([4.0, 0.0])]]
    new = fpf_aggregate(omega, uploads, eta=0.5)
    # (1-η)·0 + η·mean = 0.5·[3, 2]
    np.testing.assert_allclose(new[0], [1.5, 1.0])
    # η = 1.5 extrapolates beyond the mean
    np.testing.assert_allclose(fpf_aggregate(omega, uploads, eta=1.5)[0], [4.5, 3.0])
    # no participant: ω unchanged
    np.testing.assert_allclose(fpf_aggregate([np.array([7.0])], [], eta=1.0)[0], [7.0])


def test_proximal_penalty_and_gradient():
    theta = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    anchors = Anchors(omega={"w": torch.zeros(2)}, omega_bar={"w": torch.ones(2)}, weight_u=2.0, weight_e=4.0)
    penalty = anchors.penalty([("w", theta)])
    # 2/2·(1 + 4) + 4/2·(0 + 1) = 7
    assert penalty.item() == pytest.approx(7.0)
    penalty.backward()
    # λ_u(θ-ω) + λ_e(θ-ω̄) = 2·[1,2] + 4·[0,1]
    np.testing.assert_allclose(theta.grad.numpy(), [2.0, 8.0])


def test_anchor_pull_is_one_plain_gradient_step():
    theta = torch.tensor([1.0, 2.0])
    anchors = Anchors(omega={"w": torch.zeros(2)}, omega_bar={"w": torch.ones(2)}, weight_u=2.0, weight_e=4.0)
    anchors.pull([("w", theta)], lr=0.1)
    # θ - 0.1·(2·(θ - 0) + 4·(θ - 1)) = [1 - 0.2, 2 - 0.8]
    np.testing.assert_allclose(theta.numpy(), [0.8, 1.2], rtol=1e-6)
    Anchors(omega={"w": torch.zeros(2)}, weight_u=0.0).pull([("w", theta)], lr=0.1)
    np.testing.assert_allclose(theta.numpy(), [0.8, 1.2], rtol=1e-6)  # λ = 0: no pull


def test_proximal_penalty_rejects_mismatched_anchor():
    with pytest.raises(ValueError, match="anchor has parameters"):
        Anchors(omega={"other": torch.zeros(1)}, weight_u=1.0).penalty([("w", torch.zeros(1))])


def test_utilitarian_and_egalitarian_rewards():
    r = np.array([[[1.0, 0.0, 2.0]]])  # T=1, B=1, N=3
    assert utilitarian_reward(r)[0, 0] == pytest.approx(1.0)
    # -(1/3)·((1-1)² + (0-1)² + (2-1)²)
    assert egalitarian_reward(r)[0, 0] == pytest.approx(-2 / 3)


def test_egalitarian_reward_variants_by_hand():
    # T=2, B=1, N=3: rewards [1, 0, 2] then [0, 0, 1]; cumulative [1, 0, 2] then [1, 0, 3]
    r = np.array([[[1.0, 0.0, 2.0]], [[0.0, 0.0, 1.0]]])
    std1, std2 = np.std([1.0, 0.0, 2.0]), np.std([1.0, 0.0, 3.0])
    np.testing.assert_allclose(egalitarian_reward(r, "return-std")[:, 0], [-std1, -(std2 - std1)])
    assert egalitarian_reward(r, "return-std").sum() == pytest.approx(-std2)  # minus the std of the returns
    np.testing.assert_allclose(egalitarian_reward(r, "min")[:, 0], [0.0, 0.0])  # agent 1 never gets anything
    r2 = np.array([[[1.0, 1.0, 2.0]], [[1.0, 0.0, 1.0]]])  # cumulative minima 1 then 1
    np.testing.assert_allclose(egalitarian_reward(r2, "min")[:, 0], [1.0, 0.0])
    np.testing.assert_allclose(egalitarian_reward(r, "variance")[:, 0], [-2 / 3, -2 / 9])
    with pytest.raises(ValueError, match="unknown egalitarian reward"):
        egalitarian_reward(r, "gini")


def test_fairness_metrics():
    x = np.array([1.0, 3.0])
    assert cv(x) == pytest.approx(0.5)  # std 1, mean 2
    assert jain(x) == pytest.approx(16 / 20)  # (4)² / (2·10)
    assert jain(np.array([2.0, 2.0, 2.0])) == pytest.approx(1.0)
    assert math.isnan(cv(np.zeros(3)))
    row = welfare_row(np.array([1.0, 2.0, 6.0]), participants={0, 2})
    assert row["collective_return"] == 9.0 and row["min_return"] == 1.0
    assert row["participants_return"] == pytest.approx(3.5)
    assert row["nonparticipants_return"] == pytest.approx(2.0)
    assert row["return_agent_2"] == 6.0
    assert math.isnan(welfare_row(np.ones(2), participants=set())["participants_return"])


class FakeReply:
    def __init__(self, content):
        self.content = content

    def has_error(self):
        return False


def _record(values):
    return ArrayRecord({"0.weight": Array(np.array(values, dtype=np.float32))})


SHAPES = dict(space=spaces.Box(-1, 1, (2,), np.float32), num_actions=1, state_space=spaces.Box(-1, 1, (4,), np.float32),
              net=NetworkConfig(hidden=1, layers=0))


def test_fpf_aggregate_train_uses_only_shared_uploads():
    init = ArrayRecord({"0.weight": Array(np.zeros((1, 2), np.float32)), "0.bias": Array(np.zeros(1, np.float32))})
    fpf = FPF(Participation.parse("0.5", "fixed", 2), 0, init, **SHAPES, eta=1.0, fed_alpha=0.5, lambda_u=1.0)
    theta = ArrayRecord({"0.weight": Array(np.array([[2.0, 4.0]], np.float32)), "0.bias": Array(np.array([6.0], np.float32))})
    replies = [FakeReply({"shared": theta, "metrics": {}}), FakeReply({"metrics": {}})]
    omega, metrics = fpf.aggregate_train(1, replies)
    # one upload: ω + αλ(θ - ω) = 0.5·θ
    np.testing.assert_allclose(omega["0.weight"].numpy(), [[1.0, 2.0]])
    np.testing.assert_allclose(omega["0.bias"].numpy(), [3.0])
    assert metrics["uploads"] == 1


def test_fpf_pulls_only_participants_by_default():
    """Eq. 9's coefficients αλ_u, αλ_e and both anchors go to participants; everyone only
    in the pull-everyone ablation."""
    init = ArrayRecord({"0.weight": Array(np.zeros((1, 2), np.float32)), "0.bias": Array(np.zeros(1, np.float32))})
    fpf = FPF(Participation.parse("ids:0", "fixed", 2), 0, init, **SHAPES, fed_alpha=0.01, lambda_u=2.0, lambda_e=3.0)
    fpf.bind({0: 10, 1: 11})
    fpf.members = fpf.participation.members(1, 0)
    entries, records = fpf.instructions(0, 1, init)
    assert entries == {"alpha-lambda-u": pytest.approx(0.02), "alpha-lambda-e": pytest.approx(0.03),
                       "anchor-step": "round"}
    assert set(records) == {"omega", "omega-bar"}
    assert fpf.instructions(1, 1, init) == ({}, {})  # a non-participant is not pulled
    everyone = FPF(Participation.parse("ids:0", "fixed", 2), 0, init, **SHAPES, pull="everyone")
    everyone.members = everyone.participation.members(1, 0)
    assert set(everyone.instructions(1, 1, init)[1]) == {"omega", "omega-bar"}
    with pytest.raises(ValueError, match="--pull: unknown value 'some'"):
        FPF(Participation.parse("ids:0", "fixed", 2), 0, init, **SHAPES, pull="some")


def test_per_round_pull_moves_theta_by_eq9_once():
    """θ <- θ - αλ_u(θ - ω) - αλ_e(θ - ω̄), by hand: θ = [1, 2], ω = 0, ω̄ = 1, 0.2 and 0.1."""
    module = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        module.weight.copy_(torch.tensor([[1.0, 2.0]]))
    anchors = Anchors(omega={"weight": torch.zeros(1, 2)}, omega_bar={"weight": torch.ones(1, 2)},
                      weight_u=0.2, weight_e=0.1)
    moved = anchors.interpolate(module)
    # Δ = 0.2·[1, 2] + 0.1·[0, 1] = [0.2, 0.5]
    np.testing.assert_allclose(module.weight.detach().numpy(), [[0.8, 1.5]], rtol=1e-6)
    assert moved == pytest.approx(np.hypot(0.2, 0.5))
    for step in ("sgd", "adam"):  # the in-training variants leave the per-round pull alone
        assert Anchors(omega={"weight": torch.zeros(1, 2)}, weight_u=0.5, step=step).interpolate(module) == 0.0
    np.testing.assert_allclose(module.weight.detach().numpy(), [[0.8, 1.5]], rtol=1e-6)


def test_summary_json_is_strict_json_when_metrics_are_undefined(tmp_path):
    import json

    from federation.results import RunRecorder

    recorder = RunRecorder(tmp_path, "{}")
    recorder.add({"round": 1, **welfare_row(np.zeros(3), participants=set())})
    summary = recorder.finish({"strategy": "x", "env": "y"})
    loaded = json.loads((tmp_path / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert loaded["cv_last"] is None and loaded["collective_return_last"] == 0.0
    assert math.isnan(summary["cv_last"])


def test_mean_sd_and_confidence_interval_by_hand():
    from federation.compare import fmt_mean_std, mean_sd_ci

    mean, sd, half, n = mean_sd_ci([1.0, 2.0, 3.0, float("nan")])
    # sample sd of 1, 2, 3 is 1; t(0.975, 2) = 4.3027; half-width 4.3027 / sqrt(3)
    assert (mean, sd, n) == (2.0, 1.0, 3) and half == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)
    assert fmt_mean_std([1.0, 2.0, 3.0]) == "2 ± 1 [±2.5]"
    assert fmt_mean_std([5.0]) == "5" and fmt_mean_std([]) == "–"


def test_awr_moves_omega_toward_the_actions_that_helped_the_team():
    """Advantage-weighted regression: on a one-step game where action 1 pays the team and
    action 0 does not, π_ω's probability of action 1 rises; an unknown objective is refused."""
    from types import SimpleNamespace

    from strategies.federated_policy import FederatedPolicy

    rng = np.random.default_rng(0)
    T, B, N = 1, 256, 2
    actions = rng.integers(0, 2, (T, B, N))
    rewards = actions.astype(np.float32)  # action 1 pays
    rollout = SimpleNamespace(obs=np.zeros((T + 1, B, N, 2), np.float32), state=np.zeros((T + 1, B, 4), np.float32),
                              actions=actions, logp=np.full((T, B, N), np.log(0.5), np.float32), rewards=rewards,
                              terminated=np.ones((T, B, N), bool), mask=np.ones((T, B, N), np.float32))
    init = ArrayRecord({"0.weight": Array(np.zeros((2, 2), np.float32)), "0.bias": Array(np.zeros(2, np.float32))})
    shapes = dict(space=spaces.Box(-1, 1, (2,), np.float32), num_actions=2, state_space=spaces.Box(-1, 1, (4,), np.float32),
                  net=NetworkConfig(hidden=1, layers=0), lr=0.05, critic_lr=0.05, seed=0)
    omega = FederatedPolicy(init, objective="awr", **shapes)
    omega.update(rollout, rewards.mean(axis=-1), updates=50, batch=128, gamma=0.9, gae_lambda=0.9, ent_coef=0.0,
                 anchor=None, anchor_weight=0.0, gen=torch.Generator().manual_seed(0))
    with torch.no_grad():
        p1 = torch.softmax(omega.actor(torch.zeros(1, 2)), -1)[0, 1]
    assert float(p1) > 0.6  # from 0.5
    with pytest.raises(ValueError, match="unknown objective 'sgd'"):
        FederatedPolicy(init, objective="sgd", **shapes)
