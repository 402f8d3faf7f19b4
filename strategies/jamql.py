r"""JAM-QL: Joint Agents-Mediator Q-learning of fair leaders (Dodwadmath and Maghsudi,
"Emergence of Fair Leaders via Mediators in Multi-Agent Reinforcement Learning").

The Stackelberg step, the agents, sequential learning and the metrics are those of every
leader strategy (strategies/leaders.py); what JAM-QL adds is the mediator.

**Augmented state.** :math:`s_\rho = (t, m, k)`: the step t, the game's state index m
(``mediator_state``: the previous joint action in the matrix games, the agents' cells on
the resource grid; ``--mediator-state none``: one state, as the committed resource-grid
runs of docs/results/jamql/ had) and the agents' cumulative game rewards
:math:`c_i = \sum_{\tau<t} r_{i,\tau}` discretised *relative to the poorest agent*:
:math:`k_i = \min(\lfloor (c_i - \min_j c_j)/w \rfloor, K-1)` (``--reward-bin-width`` w
[1], ``--reward-bins`` K [4]; bin K-1 holds "K-1 or more widths ahead"), so
:math:`K^N` reward states (16 with 2 agents, 256 with 4).

**One Q-value per agent.** For each leader l the mediator keeps a vector
:math:`Q_\rho(s_\rho, l) \in \mathbb{R}^N`. **Decision** (the paper's objective is "minimum
welfare", i.e. maximise min_i Q^i): the quantity whose minimum the mediator
maximises is each agent's *episode* welfare, past included,

.. math:: Q^i(s_\rho, l) = c_i + \hat Q^i(s_\rho, l), \qquad
          l^*(s_\rho) = \arg\max_l \min_i \big(c_i + \hat Q^i(s_\rho, l)\big),

where the table :math:`\hat Q` learns the expected *remaining* paid rewards and c is
known exactly (the bins only index the table). Maximising :math:`\min_i \hat Q^i` alone
would ignore who has already been exploited, and "rewarding historical performance"
needs the past; with c = 0 (the first step) the two coincide. Ties go uniformly at
random; with probability ε (``--mediator-epsilon`` cap, decaying as 1/(n+1) with the
rounds learnt) a uniformly random leader.

**Learning** (the mediator's turn in sequential learning): undiscounted (finite
horizon) max-min Q-learning on the round's rollout,

.. math:: \hat Q(s_t, l_t) \mathrel{+}= \alpha\big(\tilde r_t + \hat Q(s_{t+1}, l^*(s_{t+1}))
          - \hat Q(s_t, l_t)\big)

(vector over agents; no bootstrap at the terminal step), with :math:`\tilde r` the paid
rewards (game rewards plus the transfer), swept backwards in time so a round's returns
reach the first step at once; the copies' TD errors at the same (state, leader) in one
step are averaged (``--mediator-lr`` α [0.1]).

**End-game transfer** (``jamql``; ``jamql-naive`` has none): at the terminal step,

.. math:: \tau_i = -\kappa\,\big(r_{i,T} - \tfrac{1}{N}\textstyle\sum_j r_{j,T}\big),
          \qquad \textstyle\sum_i \tau_i = 0,

(``--end-transfer`` κ ∈ [0, 1], default 1: the last step's rewards are equalised). An
agent that grabs more than the average with its final action pays the excess to the
others; **decision**: the paper's θ is not given, and this is the simplest zero-sum rule
that penalises exactly the unfair part of a final action. With κ = 1 in the 2-player PD,
cooperating dominates at the last step (2 or 1.5 against 1.5 or 1). Agents train on the
paid rewards; the world's metrics keep the game's own.
"""

from __future__ import annotations

import numpy as np

from clients.rollout import Rollout
from strategies.leaders import LeaderConfig, LeaderMediator, LeaderStrategy, check_table


