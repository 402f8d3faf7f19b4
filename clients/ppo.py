"""PPO learner for one agent, with the proximal anchors a federation may send.

Readable top to bottom, CleanRL style. The agent trains on its own experience only.
Its loss is the clipped PPO objective plus the FPF/D&F proximal pull (paper Eq. 5)::

    L(θ) = L_clip(θ) - c_H·H(π_θ) + λ_u/2·||θ - ω||² + λ_e/2·||θ - ω̄||²  (+ critic loss)

where ``ω`` and ``ω̄`` are the utilitarian and egalitarian anchors and ``λ_u``, ``λ_e``
are the weights the strategy sends (FPF sends ``αλ_u`` and ``αλ_e``, following Eq. 9).
The anchors pull the *policy* (actor) only; the critic is private to the agent.

How the anchor term is stepped (``anchor_step``):

- ``"sgd"`` (default): Algorithm 1, line 8 with Eq. 9: after each Adam step on the PPO
  loss, a plain gradient step ``θ <- θ - lr·[λ_u(θ - ω) + λ_e(θ - ω̄)]``.
- ``"adam"``: the FedProx convention, the penalty added to the loss and stepped by Adam.
  Adam rescales every parameter's gradient, so wherever the policy gradient is small
  even a tiny λ moves the parameter toward the anchor at the full learning rate:
  measured on the Matthew Effect (10 agents, 60 rounds, 3 seeds), FPF reached a
  collective return of 63 against 118 for independent learners.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from clients.model import initial_policy, make_critic


@dataclass
class PPOConfig:
    """Hyperparameters of the agents' learner (defaults: the FPF paper's code)."""

    hidden: int = 256
    layers: int = 2
    lr_actor: float = 1e-3
    lr_critic: float = 1e-3
    gamma: float = 0.98
    gae_lambda: float = 0.97
    clip: float = 0.2
    epochs: int = 4
    minibatch: int = 1024
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    anchor_step: str = "sgd"


@dataclass
class Experience:
    """One agent's own experience from a round: T steps of B parallel games.

    ``obs`` has T+1 rows (the last is the observation after the final step, used to
    bootstrap truncated episodes); ``mask`` is 0 after an episode terminated.
    """

    obs: np.ndarray  # [T+1, B, obs_dim] float32
    actions: np.ndarray  # [T, B] int64
    logp: np.ndarray  # [T, B] float32, behaviour log-probabilities
    rewards: np.ndarray  # [T, B] float32
    terminated: np.ndarray  # [T, B] bool
    mask: np.ndarray  # [T, B] float32

    FIELDS = ("obs", "actions", "logp", "rewards", "terminated", "mask")


@dataclass
class Anchors:
    """The parameters a federation pulls the agent toward, with their weights."""

    omega: dict[str, torch.Tensor] | None = None
    omega_bar: dict[str, torch.Tensor] | None = None
    lambda_u: float = 0.0
    lambda_e: float = 0.0

    @torch.no_grad()
    def pull(self, named_params: list[tuple[str, torch.Tensor]], lr: float) -> None:
        """One plain gradient step on the penalty: θ <- θ - lr·[λ_u(θ - ω) + λ_e(θ - ω̄)]."""
        pairs = [(w, a) for w, a in ((self.lambda_u, self.omega), (self.lambda_e, self.omega_bar)) if a is not None and w > 0]
        for name, p in named_params:
            p -= lr * sum(w * (p - a[name]) for w, a in pairs) if pairs else 0.0

    def penalty(self, named_params: list[tuple[str, torch.Tensor]]) -> torch.Tensor:
        """λ_u/2·||θ - ω||² + λ_e/2·||θ - ω̄||² (zero where an anchor is absent)."""
        total = torch.zeros(())
        for weight, anchor in ((self.lambda_u, self.omega), (self.lambda_e, self.omega_bar)):
            if anchor is not None and weight > 0:
                total = total + weight / 2 * proximal(named_params, anchor)
        return total


def proximal(named_params: list[tuple[str, torch.Tensor]], anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """||θ - anchor||² over all parameters, matched by name."""
    if set(anchor) != {name for name, _ in named_params}:
        raise ValueError(f"anchor has parameters {sorted(anchor)}, policy has {sorted(n for n, _ in named_params)}")
    return sum(((p - anchor[name]) ** 2).sum() for name, p in named_params)


def gae(rewards, values, terminated, gamma: float, lam: float):
    """Generalised advantage estimates; ``values`` has T+1 rows (bootstrap last)."""
    T = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in reversed(range(T)):
        nonterminal = 1.0 - terminated[t]
        delta = rewards[t] + gamma * values[t + 1] * nonterminal - values[t]
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
    return adv, adv + values[:-1]


class PPOLearner:
    """An agent's actor, critic and optimisers."""

    def __init__(self, obs_dim: int, num_actions: int, cfg: PPOConfig, policy_seed: int, critic_seed: int):
        self.cfg = cfg
        self.actor = initial_policy(obs_dim, num_actions, cfg.hidden, cfg.layers, policy_seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(critic_seed)
            self.critic = make_critic(obs_dim, cfg.hidden, cfg.layers)
        self.opt_actor = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr_actor, eps=1e-5)
        self.opt_critic = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr_critic, eps=1e-5)

    def scale_lr(self, scale: float) -> None:
        """Set the learning rates to ``scale`` times the configured ones (LMF's α_t schedule)."""
        for opt, lr in ((self.opt_actor, self.cfg.lr_actor), (self.opt_critic, self.cfg.lr_critic)):
            for group in opt.param_groups:
                group["lr"] = lr * scale

    def train(self, exp: Experience, anchors: Anchors, seed: int) -> dict[str, float]:
        """PPO epochs on ``exp`` with the anchors' proximal pull; returns diagnostics."""
        cfg, start = self.cfg, time.perf_counter()
        obs = torch.as_tensor(exp.obs)
        rewards = torch.as_tensor(exp.rewards)
        terminated = torch.as_tensor(exp.terminated, dtype=torch.float32)
        with torch.no_grad():
            values = self.critic(obs).squeeze(-1)
            adv, returns = gae(rewards, values, terminated, cfg.gamma, cfg.gae_lambda)
        keep = torch.as_tensor(exp.mask).reshape(-1) > 0
        b_obs = obs[:-1].reshape(-1, obs.shape[-1])[keep]
        b_act = torch.as_tensor(exp.actions).reshape(-1)[keep]
        b_logp = torch.as_tensor(exp.logp).reshape(-1)[keep]
        b_adv, b_ret = adv.reshape(-1)[keep], returns.reshape(-1)[keep]

        gen = torch.Generator().manual_seed(seed)
        params = list(self.actor.named_parameters())
        stats = {"pg_loss": 0.0, "v_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0, "prox": 0.0}
        n_updates = 0
        for _ in range(cfg.epochs):
            for idx in torch.randperm(len(b_obs), generator=gen).split(cfg.minibatch):
                dist = torch.distributions.Categorical(logits=self.actor(b_obs[idx]))
                logratio = dist.log_prob(b_act[idx]) - b_logp[idx]
                ratio = logratio.exp()
                mb_adv = b_adv[idx]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std(unbiased=False) + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio, -mb_adv * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean()
                entropy = dist.entropy().mean()
                prox = anchors.penalty(params)
                v_loss = 0.5 * ((self.critic(b_obs[idx]).squeeze(-1) - b_ret[idx]) ** 2).mean()
                loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss
                if cfg.anchor_step == "adam":
                    loss = loss + prox
                self.opt_actor.zero_grad()
                self.opt_critic.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.max_grad_norm)
                nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
                self.opt_actor.step()
                self.opt_critic.step()
                if cfg.anchor_step == "sgd":
                    anchors.pull(params, self.opt_actor.param_groups[0]["lr"])
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                for key, val in zip(stats, (pg_loss, v_loss, entropy, approx_kl, prox)):
                    stats[key] += float(val.detach())
                n_updates += 1
        stats = {k: v / max(n_updates, 1) for k, v in stats.items()}
        stats["train_s"] = time.perf_counter() - start
        # cumulative Adam steps: shows the learner's state survived from earlier rounds
        stats["optimizer_steps"] = float(self.opt_actor.state_dict()["state"][0]["step"])
        stats["num-examples"] = float(len(b_obs))
        return stats

    # Persistence: the whole learner as bytes, so it survives a fresh process per message.
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        torch.save({"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                    "opt_actor": self.opt_actor.state_dict(), "opt_critic": self.opt_critic.state_dict()}, buf)
        return buf.getvalue()

    def load_bytes(self, blob: bytes) -> None:
        state = torch.load(io.BytesIO(blob), weights_only=True)
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.opt_actor.load_state_dict(state["opt_actor"])
        self.opt_critic.load_state_dict(state["opt_critic"])
