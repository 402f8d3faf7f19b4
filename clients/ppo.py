"""PPO learner for one agent, with the proximal anchors a federation may send.

Readable top to bottom, CleanRL style. The agent trains on its own experience only.
Its loss is the clipped PPO objective plus the FPF/D&F proximal pull ([FPF Eq. 5])::

    L(θ) = L_clip(θ) - c_H·H(π_θ) + λ_u/2·||θ - ω||² + λ_e/2·||θ - ω̄||²  (+ critic loss)

where ``ω`` and ``ω̄`` are the utilitarian and egalitarian anchors and ``λ_u``, ``λ_e``
stand for the pull weights the strategy sends (FPF sends ``αλ_u`` and ``αλ_e``, following
[FPF Eq. 9]; see clients.anchors). The anchors pull the *policy* (actor) only; the critic is
private to the agent. Actor and critic are built from the observation space
(clients.networks): an MLP for feature vectors, a CNN for images, one-hot for indices.

How the anchor term is stepped (``Anchors.step``, see clients.anchors): ``"round"``
(default) is applied by the ClientApp after training, once per round; ``"sgd"`` is a plain
gradient step ``θ <- θ - lr·[λ_u(θ - ω) + λ_e(θ - ω̄)]`` after each Adam step;
``"adam"`` adds the penalty to the loss stepped by Adam (the FedProx convention). Adam
rescales every parameter's gradient, so wherever the policy gradient is small even a tiny
λ then moves the parameter toward the anchor at the full learning rate: measured on the
Matthew Effect (10 agents, 60 rounds, 3 seeds), FPF reached a collective return of 63
against 118 for independent learners.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from gymnasium import spaces
from torch import nn

from clients import stacking
from clients.anchors import Anchors
from clients.experience import Experience
from clients.learner import Learner, restore, set_lr, snapshot
from clients.networks import NetworkConfig, initial_network, network
from clients.policies import SOFTMAX
from typing import ClassVar
from clients.settings import Settings, setting


@dataclass
class PPOConfig(Settings):
    """Hyperparameters of the PPO learner (defaults: the FPF authors' code, but lr_actor)."""

    prefix: ClassVar[str] = "ppo"
    title: ClassVar[str] = "PPO learner (--learner ppo)"

    lr_actor: float = setting(1e-3, "Adam learning rate of the actor", gt=0.0, le=1.0, aliases=("lr-actor",))
    lr_critic: float = setting(1e-3, "Adam learning rate of the critic", gt=0.0, le=1.0, aliases=("lr-critic",))
    gamma: float = setting(0.98, "discount factor γ", ge=0.0, le=1.0, aliases=("gamma",))
    gae_lambda: float = setting(0.97, "λ of generalised advantage estimation", ge=0.0, le=1.0, aliases=("gae-lambda",))
    clip: float = setting(0.2, "PPO's clipping range ε of the probability ratio", ge=0.0, le=1.0, aliases=("clip",))
    epochs: int = setting(4, "passes over the round's experience", ge=1, le=10_000, aliases=("epochs",))
    minibatch: int = setting(1024, "samples per gradient step", ge=1, le=10_000_000, aliases=("minibatch",))
    ent_coef: float = setting(0.01, "weight of the entropy bonus", ge=0.0, le=1e6, aliases=("ent-coef",))
    vf_coef: float = setting(0.5, "weight of the value loss", ge=0.0, le=1e6, aliases=("vf-coef",))
    max_grad_norm: float = setting(0.5, "gradients are clipped to this norm", gt=0.0, le=1e9, aliases=("max-grad-norm",))


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


class PPOLearner(Learner):
    """An agent's actor, critic and optimisers."""

    name, kind = "ppo", SOFTMAX

    def __init__(self, space: spaces.Space, num_actions: int, cfg: PPOConfig, net: NetworkConfig, seed: int,
                 agent: int):
        self.cfg = cfg
        self.actor = self.policy = self.policy_network(space, num_actions, net, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1000 + agent + 1)
            self.critic = network(space, 1, net, out_gain=1.0)
        self.opt_actor = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr_actor, eps=1e-5)
        self.opt_critic = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr_critic, eps=1e-5)

    @classmethod
    def policy_network(cls, space: spaces.Space, num_actions: int, net: NetworkConfig, seed: int) -> nn.Module:
        return initial_network(space, num_actions, net, seed, out_gain=0.01)

    def scale_lr(self, scale: float) -> None:
        set_lr(self.opt_actor, self.cfg.lr_actor * scale)
        set_lr(self.opt_critic, self.cfg.lr_critic * scale)

    def policy_optimizer(self) -> torch.optim.Optimizer:
        return self.opt_actor

    def train(self, exp: Experience, anchors: Anchors, seed: int) -> dict[str, float]:
        """PPO epochs on ``exp`` with the anchors' proximal pull; returns diagnostics."""
        cfg, start = self.cfg, time.perf_counter()
        dev = self.device
        obs = torch.as_tensor(exp.obs).to(dev)
        rewards = torch.as_tensor(exp.rewards).to(dev)
        terminated = torch.as_tensor(exp.terminated, dtype=torch.float32).to(dev)
        with torch.no_grad():
            values = self.critic(obs).squeeze(-1)
            adv, returns = gae(rewards, values, terminated, cfg.gamma, cfg.gae_lambda)
        keep = torch.as_tensor(exp.mask).to(dev).reshape(-1) > 0
        b_obs = obs[:-1].flatten(0, 1)[keep]
        b_act = torch.as_tensor(exp.actions).to(dev).reshape(-1)[keep]
        b_logp = torch.as_tensor(exp.logp).to(dev).reshape(-1)[keep]
        b_adv, b_ret = adv.reshape(-1)[keep], returns.reshape(-1)[keep]

        gen = torch.Generator().manual_seed(seed)  # minibatch order on the CPU, whatever the device
        params = list(self.actor.named_parameters())
        stats = {"pg_loss": 0.0, "v_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0, "prox": 0.0}
        n_updates = 0
        for _ in range(cfg.epochs):
            for idx in torch.randperm(len(b_obs), generator=gen).to(dev).split(cfg.minibatch):
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
                if anchors.in_loss:
                    loss = loss + prox
                self.opt_actor.zero_grad()
                self.opt_critic.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.max_grad_norm)
                nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
                self.opt_actor.step()
                self.opt_critic.step()
                if anchors.per_step:
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

    @property
    def device(self) -> torch.device:
        return next(self.actor.parameters()).device

    def to(self, device: str) -> "PPOLearner":
        self.actor.to(device)  # in place: the optimisers keep the same parameters
        self.critic.to(device)
        return self

    def stack_key(self, exp: Experience, anchors: Anchors):
        """Agents train stacked when their hyperparameters, networks, optimiser states and
        numbers of live samples agree, and their anchors (if any) pull once per round."""
        live = int((exp.mask > 0).sum())
        if (type(self).train is not _OWN_TRAIN or live == 0 or anchors.per_step or anchors.in_loss
                or not (stacking.stackable(self.actor) and stacking.stackable(self.critic))):
            return None
        return (repr(self.cfg), stacking.architecture(self.actor), stacking.architecture(self.critic),
                stacking.adam_key(self.opt_actor), stacking.adam_key(self.opt_critic), live)

    @classmethod
    def train_stacked(cls, jobs: list) -> list[dict[str, float]]:
        """Every job's ``train`` in one pass (clients/stacking.py): the same minibatches, in
        the same order, from each agent's own generator; the same clipped PPO loss per agent.

        Tolerance: in fp32 on the CPU, after 4 epochs of 10 minibatches each on a tiny
        network, every parameter is within 1e-5 (absolute) of the separate updates' and
        every diagnostic within 1e-5 relative (tests/test_stacked_training.py); the
        difference is the order of float reductions in batched matmuls only.
        """
        learners: list[PPOLearner] = [job.learner for job in jobs]
        cfg, N, dev = learners[0].cfg, len(jobs), learners[0].device
        actor = stacking.StackedNet([lr.actor for lr in learners])
        critic = stacking.StackedNet([lr.critic for lr in learners])
        opt_actor = stacking.stack_adam([lr.opt_actor for lr in learners], actor.tensors())
        opt_critic = stacking.stack_adam([lr.opt_critic for lr in learners], critic.tensors())

        obs = torch.stack([torch.as_tensor(job.exp.obs) for job in jobs]).to(dev)  # [N, T+1, B, ...]
        rewards = torch.stack([torch.as_tensor(job.exp.rewards) for job in jobs]).to(dev)
        terminated = torch.stack([torch.as_tensor(job.exp.terminated, dtype=torch.float32) for job in jobs]).to(dev)
        keep = torch.stack([torch.as_tensor(job.exp.mask) for job in jobs]).to(dev).reshape(N, -1) > 0
        n = int(keep[0].sum())  # the same for every agent (stack_key)
        with torch.no_grad():
            values = critic(obs).squeeze(-1)  # [N, T+1, B]
            # gae runs over time (first axis) and broadcasts over agents and copies
            adv, returns = gae(rewards.transpose(0, 1), values.transpose(0, 1), terminated.transpose(0, 1),
                               cfg.gamma, cfg.gae_lambda)
        shape = obs.shape[3:]
        b_obs = obs[:, :-1].flatten(1, 2)[keep].reshape(N, n, *shape)
        b_act = torch.stack([torch.as_tensor(job.exp.actions) for job in jobs]).to(dev).reshape(N, -1)[keep]
        b_logp = torch.stack([torch.as_tensor(job.exp.logp) for job in jobs]).to(dev).reshape(N, -1)[keep]
        b_act, b_logp = b_act.reshape(N, n), b_logp.reshape(N, n)
        b_adv = adv.transpose(0, 1).reshape(N, -1)[keep].reshape(N, n)
        b_ret = returns.transpose(0, 1).reshape(N, -1)[keep].reshape(N, n)

        gens = [torch.Generator().manual_seed(job.seed) for job in jobs]
        rows = torch.arange(N, device=dev)[:, None]
        keys = ("pg_loss", "v_loss", "entropy", "approx_kl", "prox")
        sums = torch.zeros(len(keys), N, dtype=torch.float64, device=dev)
        n_updates = 0
        for _ in range(cfg.epochs):
            perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(dev)  # [N, n]
            for idx in perms.split(cfg.minibatch, dim=1):
                mb_obs = b_obs[rows, idx]  # agent i's minibatch in row i
                logp_all = torch.log_softmax(actor(mb_obs), -1)  # Categorical(logits=...)'s normalisation
                logratio = logp_all.gather(-1, b_act[rows, idx][..., None]).squeeze(-1) - b_logp[rows, idx]
                ratio = logratio.exp()
                mb_adv = b_adv[rows, idx]
                mb_adv = (mb_adv - mb_adv.mean(1, keepdim=True)) / (mb_adv.std(1, unbiased=False, keepdim=True) + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio, -mb_adv * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean(1)
                entropy = -(logp_all.exp() * logp_all).sum(-1).mean(1)
                prox = stacking.prox_stat(actor, [job.anchors for job in jobs])
                v_loss = 0.5 * ((critic(mb_obs).squeeze(-1) - b_ret[rows, idx]) ** 2).mean(1)
                loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss  # [N]
                opt_actor.zero_grad()
                opt_critic.zero_grad()
                loss.sum().backward()
                actor.clip_grad_norm_(cfg.max_grad_norm)
                critic.clip_grad_norm_(cfg.max_grad_norm)
                opt_actor.step()
                opt_critic.step()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean(1)
                    sums += torch.stack([pg_loss, v_loss, entropy, approx_kl, prox]).detach().double()
                n_updates += 1
        actor.write_back([lr.actor for lr in learners])
        critic.write_back([lr.critic for lr in learners])
        stacking.unstack_adam(opt_actor, actor.tensors(), [lr.opt_actor for lr in learners])
        stacking.unstack_adam(opt_critic, critic.tensors(), [lr.opt_critic for lr in learners])
        means = (sums / max(n_updates, 1)).cpu().tolist()
        steps = float(learners[0].opt_actor.state_dict()["state"][0]["step"])
        return [{**{k: means[j][i] for j, k in enumerate(keys)}, "optimizer_steps": steps, "num-examples": float(n)}
                for i in range(N)]

    def state_dict(self) -> dict:
        return snapshot(self, "actor", "critic", "opt_actor", "opt_critic")

    def load_state_dict(self, state: dict) -> None:
        restore(self, state)


#: the ``train`` that ``train_stacked`` reproduces: a subclass (or anything) that replaces it trains alone
_OWN_TRAIN = PPOLearner.train
