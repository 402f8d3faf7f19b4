"""The interface every game implements: a natively batched, simultaneous-move game.

A ``BatchedGame`` runs ``batch_size`` independent copies of one game in lock-step.
Every array has a leading batch axis ``B`` followed by the agent axis ``N``:

- ``reset(seed)`` -> observations ``[B, N, *observation_space.shape]`` with the dtype of
  ``observation_space``;
- ``step(actions)`` with int actions ``[B, N]`` (a continuous game: float actions
  ``[B, N, *action_shape]``) -> ``(obs, rewards, terminated, truncated)``: observations as above, rewards ``[B, N]`` float32, flags ``[B, N]`` bool;
- ``state()`` -> the global state ``[B, state_dim]`` float32 of the current step, an
  element of ``state_space`` (a ``Box``), computed from the game's internal state.

Observation spaces (one space, the same for every agent):

- vectors: ``Box(low, high, (d,), float32)``;
- images: ``Box(0, 255, (H, W, C), uint8)``, channels last;
- discrete observations: ``Discrete(n)``; observation arrays are then int64 ``[B, N]``.

A game may offer several observation modes (``observation_modes``, the first is the
default), chosen with the constructor keyword ``observation``; the modes differ only in
what the agents see, never in the dynamics.

Decisions shared by all games:

- Actions are discrete, ``0 .. num_actions - 1``, the same set for every agent. A
  *continuous* game (``action_shape = (A,)``, ``num_actions = A``) takes a vector in
  ``[-1, 1]^A`` per agent instead and maps it onto its own bounds (PettingZoo games with
  ``Box`` actions, envs/pettingzoo_adapter.py); learners of the ``deterministic`` policy
  kind (DDPG) play them.
- The episode is truncated for every agent and every copy when the step counter ``t``
  reaches ``episode_length``. A game whose state and observations carry the time t/T
  sets ``horizon_terminal = True``: its horizon is part of the game (a finite-horizon
  game, as the LIO reference's Escape Room, whose episode is done after its last step),
  so the last step also reports ``terminated`` and learners do not bootstrap from the
  state at t/T = 1, which is never the start of a transition (its value is 0, while a
  network's value there is an untrained extrapolation). There is no autoreset: stepping a finished episode raises
  ``RuntimeError`` until ``reset`` is called.
- Each game owns one ``np.random.Generator``. ``reset(seed)`` replaces it with a fresh
  generator seeded by ``seed``; ``reset(None)`` keeps drawing from the current one.
- Bad actions (wrong shape, non-integer dtype, out of range) raise ``ValueError``.

A subclass sets ``name``, ``num_actions`` (and ``observation_modes`` if it has more
than ``("vector",)``), implements ``_observation_space`` (for ``self.observation``),
``_reset`` and ``_step``, and calls ``self.reset()`` at the end of its constructor. It
overrides ``_state_space`` and ``_state`` when it has a natural global state; the
default state is all agents' last observations flattened and concatenated (float32).
A game may also define optional hooks that others look up by name, e.g.
``leader_rules(leaders)`` when its rules depend on who leads the next step
(``resource-grid``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cached_property

import numpy as np
from gymnasium import spaces


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
    # Observation modes the game offers; the first is the default.
    observation_modes: tuple[str, ...] = ("vector",)

    num_actions: int
    #: () for discrete actions; (A,) for a continuous game, whose actions are vectors in [-1, 1]^A
    action_shape: tuple[int, ...] = ()
    #: the horizon ends the game: the last step reports ``terminated`` (see the module docstring)
    horizon_terminal: bool = False

    def __init__(
        self,
        num_agents: int,
        batch_size: int = 1,
        episode_length: int = 200,
        seed: int | None = None,
        *,
        observation: str | None = None,
    ) -> None:
        self.num_agents = check_positive_int("num_agents", num_agents)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.episode_length = check_positive_int("episode_length", episode_length)
        if observation is None:
            observation = self.observation_modes[0]
        if observation not in self.observation_modes:
            raise ValueError(
                f"{self.name}: unknown observation mode {observation!r}; valid choices: "
                f"{', '.join(self.observation_modes)}"
            )
        self.observation = observation
        self.rng = np.random.default_rng(seed)
        self.t = 0
        self._obs: np.ndarray | None = None  # last observations

    # ------------------------------------------------------------------ spaces

    @cached_property
    def observation_space(self) -> spaces.Box | spaces.Discrete:
        """Each agent's observation space."""
        return self._observation_space()

    @cached_property
    def state_space(self) -> spaces.Box:
        """One copy's global state: a float32 ``Box`` of shape ``(state_dim,)``."""
        return self._state_space()

    @property
    def continuous(self) -> bool:
        """Whether actions are vectors in [-1, 1]^A (``action_shape``), not indices."""
        return bool(self.action_shape)

    @property
    def state_dim(self) -> int:
        """Size of the global state."""
        return int(self.state_space.shape[0])

    # ------------------------------------------------------------------ public API

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start a new episode in every copy; return observations ``[B, N, ...]``."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        return self._publish(self._reset())

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Advance every copy by one step.

        Returns ``(obs [B,N,...], rewards [B,N] float32, terminated [B,N] bool,
        truncated [B,N] bool)``.
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
        if self.horizon_terminal:
            terminated = np.asarray(terminated, bool) | truncated
        return self._publish(obs), rewards, terminated, truncated

    def state(self) -> np.ndarray:
        """Global state ``[B, state_dim]`` float32 of the current step."""
        if self._obs is None:
            raise RuntimeError("call reset() before state()")
        return self._state()

    def reference_metrics(self) -> dict[str, float]:
        """Constants of the game a run reports beside the returns each round (e.g. a
        central planner's welfare per episode); none by default."""
        return {}

    # ------------------------------------------------------------ for subclasses

    @abstractmethod
    def _observation_space(self) -> spaces.Box | spaces.Discrete:
        """The observation space of mode ``self.observation``."""

    def _state_space(self) -> spaces.Box:
        """Default: the space of all agents' observations flattened side by side."""
        base = self._observation_space()
        low: np.ndarray
        high: np.ndarray
        if isinstance(base, spaces.Discrete):
            low = np.full(1, base.start, dtype=np.float32)
            high = np.full(1, base.start + base.n - 1, dtype=np.float32)
        else:
            low, high = base.low.ravel(), base.high.ravel()
        return spaces.Box(
            np.tile(low.astype(np.float32), self.num_agents),
            np.tile(high.astype(np.float32), self.num_agents),
            dtype=np.float32,
        )

    def _state(self) -> np.ndarray:
        """Default: the last observations flattened, as float32."""
        assert self._obs is not None  # state() checks it
        return self._obs.reshape(self.batch_size, -1).astype(np.float32)

    @abstractmethod
    def _reset(self) -> np.ndarray:
        """Draw a fresh initial state from ``self.rng``; return observations."""

    @abstractmethod
    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply validated actions; return ``(obs, rewards, terminated)``."""

    # ------------------------------------------------------------------ helpers

    def _publish(self, obs: np.ndarray) -> np.ndarray:
        """Remember the observations (for the default state) and return them."""
        self._obs = obs
        self.observation_space  # built (and checked) on the constructor's reset
        return obs

    def _check_actions(self, actions: np.ndarray) -> np.ndarray:
        actions = np.asarray(actions)
        if self.continuous:
            return self._check_continuous(actions)
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

    def _check_continuous(self, actions: np.ndarray) -> np.ndarray:
        expected = (self.batch_size, self.num_agents, *self.action_shape)
        if actions.shape != expected:
            raise ValueError(f"actions must have shape (batch_size, num_agents, *action_shape) = {expected}, "
                             f"got {actions.shape}")
        if not np.issubdtype(actions.dtype, np.floating):
            raise ValueError(f"a continuous game's actions must be floats, got dtype {actions.dtype}")
        if not np.isfinite(actions).all():
            raise ValueError("actions must be finite")
        worst = float(np.abs(actions).max())
        if worst > 1.0 + 1e-5:
            raise ValueError(f"a continuous game's actions must be in [-1, 1], got {worst:g}")
        return np.clip(actions, -1.0, 1.0).astype(np.float32)
