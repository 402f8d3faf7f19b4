"""The world's batched rollouts, policy kinds, and the PPO learner."""

import numpy as np
import pytest
import torch
from conftest import actor, world
from gymnasium import spaces

import envs
from clients.anchors import Anchors
from clients.networks import NetworkConfig, initial_network, network, to_record
from clients.policies import EPSILON_GREEDY, SOFTMAX, StackedPolicies, act, log_probs
from clients.ppo import PPOConfig, PPOLearner

BOX = spaces.Box(-np.inf, np.inf, (6,), np.float32)
IMAGE = spaces.Box(0, 255, (5, 4, 3), np.uint8)
DISCRETE = spaces.Discrete(7)


@pytest.mark.parametrize("space, table", [(BOX, False), (IMAGE, False), (DISCRETE, False), (DISCRETE, True)])
def test_stacked_networks_match_each_network(space, table):
    """MLP (the hand-written path), CNN, one-hot MLP and table (torch.func) alike."""
    nets = [network(space, 5, NetworkConfig(8, 2, 4), table=table) for _ in range(3)]
    if table:
        for k, n in enumerate(nets):
            torch.nn.init.normal_(n.q, std=1.0, generator=torch.Generator().manual_seed(k))
    stacked = StackedPolicies(nets[0], [to_record(n) for n in nets])
    obs = torch.as_tensor(np.stack([space.sample() for _ in range(3 * 4)]).reshape(3, 4, *space.shape))
    out = stacked(obs)
    for i, net in enumerate(nets):
        torch.testing.assert_close(out[i], net(obs[i]).detach(), rtol=1e-5, atol=1e-5)
    stacked.set(1, to_record(nets[2]))
    torch.testing.assert_close(stacked(obs)[1], nets[2](obs[1]).detach(), rtol=1e-5, atol=1e-5)
    assert np.ptp(stacked.flat([0, 2]), axis=0).max() > 0  # different agents, different rows


@pytest.mark.parametrize("kind", [SOFTMAX, EPSILON_GREEDY])
def test_batched_acting_equals_acting_agent_by_agent(kind):
    out = torch.randn(4, 6, 5)  # [agents, copies, actions]
    eps = torch.tensor([[0.0], [0.1], [0.5], [1.0]])
    u = torch.rand(4, 6, generator=torch.Generator().manual_seed(0))
    a, logp = act(kind, out, eps, u)
    for i in range(4):
        for b in range(6):
            ai, lpi = act(kind, out[i, b], eps[i, 0], u[i, b])
            assert int(a[i, b]) == int(ai) and float(logp[i, b]) == pytest.approx(float(lpi))


def test_epsilon_greedy_probabilities_by_hand():
    q = torch.tensor([[1.0, 3.0, 2.0]])
    p = log_probs(EPSILON_GREEDY, q, torch.tensor([0.3])).exp()
    torch.testing.assert_close(p, torch.tensor([[0.1, 0.8, 0.1]]))
    # u below the first bin's upper edge picks action 0; inside the greedy bin, action 1
    a, logp = act(EPSILON_GREEDY, q, torch.tensor([0.3]), torch.tensor([0.05]))
    assert int(a) == 0 and float(logp) == pytest.approx(np.log(0.1))
    a, _ = act(EPSILON_GREEDY, q, torch.tensor([0.3]), torch.tensor([0.5]))
    assert int(a) == 1


