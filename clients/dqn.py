"""Double DQN learner for one agent, with the proximal anchors a federation may send.

Readable top to bottom, CleanRL style. The agent trains on its own experience only: each
round it adds the round's live transitions (:meth:`Experience.transitions`) to its replay
buffer and takes ``dqn_updates`` minibatch steps on the Huber loss of the double-DQN
target (van Hasselt et al. 2016; ``--no-dqn-double``: the plain DQN target, max_a Q_target(o', a))::

    y = r + γ·(1 - done)·Q_target(o', argmax_a Q_online(o', a))
    L(θ) = mean Huber(Q_online(o, a) - y)          (δ = 1, ``smooth_l1_loss``)

After every Adam step the target network follows softly, ``θ' <- τθ + (1 - τ)θ'``, and,
when a federation sent anchors (FPF / D&F), the online network is pulled as
``Anchors.step`` says (clients.anchors): once per round after training (``"round"``, by
the ClientApp), a plain step ``θ <- θ - lr·[λ_u(θ - ω) + λ_e(θ - ω̄)]`` after every
gradient step (``"sgd"``), or the penalty in the TD loss (``"adam"``). The anchors pull the *online* Q-network (the policy) only; the
target network is private and follows the online one.

The agent acts ε-greedily on the online network (policy kind ``epsilon-greedy``). ε falls
linearly from ``dqn_eps_start`` to ``dqn_eps_end`` over ``dqn_eps_decay`` of the agent's
own env-steps (live transitions it has been sent), and stays at ``dqn_eps_end`` after.

Defaults, for a round of ~16 game copies x 200 steps (~3,200 transitions per agent):

- ``dqn_buffer=50_000``: the last ~15 rounds of the agent's experience;
- ``dqn_batch=256``, ``dqn_updates=200``: 51,200 samples per round, each new transition
  replayed ~16 times while it is in the buffer's most recent round;
- ``dqn_tau=0.01`` per gradient step: the target network's time constant is 100 steps,
  half a round;
- ``dqn_eps_decay=20_000``: ε reaches its floor after ~6 rounds;
- ``dqn_lr=1e-3`` (Adam), ``dqn_gamma=0.98`` (PPO's γ), ``dqn_max_grad_norm=10``.

The replay buffer is a numpy ring that stores observations in the observation space's
dtype (uint8 images stay uint8, Discrete indices int64). The learner's whole state
(networks, optimiser, buffer, counters) is :meth:`DQNLearner.state_dict`; the ClientApp
keeps it in the agent's own storage (clients.storage), never in messages.

Besides its losses the learner reports ``q_grad_norm`` = |∇θ Q(o, a)| on the round's last
minibatch (:func:`q_gradient_norm`), the one number of [MD Eq. 15] of the mechanism-design
mediator that only the agent can compute (strategies/md.py).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from clients import stacking
from clients.anchors import Anchors
from clients.experience import Experience
from clients.learner import Learner, set_lr
from clients.networks import NetworkConfig, initial_network
from clients.policies import EPSILON_GREEDY
from clients.reshaping import Reshaper
from typing import Any, ClassVar
from clients.settings import INT_MAX, Settings, setting


@dataclass
class DQNConfig(Settings):
    """Hyperparameters of the DQN learner (see the module docstring for the defaults)."""

    prefix: ClassVar[str] = "dqn"
    title: ClassVar[str] = "DQN learner (--learner dqn)"

    lr: float = setting(1e-3, "Adam learning rate of the Q-network", gt=0.0, le=1.0)
    gamma: float = setting(0.98, "the discount factor γ", ge=0.0, le=1.0)
    buffer: int = setting(50_000, "replay capacity, in transitions", ge=1, le=100_000_000)
    batch: int = setting(256, "minibatch size of each gradient step", ge=1, le=10_000_000)
    updates: int = setting(200, "gradient steps per round", ge=1, le=10_000_000)
    tau: float = setting(0.01, "soft update of the target network per gradient step", ge=0.0, le=1.0)
    eps_start: float = setting(1.0, "ε of ε-greedy exploration at the start", ge=0.0, le=1.0)
    eps_end: float = setting(0.05, "ε's floor, reached after --dqn-eps-decay steps", ge=0.0, le=1.0)
    eps_decay: int = setting(20_000, "the agent's env-steps over which ε falls linearly to its floor (0: at once)",
                             ge=0, le=INT_MAX)
    max_grad_norm: float = setting(10.0, "gradients are clipped to this norm", gt=0.0, le=1e9)
    double: bool = setting(True, "double DQN: the online network picks the next action, the target network values "
                                 "it; --no-dqn-double bootstraps on the target network's max (plain DQN)")


def linear_epsilon(steps: int, start: float, end: float, decay: int) -> float:
    """ε after ``steps`` env-steps: linear from ``start`` to ``end`` over ``decay`` steps."""
    if decay <= 0:
        return float(end)
    frac = min(1.0, steps / decay)
    return float(start + frac * (end - start))


class LinearEpsilon:
    """A learner whose ε falls linearly with its own env-steps (``steps_seen``) from its
    config's ``eps_start`` to ``eps_end`` over ``eps_decay`` (DQN, DDPG)."""

    cfg: Any
    steps_seen: int

    @classmethod
    def initial_epsilon(cls, cfg: Any) -> float:
        return linear_epsilon(0, cfg.eps_start, cfg.eps_end, cfg.eps_decay)

    def epsilon(self) -> float:
        c = self.cfg
        return linear_epsilon(self.steps_seen, c.eps_start, c.eps_end, c.eps_decay)


