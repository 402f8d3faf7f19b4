"""Tabular Q-learning for one agent (Watkins 1989), for games with Discrete observations.

The policy is a table ``q[n_states, A]`` (clients.networks.Table), initialised to zeros,
acted on ε-greedily (policy kind ``epsilon-greedy``; ties go to the lowest action, so an
untrained table plays action 0 wherever it does not explore). Each round the agent walks
its own experience game copy by game copy, and within a copy in time order (the order in
which an agent playing those episodes one after another would have seen them), skipping
steps after its episode ended (``mask = 0``), and applies one-step Q-learning::

    q[o, a] += lr·(r + γ·(1 - done)·max_a' q[o', a'] - q[o, a])

Each update sees the updates before it, so a state visited twice in a round is updated
from its already-updated value. The last step of a truncated round bootstraps from
``obs[T]`` (``done = 0``), as :meth:`Experience.transitions` defines.

Exploration (``q_epsilon_schedule``):

- ``"constant"``: ε = ``q_epsilon`` in every round;
- ``"1/t"``: ε_t = min(``q_epsilon``, 1/t), with t = the number of rounds trained so far
  + 1 (t = 1 before the first round). Σ 1/t diverges, so every reachable state-action
  pair keeps being tried while ε → 0 (GLIE, Singh et al. 2000); the cap keeps early
  rounds from exploring more than ``q_epsilon`` (with the default 0.1, ε stays 0.1 for
  the first 10 rounds, then falls as 1/t).

Anchors: a federation's pull (clients.anchors) is applied once per round in every mode:
with ``step="round"`` by the ClientApp after training (``q <- q - w_u(q - ω) - w_e(q - ω̄)``);
with ``"sgd"`` here, after the round's updates, as one step scaled by the table's learning
rate, ``q <- q - lr·[w_u(q - ω) + w_e(q - ω̄)]``. Per-transition pulls would make the pull's
strength depend on how many steps an agent played. (FPF refuses q-table agents today;
the pull is there for strategies that do not.)

The tabular learner needs a Discrete observation space, e.g. Job Scheduling with
``observation="discrete"``; any other space raises ``ValueError``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces

from clients.anchors import Anchors
from clients.experience import Experience
from clients.learner import Learner
from clients.networks import NetworkConfig, Table
from clients.policies import EPSILON_GREEDY
from typing import ClassVar
from clients.settings import Settings, setting

SCHEDULES = ("constant", "1/t")


@dataclass
class QTableConfig(Settings):
    """Hyperparameters of the tabular Q learner (see the module docstring)."""

    prefix: ClassVar[str] = "q"
    title: ClassVar[str] = "Tabular Q-learning (--learner q-table)"

    lr: float = setting(0.1, "the Q-learning rate", gt=0.0, le=1.0)
    gamma: float = setting(0.95, "discount factor γ", ge=0.0, le=1.0)
    epsilon: float = setting(0.1, "ε of ε-greedy exploration", ge=0.0, le=1.0)
    epsilon_schedule: str = setting("constant", "constant ε, or ε/t in the agent's t-th round of training (1/t)",
                                    choices=("constant", "1/t"))


def q_epsilon(schedule: str, epsilon: float, rounds_trained: int) -> float:
    """ε for the next round: constant, or min(ε, 1/t) with t = rounds_trained + 1."""
    if schedule == "constant":
        return float(epsilon)
    if schedule == "1/t":
        return float(min(epsilon, 1.0 / (rounds_trained + 1)))
    raise ValueError(f"unknown q-epsilon-schedule '{schedule}'; valid choices: {', '.join(SCHEDULES)}")


def q_learning(q: np.ndarray, exp: Experience, lr: float, gamma: float) -> tuple[np.ndarray, int]:
    """One-step Q-learning on ``exp`` in place on ``q``, copy by copy, each in time order.

    Returns the TD errors (before each update) and the number of updates.
    """
    T, B = exp.actions.shape
    obs = np.asarray(exp.obs).astype(np.int64)
    deltas = []
    for b in range(B):
        for t in range(T):
            if exp.mask[t, b] <= 0:
                continue
            o, a, o2 = obs[t, b], int(exp.actions[t, b]), obs[t + 1, b]
            done = float(exp.terminated[t, b])
            delta = float(exp.rewards[t, b]) + gamma * (1.0 - done) * q[o2].max() - q[o, a]
            q[o, a] += lr * delta
            deltas.append(delta)
    return np.asarray(deltas, dtype=np.float64), len(deltas)


class QTableLearner(Learner):
    """An agent's Q-table, learning rate and round counter."""

    name, kind = "q-table", EPSILON_GREEDY
    policy: Table

    def __init__(self, space: spaces.Space, num_actions: int, cfg: QTableConfig, net: NetworkConfig, seed: int,
                 agent: int):
        if cfg.epsilon_schedule not in SCHEDULES:
            raise ValueError(f"unknown q-epsilon-schedule '{cfg.epsilon_schedule}'; "
                             f"valid choices: {', '.join(SCHEDULES)}")
        self.cfg = cfg
        self.policy = self.policy_network(space, num_actions, net, seed)
        self.lr = cfg.lr
        self.rounds_trained = 0
        self.updates = 0  # cumulative table updates

    @classmethod
    def policy_network(cls, space: spaces.Space, num_actions: int, net: NetworkConfig, seed: int) -> Table:
        if not isinstance(space, spaces.Discrete):
            raise ValueError(f"the q-table learner needs a Discrete observation space (a state index), got {space}; "
                             "choose a game's discrete observations (e.g. Job Scheduling with "
                             "observation='discrete') or the ppo / dqn learner")
        return Table(int(space.n), num_actions)  # zeros: the same start for every agent

    @classmethod
    def initial_epsilon(cls, cfg: QTableConfig) -> float:
        return q_epsilon(cfg.epsilon_schedule, cfg.epsilon, 0)

    def epsilon(self) -> float:
        return q_epsilon(self.cfg.epsilon_schedule, self.cfg.epsilon, self.rounds_trained)

    def scale_lr(self, scale: float) -> None:
        self.lr = self.cfg.lr * scale

    def train(self, exp: Experience, anchors: Anchors, seed: int) -> dict[str, float]:
        """One pass of Q-learning over ``exp``, then the anchors' pull once; ``seed`` is unused."""
        start = time.perf_counter()
        table = self.policy.q
        q = table.detach().numpy().astype(np.float64)
        deltas, n = q_learning(q, exp, self.lr, self.cfg.gamma)
        with torch.no_grad():
            table.copy_(torch.as_tensor(q, dtype=table.dtype))
            if anchors.per_step:
                anchors.pull(list(self.policy.named_parameters()), self.lr)
        self.rounds_trained += 1
        self.updates += n
        return {"td_loss": float(0.5 * (deltas ** 2).mean()) if n else 0.0,
                "td_abs": float(np.abs(deltas).mean()) if n else 0.0,
                "q_mean": float(table.detach().mean()),
                "states_visited": float(len(np.unique(np.asarray(exp.obs)[:-1][np.asarray(exp.mask) > 0]))),
                "epsilon": self.epsilon(), "train_s": time.perf_counter() - start,
                "optimizer_steps": float(self.updates), "num-examples": float(n)}

    def state_dict(self) -> dict:
        return copy.deepcopy({"policy": self.policy.state_dict(), "rounds_trained": self.rounds_trained,
                              "updates": self.updates})

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(copy.deepcopy(state["policy"]))
        self.rounds_trained = int(state["rounds_trained"])
        self.updates = int(state["updates"])
