"""DDPG learner for one agent in a continuous game (Lillicrap et al. 2016), readable top to bottom.

The FPF authors ran their MPE agents with DDPG (github.com/Shaokang-Agent/FPF-LMF, commit
008f9ed, Exp3_MPE/algorithm/df.py ``D_policy``); this learner is that algorithm, so their
MPE setting can be run (federation/presets/fpf-authors-mpe-*.toml). The agent trains on
its own experience only: each round it adds the round's live transitions to its replay
buffer and, once the buffer holds a minibatch, takes ``ddpg_replay_ratio`` gradient steps
per new transition (the authors: one per environment step), each::

    y = r + γ·(1 - done)·Q'(o', μ'(o'))
    critic:  L(φ) = mean (Q_φ(o, a) - y)²
    actor:   L(θ) = -mean Q_φ(o, μ_θ(o))

with ``μ_θ(o) = tanh(f_θ(o))`` in [-1, 1]^A (the policy kind ``deterministic``,
clients/policies.py) and Adam for both (the actor's step first, on the critic before its
own step, as df.py does). Every ``ddpg_target_every`` gradient steps the target networks
follow, ``θ' <- τθ + (1 - τ)θ'`` (df.py: every 100 steps with τ = 0.99; the defaults here
are the usual every step with τ = 0.01).

The agent acts with ``μ_θ`` and, with probability ε, a uniform action instead (the
authors' exploration); ε falls linearly from ``ddpg_eps_start`` to ``ddpg_eps_end`` over
``ddpg_eps_decay`` of the agent's own env-steps (the authors: 0.1 to 0.05 by 5e-7 a step,
so over 100,000 steps).

``policy`` is the actor, the network federations pull, mix or replace; the critic, the
target networks and the buffer stay with the agent. Observations are feature vectors
(``Box`` of rank 1). Both networks are the project's tanh MLPs (``--hidden``,
``--layers``); the authors' have three hidden ReLU layers of 64.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from clients.anchors import Anchors
from clients.dqn import LinearEpsilon, ReplayBuffer, soft_update
from clients.experience import Experience
from clients.learner import Learner, check_gradient, gradients, set_lr, step_with
from clients.networks import NetworkConfig, initial_network, mlp
from clients.policies import DETERMINISTIC
from clients.settings import INT_MAX, Settings, setting


@dataclass
class DDPGConfig(Settings):
    """Hyperparameters of the DDPG learner (see the module docstring)."""

    prefix: ClassVar[str] = "ddpg"
    title: ClassVar[str] = "DDPG learner (--learner ddpg, continuous games)"

    lr_actor: float = setting(1e-3, "Adam learning rate of the actor (the policy)", gt=0.0, le=1.0)
    lr_critic: float = setting(1e-3, "Adam learning rate of the critic Q(o, a)", gt=0.0, le=1.0)
    gamma: float = setting(0.95, "the discount factor γ", ge=0.0, le=1.0)
    buffer: int = setting(500_000, "replay capacity, in transitions", ge=1, le=100_000_000)
    batch: int = setting(64, "minibatch size of each gradient step", ge=1, le=10_000_000)
    replay_ratio: float = setting(1.0, "gradient steps per new transition (the authors: one per env step)",
                                  gt=0.0, le=1000.0)
    tau: float = setting(0.01, "soft update of the target networks, θ' <- τθ + (1 - τ)θ'", ge=0.0, le=1.0)
    target_every: int = setting(1, "gradient steps between target updates (the authors: 100, with τ 0.99)",
                                ge=1, le=INT_MAX)
    eps_start: float = setting(0.1, "ε: the chance of a uniform action instead of μ(o), at the start",
                               ge=0.0, le=1.0)
    eps_end: float = setting(0.05, "ε's floor, reached after --ddpg-eps-decay steps", ge=0.0, le=1.0)
    eps_decay: int = setting(100_000, "the agent's env-steps over which ε falls linearly to its floor (0: at once)",
                             ge=0, le=INT_MAX)


def ddpg_target(critic_target: nn.Module, actor_target: nn.Module, rewards: torch.Tensor, next_obs: torch.Tensor,
                dones: torch.Tensor, gamma: float) -> torch.Tensor:
    """y = r + γ(1 - done)·Q'(o', tanh(f'(o')))."""
    with torch.no_grad():
        next_actions = torch.tanh(actor_target(next_obs))
        q_next = critic_target(torch.cat([next_obs, next_actions], -1)).squeeze(-1)
        return rewards + gamma * (1.0 - dones) * q_next


#: the prefix of the critic's parameters in :meth:`DDPGLearner.last_gradient`
CRITIC = "critic/"


class DDPGLearner(LinearEpsilon, Learner):
    """An agent's actor (its policy), critic, their targets and optimisers, buffer and ε."""

    name, kind = "ddpg", DETERMINISTIC

    def __init__(self, space: spaces.Space, num_actions: int, cfg: DDPGConfig, net: NetworkConfig, seed: int,
                 agent: int):
        if not (isinstance(space, spaces.Box) and len(space.shape) == 1):
            raise ValueError(f"the ddpg learner needs feature-vector observations (a Box of rank 1), got {space}")
        self.cfg = cfg
        obs_dim = int(space.shape[0])
        self.policy = self.policy_network(space, num_actions, net, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            self.critic = mlp(obs_dim + num_actions, 1, net.hidden, net.layers, out_gain=1.0)
        self.actor_target, self.critic_target = copy.deepcopy(self.policy), copy.deepcopy(self.critic)
        for p in (*self.actor_target.parameters(), *self.critic_target.parameters()):
            p.requires_grad_(False)
        self.opt_actor = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr_actor, foreach=True)
        self.opt_critic = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr_critic, foreach=True)
        self.buffer = ReplayBuffer(cfg.buffer, (obs_dim,), np.float32, (num_actions,), np.float32, "ddpg_buffer")
        self.steps_seen = 0  # the agent's live env-steps added to the buffer so far
        self.optimizer_steps = 0
        self._owed = 0.0  # gradient steps owed by the replay ratio, carried over between rounds

    @classmethod
    def policy_network(cls, space: spaces.Space, num_actions: int, net: NetworkConfig, seed: int) -> nn.Module:
        """The actor's pre-activation f_θ (the policy kind applies the tanh)."""
        return initial_network(space, num_actions, net, seed, out_gain=0.01)

    def scale_lr(self, scale: float) -> None:
        set_lr(self.opt_actor, self.cfg.lr_actor * scale)
        set_lr(self.opt_critic, self.cfg.lr_critic * scale)

    def policy_optimizer(self) -> torch.optim.Optimizer:
        return self.opt_actor

    def last_gradient(self) -> dict[str, np.ndarray]:
        """The actor's last gradient and the critic's, the critic's names prefixed ``critic/``:
        LMF's gradient-steps exchange sends both, as the authors' MPE code does
        (Exp3_MPE/Agent/df_agent.py ``broad_gradients``)."""
        return super().last_gradient() | {f"{CRITIC}{name}": g for name, g in gradients(self.critic).items()}

    def gradient_step(self, gradient: dict[str, np.ndarray]) -> None:
        """One step of the actor's optimiser with the actor's part of ``gradient`` and, when it
        has one, one of the critic's with the critic's part (``update_consensus_gradients``)."""
        critic = {name[len(CRITIC):]: g for name, g in gradient.items() if name.startswith(CRITIC)}
        if critic:  # checked before either step
            check_gradient(self.critic, critic, "critic gradient", "critic")
        super().gradient_step({name: g for name, g in gradient.items() if not name.startswith(CRITIC)})
        if critic:
            step_with(self.opt_critic, self.critic, critic)

    def train(self, exp: Experience, anchors: Anchors, seed: int) -> dict[str, float]:
        """Add ``exp`` to the buffer, then the replay ratio's gradient steps (none until the
        buffer holds a minibatch), with the anchors' pull on the actor."""
        cfg, start = self.cfg, time.perf_counter()
        obs, actions, rewards, next_obs, dones = exp.transitions()
        self.buffer.add(obs, actions, rewards, next_obs, dones)
        self.steps_seen += len(rewards)
        updates = 0
        if len(self.buffer) >= cfg.batch:
            self._owed += cfg.replay_ratio * len(rewards)
            updates, self._owed = int(self._owed), self._owed - int(self._owed)
        gen = torch.Generator().manual_seed(seed)
        params = list(self.policy.named_parameters())
        critic_loss = actor_loss = q_mean = 0.0
        for _ in range(updates):
            o, a, r, o2, d = self.buffer.sample(cfg.batch, gen)
            y = ddpg_target(self.critic_target, self.actor_target, r, o2, d, cfg.gamma)
            # the actor's step first, on the critic as it is (Exp3_MPE/algorithm/df.py)
            loss_pi = -self.critic(torch.cat([o, torch.tanh(self.policy(o))], -1)).mean()
            if anchors.in_loss:
                loss_pi = loss_pi + anchors.penalty(params)
            self.opt_actor.zero_grad()
            loss_pi.backward()
            self.opt_actor.step()
            if anchors.per_step:
                anchors.pull(params, self.opt_actor.param_groups[0]["lr"])
            q = self.critic(torch.cat([o, a], -1)).squeeze(-1)
            loss_q = F.mse_loss(q, y)
            self.opt_critic.zero_grad()
            loss_q.backward()
            self.opt_critic.step()
            if self.optimizer_steps % cfg.target_every == 0:
                soft_update(self.actor_target, self.policy, cfg.tau)
                soft_update(self.critic_target, self.critic, cfg.tau)
            self.optimizer_steps += 1
            critic_loss += float(loss_q.detach()) / updates
            actor_loss += float(loss_pi.detach()) / updates
            q_mean += float(q.detach().mean()) / updates
        return {"critic_loss": critic_loss, "actor_loss": actor_loss, "q_mean": q_mean, "epsilon": self.epsilon(),
                "buffer_size": float(len(self.buffer)), "train_s": time.perf_counter() - start,
                "optimizer_steps": float(self.optimizer_steps), "num-examples": float(len(rewards))}

    def state_dict(self) -> dict:
        return copy.deepcopy({"policy": self.policy.state_dict(), "critic": self.critic.state_dict(),
                              "actor_target": self.actor_target.state_dict(),
                              "critic_target": self.critic_target.state_dict(),
                              "opt_actor": self.opt_actor.state_dict(), "opt_critic": self.opt_critic.state_dict(),
                              "buffer": self.buffer.state_dict(), "steps_seen": self.steps_seen,
                              "optimizer_steps": self.optimizer_steps, "owed": self._owed})

    def load_state_dict(self, state: dict) -> None:
        state = copy.deepcopy(state)
        for name in ("policy", "critic", "actor_target", "critic_target", "opt_actor", "opt_critic"):
            getattr(self, name).load_state_dict(state[name])
        self.buffer.load_state_dict(state["buffer"])
        self.steps_seen, self.optimizer_steps = int(state["steps_seen"]), int(state["optimizer_steps"])
        self._owed = float(state["owed"])