def double_dqn_target(online: nn.Module, target: nn.Module, rewards: torch.Tensor, next_obs: torch.Tensor,
                      dones: torch.Tensor, gamma: float, double: bool = True) -> torch.Tensor:
    """y = r + γ(1 - done)·Q_target(o', argmax_a Q_online(o', a)), ties to the lowest index;
    with ``double=False`` the plain DQN target y = r + γ(1 - done)·max_a Q_target(o', a)."""
    with torch.no_grad():
        if not double:
            return rewards + gamma * (1.0 - dones) * target(next_obs).max(-1).values
        best = online(next_obs).argmax(-1, keepdim=True)
        q_next = target(next_obs).gather(-1, best).squeeze(-1)
        return rewards + gamma * (1.0 - dones) * q_next


class ReplayBuffer:
    """A ring of the most recent ``capacity`` transitions; observations keep their dtype.
    Actions are indices by default; a continuous learner's are float vectors
    (``action_shape=(A,)``, ``action_dtype=np.float32``, clients/ddpg.py). ``setting``: the
    flag that sets the capacity, for errors."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype, action_shape: tuple[int, ...] = (),
                 action_dtype=np.int64, setting: str = "dqn_buffer"):
        self.capacity = int(capacity)
        self.setting = setting
        self.obs = np.zeros((self.capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((self.capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros((self.capacity, *action_shape), dtype=action_dtype)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.dones = np.zeros(self.capacity, dtype=np.float32)
        self.pos = 0  # where the next transition goes
        self.size = 0  # how many slots are filled

    FIELDS = ("obs", "actions", "rewards", "next_obs", "dones")
    #: what the mechanism-design mediator's minibatch mode also keeps per transition: the
    #: global state, the joint action and the game's rewards (clients/reshaping.py)
    JOINT = ("states", "joint_actions", "raw_rewards")

    def __len__(self) -> int:
        return self.size

    @property
    def joint(self) -> bool:
        """Whether the buffer keeps the joint fields."""
        return hasattr(self, "states")

    def keep_joint(self, state_dim: int, num_agents: int) -> None:
        """Keep the joint fields from now on (only for an empty buffer: every row needs them)."""
        if self.joint:
            return
        if self.size:
            raise ValueError("the replay buffer holds transitions without the joint state and action: "
                             "--md-reshape-time minibatch must be set from the first round")
        self.states = np.zeros((self.capacity, state_dim), np.float32)
        self.joint_actions = np.zeros((self.capacity, num_agents), np.int64)
        self.raw_rewards = np.zeros((self.capacity, num_agents), np.float32)

    def fields(self) -> tuple[str, ...]:
        return self.FIELDS + (self.JOINT if self.joint else ())

    def add(self, obs, actions, rewards, next_obs, dones, joint: tuple | None = None) -> None:
        """Append transitions in order; the oldest are overwritten once the ring is full.
        ``joint``: (states, joint actions, raw rewards) of the same rows, for a buffer that
        keeps them."""
        if self.joint != (joint is not None):
            raise ValueError("the replay buffer " + ("keeps" if self.joint else "does not keep")
                             + " the joint fields; add() got " + ("none" if joint is None else "them"))
        values = (obs, actions, rewards, next_obs, dones, *(joint or ()))
        n = len(actions)
        if n > self.capacity:  # only the last `capacity` would survive anyway
            values = tuple(x[-self.capacity:] for x in values)
            n = self.capacity
        idx = (self.pos + np.arange(n)) % self.capacity
        for name, value in zip(self.fields(), values):
            getattr(self, name)[idx] = value
        self.pos = int((self.pos + n) % self.capacity)
        self.size = int(min(self.size + n, self.capacity))

    def ordered(self) -> tuple[np.ndarray, ...]:
        """The stored transitions, oldest first (for tests and inspection)."""
        start = self.pos if self.size == self.capacity else 0
        idx = (start + np.arange(self.size)) % self.capacity
        return tuple(getattr(self, name)[idx] for name in self.FIELDS)

    def sample(self, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        """``batch`` transitions drawn uniformly with replacement (SB3's convention): the
        five fields, then the joint ones where the buffer keeps them."""
        idx = torch.randint(self.size, (batch,), generator=gen).numpy()
        return tuple(torch.as_tensor(getattr(self, name)[idx]) for name in self.fields())

    def state_dict(self) -> dict:
        """Copies of the filled slots, position and fill count (not the empty tail)."""
        return {"capacity": self.capacity, "pos": self.pos, "size": self.size,
                **{name: getattr(self, name)[:self.size].copy() for name in self.fields()}}

    def load_state_dict(self, state: dict) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"stored replay buffer has capacity {state['capacity']}, "
                             f"the learner is configured with {self.setting}={self.capacity}")
        if "states" in state:
            self.keep_joint(state["states"].shape[1], state["joint_actions"].shape[1])
        self.pos, self.size = int(state["pos"]), int(state["size"])
        for name in self.fields():
            stored = np.asarray(state[name])
            target = getattr(self, name)
            if stored.shape[1:] != target.shape[1:] or stored.dtype != target.dtype:
                raise ValueError(f"stored replay field '{name}' is {stored.dtype}{stored.shape[1:]}, "
                                 f"the observation space needs {target.dtype}{target.shape[1:]}")
            target[:self.size] = stored


class DQNLearner(LinearEpsilon, Learner):
    """An agent's online and target Q-networks, optimiser, replay buffer and ε schedule."""

    name, kind = "dqn", EPSILON_GREEDY

    def __init__(self, space: spaces.Space, num_actions: int, cfg: DQNConfig, net: NetworkConfig, seed: int,
                 agent: int):
        self.cfg = cfg
        self.policy = self.policy_network(space, num_actions, net, seed)
        self.target = copy.deepcopy(self.policy)
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr)
        assert space.shape is not None, "DQN's observation space has a shape"
        self.buffer = ReplayBuffer(cfg.buffer, tuple(space.shape), space.dtype)
        self.steps_seen = 0  # the agent's live env-steps added to the buffer so far
        self.optimizer_steps = 0  # cumulative gradient steps
        self.reshaper: Reshaper | None = None

    @classmethod
    def policy_network(cls, space: spaces.Space, num_actions: int, net: NetworkConfig, seed: int) -> nn.Module:
        # out_gain 1: Q-values start at the scale of PyTorch's default init (CleanRL's DQN)
        return initial_network(space, num_actions, net, seed, out_gain=1.0)

    def scale_lr(self, scale: float) -> None:
        set_lr(self.opt, self.cfg.lr * scale)

    def policy_optimizer(self) -> torch.optim.Optimizer:
        return self.opt

    def reshape_with(self, reshaper: Reshaper | None) -> None:
        self.reshaper = reshaper

    def train(self, exp: Experience, anchors: Anchors, seed: int) -> dict[str, float]:
        """Add ``exp`` to the buffer, then ``dqn_updates`` double-DQN steps with the anchors' pull.

        With a reshaper (the mechanism-design mediator's minibatch mode, clients/reshaping.py)
        the buffer also keeps each step's global state, joint action and game rewards, and every
        minibatch's rewards are recomputed by it, with |∇θ Q(o, a)| of this network on that
        minibatch; ``md_relabel_gap`` is the mean |recomputed − stored| reward."""
        cfg, start = self.cfg, time.perf_counter()
        new = self.remember(exp)
        reshaper, dev = self.reshaper, self.device

        gen = torch.Generator().manual_seed(seed)
        params = list(self.policy.named_parameters())
        pull = anchors.per_step
        td_loss = q_mean = relabel_gap = 0.0
        n_updates = cfg.updates if len(self.buffer) > 0 else 0
        for _ in range(n_updates):
            batch = self.buffer.sample(cfg.batch, gen)
            obs, actions, rewards, next_obs, dones = (x.to(dev) for x in batch[:5])
            joint_batch = batch[5:]  # the joint fields stay on the host
            if reshaper is not None:
                stored = rewards
                rewards = torch.as_tensor(self.minibatch_rewards(reshaper, obs, actions, *joint_batch)).to(dev)
                relabel_gap += float((rewards - stored).abs().mean()) / n_updates
            y = double_dqn_target(self.policy, self.target, rewards, next_obs, dones, cfg.gamma, cfg.double)
            q = self.policy(obs).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
            loss = F.smooth_l1_loss(q, y)
            if anchors.in_loss:
                loss = loss + anchors.penalty(params)
            self.opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
            self.opt.step()
            if pull:
                anchors.pull(params, self.opt.param_groups[0]["lr"])
            soft_update(self.target, self.policy, cfg.tau)
            self.optimizer_steps += 1
            td_loss += float(loss.detach()) / n_updates
            q_mean += float(q.detach().mean()) / n_updates
        grad_norm = q_gradient_norm(self.policy, obs, actions) if n_updates else 0.0
        extra = {"md_relabel_gap": relabel_gap} if reshaper is not None else {}
        return extra | {"td_loss": td_loss, "q_mean": q_mean, "q_grad_norm": grad_norm, "epsilon": self.epsilon(),
                "buffer_size": float(len(self.buffer)), "train_s": time.perf_counter() - start,
                # cumulative: shows the learner's state survived from earlier rounds
                "optimizer_steps": float(self.optimizer_steps),
                # this round's new transitions (the weight FedAvg-style aggregation uses)
                "num-examples": float(new)}

    def remember(self, exp: Experience) -> int:
        """Add the round's live transitions to the replay buffer (on the host; with a
        reshaper, with their joint fields); return how many."""
        new = exp.transitions()
        joint = None
        if (reshaper := self.reshaper) is not None:
            joint = reshaper.steps.live(exp.mask)
            self.buffer.keep_joint(joint[0].shape[1], joint[1].shape[1])
        self.buffer.add(new[0], new[1], new[2], new[3], new[4], joint=joint)
        self.steps_seen += len(new[1])
        return len(new[1])

    @property
    def device(self) -> torch.device:
        return next(self.policy.parameters()).device

    def to(self, device: str) -> "DQNLearner":
        self.policy.to(device)  # in place: the optimiser keeps the same parameters
        self.target.to(device)
        return self

    def stack_key(self, exp: Experience, anchors: Anchors):
        """Agents train stacked when their hyperparameters, networks and optimiser states
        agree, they recompute no rewards per minibatch, and their anchors (if any) pull once
        per round. Their replay buffers stay their own (and may differ in size)."""
        if (type(self).train is not _OWN_TRAIN or self.reshaper is not None or anchors.per_step or anchors.in_loss
                or not stacking.stackable(self.policy) or (len(self.buffer) == 0 and not (exp.mask > 0).any())):
            return None
        return repr(self.cfg), stacking.architecture(self.policy), stacking.adam_key(self.opt), self.optimizer_steps

    @classmethod
    def train_stacked(cls, jobs: list) -> list[dict[str, float]]:
        """Every job's ``train`` in one pass (clients/stacking.py): each agent adds its
        transitions to its own buffer and draws its minibatches from it with its own
        generator, as ``train`` does; the online and target networks and Adam run stacked.

        Tolerance: in fp32 on the CPU, after 30 updates on a tiny MLP or CNN, every
        parameter (online and target) is within 1e-5 (absolute) of the separate updates'
        and the losses within 1e-5 relative (tests/test_stacked_training.py).
        """
        learners: list[DQNLearner] = [job.learner for job in jobs]
        cfg, N, dev = learners[0].cfg, len(jobs), learners[0].device
        new = [lr.remember(job.exp) for lr, job in zip(learners, jobs)]
        online = stacking.StackedNet([lr.policy for lr in learners])
        target = stacking.StackedNet([lr.target for lr in learners], trainable=False)
        opt = stacking.stack_adam([lr.opt for lr in learners], online.tensors())
        gens = [torch.Generator().manual_seed(job.seed) for job in jobs]
        td_loss = torch.zeros(N, dtype=torch.float64, device=dev)
        q_mean = torch.zeros(N, dtype=torch.float64, device=dev)
        batches: list[tuple[torch.Tensor, ...]] = []
        for _ in range(cfg.updates):
            batches = [lr.buffer.sample(cfg.batch, g) for lr, g in zip(learners, gens)]
            obs, actions, rewards, next_obs, dones = (torch.stack(field).to(dev) for field in list(zip(*batches))[:5])
            with torch.no_grad():
                if cfg.double:
                    best = online(next_obs).argmax(-1, keepdim=True)
                    q_next = target(next_obs).gather(-1, best).squeeze(-1)
                else:
                    q_next = target(next_obs).max(-1).values
                y = rewards + cfg.gamma * (1.0 - dones) * q_next
            q = online(obs).gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # [N, batch]
            loss = F.smooth_l1_loss(q, y, reduction="none").mean(1)  # [N]
            opt.zero_grad()
            loss.sum().backward()
            online.clip_grad_norm_(cfg.max_grad_norm)
            opt.step()
            target.lerp_(online, cfg.tau)
            td_loss += loss.detach().double() / cfg.updates
            q_mean += q.detach().mean(1).double() / cfg.updates
        online.write_back([lr.policy for lr in learners])
        target.write_back([lr.target for lr in learners])
        stacking.unstack_adam(opt, online.tensors(), [lr.opt for lr in learners])
        out = []
        for i, lr in enumerate(learners):
            lr.optimizer_steps += cfg.updates
            obs_i, actions_i = batches[i][0].to(dev), batches[i][1].to(dev)
            out.append({"td_loss": float(td_loss[i]), "q_mean": float(q_mean[i]),
                        "q_grad_norm": q_gradient_norm(lr.policy, obs_i, actions_i), "epsilon": lr.epsilon(),
                        "buffer_size": float(len(lr.buffer)), "optimizer_steps": float(lr.optimizer_steps),
                        "num-examples": float(new[i])})
        return out

    def minibatch_rewards(self, reshaper: Reshaper, obs: torch.Tensor, actions: torch.Tensor, states: torch.Tensor,
                          joint_actions: torch.Tensor, raw_rewards: torch.Tensor) -> np.ndarray:
        """λ·r_i + R̄_i of a minibatch by the round's mechanism ([MD] Algorithm 1, line 14), with
        this network's |∇θ Q(o, a)| on the minibatch and, for the own denominator, its Q(o, ·)."""
        grad_norm = q_gradient_norm(self.policy, obs, actions)
        with torch.no_grad():
            own_q = self.policy(obs).cpu().numpy() if reshaper.denominator == "own" else None
        return reshaper.rewards(states.cpu().numpy(), joint_actions.cpu().numpy(), raw_rewards.cpu().numpy(), grad_norm,
                                own_q)

    def state_dict(self) -> dict:
        """Deep copies: the result stays valid while this learner keeps training."""
        return copy.deepcopy({"policy": self.policy.state_dict(), "target": self.target.state_dict(),
                              "opt": self.opt.state_dict(), "buffer": self.buffer.state_dict(),
                              "steps_seen": self.steps_seen, "optimizer_steps": self.optimizer_steps})

    def load_state_dict(self, state: dict) -> None:
        state = copy.deepcopy(state)
        self.policy.load_state_dict(state["policy"])
        self.target.load_state_dict(state["target"])
        self.opt.load_state_dict(state["opt"])
        self.buffer.load_state_dict(state["buffer"])
        self.steps_seen = int(state["steps_seen"])
        self.optimizer_steps = int(state["optimizer_steps"])


#: the ``train`` that ``train_stacked`` reproduces: a subclass (or anything) that replaces it trains alone
_OWN_TRAIN = DQNLearner.train


def q_gradient_norm(net: nn.Module, obs: torch.Tensor, actions: torch.Tensor) -> float:
    """|∇θ Q(o, a)|: the L2 norm of the gradient of the minibatch mean of Q(o, a) over the
    network's parameters; reported as ``q_grad_norm`` (a mechanism reshaping rewards reads
    it, strategies/md.py; the parameters themselves never leave the agent)."""
    params = [p for p in net.parameters() if p.requires_grad]
    q = net(obs).gather(-1, actions.unsqueeze(-1)).mean()
    grads = torch.autograd.grad(q, params)
    squared = sum((g ** 2).sum() for g in grads)
    assert isinstance(squared, torch.Tensor)  # the network has parameters (autograd.grad needs some)
    return float(torch.sqrt(squared))


@torch.no_grad()
def soft_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """θ' <- τθ + (1 - τ)θ' (Polyak averaging), parameters and buffers alike."""
    for t, o in zip(target.state_dict().values(), online.state_dict().values()):
        if t.is_floating_point():
            t.lerp_(o, tau)
        else:
            t.copy_(o)
