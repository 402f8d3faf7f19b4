"""The interface every game implements: a natively batched, simultaneous-move game.

A ``BatchedGame`` runs ``batch_size`` independent copies of one game in lock-step.
Every array has a leading batch axis ``B`` followed by the agent axis ``N``:

- ``reset(seed)`` -> observations, float32 ``[B, N, obs_dim]``;
- ``step(actions)`` with int actions ``[B, N]`` -> ``(obs, rewards, terminated,
  truncated)`` with shapes ``[B, N, obs_dim]``, ``[B, N]`` (float32), ``[B, N]`` (bool),
  ``[B, N]`` (bool);
- ``state(obs)`` -> the global state ``[B, state_dim]``.

Decisions shared by all games:

- Actions are discrete, ``0 .. num_actions - 1``, the same set for every agent.
- The episode is truncated for every agent and every copy when the step counter ``t``
  reaches ``episode_length``. There is no autoreset: stepping a finished episode raises
  ``RuntimeError`` until ``reset`` is called.
- Each game owns one ``np.random.Generator``. ``reset(seed)`` replaces it with a fresh
  generator seeded by ``seed``; ``reset(None)`` keeps drawing from the current one.
- Bad actions (wrong shape, non-integer dtype, out of range) raise ``ValueError``.

A subclass sets ``name``, ``num_actions``, ``obs_dim`` (and ``state_dim`` if the global
state is not the concatenation of all observations), and implements ``_reset`` and
``_step``; the public ``reset``/``step`` wrap them with seeding, validation and the step
counter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


class BatchedGame(ABC):
    """A simultaneous-move game with N agents, run as B independent copies at once."""

    name: str = "game"
    # Range of team sizes the game supports; checked by ``envs.make``.
    min_agents: int = 1
    max_agents: int | None = None
    # Bounds of every observation entry (used for the gymnasium observation space).
    obs_low: float = -np.inf
    obs_high: float = np.inf

    num_actions: int
    obs_dim: int

    def __init__(
        self,
        num_agents: int,
        batch_size: int = 1,
        episode_length: int = 200,
        seed: int | None = None,
    ) -> None:
        self.num_agents = check_positive_int("num_agents", num_agents)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.episode_length = check_positive_int("episode_length", episode_length)
        self.rng = np.random.default_rng(seed)
        self.t = 0

    @property
    def state_dim(self) -> int:
        """Size of the global state; by default all agents' observations side by side."""
        return self.num_agents * self.obs_dim

    # ------------------------------------------------------------------ public API

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start a new episode in every copy; return observations ``[B, N, obs_dim]``."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        return self._reset()

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Advance every copy by one step.

        Returns ``(obs [B,N,obs_dim] float32, rewards [B,N] float32,
        terminated [B,N] bool, truncated [B,N] bool)``.
        """
        if self.t >= self.episode_length:
            raise RuntimeError(
                f"episode is over (t={self.t} == episode_length); call reset() first"
            )
        actions = self._check_actions(actions)
        obs, rewards, terminated = self._step(actions)
        self.t += 1
        truncated = np.full(
            (self.batch_size, self.num_agents), self.t >= self.episode_length, dtype=bool
        )
        return obs, rewards, terminated, truncated

    def state(self, obs: np.ndarray) -> np.ndarray:
        """Global state ``[B, state_dim]``; by default the observations concatenated."""
        return obs.reshape(obs.shape[0], -1)

    # ------------------------------------------------------------ for subclasses

    @abstractmethod
    def _reset(self) -> np.ndarray:
        """Draw a fresh initial state from ``self.rng``; return observations."""

    @abstractmethod
    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply validated actions; return ``(obs, rewards, terminated)``."""

    # ------------------------------------------------------------------ helpers

    def _check_actions(self, actions: np.ndarray) -> np.ndarray:
        actions = np.asarray(actions)
        expected = (self.batch_size, self.num_agents)
        if actions.shape != expected:
            raise ValueError(
                f"actions must have shape (batch_size, num_agents) = {expected}, "
                f"got {actions.shape}"
            )
        if not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"actions must be integers, got dtype {actions.dtype}")
        low, high = actions.min(), actions.max()
        if low < 0 or high >= self.num_actions:
            bad = low if low < 0 else high
            raise ValueError(
                f"actions must be in [0, {self.num_actions}), got action {bad}"
            )
        return actions
