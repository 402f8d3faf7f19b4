"""The stacked PPO update of benchmarks/stacked_ppo.py equals one PPOLearner.train per agent."""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gymnasium import spaces

from clients.anchors import Anchors
from clients.experience import Experience
from clients.networks import NetworkConfig
from clients.ppo import PPOConfig, PPOLearner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from stacked_ppo import StackedPPO  # noqa: E402

OBS, ACTIONS, T, B = 6, 5, 20, 4  # 80 samples per agent: minibatches of 32, 32, 16


def experience(rng: np.random.Generator, space: spaces.Space | None = None) -> Experience:
    """Random experience with behaviour log-probs of a fixed random softmax; nothing terminates."""
    logits = rng.normal(size=(T, B, ACTIONS))
    logp_all = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    actions = rng.integers(0, ACTIONS, (T, B))
    if space is None:
        obs = rng.normal(size=(T + 1, B, OBS)).astype(np.float32)
    else:
        obs = np.stack([np.stack([space.sample() for _ in range(B)]) for _ in range(T + 1)])
    return Experience(
        obs=obs,
        actions=actions.astype(np.int64),
        logp=np.take_along_axis(logp_all, actions[..., None], -1)[..., 0].astype(np.float32),
        rewards=rng.normal(size=(T, B)).astype(np.float32),
        terminated=np.zeros((T, B), dtype=bool),
        mask=np.ones((T, B), dtype=np.float32))


SPACE = spaces.Box(-np.inf, np.inf, (OBS,), np.float32)


def learners(cfg: PPOConfig, net: NetworkConfig, n: int = 3, space: spaces.Space = SPACE) -> list[PPOLearner]:
    # a different run seed per learner, so that the actors differ too and a mix-up of slices would show
    return [PPOLearner(space, ACTIONS, cfg, net, seed=10 + i, agent=i) for i in range(n)]