def test_rollout_shapes_logp_and_returns():
    game = envs.make_batched("matthew", 3, batch_size=4, episode_length=10)
    policy = actor(seed=0)
    ro = world(game).rollout(1)
    assert ro.obs.shape == (11, 4, 3, 6) and ro.actions.shape == (10, 4, 3)
    assert ro.state.shape == (11, 4, game.state_space.shape[0])
    with torch.no_grad():
        logp = torch.log_softmax(policy(torch.as_tensor(ro.obs[:-1])), -1)
    expected = torch.gather(logp, -1, torch.as_tensor(ro.actions)[..., None])[..., 0]
    np.testing.assert_allclose(ro.logp, expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(ro.returns, ro.rewards.sum(0).mean(0))
    exp = ro.experience(2)
    np.testing.assert_array_equal(exp.actions, ro.actions[:, :, 2])
    assert exp.obs.shape == (11, 4, 6)


def test_a_rollout_cut_short_does_not_end_a_game_whose_horizon_is_terminal():
    """Bidding's horizon is terminal (t/T is in its state): a whole episode's last step is
    terminal for every agent, a rollout cut short by ``steps`` is not, so learners bootstrap there."""
    game = envs.make_batched("bidding", 3, batch_size=2, episode_length=10)
    ro = world(game).rollout(1, steps=4)
    assert ro.actions.shape[0] == 4 and not ro.terminated.any()
    assert world(game).rollout(1, steps=10).terminated[-1].all()


def test_rollouts_are_seeded_by_round():
    game = envs.make_batched("matthew", 2, batch_size=2, episode_length=5)
    w = world(game, seed=3)
    a, b, c = w.rollout(1), w.rollout(1), w.rollout(2)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert not np.array_equal(a.obs, c.obs)


def _experience(seed=0):
    game = envs.make_batched("matthew", 2, batch_size=4, episode_length=50)
    return world(game, hidden=16, seed=0).rollout(seed + 1).experience(0)


def _ppo(cfg, seed=0, hidden=16):
    return PPOLearner(BOX, 5, cfg, NetworkConfig(hidden, 1), seed=seed, agent=0)


def test_proximal_anchor_pulls_the_policy():
    """With a strong pull toward ω the trained policy ends nearer ω than without it."""
    cfg = PPOConfig(epochs=4, minibatch=64, lr_actor=1e-2)
    omega = {k: v + 0.5 for k, v in actor(hidden=16).state_dict().items()}
    exp = _experience()

    def distance(weight, step):
        learner = _ppo(cfg)
        learner.train(exp, Anchors(omega=omega, weight_u=weight, step=step), seed=0)
        return sum(float(((p.detach() - omega[k]) ** 2).sum()) for k, p in learner.actor.named_parameters())

    free = distance(0.0, "sgd")
    assert distance(10.0, "sgd") < 0.5 * free  # a plain step after each Adam step
    assert distance(10.0, "adam") < 0.5 * free  # FedProx convention: the penalty inside the loss
    assert distance(10.0, "round") == free  # the per-round pull is the ClientApp's, after training


def test_learner_state_round_trips():
    cfg = PPOConfig(epochs=1, minibatch=64)
    a = _ppo(cfg)
    a.train(_experience(), Anchors(), seed=0)
    b = _ppo(cfg, seed=5)
    b.load_state_dict(a.state_dict())
    for (ka, va), (kb, vb) in zip(a.actor.state_dict().items(), b.actor.state_dict().items()):
        torch.testing.assert_close(va, vb)
    assert b.opt_actor.state_dict()["state"][0]["step"] == a.opt_actor.state_dict()["state"][0]["step"] > 0
    # continuing training from the restored state gives the same result as the original
    exp = _experience(seed=1)
    a.train(exp, Anchors(), seed=3)
    b.train(exp, Anchors(), seed=3)
    torch.testing.assert_close(a.actor.state_dict()["0.weight"], b.actor.state_dict()["0.weight"])


def test_cnn_policy_acts_in_an_image_game_and_learns():
    """A CNN built from Job Scheduling's image observations acts in the world and its PPO
    loss decreases on a fixed batch."""
    game = envs.make_batched("job", 2, batch_size=4, episode_length=30, observation="image")
    assert game.observation_space.dtype == np.uint8 and len(game.observation_space.shape) == 3
    w = world(game, hidden=32)
    ro = w.rollout(1)
    assert ro.obs.dtype == np.uint8 and ro.obs.shape[3:] == game.observation_space.shape
    learner = PPOLearner(game.observation_space, game.num_actions, PPOConfig(epochs=1, minibatch=256, lr_actor=3e-3,
                         lr_critic=3e-3), NetworkConfig(32, 1), seed=0, agent=0)
    exp = ro.experience(0)
    exp.rewards = (ro.actions[:, :, 0] == 4).astype(np.float32)  # a reward the policy can learn: action 4
    obs = torch.as_tensor(exp.obs[:-1])

    def prob_of_4():
        with torch.no_grad():
            return float(torch.softmax(learner.actor(obs), -1)[..., 4].mean())

    start = prob_of_4()
    first = learner.train(exp, Anchors(), seed=0)
    for k in range(15):  # PPO iterations on the same batch, each from the current policy
        with torch.no_grad():
            logp = torch.log_softmax(learner.actor(obs), -1)
        exp.logp = logp.gather(-1, torch.as_tensor(exp.actions)[..., None])[..., 0].numpy()
        last = learner.train(exp, Anchors(), seed=k + 1)
    assert last["v_loss"] < 0.5 * first["v_loss"]
    assert abs(start - 0.2) < 0.02 and prob_of_4() > 0.35  # measured: 0.20 -> 0.40
    w.set_acting(0, to_record(learner.actor))
    assert w.rollout(2).actions.shape == (30, 4, 2)


def test_initial_network_is_common_and_seeded():
    a, b = initial_network(BOX, 5, NetworkConfig(8, 1), seed=3), initial_network(BOX, 5, NetworkConfig(8, 1), seed=3)
    c = initial_network(BOX, 5, NetworkConfig(8, 1), seed=4)
    torch.testing.assert_close(a.state_dict()["0.weight"], b.state_dict()["0.weight"])
    assert not torch.equal(a.state_dict()["0.weight"], c.state_dict()["0.weight"])
