r"""A Q-network the federation trains at the server on the world's data (FPF's ω and ω̄ for DQN agents).

The value-based counterpart of :class:`strategies.federated_policy.FederatedPolicy`, used
by FPF / D&F when the agents are DQN learners. ω and ω̄ are Q-networks of exactly the
agents' policy shape (the online Q-network of clients.dqn, built from the same
observation space), so [FPF Eqs. 9-11] mix, pull and average their parameters exactly as for
PPO actors.

**How ω and ω̄ are trained for value-based agents.** The world has every agent's
transitions, collected by the agents' own ε-greedy behaviour policies. ω acts on one
agent's observation, so every (step t, copy b, agent i) with the agent alive
(``mask = 1``) is one sample::

    (o_i,t, a_i,t, r_team,t, o_i,t+1, done_i,t)

where ``r_team`` is the team reward FPF passes in, broadcast to every agent of the copy:
the utilitarian mean reward for ω, minus the variance of rewards ([FPF Eq. 3]) for ω̄, and
``done_i,t`` is agent i's own termination. Q-learning is off-policy, so these samples
need no importance correction: ω is trained by ``updates`` minibatch steps of double
DQN on them, with a Huber loss and, when an anchor is given, the proximal term of line
18 of Algorithm 1 (ω̄ for ω)::

    y = r_team + γ·(1 - done_i)·Q_target(o', argmax_a Q_ω(o', a))
    L(ω) = mean Huber(Q_ω(o_i, a_i) - y) + λ/2·||ω - anchor||²

**Conservative term** (``conservative`` = α_c > 0; CQL, Kumar et al. 2020)::

    L(ω) += α_c · mean[logsumexp_a Q_ω(o_i, a) - Q_ω(o_i, a_i)]

ω never acts while it learns: its data come from the agents' ε-greedy policies, so the
actions the agents rarely take get almost no samples, and the bootstrapped max of Q
learning overestimates them (the extrapolation error of off-policy learning from
another policy's data; Fujimoto et al. 2019). The term pushes down Q on every action
and up on the action taken, so ω's greedy policy stays on the data's support, as
advantage-weighted regression keeps the policy-gradient ω (strategies/federated_policy.py).
Measured on Harvest (docs/results/ssd): without it ω̄'s greedy action is to stay in three
quarters of the agents' states, which the agents do 1% of the time, and ω and ω̄ collect
almost nothing; with weight 1 both collect as much as the agents.

Q_ω then estimates the discounted *team* return of agent i taking a_i at o_i and
following ω's greedy action from o', while the other agents behave as in the data: the
approximation independent learners on a shared reward make (Claus & Boutilier 1998),
with the parameters shared across agents. ω̄ is trained in the same way on the
egalitarian reward, without an anchor.

The target network is this object's own. It is re-synchronised with ω at the start of
every :meth:`update` (once per round) and held fixed during the round's steps, so each
round is one step of fitted Q iteration toward the ω the federation agreed on: FPF
replaces ω with the aggregate of [FPF Eq. 11] between rounds, and a slowly tracking (Polyak)
target would lag behind parameters that jumped.

Arguments FederatedPolicy needs and a Q-network does not (same signatures, so FPF calls
both alike):

- ``state_space`` and ``critic_lr``: there is no centralised critic; Q_ω is its own
  critic, learned from per-agent observations (the global state is not used);
- ``gae_lambda``: targets are one-step. Multi-step returns of the behaviour data would
  need an off-policy correction for the gap between the agents' ε-greedy policies and
  ω's greedy one (Retrace); one-step double-DQN needs none;
- ``ent_coef`` (FPF's λ_h for ω̄): a Q-network has no policy entropy to reward.
  Exploration comes from the agents' ε-greedy behaviour, which collects the data, so
  λ_h has no effect on value-based agents.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from flwr.app import ArrayRecord
from torch import nn

from clients.anchors import proximal
from clients.dqn import double_dqn_target
from clients.learner import restore, snapshot
from clients.networks import NetworkConfig, load_record, network, to_record
from clients.rollout import Rollout

MAX_GRAD_NORM = 10.0  # as the agents' dqn_max_grad_norm default


def conservative_gap(q_all: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """CQL's term: mean over the batch of logsumexp_a Q(o, a) - Q(o, a_data) (>= 0)."""
    return (torch.logsumexp(q_all, dim=-1) - q_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)).mean()


