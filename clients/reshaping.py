r"""The evaluation half of the mechanism-design mediator ([MD], strategies/mechanism.py): its
counterfactual critic, the joint maximisations, the MRP lookup and the reshaped reward of
[MD Eq. 15]. It lives with the agents because, with ``--md-reshape-time minibatch``, each
agent recomputes R̄_i on every minibatch it samples, as [MD] Algorithm 1 (line 14) does, with
the critic and MRP the server sends it each round; the server's mechanism
(strategies/mechanism.py) builds on the same code, so both compute the same R̄.

**Minibatch-time R̄ (:class:`Reshaper`).** With ``--md-reshape-time play`` (the default) R̄ is
computed when the step is played, by the critic of the previous round, and frozen in the
agent's replay: a transition replayed at round 300 can carry a label of round 150's critic.
With ``minibatch`` the agent's replay also keeps the step's global state, joint action and
raw rewards (the mechanism's inputs), and each minibatch's rewards are recomputed as
λ·r_i + R̄_i with the round's critic and MRP and with |∇θ_i Q̄_i| of the agent's own network
on that minibatch. The critic does not change while the agents train (it trains after their
replies, strategies/md.py), so every minibatch of a round sees the same critic.

**The denominator** (``--md-denominator``). ``heads`` (the default): Q_i(s, a*) − Q_i(s, a)
of the critic's per-agent heads ([MD Eq. 15]'s Q_i, strategies/mechanism.py). ``own``:
[MD Eqs. 9, 11]'s Q̄_i(s, a_i*) − Q̄_i(s, a_i), the agent's own Q-network at its
observation; only the agent holds it, so this reading needs minibatch-time reshaping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from flwr.app import Array, ArrayRecord
from torch import nn

#: where the denominator of [MD Eq. 15] comes from: the critic's heads, or the agent's own Q̄_i
DENOMINATORS = ("heads", "own")
#: when R̄ is computed: when the step is played, or on every minibatch the agent samples
RESHAPE_TIMES = ("play", "minibatch")


def relu_mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, dropout: float = 0.0) -> nn.Sequential:
    """Linear-ReLU(-Dropout) layers of [MD] Table 1, then a linear output."""
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

    def joint_values(self, state: torch.Tensor, grid: torch.Tensor, column: int = 0) -> torch.Tensor:
        """Output ``column`` at every pair of a state ``state [M, S]`` and a joint action of
        ``grid [K, N]``: ``[M, K]``, what ``forward`` gives pair by pair. The first layer is
        split into its state and action parts, W·[s; onehot(a)] = W_s·s + W_a·onehot(a), so
        each state and each joint action passes it once, not once per pair."""
        layers = list(self.net)
        first, last = layers[0], layers[-1]
        if not isinstance(first, nn.Linear) or not isinstance(last, nn.Linear):
            raise TypeError("joint_values needs a critic whose first and last layers are Linear")
        width = state.shape[1]
        onehot = F.one_hot(grid.long(), self.num_actions).float().flatten(1)
        h = ((state @ first.weight[:, :width].T + first.bias)[:, None, :]
             + (onehot @ first.weight[:, width:].T)[None, :, :])  # [M, K, hidden]
        for layer in layers[1:-1]:
            h = layer(h)
        return h @ last.weight[column] + last.bias[column]


QTot = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def best_response(q_tot: QTot, state: torch.Tensor, actions: torch.Tensor, num_actions: int,
                  sweeps: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
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


def all_joint_actions(num_agents: int, num_actions: int) -> torch.Tensor:
    """Every joint action, ``[A^N, N]``, in lexicographic order (agent 0 slowest)."""
    grids = torch.meshgrid(*[torch.arange(num_actions)] * num_agents, indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=1)


def exact_max(q_tot: QTot, state: torch.Tensor, num_agents: int, num_actions: int, rows: int = 1 << 16,
              table: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """max over all |A|^N joint actions ([MD Eqs. 10, 13]'s max): ``(a* [M, N], Q* [M])``;
    ties go to the first joint action in :func:`all_joint_actions`'s order. Each distinct
    state is evaluated once (a minibatch repeats states), on at most ``rows`` (state, joint
    action) pairs at a time; ``table(states [m, S], grid [K, N]) -> [m, K]``, if given,
    evaluates them in one call (:meth:`CounterfactualCritic.joint_values`) instead of
    ``q_tot`` pair by pair."""
    grid = all_joint_actions(num_agents, num_actions)
    distinct, where = torch.unique(state, dim=0, return_inverse=True)
    K, M = len(grid), len(distinct)
    values = torch.empty(M, K)
    step = max(1, rows // K)
    for start in range(0, M, step):
        block = distinct[start:start + step]
        m = len(block)
        values[start:start + m] = (table(block, grid) if table is not None else
                                   q_tot(block.repeat_interleave(K, dim=0), grid.repeat(m, 1)).reshape(m, K))
    best, arg = values.max(dim=1)
    return grid[arg][where], best[where]


def reshaped_reward(q_now: np.ndarray, q_star: np.ndarray, qi_now: np.ndarray, qi_star: np.ndarray,
                    grad_norm: np.ndarray, mrp: np.ndarray | None, eta: float, penalty: float,
                    clip_min: float = 1e-3, clip_max: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """[MD Eq. 15] for M samples and N agents: ``(R̄ [M, N], penalised [M] bool)``.

    ``q_now``, ``q_star`` [M]: Q_tot(s, a) and Q*_tot; ``qi_now``, ``qi_star`` [M, N]: the
    denominator's values at a and a* (the critic's heads Q_i, or the agent's own Q̄_i);
    ``grad_norm`` [N]: |∇θ_i Q̄_i|; ``mrp`` [M] R_MRP(s) or None (no MRP: first branch
    only). Guards in strategies/mechanism.py's docstring.
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

    def filled(self) -> tuple[np.ndarray, np.ndarray]:
        """The states held and their values."""
        idx = np.fromiter(self.slot.values(), np.int64, count=len(self.slot))
        return self.states[idx], self.values[idx]

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


class MechanismValues:
    """The critic ψ, the MRP buffer and predictor ϕ, evaluated: [MD Eqs. 12, 15, 16]."""

    critic: CounterfactualCritic
    mrp_net: nn.Module
    mrp: MRPBuffer
    num_agents: int
    num_actions: int
    use_mrp: bool
    sweeps: int

    @torch.no_grad()
    def values(self, state: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """[Q_tot, Q_1..Q_N] of the online critic, ``[M, 1 + N]`` (no dropout)."""
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
            self.mrp_net.eval()
            known[unknown] = self.mrp_net(torch.as_tensor(state[unknown], dtype=torch.float32))[:, 0].numpy()
        return known

    def terms(self, state: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """What [MD Eq. 15] takes from the critic and the MRP at each ``(state, actions)``
        row: [Q_tot, Q_1..Q_N] at a ``[M, 1 + N]``, the search's a* ``[M, N]`` and Q*
        ``[M]``, [Q_tot, Q_i] at a* ``[M, 1 + N]``, and R_MRP(s) ``[M]`` (NaN without MRP)."""
        now = self.values(state, actions)
        a_star, q_star = self.search(state, actions)
        mrp = self.predicted_max(state) if self.use_mrp else np.full(len(state), np.nan, np.float32)
        return now, a_star, q_star, self.values(state, a_star), mrp

    def reward(self, state: np.ndarray, actions: np.ndarray, grad_norm: np.ndarray, eta: float, penalty: float,
               clip_min: float, clip_max: float, agent: int | None = None,
               own_q: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """[MD Eq. 15] for the joint actions ``actions [M, N]`` at ``state [M, S]``: R̄ of every
        agent ``[M, N]``, or of ``agent`` only ``[M, 1]`` (``grad_norm`` then has one entry).
        ``own_q [M, A]``: the agent's own Q̄_i(s, ·), whose difference at a_i* and a_i replaces
        the critic's heads in the denominator ([MD Eqs. 9, 11]); needs ``agent``."""
        now, a_star, q_star, star, mrp = self.terms(state, actions)
        heads_now, heads_star = now[:, 1:], star[:, 1:]
        if agent is not None:
            heads_now, heads_star = heads_now[:, agent:agent + 1], heads_star[:, agent:agent + 1]
        if own_q is not None:
            if agent is None:
                raise ValueError("the own-Q̄ denominator is one agent's: give its index")
            rows = np.arange(len(actions))
            heads_now = own_q[rows, actions[:, agent]][:, None]
            heads_star = own_q[rows, a_star[:, agent]][:, None]
        r, penalised = reshaped_reward(now[:, 0], q_star, heads_now, heads_star, grad_norm,
                                       mrp if self.use_mrp else None, eta, penalty, clip_min, clip_max)
        return r, {"penalised": penalised, "improved": (a_star != actions).any(axis=1), "gap": q_star - now[:, 0]}

    def to_record(self) -> ArrayRecord:
        """The critic, the predictor and the MRP buffer's states and values, to send to agents."""
        arrays = {f"critic.{k}": v for k, v in self.critic.state_dict().items()}
        arrays |= {f"mrp-net.{k}": v for k, v in self.mrp_net.state_dict().items()}
        states, values = self.mrp.filled()
        return ArrayRecord({**{k: Array(v.detach().cpu().numpy()) for k, v in arrays.items()},
                            "mrp-states": Array(states), "mrp-values": Array(values)})


class ReceivedMechanism(MechanismValues):
    """The mechanism as an agent receives it (:meth:`MechanismValues.to_record`).

    It does not change while the agent trains (the server trains it after the agents'
    replies), so :meth:`terms` of a ``(state, joint action)`` row is computed once and
    kept for the round: the agent's minibatches draw the same rows again and again."""

    def __init__(self, record: ArrayRecord, state_dim: int, num_agents: int, num_actions: int, dropout: float,
                 sweeps: int, use_mrp: bool):
        self.num_agents, self.num_actions, self.sweeps, self.use_mrp = num_agents, num_actions, sweeps, use_mrp
        self.critic = CounterfactualCritic(state_dim, num_agents, num_actions, dropout=dropout)
        self.mrp_net = relu_mlp(state_dim, (64, 32), 1)
        for prefix, net in (("critic.", self.critic), ("mrp-net.", self.mrp_net)):
            net.load_state_dict({k[len(prefix):]: torch.as_tensor(record[k].numpy()) for k in record.keys()
                                 if k.startswith(prefix)})
        states = record["mrp-states"].numpy()
        self.mrp = MRPBuffer(max(1, len(states)), state_dim)
        self.mrp.update(states, record["mrp-values"].numpy())
        self._kept: dict[bytes, tuple[np.ndarray, ...]] = {}

    def terms(self, state: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """:meth:`MechanismValues.terms`, each distinct row computed once per mechanism."""
        state = np.asarray(state, np.float32)
        rows = np.concatenate([state, np.asarray(actions, np.float32)], axis=1)
        keys = [row.tobytes() for row in rows]
        new: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in self._kept:
                new.setdefault(key, i)
        if new:
            idx = np.fromiter(new.values(), np.int64, count=len(new))
            fresh = super().terms(state[idx], np.asarray(actions)[idx])
            for j, key in enumerate(new):
                self._kept[key] = tuple(t[j] for t in fresh)
        kept = [self._kept[key] for key in keys]
        return tuple(np.stack([k[c] for k in kept]) for c in range(5))


@dataclass
class JointSteps:
    """The round's steps as the mechanism sees them: ``state [T, B, S]``, the joint action
    ``actions [T, B, N]`` and the game's rewards ``rewards [T, B, N]``; row (t, b) is the
    agent's experience's row (t, b)."""

    state: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray

    FIELDS = ("state", "actions", "rewards")

    def live(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat rows where ``mask [T, B]`` (the agent's) is live, as Experience.transitions keeps them."""
        keep = mask.reshape(-1) > 0
        return tuple(getattr(self, k).reshape(-1, *getattr(self, k).shape[2:])[keep] for k in self.FIELDS)

    def to_record(self) -> ArrayRecord:
        return ArrayRecord({k: Array(np.ascontiguousarray(getattr(self, k))) for k in self.FIELDS})

    @classmethod
    def from_record(cls, record: ArrayRecord) -> "JointSteps":
        return cls(**{k: record[k].numpy() for k in cls.FIELDS})


@dataclass
class Reshaper:
    """Agent ``agent``'s minibatch-time λ·r_i + R̄_i ([MD] Algorithm 1, line 14)."""

    mechanism: MechanismValues
    agent: int
    steps: JointSteps
    eta: float
    penalty: float
    clip_min: float
    clip_max: float
    lambda_: float = 0.0
    denominator: str = "heads"

    def rewards(self, state: np.ndarray, actions: np.ndarray, raw: np.ndarray, grad_norm: float,
                own_q: np.ndarray | None = None) -> np.ndarray:
        """``[K]`` rewards for the minibatch's ``state [K, S]``, joint ``actions [K, N]`` and the
        game's ``raw [K, N]`` rewards; ``own_q [K, A]``: the agent's Q̄_i at its observations
        (used with the ``own`` denominator)."""
        r_bar, _ = self.mechanism.reward(state, actions, np.array([grad_norm]), self.eta, self.penalty,
                                         self.clip_min, self.clip_max, agent=self.agent,
                                         own_q=own_q if self.denominator == "own" else None)
        return (self.lambda_ * raw[:, self.agent] + r_bar[:, 0]).astype(np.float32)
