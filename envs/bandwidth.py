r"""Bandwidth allocation in communication channels (the mechanism-design paper's Figure 4,
left and middle; after Parvini et al. 2023): N vehicles share C channels.

Every step each agent picks a channel c ∈ {0..C-1} and a transmit power level
l ∈ {0..L-1} (action ``a = c·L + l``); the powers are ``p_max·(l + 1)/L`` (no silence:
every agent transmits). Each agent's channel gain h_i is drawn every step from an
exponential distribution with mean 1 (Rayleigh fading) and is part of the state. Its
reward is its data rate ([MD Eq. 25], with k_1·B = ``bandwidth``)::

    R_i = bandwidth · log2(1 + P_i h_i / (σ² + Σ_{j≠i, c_j = c_i} P_j h_j))

Raising one's power raises one's rate and the interference of everyone on the channel:
the social dilemma. The episode ends after ``episode_length`` steps (10); the state
carries t/T, so that last step reports ``terminated`` (no bootstrap past the horizon).
No closed-form welfare optimum is reported (a joint search over (C·L)^N actions).

Global state: the gains h (N) and t/T. Observation: the state and the agent's own index
one-hot (envs.escape_room).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.base import BatchedGame, check_positive_int
from envs.escape_room import with_agent_id


class Bandwidth(BatchedGame):
    """Batched channel and power allocation; see the module docstring."""

    name = "bandwidth"
    horizon_terminal = True  # t/T is in the state: the last step ends the game (envs/base.py)
    min_agents = 2

    def __init__(self, num_agents: int = 7, batch_size: int = 1, channels: int = 3, power_levels: int = 3,
                 p_max: float = 1.0, noise: float = 0.1, bandwidth: float = 1.0, episode_length: int = 10,
                 seed: int | None = None, observation: str | None = None) -> None:
        self.channels = check_positive_int("channels", channels)
        self.power_levels = check_positive_int("power_levels", power_levels)
        if p_max <= 0 or noise <= 0 or bandwidth <= 0:
            raise ValueError(f"p_max, noise and bandwidth must be > 0, got {p_max}, {noise}, {bandwidth}")
        self.p_max, self.noise, self.bandwidth = float(p_max), float(noise), float(bandwidth)
        self.num_actions = self.channels * self.power_levels
        super().__init__(num_agents, batch_size, episode_length, seed, observation=observation)
        self.gain: np.ndarray  # [B, N] this step's channel gains
        self.reset()

    def powers(self, actions: np.ndarray) -> np.ndarray:
        return self.p_max * (actions % self.power_levels + 1) / self.power_levels

    def rates(self, actions: np.ndarray, gain: np.ndarray) -> np.ndarray:
        """[MD Eq. 25] for joint actions ``[B, N]`` and gains ``[B, N]``."""
        channel = actions // self.power_levels
        received = self.powers(actions) * gain  # [B, N]
        same = channel[:, :, None] == channel[:, None, :]  # [B, i, j]
        interference = (same * received[:, None, :]).sum(-1) - received
        return self.bandwidth * np.log2(1.0 + received / (self.noise + interference))

    def _state_space(self) -> spaces.Box:
        return spaces.Box(0.0, np.inf, (self.num_agents + 1,), np.float32)

    def _observation_space(self) -> spaces.Box:
        return spaces.Box(0.0, np.inf, (2 * self.num_agents + 1,), np.float32)

    def _state(self, t: int | None = None) -> np.ndarray:
        frac = np.full((self.batch_size, 1), (self.t if t is None else t) / self.episode_length, np.float32)
        return np.concatenate([self.gain.astype(np.float32), frac], axis=1)

    def _draw(self) -> None:
        self.gain = self.rng.exponential(1.0, (self.batch_size, self.num_agents))

    def _reset(self) -> np.ndarray:
        self._draw()
        return with_agent_id(self._state(), self.num_agents)

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rewards = self.rates(actions, self.gain).astype(np.float32)
        self._draw()
        obs = with_agent_id(self._state(self.t + 1), self.num_agents)
        return obs, rewards, np.zeros(actions.shape, bool)
