r"""The mechanism of "Aligning Self-Interested Agents with Welfare Maximization ... via
Mechanism Design" ([MD], docs/PAPERS.md): a counterfactual critic, best-response search, the
maximised-return predictor (MRP) and the reshaped reward. Server-side and training-only.

**Counterfactual critic** ([MD Eq. 13], Table 1). A ψ-network of the global state s and the
joint action a (one-hot per agent), 128-64-32 ReLU units with dropout 0.5, trained by TD::

    L_critic = E[(Q_tot^ψ(s, a) - (R + γ·max_a' Q_tot^ψ⁻(s', a')))²],   R = Σ_i r_i

with a soft-updated target ψ⁻ (τ of Table 2). **Decision:** the max over the |A|^N joint
actions of s' is taken by the same best-response search as [MD Eq. 12], started from the
joint action actually played at s' (3^10 = 59,049 joint actions in ER(10, 6) would be
enumerated for every sample otherwise). ``--md-exact-max`` enumerates them instead
(:func:`exact_max`; ``auto``: when |A|^N is at most ``--md-exact-limit``, e.g. the 243 of
ER(5, 3)). [MD Eq. 15]'s Q*_tot and a* stay [MD Eq. 12]'s search either way.

**Individual heads** (the denominator of [MD Eq. 15]). [MD Eq. 15] prints Q_i* - Q_i, the
individual value of [MD Eq. 3] (the agent's own game reward), where [MD Eq. 9] prints the agent's
reshaped value Q̄_i^+ - Q̄_i. **Decision: [MD Eq. 15]'s Q_i.** Q̄_i is the agent's private
network, which the mechanism never reads (and the agent trains on the reshaped reward
only after it is computed), while Q_i(s, a) ([MD Eq. 3] conditions on a_{-i} too) is learnt
from the centralised information the mechanism has: the critic has N more outputs,
Q_i(s, a), trained by the same TD rule on r_i, bootstrapped at the same a'* as Q_tot.

**Best-response search** ([MD Eq. 12], :func:`best_response`): agents are activated in turn;
agent i's slice Q_tot(s, ·, a_{-i}) is evaluated at the current joint action (the others'
actions fixed, including the improvements of agents activated before) and a_i moves to
the slice's argmax when that is strictly better. Q*_tot is the largest value met, i.e.
the max over the slices of [MD Eq. 12], and a* the joint action reaching it; O(N|A|) critic
evaluations per sweep (``sweeps`` sweeps, stopping early when no agent moves).

**MRP** ([MD Eqs. 14, 16]). :class:`MRPBuffer` keeps, per state seen, the running maximum of
Q_tot(s, a) over the joint actions played there ([MD Eq. 14]; a state is a key of its float32
bytes; the oldest state is forgotten beyond ``capacity``). A ϕ-network (64-32 ReLU)
regresses the buffer's values ([MD Eq. 16]) so that unseen states get a prediction.
**Decision:** [MD Eq. 15]'s R_MRP(s) is the buffer's value where s is in its domain (what the
buffer is for), else the predictor's.

**Reshaped reward** ([MD Eq. 15], :func:`reshaped_reward`)::

    R̄_i = (Q*_tot - Q_tot)/(Q_i(s, a*) - Q_i(s, a)) · |∇θ_i Q̄_i|   if R_MRP(s) - Q*_tot ≤ η
    R̄_i = -h·|∇θ_i Q̄_i|                                          otherwise

|∇θ_i Q̄_i| is the norm the agent reports of its own Q-gradient (clients/dqn.py); the
mechanism never reads agents' parameters. **Guards (decisions):** the ratio is [MD Eq. 9]'s
"meta-gradient" ∇_{Q̄_i} Q_tot, which Table 2 clips to [clip_min, clip_max] = [0.001, 10];
its magnitude is clipped so, its sign is the denominator's (+ for 0), and a denominator
smaller than clip_min in magnitude counts as ±clip_min (so x/0 gives ±clip_max). When
the search finds no improvement (a* = a, the numerator is 0: 0/0 when also the
denominator is) the ratio is 0: the joint action is already a best response, no signal.
Without MRP (the ``md-nomrp`` ablation) only the first branch is used.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from clients.reshaping import (CounterfactualCritic, MechanismValues, MRPBuffer, all_joint_actions, best_response,
                               exact_max, relu_mlp, reshaped_reward)

__all__ = ["CounterfactualCritic", "MRPBuffer", "Mechanism", "Transitions", "all_joint_actions", "best_response",
           "exact_max", "relu_mlp", "reshaped_reward", "rollout_transitions", "soft_update"]


class Transitions:
    """The mechanism's replay of the world's joint transitions (s, a, r, s', a', done)."""

    FIELDS = ("state", "actions", "rewards", "next_state", "next_actions", "done")

    def __init__(self, capacity: int, state_dim: int, num_agents: int):
        self.capacity, self.pos, self.size = int(capacity), 0, 0
        shapes = {"state": (state_dim,), "actions": (num_agents,), "rewards": (num_agents,),
                  "next_state": (state_dim,), "next_actions": (num_agents,), "done": ()}
        types = {"actions": np.int64, "next_actions": np.int64}
        self.data = {k: np.zeros((self.capacity, *shapes[k]), types.get(k, np.float32)) for k in self.FIELDS}

    def __len__(self) -> int:
        return self.size

    def add(self, **batch: np.ndarray) -> None:
        n = len(batch["done"])
        idx = (self.pos + np.arange(n)) % self.capacity
        for k in self.FIELDS:
            self.data[k][idx] = batch[k]  # with n > capacity the latest transitions win
        self.pos, self.size = int((self.pos + n) % self.capacity), int(min(self.size + n, self.capacity))

    def sample(self, batch: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        idx = rng.integers(self.size, size=batch)
        return {k: torch.as_tensor(v[idx]) for k, v in self.data.items()}

    def state_dict(self) -> dict:
        return {"pos": self.pos, "size": self.size, "data": {k: v.copy() for k, v in self.data.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.pos, self.size = int(state["pos"]), int(state["size"])
        self.data = {k: v.copy() for k, v in state["data"].items()}


def rollout_transitions(state: np.ndarray, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                        mask: np.ndarray) -> dict[str, np.ndarray]:
    """A rollout's live joint transitions, flat: ``state [T+1, B, S]``, the others ``[T, B, N]``.

    A copy's step is live while any of its agents is; it is terminal when every agent of
    the copy has terminated. a' is the joint action played at s' (the step's own a at
    the last step, where none was played: only the search's starting point).

    The critic follows the game's ``terminated``, as every learner does: the MD games
    carry t/T in their state and so report their horizon as terminal
    (``horizon_terminal``, envs/base.py), while a rollout cut short by ``--steps`` is not.
    """
    T = actions.shape[0]
    next_actions = np.concatenate([actions[1:], actions[-1:]], axis=0)
    live = (mask > 0).any(axis=-1).reshape(-1)
    flat = lambda x: x.reshape(T * x.shape[1], *x.shape[2:])[live]  # noqa: E731
    return {"state": flat(state[:-1]), "actions": flat(actions), "rewards": flat(rewards * mask),
            "next_state": flat(state[1:]), "next_actions": flat(next_actions),
            "done": flat(terminated.all(axis=-1).astype(np.float32))}


class Mechanism(MechanismValues):
    """The critic ψ (with its target), the MRP buffer and predictor ϕ, and their training;
    their evaluation ([MD Eqs. 12, 15]) is clients/reshaping.py's, which agents share.

    ``exact``: [MD Eq. 13]'s bootstrap max over a' by enumerating all |A|^N joint actions
    (:func:`exact_max`) instead of the best-response search."""

    def __init__(self, state_dim: int, num_agents: int, num_actions: int, seed: int, *, use_mrp: bool = True,
                 gamma: float = 0.99, critic_lr: float = 1e-3, mrp_lr: float = 1e-3, tau: float = 0.01,
                 grad_clip: float = 0.04, dropout: float = 0.5, buffer: int = 50_000, mrp_buffer: int = 100_000,
                 batch: int = 256, updates: int = 100, sweeps: int = 1, exact: bool = False):
        self.num_agents, self.num_actions, self.use_mrp, self.exact = num_agents, num_actions, use_mrp, exact
        self.gamma, self.tau, self.grad_clip, self.batch, self.updates, self.sweeps = \
            gamma, tau, grad_clip, batch, updates, sweeps
        self.state_dim, self.dropout = state_dim, dropout
        self.seed = seed
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.critic = CounterfactualCritic(state_dim, num_agents, num_actions, dropout=dropout)
            self.mrp_net = relu_mlp(state_dim, (64, 32), 1)
        self.target = copy.deepcopy(self.critic).eval()
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=critic_lr)
        self.mrp_opt = torch.optim.Adam(self.mrp_net.parameters(), lr=mrp_lr)
        self.replay = Transitions(buffer, state_dim, num_agents)
        self.mrp = MRPBuffer(mrp_buffer, state_dim)

    @torch.no_grad()
    def bootstrap_actions(self, next_state: torch.Tensor, next_actions: torch.Tensor) -> torch.Tensor:
        """[MD Eq. 13]'s argmax over a' of the target critic: exact, or the search from a'."""
        q = lambda s, x: self.target(s, x)[:, 0]  # noqa: E731
        if self.exact:
            return exact_max(q, next_state, self.num_agents, self.num_actions,
                             table=getattr(self.target, "joint_values", None))[0]
        return best_response(q, next_state, next_actions, self.num_actions, self.sweeps)[0]

    # ------------------------------------------------------------ training
    def train(self, rollout_data: dict[str, np.ndarray], server_round: int) -> dict[str, float]:
        """Algorithm 1, lines 10-13, once per round: store, update the MRP buffer ([MD Eq. 14])
        with Q_tot of the new transitions, then ``updates`` steps of [MD Eq. 13] and [MD Eq. 16]."""
        if len(rollout_data["done"]) == 0:
            return {}
        rng = np.random.default_rng([self.seed, server_round, 13])
        self.replay.add(**rollout_data)
        if self.use_mrp:
            self.mrp.update(rollout_data["state"], self.values(rollout_data["state"], rollout_data["actions"])[:, 0])
        critic_loss = mrp_loss = 0.0
        for _ in range(self.updates):
            b = self.replay.sample(self.batch, rng)
            a_next = self.bootstrap_actions(b["next_state"], b["next_actions"])
            with torch.no_grad():
                boot = self.target(b["next_state"], a_next)  # [K, 1 + N]
                r = torch.cat([b["rewards"].sum(1, keepdim=True), b["rewards"]], dim=1)
                y = r + self.gamma * (1.0 - b["done"]).unsqueeze(1) * boot
            self.critic.train()
            loss = F.mse_loss(self.critic(b["state"], b["actions"]), y)
            self.critic_opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.critic.parameters(), self.grad_clip)
            self.critic_opt.step()
            soft_update(self.target, self.critic, self.tau)
            critic_loss += float(loss.detach()) / self.updates
            if self.use_mrp:
                s, v = self.mrp.sample(self.batch, rng)
                loss = F.mse_loss(self.mrp_net(torch.as_tensor(s))[:, 0], torch.as_tensor(v))
                self.mrp_opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.mrp_net.parameters(), self.grad_clip)
                self.mrp_opt.step()
                mrp_loss += float(loss.detach()) / self.updates
        out = {"md_critic_loss": critic_loss, "md_replay": float(len(self.replay))}
        return out | ({"md_mrp_loss": mrp_loss, "md_mrp_states": float(len(self.mrp))} if self.use_mrp else {})

    def state_dict(self) -> dict:
        return copy.deepcopy({"critic": self.critic.state_dict(), "target": self.target.state_dict(),
                              "mrp_net": self.mrp_net.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                              "mrp_opt": self.mrp_opt.state_dict(), "replay": self.replay.state_dict(),
                              "mrp": self.mrp.state_dict()})

    def load_state_dict(self, state: dict) -> None:
        state = copy.deepcopy(state)
        self.critic.load_state_dict(state["critic"])
        self.target.load_state_dict(state["target"])
        self.mrp_net.load_state_dict(state["mrp_net"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.mrp_opt.load_state_dict(state["mrp_opt"])
        self.replay.load_state_dict(state["replay"])
        self.mrp.load_state_dict(state["mrp"])


@torch.no_grad()
def soft_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """ψ⁻ <- τψ + (1 - τ)ψ⁻."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.lerp_(o, tau)
