"""A policy the federation trains at the server on the world's data (FPF's ω and ω̄).

The world has every agent's transitions, collected by the agents' own (behaviour)
policies ``μ_i``. The federated policy ``π_ω`` has the shape of an agent's policy and acts
on one agent's observation, so every (step, copy, agent) transition is a sample for it.
Its value is estimated by a centralised critic ``V(s)`` on the global state with the
team reward ``r_team`` (utilitarian: mean reward; egalitarian: minus the variance of
rewards, [FPF Eq. 3]), and it is improved by an off-policy actor-critic with truncated
importance weights (as in IMPALA / Retrace)::

    L(ω) = -E[min(1, π_ω(a_i|o_i) / μ_i(a_i|o_i)) · Â_t · log π_ω(a_i|o_i)]
           - c_H · H(π_ω) + λ/2 · ||ω - anchor||²

with ``Â_t`` the GAE advantage of the team reward under ``V``, normalised per minibatch.
The truncation keeps the update bounded when ω is far from the agents' policies; the
critic evaluates the behaviour joint policy, the usual approximation of such methods.

``objective="awr"`` replaces the policy-gradient term by advantage-weighted regression
(Peng et al. 2019), ``-E[min(exp(Â/β), 20) · log π_ω(a_i|o_i)]`` with β = 1 on the
normalised advantages: ω imitates the agents' actions, weighted by what they did for the
team reward, so it stays on the data's support however many updates it takes. (Measured
on the Matthew Effect, seed 0: with 64 updates per round at 10⁻³ the importance-weighted
gradient made π_ω collapse below random play — held-out collective return 1.8, 1.4, 0.3
at rounds 5, 10, 15, entropy 1.61 → 0.29 — and an entropy bonus of 0.01 did not stop it.)
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import ArrayRecord
from torch import nn

from clients.anchors import proximal
from clients.learner import restore, snapshot
from clients.networks import NetworkConfig, load_record, network, to_record
from clients.ppo import gae
from clients.rollout import Rollout

OBJECTIVES = ("is-pg", "awr")


class FederatedPolicy:
    """One server-side policy with its centralised critic and optimisers."""

    def __init__(self, init: ArrayRecord, space, num_actions: int, state_space, net: NetworkConfig,
                 lr: float, critic_lr: float, seed: int, objective: str = "is-pg"):
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective '{objective}'; valid choices: {', '.join(OBJECTIVES)}")
        self.objective = objective
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.actor = network(space, num_actions, net, out_gain=0.01)
            self.critic = network(state_space, 1, net, out_gain=1.0)
        load_record(self.actor, init)
        self.opt_actor = torch.optim.Adam(self.actor.parameters(), lr=lr, eps=1e-5)
        self.opt_critic = torch.optim.Adam(self.critic.parameters(), lr=critic_lr, eps=1e-5)

    def record(self) -> ArrayRecord:
        return to_record(self.actor)

    def state_dict(self) -> dict:
        """Networks and optimisers, for checkpoints (a copy)."""
        return snapshot(self, "actor", "critic", "opt_actor", "opt_critic")

    def load_state_dict(self, state: dict) -> None:
        restore(self, state)

    def load(self, record: ArrayRecord) -> None:
        load_record(self.actor, record)

    def update(self, rollout: Rollout, team_reward: np.ndarray, *, updates: int, batch: int, gamma: float,
               gae_lambda: float, ent_coef: float, anchor: ArrayRecord | None, anchor_weight: float,
               gen: torch.Generator) -> dict[str, float]:
        """``updates`` minibatch steps of actor and critic on the round's data."""
        state = torch.as_tensor(rollout.state)  # [T+1, B, S]
        T, B, N = rollout.actions.shape
        team_mask = torch.as_tensor(rollout.mask.max(axis=2))  # [T, B]
        terminated = torch.as_tensor(rollout.terminated.all(axis=2), dtype=torch.float32)
        reward = torch.as_tensor(team_reward, dtype=torch.float32)
        with torch.no_grad():
            values = self.critic(state).squeeze(-1)
            adv, ret = gae(reward, values, terminated, gamma, gae_lambda)
        s_flat, ret_flat = state[:-1].reshape(T * B, -1), ret.reshape(-1)
        s_keep = team_mask.reshape(-1) > 0
        s_flat, ret_flat = s_flat[s_keep], ret_flat[s_keep]

        obs = torch.as_tensor(rollout.obs[:-1]).flatten(0, 2)
        act = torch.as_tensor(rollout.actions).reshape(-1)
        mu_logp = torch.as_tensor(rollout.logp).reshape(-1)
        a_adv = adv.unsqueeze(-1).expand(T, B, N).reshape(-1)
        keep = torch.as_tensor(rollout.mask).reshape(-1) > 0
        obs, act, mu_logp, a_adv = obs[keep], act[keep], mu_logp[keep], a_adv[keep]
        anchor_params = None if anchor is None else anchor.to_torch_state_dict()

        stats = {"pg_loss": 0.0, "v_loss": 0.0, "entropy": 0.0, "is_weight": 0.0}
        for _ in range(updates):
            idx = torch.randint(len(obs), (min(batch, len(obs)),), generator=gen)
            dist = torch.distributions.Categorical(logits=self.actor(obs[idx]))
            logp = dist.log_prob(act[idx])
            weight = (logp.detach() - mu_logp[idx]).exp().clamp(max=1.0)
            mb_adv = a_adv[idx]
            mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std(unbiased=False) + 1e-8)
            if self.objective == "awr":
                pg_loss = -(mb_adv.exp().clamp(max=20.0) * logp).mean()
            else:
                pg_loss = -(weight * mb_adv * logp).mean()
            entropy = dist.entropy().mean()
            loss = pg_loss - ent_coef * entropy
            if anchor_params is not None and anchor_weight > 0:
                loss = loss + anchor_weight / 2 * proximal(list(self.actor.named_parameters()), anchor_params)
            self.opt_actor.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.actor.parameters(), 0.5)
            self.opt_actor.step()

            sidx = torch.randint(len(s_flat), (min(batch, len(s_flat)),), generator=gen)
            v_loss = 0.5 * ((self.critic(s_flat[sidx]).squeeze(-1) - ret_flat[sidx]) ** 2).mean()
            self.opt_critic.zero_grad()
            v_loss.backward()
            nn.utils.clip_grad_norm_(self.critic.parameters(), 0.5)
            self.opt_critic.step()
            for key, val in zip(stats, (pg_loss, v_loss, entropy, weight.mean())):
                stats[key] += float(val.detach()) / updates
        return stats


