r"""Iterated N-player Prisoner's Dilemma and Chicken with a finite horizon (the matrix games
of JAM-QL, "Emergence of Fair Leaders via Mediators in MARL").

The paper plays iterated PD and Chicken with 2 and 4 players but gives no N-player
payoffs; **decision**: the pairwise extension. Every step each agent plays the 2-player
game against every other agent with the same action and earns the *mean* of its pairwise
payoffs,

.. math:: r_i = \frac{1}{N-1} \sum_{j \ne i} u(a_i, a_j),

so with N = 2 it is exactly the 2-player table of ``envs/matrix.py``:

- ``"pd"``, actions (0 cooperate, 1 defect): u(C,C) = 2, u(C,D) = 0, u(D,C) = 3, u(D,D) = 1;
- ``"chicken"``, actions (0 swerve, 1 straight): u(S,S) = 3, u(S,T) = 1, u(T,S) = 4, u(T,T) = 0.

Action 0 is the **fair action** (``fair_action``): everyone playing it gives every agent
the same, and the largest equal, payoff (2 and 3).

- **Finite horizon**: the episode ends after ``episode_length`` steps (default 12, a
  multiple of 2, 3 and 4, so an alternating leader leads equally often with 2, 3 or 4
  players) and the last step is *terminal* (``terminated = True``), not truncated: no
  learner bootstraps past it. This is where end-game defection lives.
- **Observation** (``discrete``): ``t * (A^N + 1) + m`` with t the step and m = 0 at the
  first step, else ``1 + Σ_j a_j A^j`` the previous joint action (agent 0 in the lowest
  digit), the same for every agent; ``Discrete(T (A^N + 1))`` (12·5 = 60 with 2 players,
  12·17 = 204 with 4). A view that adds the leader's action to the observation
  multiplies it by 1 + N·A (strategies/leaders.py).
- **Global state**: the one-hot of m, A^N + 1 floats (the step is not in it; a mediator
  knows t). ``mediator_state(state)`` gives m as an index (``mediator_states`` = A^N + 1):
  the game's state part of a mediator's augmented state.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.base import BatchedGame

# PAIRWISE[name][a_i, a_j] = u(a_i, a_j), agent i's payoff against j.
PAIRWISE = {
    "pd": np.array([[2.0, 0.0], [3.0, 1.0]], dtype=np.float32),
    "chicken": np.array([[3.0, 1.0], [4.0, 0.0]], dtype=np.float32),
}


class IteratedDilemma(BatchedGame):
    """Batched iterated N-player PD or Chicken; see the module docstring."""

    name = "dilemma"
    min_agents = 2
    max_agents = 6
    num_actions = 2
    observation_modes = ("discrete",)
    fair_action = 0

    def __init__(self, num_agents: int = 2, batch_size: int = 1, payoffs: str = "pd", episode_length: int = 12,
                 seed: int | None = None, observation: str | None = None) -> None:
        super().__init__(num_agents, batch_size, episode_length, seed, observation=observation)
        if payoffs not in PAIRWISE:
            raise ValueError(f"unknown payoffs {payoffs!r}; valid choices: {', '.join(PAIRWISE)}")
        self.payoffs = payoffs
        self.table = PAIRWISE[payoffs]
        self.joint = self.num_actions ** self.num_agents + 1  # m: 0 (start) or 1 + joint index
        self.last: np.ndarray
        self.reset()

    @property
    def mediator_states(self) -> int:
        return self.joint

    def mediator_state(self, state: np.ndarray) -> np.ndarray:
        """The state's index m ``[B]`` from the global state ``[B, A^N + 1]``."""
        return np.asarray(state).argmax(axis=-1).astype(np.int64)

    def payoff(self, actions: np.ndarray) -> np.ndarray:
        """Rewards ``[B, N]`` of joint actions ``[B, N]`` (the pairwise mean)."""
        n = self.num_agents
        pair = self.table[actions[:, :, None], actions[:, None, :]]  # [B, N, N]: u(a_i, a_j)
        return ((pair.sum(axis=2) - np.diagonal(pair, axis1=1, axis2=2)) / (n - 1)).astype(np.float32)

    def _observation_space(self) -> spaces.Discrete:
        return spaces.Discrete(self.episode_length * self.joint)

    def _state_space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.joint,), np.float32)

    def _state(self) -> np.ndarray:
        return np.eye(self.joint, dtype=np.float32)[self.last]

    def _reset(self) -> np.ndarray:
        self.last = np.zeros(self.batch_size, dtype=np.int64)
        return self._observe()

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rewards = self.payoff(actions)
        self.last = 1 + (actions * self.num_actions ** np.arange(self.num_agents)).sum(axis=1).astype(np.int64)
        end = self.t + 1 >= self.episode_length  # the base class counts t after _step
        terminated = np.full((self.batch_size, self.num_agents), end, dtype=bool)
        return self._observe(step=self.t + 1), rewards, terminated

    def _observe(self, step: int = 0) -> np.ndarray:
        t = min(step, self.episode_length - 1)  # the observation after the last step is never acted on
        return np.repeat((t * self.joint + self.last)[:, None], self.num_agents, axis=1)
