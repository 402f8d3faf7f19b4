"""Iterated matrix games: two players play one normal-form game again and again.

Rules (defaults: ``payoffs="pd"``, 10 steps per episode):

- Exactly two agents, two actions each. Every step both choose at once and get the
  payoffs of the joint action ``(a_0, a_1)``, written ``(reward_0, reward_1)``:

  - ``"pd"``, Prisoner's Dilemma, actions (0 cooperate, 1 defect):
    (C,C) = (2,2), (C,D) = (0,3), (D,C) = (3,0), (D,D) = (1,1);
  - ``"chicken"``, actions (0 swerve, 1 straight):
    (S,S) = (3,3), (S,T) = (1,4), (T,S) = (4,1), (T,T) = (0,0);
  - ``"stag_hunt"``, actions (0 stag, 1 hare):
    (S,S) = (4,4), (S,H) = (0,3), (H,S) = (3,0), (H,H) = (3,3).

- Nothing terminates; the episode is truncated after ``episode_length`` steps. The
  game draws no random numbers (the generator is kept for the common interface).
- Observation (mode ``"discrete"`` only), ``Discrete(A^2 + 1) = Discrete(5)``, the same
  for both agents: 0 at the first step, else ``1 + a_0 * A + a_1`` for the previous
  step's joint action (agent 0's action first for both agents).
- Global state: the one-hot of the observation, ``A^2 + 1`` floats.

Internal state, public so it can be set directly: ``last [B]`` (int64, the previous
joint action index ``a_0 * A + a_1``, or -1 before the first step) and the step
counter ``t``.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.base import BatchedGame

# PAYOFFS[name][a_0, a_1] = (reward of agent 0, reward of agent 1).
PAYOFFS = {
    "pd": np.array([[(2, 2), (0, 3)], [(3, 0), (1, 1)]], dtype=np.float32),
    "chicken": np.array([[(3, 3), (1, 4)], [(4, 1), (0, 0)]], dtype=np.float32),
    "stag_hunt": np.array([[(4, 4), (0, 3)], [(3, 0), (3, 3)]], dtype=np.float32),
}


class MatrixGame(BatchedGame):
    """Batched iterated two-player matrix game; see the module docstring for the rules."""

    name = "matrix"
    min_agents = 2
    max_agents = 2
    num_actions = 2
    observation_modes = ("discrete",)

    def __init__(
        self,
        num_agents: int = 2,
        batch_size: int = 1,
        payoffs: str = "pd",
        episode_length: int = 10,
        seed: int | None = None,
        observation: str | None = None,
    ) -> None:
        super().__init__(
            num_agents, batch_size, episode_length, seed,
            observation=observation,
        )
        if self.num_agents != 2:
            raise ValueError(f"matrix takes exactly 2 agents, got {self.num_agents}")
        if payoffs not in PAYOFFS:
            raise ValueError(
                f"unknown payoffs {payoffs!r}; valid choices: {', '.join(PAYOFFS)}"
            )
        self.payoffs = payoffs
        self.table = PAYOFFS[payoffs]
        self.last: np.ndarray
        self.reset()

    def _observation_space(self) -> spaces.Discrete:
        return spaces.Discrete(self.num_actions**2 + 1)

    def _state_space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.num_actions**2 + 1,), np.float32)

    def _state(self) -> np.ndarray:
        return np.eye(self.num_actions**2 + 1, dtype=np.float32)[self.last + 1]

    def _reset(self) -> np.ndarray:
        self.last = np.full(self.batch_size, -1, dtype=np.int64)
        return self._observe()

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rewards = self.table[actions[:, 0], actions[:, 1]]  # [B, 2] float32
        self.last = (actions[:, 0] * self.num_actions + actions[:, 1]).astype(np.int64)
        terminated = np.zeros((self.batch_size, 2), dtype=bool)
        return self._observe(), rewards, terminated

    def _observe(self) -> np.ndarray:
        return np.repeat(self.last[:, None] + 1, 2, axis=1)