class FederatedQ:
    """One server-side Q-network with its target network and optimiser."""

    def __init__(self, init: ArrayRecord, space, num_actions: int, state_space, net: NetworkConfig,
                 lr: float, critic_lr: float, seed: int, conservative: float = 0.0):
        if conservative < 0:
            raise ValueError(f"the conservative weight must be >= 0, got {conservative}")
        self.conservative = conservative
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.q = network(space, num_actions, net, out_gain=1.0)
        load_record(self.q, init)
        self.target = copy.deepcopy(self.q)
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.opt = torch.optim.Adam(self.q.parameters(), lr=lr)

    def state_dict(self) -> dict:
        """Networks and optimiser, for checkpoints (a copy)."""
        return snapshot(self, "q", "target", "opt")

    def load_state_dict(self, state: dict) -> None:
        restore(self, state)

    def record(self) -> ArrayRecord:
        return to_record(self.q)

    def load(self, record: ArrayRecord) -> None:
        load_record(self.q, record)

    def update(self, rollout: Rollout, team_reward: np.ndarray, *, updates: int, batch: int, gamma: float,
               gae_lambda: float, ent_coef: float, anchor: ArrayRecord | None, anchor_weight: float,
               gen: torch.Generator) -> dict[str, float]:
        """``updates`` minibatch steps of double DQN on every live (step, copy, agent) transition.

        ``gae_lambda`` and ``ent_coef`` are accepted for FederatedPolicy's signature and
        unused (module docstring).
        """
        T, B, N = rollout.actions.shape
        obs_shape = rollout.obs.shape[3:]
        obs = rollout.obs[:-1].reshape(T * B * N, *obs_shape)
        nxt = rollout.obs[1:].reshape(T * B * N, *obs_shape)
        act = np.asarray(rollout.actions).reshape(-1).astype(np.int64)
        reward = np.broadcast_to(np.asarray(team_reward, dtype=np.float32)[:, :, None], (T, B, N)).reshape(-1)
        done = np.asarray(rollout.terminated, dtype=np.float32).reshape(-1)
        live = np.flatnonzero(np.asarray(rollout.mask).reshape(-1) > 0)
        anchor_params = None if anchor is None else anchor.to_torch_state_dict()

        self.target.load_state_dict(self.q.state_dict())
        stats = {"td_loss": 0.0, "q_mean": 0.0, "target_mean": 0.0, "prox": 0.0}
        if self.conservative > 0:
            stats["conservative_gap"] = 0.0
        if len(live) == 0 or updates <= 0:
            return stats | {"samples": float(len(live))}
        params = list(self.q.named_parameters())
        for _ in range(updates):
            pick = live[torch.randint(len(live), (min(batch, len(live)),), generator=gen).numpy()]
            o, a = torch.as_tensor(obs[pick]), torch.as_tensor(act[pick])
            y = double_dqn_target(self.q, self.target, torch.as_tensor(reward[pick]), torch.as_tensor(nxt[pick]),
                                  torch.as_tensor(done[pick]), gamma)
            q_all = self.q(o)
            q = q_all.gather(-1, a.unsqueeze(-1)).squeeze(-1)
            td_loss = F.smooth_l1_loss(q, y)
            prox = (anchor_weight / 2 * proximal(params, anchor_params)
                    if anchor_params is not None and anchor_weight > 0 else torch.zeros(()))
            loss, values = td_loss + prox, [td_loss, q.mean(), y.mean(), prox]
            if self.conservative > 0:
                gap = conservative_gap(q_all, a)
                loss, values = loss + self.conservative * gap, values + [gap]
            self.opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.q.parameters(), MAX_GRAD_NORM)
            self.opt.step()
            for key, val in zip(stats, values, strict=True):
                stats[key] += float(val.detach()) / updates
        return stats | {"samples": float(len(live))}