class JAMQLMediator(LeaderMediator):
    """The max-min Q-learning mediator over augmented states (module docstring)."""

    transfers = True

    @classmethod
    def table_entries(cls, states: int, agents: int, horizon: int, cfg: LeaderConfig) -> int:
        return horizon * states * cfg.reward_bins ** agents * agents * agents

    def __init__(self, game, cfg: LeaderConfig, seed: int):
        super().__init__(game, cfg, seed)
        self.bins, self.width = cfg.reward_bins, cfg.reward_bin_width
        self.kappa = cfg.end_transfer if self.transfers else 0.0
        # Q̂[t, m, k, leader, agent]: the expected remaining paid rewards
        self.q = np.zeros((self.horizon, self.states, self.bins ** self.n, self.n, self.n), np.float32)

    def reward_state(self, cum: np.ndarray) -> np.ndarray:
        """k ``[B]``: the cumulative rewards ``[B, N]`` binned relative to the poorest agent."""
        k = np.minimum(np.floor((cum - cum.min(axis=1, keepdims=True)) / self.width + 1e-9), self.bins - 1)
        return (k.astype(np.int64) * self.bins ** np.arange(self.n)).sum(axis=1)

    def values(self, t: int, m: np.ndarray, cum: np.ndarray) -> np.ndarray:
        """Q^i(s, l) = c_i + Q̂^i(s, l): ``[B, leader, agent]``."""
        return cum[:, None, :] + self.q[t, m, self.reward_state(cum)]

    def greedy(self, t: int, m: np.ndarray, cum: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """argmax_l min_i Q^i(s, l) ``[B]``; ties at random with ``rng``, else the lowest index."""
        score = self.values(t, m, cum).min(axis=2)  # [B, L]
        top = score >= score.max(axis=1, keepdims=True) - 1e-6
        return (top * (1.0 + (rng.random(top.shape) if rng is not None else 0.0))).argmax(axis=1)

    def choose(self, t, state, cum):
        leader = self.greedy(min(t, self.horizon - 1), self.state_index(state), cum, self.rng)
        explore = self.rng.random(len(leader)) < self.epsilon
        return np.where(explore, self.rng.integers(0, self.n, len(leader)), leader)

    def transfer(self, rewards: np.ndarray) -> np.ndarray:
        return -self.kappa * (rewards - rewards.mean(axis=1, keepdims=True))

    def learn(self, rollout: Rollout) -> dict[str, float]:
        T, B, N = rollout.rewards.shape
        mask = rollout.mask
        game_r = rollout.rewards * mask
        paid = (rollout.rewards if rollout.shaped is None else rollout.shaped) * mask
        cum = np.concatenate([np.zeros((1, B, N)), np.cumsum(game_r, axis=0)], axis=0)  # c before each step
        m = np.stack([self.state_index(s) for s in rollout.state[: T + 1]])  # [T+1, B]
        assert rollout.leaders is not None  # a leader mediator's world records the leaders
        lead = rollout.leaders.argmax(axis=2)  # [T, B]
        lr, errors = self.cfg.mediator_lr, []
        for t in reversed(range(min(T, self.horizon))):
            k = self.reward_state(cum[t])
            if t == self.horizon - 1 or t + 1 >= T:
                future = np.zeros((B, N))
            else:
                nxt = self.greedy(t + 1, m[t + 1], cum[t + 1])
                future = self.q[t + 1, m[t + 1], self.reward_state(cum[t + 1]), nxt]
            live = mask[t].max(axis=1) > 0
            delta = (paid[t] + future - self.q[t, m[t], k, lead[t]])[live]
            key = (m[t][live], k[live], lead[t][live])
            total = np.zeros(self.q.shape[1:4] + (N,))
            count = np.zeros(self.q.shape[1:4])
            np.add.at(total, key, delta)
            np.add.at(count, key, 1.0)
            seen = count > 0
            self.q[t][seen] += (lr * total[seen] / count[seen][:, None]).astype(np.float32)
            errors.append(np.abs(delta).mean() if len(delta) else 0.0)
        self.rounds_learnt += 1
        return {"mediator_td_abs": float(np.mean(errors)), "mediator_epsilon": self.epsilon}

    def state_dict(self) -> dict:
        return super().state_dict() | {"q": self.q.copy()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        check_table(np.asarray(state["q"]), self.q.shape, "mediator table")
        self.q = np.array(state["q"], np.float32)


class NaiveJAMQLMediator(JAMQLMediator):
    """JAM-QL(naive): the same mediator without the end-game transfer."""

    transfers = False


class JAMQL(LeaderStrategy):
    name, mediator_class = "jamql", JAMQLMediator


class JAMQLNaive(LeaderStrategy):
    name, mediator_class = "jamql-naive", NaiveJAMQLMediator