def assert_same(stacked: StackedPPO, reference: list[PPOLearner]) -> None:
    for got, ref in zip(stacked.actors(), reference):
        want = ref.actor.state_dict()
        assert got.keys() == want.keys()
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-5)
    for got, ref in zip(stacked.critics(), reference):
        for k, v in ref.critic.state_dict().items():
            torch.testing.assert_close(got[k], v, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", ["vmap", "bmm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_stacked_update_equals_per_agent_training(layers, impl):
    cfg = PPOConfig(epochs=2, minibatch=32, lr_critic=3e-3)
    reference = learners(cfg, NetworkConfig(hidden=16, layers=layers))
    stacked = StackedPPO([lr.actor for lr in reference], [lr.critic for lr in reference], cfg, impl=impl)
    assert stacked.impl == impl
    assert_same(stacked, reference)  # same starting point; the modules were copied, not shared
    rng = np.random.default_rng(0)
    for rnd, seeds in enumerate(([1, 2, 3], [4, 4, 5]), start=1):  # two rounds: Adam's state carries over
        exps = [experience(rng) for _ in range(3)]
        ref_stats = [lr.train(e, Anchors(), seed=s) for lr, e, s in zip(reference, exps, seeds)]
        stats = stacked.train(exps, seeds)
        assert_same(stacked, reference)
        for key in ("pg_loss", "v_loss", "entropy", "approx_kl"):
            np.testing.assert_allclose(stats[key], [r[key] for r in ref_stats], rtol=1e-4, atol=1e-6)
        assert stats["optimizer_steps"] == ref_stats[0]["optimizer_steps"] == rnd * 2 * 3  # 2 epochs x 3 minibatches
        assert stats["num-examples"] == T * B


def test_gradient_clipping_is_active_and_per_agent():
    """A tiny max_grad_norm clips every agent by its own norm; a large learning rate makes errors show."""
    cfg = PPOConfig(epochs=2, minibatch=32, max_grad_norm=0.01, lr_actor=1e-2)
    reference = learners(cfg, NetworkConfig(hidden=16, layers=2))
    rng = np.random.default_rng(1)
    exps = [experience(rng) for _ in range(3)]
    exps[1].rewards *= 100  # one agent with much larger gradients than the others
    stacked = StackedPPO([lr.actor for lr in reference], [lr.critic for lr in reference], cfg)
    for lr, e in zip(reference, exps):
        lr.train(e, Anchors(), seed=7)
    stacked.train(exps, [7, 7, 7])
    assert_same(stacked, reference)


def test_from_learners_carries_adam_state():
    cfg = PPOConfig(epochs=2, minibatch=32)
    reference = learners(cfg, NetworkConfig(hidden=16, layers=2))
    rng = np.random.default_rng(2)
    first = [experience(rng) for _ in range(3)]
    for lr, e in zip(reference, first):
        lr.train(e, Anchors(), seed=1)
    stacked = StackedPPO.from_learners(reference)  # picks up parameters and Adam moments
    second = [experience(rng) for _ in range(3)]
    for lr, e in zip(reference, second):
        lr.train(e, Anchors(), seed=2)
    stats = stacked.train(second, [2, 2, 2])
    assert stats["optimizer_steps"] == 12
    assert_same(stacked, reference)


def test_one_adam_over_stacked_tensors_equals_per_agent_adams():
    torch.manual_seed(0)
    n, steps = 4, 5
    init = [torch.randn(n, 7, 3), torch.randn(n, 7)]
    grads = [[torch.randn_like(p) for p in init] for _ in range(steps)]
    stacked = [p.clone().requires_grad_(True) for p in init]
    opt = torch.optim.Adam(stacked, lr=1e-2, eps=1e-5)
    per_agent = [[p[i].clone().requires_grad_(True) for p in init] for i in range(n)]
    opts = [torch.optim.Adam(ps, lr=1e-2, eps=1e-5) for ps in per_agent]
    for g in grads:
        for p, gp in zip(stacked, g):
            p.grad = gp.clone()
        opt.step()
        for i, (ps, o) in enumerate(zip(per_agent, opts)):
            for p, gp in zip(ps, g):
                p.grad = gp[i].clone()
            o.step()
    for j, p in enumerate(stacked):
        for i in range(n):
            torch.testing.assert_close(p[i].detach(), per_agent[i][j].detach(), rtol=0, atol=1e-7)


def test_unequal_sample_counts_raise():
    cfg = PPOConfig(epochs=1, minibatch=32)
    reference = learners(cfg, NetworkConfig(hidden=16, layers=1), 2)
    stacked = StackedPPO([lr.actor for lr in reference], [lr.critic for lr in reference], cfg)
    rng = np.random.default_rng(3)
    exps = [experience(rng), experience(rng)]
    exps[1] = replace(exps[1], mask=exps[1].mask.copy())
    exps[1].mask[-3:, 0] = 0  # agent 1's first game terminated three steps early
    with pytest.raises(ValueError, match="same number of live samples"):
        stacked.train(exps, [0, 0])


def test_architectures_must_match():
    a = learners(PPOConfig(), NetworkConfig(hidden=16, layers=1), 1)[0]
    b = learners(PPOConfig(), NetworkConfig(hidden=8, layers=1), 1)[0]
    with pytest.raises(ValueError, match="same architecture"):
        StackedPPO([a.actor, b.actor], [a.critic, b.critic], PPOConfig())


@pytest.mark.parametrize("space", [spaces.Discrete(7), spaces.Box(0, 255, (5, 5, 3), np.uint8)],
                         ids=["one-hot", "image"])
def test_other_observation_spaces(space):
    """The vmapped forward runs any network clients.networks builds: one-hot MLP and CNN too."""
    cfg, net = PPOConfig(epochs=2, minibatch=32), NetworkConfig(hidden=16, layers=1, channels=4)
    reference = learners(cfg, net, space=space)
    space.seed(0)
    exps = [experience(np.random.default_rng(i), space) for i in range(3)]
    stacked = StackedPPO.from_learners(reference)
    assert stacked.impl == "vmap"  # "auto" falls back: these are not plain MLPs
    with pytest.raises(ValueError, match="plain Linear/Tanh MLP"):
        StackedPPO.from_learners(reference, impl="bmm")
    for lr, e in zip(reference, exps):
        lr.train(e, Anchors(), seed=3)
    stacked.train(exps, [3, 3, 3])
    assert_same(stacked, reference)
