r"""The mechanism of "Aligning Self-Interested Agents with Welfare Maximization ... via
Mechanism Design" ([MD], docs/PAPERS.md): a counterfactual critic, best-response search, the
maximised-return predictor (MRP) and the reshaped reward. Server-side and training-only.

**Counterfactual critic** ([MD Eq. 13], Table 1). A ψ-network of the global state s and the
joint action a (one-hot per agent), 128-64-32 ReLU units with dropout 0.5, trained by TD::

    L_critic = E[(Q_tot^ψ(s, a) - (R + γ·max_a' Q_tot^ψ⁻(s', a')))²],   R = Σ_i r_i

with a soft-updated target ψ⁻ (τ of Table 2). **Decision:** the max over the |A|^N joint
actions of s' is taken by the same best-response search as [MD Eq. 12], started from the
joint action actually played at s' (3^10 = 59,049 joint actions in ER(10, 6) would be
enumerated for every sample otherwise).

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
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def relu_mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, dropout: float = 0.0) -> nn.Sequential:
    """Linear-ReLU(-Dropout) layers of Table 1, then a linear output."""
    layers: list[nn.Module] = []
    for a, b in zip((in_dim, *hidden[:-1]), hidden):
        layers += [nn.Linear(a, b), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
    layers.append(nn.Linear(hidden[-1], out_dim))
    return nn.Sequential(*layers)


class CounterfactualCritic(nn.Module):
    """(s, a) -> [Q_tot, Q_1, ..., Q_N]: the state and every agent's action one-hot."""

    def __init__(self, state_dim: int, num_agents: int, num_actions: int, hidden=(128, 64, 32), dropout: float = 0.5):
        super().__init__()
        self.num_agents, self.num_actions = num_agents, num_actions
        self.net = relu_mlp(state_dim + num_agents * num_actions, tuple(hidden), 1 + num_agents, dropout)

    def forward(self, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(actions.long(), self.num_actions).float().flatten(1)
        return self.net(torch.cat([state, onehot], dim=1))


def best_response(q_tot: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], state: torch.Tensor,
                  actions: torch.Tensor, num_actions: int, sweeps: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """[MD Eq. 12]'s search: ``(a* [M, N], Q*_tot [M])`` from the joint actions ``actions [M, N]``.

    ``q_tot(state [K, S], actions [K, N]) -> [K]``. Each agent in turn moves to the argmax
    of its slice at the current joint action if that is strictly better (ties keep the
    current action); at most ``sweeps`` passes, fewer if a pass changes nothing.
    """
    M, N = actions.shape
    a = actions.clone().long()
    value = q_tot(state, a)
    grid = torch.arange(num_actions)
    wide = state.repeat_interleave(num_actions, dim=0)
    for _ in range(max(1, sweeps)):
        moved = False
        for i in range(N):
            cand = a.unsqueeze(1).repeat(1, num_actions, 1)  # [M, A, N]
            cand[:, :, i] = grid
            vals = q_tot(wide, cand.reshape(M * num_actions, N)).reshape(M, num_actions)
            best, arg = vals.max(dim=1)
            better = best > value
            if better.any():
                moved = True
                a[better, i] = arg[better]
                value = torch.where(better, best, value)
        if not moved:
            break
    return a, value


def reshaped_reward(q_now: np.ndarray, q_star: np.ndarray, qi_now: np.ndarray, qi_star: np.ndarray,
                    grad_norm: np.ndarray, mrp: np.ndarray | None, eta: float, penalty: float,
                    clip_min: float = 1e-3, clip_max: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """[MD Eq. 15] for M samples and N agents: ``(R̄ [M, N], penalised [M] bool)``.

    ``q_now``, ``q_star`` [M]: Q_tot(s, a) and Q*_tot; ``qi_now``, ``qi_star`` [M, N]:
    Q_i(s, a) and Q_i(s, a*); ``grad_norm`` [N]: |∇θ_i Q̄_i|; ``mrp`` [M] R_MRP(s) or None
    (no MRP: first branch only). Guards in the module docstring.
    """
    num = np.maximum(np.asarray(q_star, np.float64) - q_now, 0.0)[:, None]
    den = np.asarray(qi_star, np.float64) - qi_now
    sign = np.where(den >= 0, 1.0, -1.0)
    ratio = sign * np.clip(num / np.maximum(np.abs(den), clip_min), clip_min, clip_max)
    ratio = np.where(num > 0, ratio, 0.0)
    out = ratio * np.asarray(grad_norm, np.float64)[None, :]
    penalised = np.zeros(len(num), bool) if mrp is None else (np.asarray(mrp) - q_star) > eta
    out = np.where(penalised[:, None], -penalty * np.asarray(grad_norm, np.float64)[None, :], out)
    return out.astype(np.float32), penalised


class MRPBuffer:
    """[MD Eq. 14]: the running maximum of Q_tot(s, a) per state seen, at most ``capacity`` states."""

    def __init__(self, capacity: int, state_dim: int):
        self.capacity = int(capacity)
        self.states = np.zeros((self.capacity, state_dim), np.float32)
        self.values = np.zeros(self.capacity, np.float32)
        self.slot: dict[bytes, int] = {}
        self.keys: list[bytes | None] = [None] * self.capacity
        self.pos = 0  # the slot the next new state takes (the oldest once full)

    def __len__(self) -> int:
        return len(self.slot)

    @staticmethod
    def key(state: np.ndarray) -> bytes:
        return np.ascontiguousarray(state, np.float32).tobytes()

    def update(self, states: np.ndarray, values: np.ndarray) -> None:
        """R_MRP(s) <- max(R_MRP(s), Q_tot(s, a)) if s is known, else Q_tot(s, a)."""
        for s, v in zip(np.asarray(states, np.float32), np.asarray(values, np.float32)):
            k = self.key(s)
            i = self.slot.get(k)
            if i is not None:
                self.values[i] = max(self.values[i], v)
                continue
            i = self.pos
            if (old := self.keys[i]) is not None:
                del self.slot[old]
            self.keys[i], self.slot[k] = k, i
            self.states[i], self.values[i] = s, v
            self.pos = (self.pos + 1) % self.capacity

    def lookup(self, states: np.ndarray) -> np.ndarray:
        """R_MRP(s) for each state, NaN where s was never seen."""
        idx = [self.slot.get(self.key(s), -1) for s in np.asarray(states, np.float32)]
        return np.array([self.values[i] if i >= 0 else np.nan for i in idx], np.float32)

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        filled = np.fromiter(self.slot.values(), np.int64)
        idx = filled[rng.integers(len(filled), size=batch)]
        return self.states[idx], self.values[idx]

    def state_dict(self) -> dict:
        return {"states": self.states.copy(), "values": self.values.copy(), "keys": list(self.keys), "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.states, self.values = state["states"].copy(), state["values"].copy()
        self.keys, self.pos = list(state["keys"]), int(state["pos"])
        self.slot = {k: i for i, k in enumerate(self.keys) if k is not None}


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


class Mechanism:
    """The critic ψ (with its target), the MRP buffer and predictor ϕ, and their training."""

    def __init__(self, state_dim: int, num_agents: int, num_actions: int, seed: int, *, use_mrp: bool = True,
                 gamma: float = 0.99, critic_lr: float = 1e-3, mrp_lr: float = 1e-3, tau: float = 0.01,
                 grad_clip: float = 0.04, dropout: float = 0.5, buffer: int = 50_000, mrp_buffer: int = 100_000,
                 batch: int = 256, updates: int = 100, sweeps: int = 1):
        self.num_agents, self.num_actions, self.use_mrp = num_agents, num_actions, use_mrp
        self.gamma, self.tau, self.grad_clip, self.batch, self.updates, self.sweeps = \
            gamma, tau, grad_clip, batch, updates, sweeps
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

    # ------------------------------------------------------------ evaluation (no dropout)
    @torch.no_grad()
    def values(self, state: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """[Q_tot, Q_1..Q_N] of the online critic, ``[M, 1 + N]``."""
        self.critic.eval()
        return self.critic(torch.as_tensor(state, dtype=torch.float32), torch.as_tensor(actions)).numpy()

    @torch.no_grad()
    def search(self, state: np.ndarray, actions: np.ndarray, net: nn.Module | None = None):
        """[MD Eq. 12] with the online critic (or ``net``): ``(a* [M, N], Q* [M])`` as numpy."""
        net = net or self.critic
        net.eval()
        a, v = best_response(lambda s, x: net(s, x)[:, 0], torch.as_tensor(state, dtype=torch.float32),
                             torch.as_tensor(actions), self.num_actions, self.sweeps)
        return a.numpy(), v.numpy()

    @torch.no_grad()
    def predicted_max(self, state: np.ndarray) -> np.ndarray:
        """R_MRP(s): the buffer's value where s is known, else the predictor's ([MD Eq. 16])."""
        known = self.mrp.lookup(state)
        unknown = np.isnan(known)
        if unknown.any():
            known[unknown] = self.mrp_net(torch.as_tensor(state[unknown], dtype=torch.float32))[:, 0].numpy()
        return known

    def reward(self, state: np.ndarray, actions: np.ndarray, grad_norm: np.ndarray, eta: float, penalty: float,
               clip_min: float, clip_max: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """[MD Eq. 15] for the joint actions ``actions [M, N]`` at ``state [M, S]``."""
        now = self.values(state, actions)
        a_star, q_star = self.search(state, actions)
        star = self.values(state, a_star)
        mrp = self.predicted_max(state) if self.use_mrp else None
        r, penalised = reshaped_reward(now[:, 0], q_star, now[:, 1:], star[:, 1:], grad_norm, mrp, eta, penalty,
                                       clip_min, clip_max)
        return r, {"penalised": penalised, "improved": (a_star != actions).any(axis=1), "gap": q_star - now[:, 0]}

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
            a_next, _ = best_response(lambda s, x: self.target(s, x)[:, 0], b["next_state"], b["next_actions"],
                                      self.num_actions, self.sweeps)
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
