"""The Matthew Effect game: agents that eat grow faster, so the rich get richer.

Rules (defaults: 10 agents, 3 resources, 200 steps per episode):

- The world is the continuous square ``[0, 1]^2``.
- At reset every agent gets a uniform random position and a size ~ U(0.01, 0.05);
  resources get uniform random positions.
- An agent's speed is always ``0.01 + size``.
- Five actions: 0 stay, 1 up (+y), 2 down (-y), 3 left (-x), 4 right (+x). A move
  shifts the agent by its speed; positions are clipped to ``[0, 1]``.
- After all agents moved, an agent consumes a resource when its Euclidean distance to
  the resource is strictly less than its size. Consuming gives reward 1, grows the
  size by 0.005 (capped at 0.15, so speed grows too), and the resource respawns at a
  uniform random position at once.
- Conflicts (deterministic): an agent consumes at most one resource per step and a
  resource is consumed by at most one agent. Resources are processed in index order;
  for each resource, among the agents in range that have not consumed yet this step,
  the closest one consumes it (ties: lowest agent index). A resource that nobody in
  range may take stays where it is.
- Nothing terminates; the episode is truncated after ``episode_length`` steps.
- Observation (``Box(0, 1, (6,), float32)``, mode ``"vector"`` only): own position
  (x, y), size, speed, and the position of the nearest resource (after this step's
  respawns; ties: lowest resource index).
- Global state (``3 N + 2 R`` floats in ``[0, 1]``): all agents' positions
  ``(x_0, y_0, x_1, ...)``, then all sizes, then all resources' positions.

Internal state, public so it can be set directly: ``pos [B,N,2]``, ``size [B,N]``,
``resources [B,R,2]`` (float64) and the step counter ``t``.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.base import BatchedGame, check_positive_int

# Displacement direction of each action: stay, up, down, left, right.
MOVES = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, -1.0], [-1.0, 0.0], [1.0, 0.0]])


class MatthewEffect(BatchedGame):
    """Batched Matthew Effect game; see the module docstring for the rules."""

    name = "matthew"
    min_agents = 1
    max_agents = None
    num_actions = 5

    BASE_SPEED = 0.01
    INIT_SIZE_LOW = 0.01
    INIT_SIZE_HIGH = 0.05
    GROWTH = 0.005
    MAX_SIZE = 0.15

    def __init__(
        self,
        num_agents: int = 10,
        batch_size: int = 1,
        num_resources: int = 3,
        episode_length: int = 200,
        seed: int | None = None,
        observation: str | None = None,
    ) -> None:
        super().__init__(
            num_agents, batch_size, episode_length, seed,
            observation=observation,
        )
        self.num_resources = check_positive_int("num_resources", num_resources)
        self.pos: np.ndarray
        self.size: np.ndarray
        self.resources: np.ndarray
        self.reset()

    @property
    def speed(self) -> np.ndarray:
        """Per-agent speed ``[B, N]``, always ``0.01 + size``."""
        return self.BASE_SPEED + self.size

    def _observation_space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (6,), np.float32)

    def _state_space(self) -> spaces.Box:
        dim = 3 * self.num_agents + 2 * self.num_resources
        return spaces.Box(0.0, 1.0, (dim,), np.float32)

    def _state(self) -> np.ndarray:
        b = self.batch_size
        parts = [self.pos.reshape(b, -1), self.size, self.resources.reshape(b, -1)]
        return np.concatenate(parts, axis=1).astype(np.float32)

    def _reset(self) -> np.ndarray:
        b, n, r = self.batch_size, self.num_agents, self.num_resources
        self.pos = self.rng.random((b, n, 2))
        self.size = self.rng.uniform(self.INIT_SIZE_LOW, self.INIT_SIZE_HIGH, (b, n))
        self.resources = self.rng.random((b, r, 2))
        return self._observe(self._distances())

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.pos = np.clip(self.pos + MOVES[actions] * self.speed[..., None], 0.0, 1.0)

        dist = self._distances()
        in_range = dist < self.size[:, :, None]

        ate = np.zeros((self.batch_size, self.num_agents), dtype=bool)
        eaten = np.zeros((self.batch_size, self.num_resources), dtype=bool)
        if in_range.any():
            for r in range(self.num_resources):
                candidates = in_range[:, :, r] & ~ate
                taken = candidates.any(axis=1)
                if not taken.any():
                    continue
                winner = np.where(candidates, dist[:, :, r], np.inf).argmin(axis=1)
                rows = np.flatnonzero(taken)
                ate[rows, winner[rows]] = True
                eaten[:, r] = taken

            self.size = np.where(
                ate, np.minimum(self.size + self.GROWTH, self.MAX_SIZE), self.size
            )
            self.resources[eaten] = self.rng.random((int(eaten.sum()), 2))
            dist = self._distances()

        rewards = ate.astype(np.float32)
        terminated = np.zeros((self.batch_size, self.num_agents), dtype=bool)
        return self._observe(dist), rewards, terminated

    def _distances(self) -> np.ndarray:
        """Euclidean distance ``[B, N, R]`` from every agent to every resource."""
        dx = self.pos[:, :, 0, None] - self.resources[:, None, :, 0]
        dy = self.pos[:, :, 1, None] - self.resources[:, None, :, 1]
        return np.sqrt(dx * dx + dy * dy)

    def _observe(self, dist: np.ndarray) -> np.ndarray:
        """Observations from the current state; ``dist`` must match it."""
        nearest = dist.argmin(axis=2)
        rows = np.arange(self.batch_size)[:, None]
        obs = np.empty((self.batch_size, self.num_agents, 6), dtype=np.float32)
        obs[..., 0:2] = self.pos
        obs[..., 2] = self.size
        obs[..., 3] = self.speed
        obs[..., 4:6] = self.resources[rows, nearest]
        return obs