def utilitarian_reward(rewards: np.ndarray) -> np.ndarray:
    """r^uti_t = (1/N) Σ_i r_i,t  ([T, B, N] -> [T, B])."""
    return rewards.mean(axis=-1)


EGALITARIAN = ("variance", "return-std", "min", "step-std")
#: egalitarian rewards defined step by step (``form`` does not apply to them)
PER_STEP_EGALITARIAN = ("variance", "step-std")
EGALITARIAN_FORMS = ("increments", "level")


def egalitarian_reward(rewards: np.ndarray, kind: str = "variance", form: str = "increments") -> np.ndarray:
    """The egalitarian team reward per step, [T, B, N] -> [T, B] (episodes start at t = 0).

    - ``"variance"``, [FPF Eq. 3] as written: -(1/N) Σ_i (r_i,t - r^uti_t)². With 0/1 rewards it is
      maximised by nobody collecting anything, so it pulls ω̄ away from resources.
    - ``"return-std"``, the D&F authors' code: minus the standard deviation of the agents'
      returns so far, -std_i G_i,t with G_i,t = Σ_{s<=t} r_i,s.
    - ``"min"``, max-min fairness: the minimum return so far, min_i G_i,t.
    - ``"step-std"``, the authors' SSD code: minus the standard deviation of the step's
      rewards, -std_i r_i,t.

    ``form`` spreads return-std and min over the steps: ``"increments"`` gives
    level_t - level_t-1, which sum to the episode's value (-std_i G_i,T, the worst-off
    agent's return); ``"level"`` gives level_t itself at every step, as the authors'
    classic-games code does (PPO-FPF.py: ``ep_returns_std[t] = -np.std(...[:t+1].sum())``).
    """
    if form not in EGALITARIAN_FORMS:
        raise ValueError(f"unknown egalitarian form '{form}'; valid choices: {', '.join(EGALITARIAN_FORMS)}")
    if kind == "variance":
        return -((rewards - rewards.mean(axis=-1, keepdims=True)) ** 2).mean(axis=-1)
    if kind == "step-std":
        return -rewards.std(axis=-1)
    cumulative = np.cumsum(rewards, axis=0)
    if kind == "return-std":
        level = -cumulative.std(axis=-1)
    elif kind == "min":
        level = cumulative.min(axis=-1)
    else:
        raise ValueError(f"unknown egalitarian reward '{kind}'; valid choices: {', '.join(EGALITARIAN)}")
    if form == "level":
        return level
    return np.diff(level, axis=0, prepend=np.zeros_like(level[:1]))
