"""Continuous actions: the deterministic policy kind, continuous games, the DDPG learner, and
the authors' MPE setting that needs them (clients/ddpg.py, federation/presets/fpf-authors-mpe.toml)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv
from torch import nn

import envs
from clients.anchors import Anchors
from clients.ddpg import DDPGConfig, DDPGLearner, ddpg_target
from clients.experience import Experience
from clients.networks import NetworkConfig
from clients.policies import DETERMINISTIC, act
from clients.settings import ConfigError
from envs.pettingzoo_adapter import PettingZooGame
from federation import presets
from federation.config import RunConfig
from federation.world import World
from strategies.fpf import FPFConfig


# ------------------------------------------------------------------ the policy kind

def test_deterministic_acting_is_tanh_of_the_outputs_or_a_uniform_action_with_probability_epsilon():
    out = torch.tensor([[0.5, -2.0], [1.0, 0.0]])  # two agents, A = 2
    u = torch.tensor([[0.3, 0.25, 0.75], [0.05, 0.0, 1.0]])  # [explore draw, uniform action ...]
    a, logp = act(DETERMINISTIC, out, torch.tensor([0.1, 0.1]), u)  # ε broadcasts against out[..., 0]
    # agent 0: 0.3 >= 0.1, greedy; agent 1: 0.05 < 0.1, the uniform action 2u - 1
    np.testing.assert_allclose(a[0].numpy(), np.tanh([0.5, -2.0]), rtol=1e-6)
    np.testing.assert_allclose(a[1].numpy(), [-1.0, 1.0])
    np.testing.assert_array_equal(logp.numpy(), [0.0, 0.0])
    greedy, _ = act(DETERMINISTIC, out, 0.0, u)
    np.testing.assert_allclose(greedy.numpy(), np.tanh(out.numpy()), rtol=1e-6)


# ------------------------------------------------------------------ continuous games

class BoxToy(ParallelEnv):
    """Learner "a" with actions in [2, 4]^2, a fixed agent "f" in [0, 1]^2; the reward of "a" is
    its first action coordinate as played, so the mapping from [-1, 1] can be read off."""

    metadata = {"name": "box-toy"}

    def __init__(self, fixed_box: bool = True):
        self.possible_agents = ["a", "f"]
        self._act = {"a": spaces.Box(2.0, 4.0, (2,), np.float32),
                     "f": spaces.Box(0.0, 1.0, (2,), np.float32) if fixed_box else spaces.Discrete(3)}
        self.played: list[dict] = []

    def observation_space(self, agent):
        return spaces.Box(-10, 10, (2,), np.float32)

    def action_space(self, agent):
        return self._act[agent]

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        return {a: np.zeros(2, np.float32) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        self.played.append(actions)
        obs = {a: np.asarray(actions[a], np.float32) for a in self.agents}
        rewards = {a: float(np.asarray(actions[a])[0]) for a in self.agents}
        done = {a: False for a in self.agents}
        return obs, rewards, done, dict(done), {a: {} for a in self.agents}


def test_a_box_action_in_minus_one_one_is_played_within_the_agents_own_bounds():
    game = PettingZooGame(BoxToy, ["a"], batch_size=2, episode_length=3, seed=0)
    assert game.continuous and game.action_shape == (2,) and game.num_actions == 2
    _, rewards, _, _ = game.step(np.array([[[-1.0, 1.0]], [[0.5, 0.0]]], np.float32))
    # low + (a + 1)/2·(high - low) with [2, 4]: -1 -> 2, 0.5 -> 3.5
    np.testing.assert_allclose(rewards[:, 0], [2.0, 3.5])
    for env in game.envs:
        fixed = env.played[-1]["f"]
        assert fixed.shape == (2,) and np.all((fixed >= 0) & (fixed <= 1))  # the random fixed agent's bounds


def test_mixed_action_spaces_and_bad_continuous_actions_raise():
    with pytest.raises(ValueError, match="mix Box and Discrete"):
        PettingZooGame(functools.partial(BoxToy, fixed_box=False), ["a"])
    game = PettingZooGame(BoxToy, ["a"], episode_length=3, seed=0)
    with pytest.raises(ValueError, match=r"must be in \[-1, 1\], got 1.5"):
        game.step(np.array([[[1.5, 0.0]]], np.float32))
    with pytest.raises(ValueError, match="shape"):
        game.step(np.zeros((1, 1), np.float32))
    with pytest.raises(ValueError, match="finite"):
        game.step(np.array([[[np.nan, 0.0]]], np.float32))


def test_the_mpe_games_take_continuous_actions_on_request():
    game = envs.make_batched("mpe-predator-prey", 3, batch_size=1, seed=0, continuous_actions=True)
    assert game.continuous and game.action_shape == (5,)
    assert not envs.make_batched("mpe-predator-prey", 3, batch_size=1, seed=0).continuous
    with pytest.raises(ValueError, match="true or false"):
        envs.make_batched("mpe-deception", 2, continuous_actions="yes")


def test_the_world_plays_vectors_reproducibly_and_explores_with_the_worlds_uniforms():
    game = envs.make_batched("mpe-predator-prey", 3, batch_size=2, seed=0, continuous_actions=True,
                             episode_length=6)
    net = NetworkConfig(hidden=8, layers=1)
    first = World(game, ["ddpg"] * 3, net, seed=4, epsilons={"ddpg": 1.0}).rollout(1)
    assert first.actions.shape == (6, 2, 3, 5) and first.actions.dtype == np.float32
    # ε = 1: every action is 2u - 1 of the world's generator, drawn [B, N, 1 + A] a step after the reset's seed
    rng = np.random.default_rng([4, 1])
    rng.integers(2**31)
    np.testing.assert_allclose(first.actions[0], 2 * rng.random((2, 3, 6))[..., 1:] - 1, atol=1e-6)
    again = World(game, ["ddpg"] * 3, net, seed=4, epsilons={"ddpg": 1.0}).rollout(1)
    np.testing.assert_array_equal(first.actions, again.actions)
    np.testing.assert_array_equal(first.rewards, again.rewards)
    greedy = World(game, ["ddpg"] * 3, net, seed=4).rollout(1)  # ε = 0: tanh of the policy, strictly inside
    assert np.all(np.abs(greedy.actions) < 1)
    with pytest.raises(ValueError, match="continuous actions; learner ppo acts discretely"):
        World(game, ["ppo"] * 3, net, seed=0)


def test_experience_transitions_keep_vector_actions():
    T, B, A = 3, 2, 2
    actions = np.arange(T * B * A, dtype=np.float32).reshape(T, B, A) / 10
    mask = np.ones((T, B), np.float32)
    mask[2, 1] = 0  # the second copy's episode ended after step 1
    exp = Experience(obs=np.zeros((T + 1, B, 4), np.float32), actions=actions, logp=np.zeros((T, B), np.float32),
                     rewards=np.ones((T, B), np.float32), terminated=np.zeros((T, B), bool), mask=mask)
    _, a, r, _, _ = exp.transitions()
    assert a.shape == (5, 2)
    np.testing.assert_array_equal(a, actions.reshape(6, 2)[[0, 1, 2, 3, 4]])


# ------------------------------------------------------------------ the DDPG learner

def test_the_ddpg_target_by_hand():
    actor = nn.Linear(2, 1, bias=False)
    critic = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        actor.weight.copy_(torch.tensor([[1.0, 0.0]]))  # f'(o') = o'_0
        critic.weight.copy_(torch.tensor([[1.0, 2.0, 4.0]]))  # Q'(o', a) = o'_0 + 2 o'_1 + 4a
    next_obs = torch.tensor([[0.5, 1.0], [0.0, -1.0]])
    y = ddpg_target(critic, actor, torch.tensor([1.0, 2.0]), next_obs, torch.tensor([0.0, 1.0]), gamma=0.5)
    q_next = 0.5 + 2.0 + 4 * np.tanh(0.5)
    np.testing.assert_allclose(y.numpy(), [1.0 + 0.5 * q_next, 2.0], rtol=1e-6)


def _experience(T=10, B=1, A=5, d=16, seed=0):
    rng = np.random.default_rng(seed)
    return Experience(obs=rng.normal(size=(T + 1, B, d)).astype(np.float32),
                      actions=rng.uniform(-1, 1, (T, B, A)).astype(np.float32),
                      logp=np.zeros((T, B), np.float32), rewards=rng.normal(size=(T, B)).astype(np.float32),
                      terminated=np.zeros((T, B), bool), mask=np.ones((T, B), np.float32))


def _learner(**cfg):
    space = spaces.Box(-np.inf, np.inf, (16,), np.float32)
    return DDPGLearner(space, 5, DDPGConfig(**cfg), NetworkConfig(hidden=8, layers=1), seed=0, agent=0)


def test_ddpg_waits_for_a_minibatch_then_takes_the_replay_ratios_steps_carrying_fractions():
    learner = _learner(batch=16, replay_ratio=0.25)
    assert learner.train(_experience(T=10), Anchors(), seed=0)["optimizer_steps"] == 0  # 10 < 16 in the buffer
    # 20 in the buffer: 0.25 x 10 new = 2.5 -> 2 steps, 0.5 carried
    assert learner.train(_experience(T=10, seed=1), Anchors(), seed=1)["optimizer_steps"] == 2
    assert learner.train(_experience(T=10, seed=2), Anchors(), seed=2)["optimizer_steps"] == 5  # 2.5 + 0.5 = 3
    assert learner.epsilon() == pytest.approx(0.1 - 0.05 * 30 / 100_000)


def test_ddpg_learns_the_critic_and_moves_the_actor_up_the_critic():
    learner = _learner(batch=32, replay_ratio=4.0, lr_actor=1e-2, lr_critic=1e-2)
    exp = _experience(T=64, seed=3)
    exp.rewards[:] = exp.actions[..., 0]  # reward = the first action coordinate: Q rises with a_0
    first = learner.train(exp, Anchors(), seed=0)
    for k in range(6):
        last = learner.train(exp, Anchors(), seed=k + 1)
    assert last["critic_loss"] < first["critic_loss"]
    obs = torch.as_tensor(exp.obs[:-1, 0])
    with torch.no_grad():
        assert float(torch.tanh(learner.policy(obs))[:, 0].mean()) > 0.5  # the actor learnt to push a_0 up


def test_ddpg_targets_follow_every_k_steps_and_the_state_round_trips():
    learner = _learner(batch=8, replay_ratio=1.0, tau=1.0, target_every=3)
    learner.train(_experience(T=8), Anchors(), seed=0)  # 8 steps: targets copied at steps 0, 3, 6
    copied = {k: v.clone() for k, v in learner.actor_target.state_dict().items()}
    learner.train(_experience(T=1, seed=5), Anchors(), seed=1)  # step 8: no copy
    for k, v in learner.actor_target.state_dict().items():
        torch.testing.assert_close(v, copied[k])
        assert not torch.equal(v, learner.policy.state_dict()[k])
    clone = _learner(batch=8, replay_ratio=1.0, tau=1.0, target_every=3)
    clone.load_state_dict(learner.state_dict())
    a = learner.train(_experience(T=4, seed=6), Anchors(), seed=9)
    b = clone.train(_experience(T=4, seed=6), Anchors(), seed=9)
    assert a["critic_loss"] == b["critic_loss"] and a["optimizer_steps"] == b["optimizer_steps"]


# ------------------------------------------------------------------ configuration

def _mpe(**values):
    return RunConfig.of(env="mpe-predator-prey", agents=3, game_options="continuous_actions=true",
                        out="/tmp/never-written-continuous", **values)


def test_learners_and_strategies_must_fit_the_games_actions():
    assert _mpe(learner="ddpg", strategy="independent").learner == "ddpg"
    with pytest.raises(ConfigError, match="learner ppo chooses discrete ones"):
        _mpe(strategy="independent")
    with pytest.raises(ConfigError, match="learner ddpg plays continuous actions; matthew has discrete"):
        RunConfig.of(learner="ddpg", out="/tmp/never-written-continuous")
    with pytest.raises(ConfigError, match="--no-fed-train"):
        _mpe(learner="ddpg", strategy="dnf")
    assert _mpe(learner="ddpg", strategy="dnf", fed_train=False).fpf.fed_train is False
    with pytest.raises(ConfigError, match="jamql's mediator chooses or values discrete actions"):
        _mpe(learner="ddpg", strategy="jamql")


def test_the_authors_mpe_preset_pulls_by_four_events_of_their_step_an_episode():
    """fpf-authors-mpe.toml: alpha·lamda = 1e-3 x 5 per event, four events per 100-step episode,
    so one event per episode of weight 1 - (1 - 0.005)^4; the upload's c is the same number."""
    values = presets.load("fpf-authors-mpe")
    fpf = FPFConfig(fed_alpha=values["fed_alpha"], lambda_u=values["lambda_u"], upload=values["upload"])
    assert fpf.upload_coefficient == pytest.approx(1 - (1 - 1e-3 * 5) ** 4, abs=5e-5)
    cfg = RunConfig.of(**values, out="/tmp/never-written-continuous")
    assert cfg.learner == "ddpg" and cfg.fpf.fed_train is False and cfg.fpf.lambda_e == 0
    assert cfg.ddpg.tau == 0.99 and cfg.ddpg.target_every == 100


