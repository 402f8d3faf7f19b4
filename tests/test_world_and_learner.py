"""The world's batched rollouts and the agent's learner."""

import numpy as np
import torch

import envs
from clients.model import initial_policy, to_record
from clients.ppo import Anchors, PPOConfig, PPOLearner
from federation.world import StackedPolicies, World


def test_stacked_policies_match_each_actor():
    actors = [initial_policy(6, 5, 8, 2, seed=s) for s in range(3)]
    stacked = StackedPolicies([to_record(a) for a in actors])
    obs = torch.randn(3, 4, 6)
    logits = stacked.logits(obs)
    for i, actor in enumerate(actors):
        torch.testing.assert_close(logits[i], actor(obs[i]).detach(), rtol=1e-5, atol=1e-5)
    stacked.set(1, to_record(actors[2]))
    torch.testing.assert_close(stacked.logits(obs)[1], actors[2](obs[1]).detach(), rtol=1e-5, atol=1e-5)


def test_rollout_shapes_logp_and_returns():
    game = envs.make_batched("matthew", 3, batch_size=4, episode_length=10)
    actor = initial_policy(game.obs_dim, game.num_actions, 8, 1, seed=0)
    ro = World(game, to_record(actor), seed=0).rollout(1)
    assert ro.obs.shape == (11, 4, 3, 6) and ro.actions.shape == (10, 4, 3) and ro.state.shape == (11, 4, 18)
    with torch.no_grad():
        logp = torch.log_softmax(actor(torch.as_tensor(ro.obs[:-1])), -1)
    expected = torch.gather(logp, -1, torch.as_tensor(ro.actions)[..., None])[..., 0]
    np.testing.assert_allclose(ro.logp, expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(ro.returns, ro.rewards.sum(0).mean(0))
    exp = ro.experience(2)
    np.testing.assert_array_equal(exp.actions, ro.actions[:, :, 2])
    assert exp.obs.shape == (11, 4, 6)


def test_rollouts_are_seeded_by_round():
    game = envs.make_batched("matthew", 2, batch_size=2, episode_length=5)
    world = World(game, to_record(initial_policy(6, 5, 8, 1, seed=0)), seed=3)
    a, b, c = world.rollout(1), world.rollout(1), world.rollout(2)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert not np.array_equal(a.obs, c.obs)


def _experience(seed=0):
    game = envs.make_batched("matthew", 2, batch_size=4, episode_length=50)
    return World(game, to_record(initial_policy(6, 5, 16, 1, seed=0)), seed=seed).rollout(1).experience(0)


def test_proximal_anchor_pulls_the_policy():
    """With a strong pull toward ω the trained policy ends nearer ω than without it."""
    cfg = PPOConfig(hidden=16, layers=1, epochs=4, minibatch=64, lr_actor=1e-2)
    omega = {k: v + 0.5 for k, v in initial_policy(6, 5, 16, 1, seed=0).state_dict().items()}
    exp = _experience()

    def distance(lambda_u):
        learner = PPOLearner(6, 5, cfg, policy_seed=0, critic_seed=1)
        learner.train(exp, Anchors(omega=omega, lambda_u=lambda_u), seed=0)
        return sum(float(((p.detach() - omega[k]) ** 2).sum()) for k, p in learner.actor.named_parameters())

    free, pulled = distance(0.0), distance(10.0)
    assert pulled < 0.5 * free
    cfg.anchor_step = "adam"  # FedProx convention: the penalty inside the loss
    assert distance(10.0) < 0.5 * free


def test_learner_state_round_trips_through_bytes():
    cfg = PPOConfig(hidden=16, layers=1, epochs=1, minibatch=64)
    a = PPOLearner(6, 5, cfg, policy_seed=0, critic_seed=1)
    a.train(_experience(), Anchors(), seed=0)
    b = PPOLearner(6, 5, cfg, policy_seed=5, critic_seed=6)
    b.load_bytes(a.to_bytes())
    for (ka, va), (kb, vb) in zip(a.actor.state_dict().items(), b.actor.state_dict().items()):
        torch.testing.assert_close(va, vb)
    assert b.opt_actor.state_dict()["state"][0]["step"] == a.opt_actor.state_dict()["state"][0]["step"] > 0
    # continuing training from the restored state gives the same result as the original
    exp = _experience(seed=1)
    a.train(exp, Anchors(), seed=3)
    b.train(exp, Anchors(), seed=3)
    torch.testing.assert_close(a.actor.state_dict()["0.weight"], b.actor.state_dict()["0.weight"])