def test_a_neighbours_gradient_is_one_adam_step_of_the_actor_and_one_of_the_critic():
    """LMF's gradient-steps exchange with DDPG agents sends actor and critic gradients (the
    authors' broad_gradients); a fresh Adam's first step moves each parameter by lr·sign(g)."""
    learner = _learner(lr_actor=1e-2, lr_critic=1e-3)
    sent = learner.last_gradient()
    critic_names = {f"critic/{n}" for n, _ in learner.critic.named_parameters()}
    assert critic_names <= set(sent) and {n for n, _ in learner.policy.named_parameters()} <= set(sent)
    before_actor = {n: p.detach().clone() for n, p in learner.policy.named_parameters()}
    before_critic = {n: p.detach().clone() for n, p in learner.critic.named_parameters()}
    learner.gradient_step({n: -np.ones_like(g) for n, g in sent.items()})
    for n, p in learner.policy.named_parameters():
        torch.testing.assert_close(p.detach(), before_actor[n] + 1e-2, rtol=0, atol=1e-6)
        assert p.grad is None  # the agent's own last gradient (none yet) is kept
    for n, p in learner.critic.named_parameters():
        torch.testing.assert_close(p.detach(), before_critic[n] + 1e-3, rtol=0, atol=1e-7)
    stepped = {n: p.detach().clone() for n, p in learner.policy.named_parameters()}
    with pytest.raises(ValueError, match="critic gradient has parameters"):
        learner.gradient_step({n: g for n, g in sent.items() if n != "critic/0.weight"})
    for n, p in learner.policy.named_parameters():  # refused before the actor's step
        torch.testing.assert_close(p.detach(), stepped[n], rtol=0, atol=0)
