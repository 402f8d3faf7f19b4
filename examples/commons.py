"""A game from outside the package: a PettingZoo ParallelEnv of a shared pasture.

    python run_sim.py --env examples.commons:parallel_env --game-options num_herders=4 --strategy fpf

``num_herders`` herders graze one pasture whose grass ``g`` is in [0, 1]. Each step every
herder rests (action 0), grazes (1) or grazes hard (2), taking ``a·rate·g`` grass as its
reward; the grass then regrows logistically, ``g <- g + regrowth·g·(1 - g)``. Grazing hard
pays each herder more this step and leaves less for everyone later: a tragedy of the
commons. Everyone observes the grass and the time left, ``[g, 1 - t/max_cycles]``. An
episode ends after ``max_cycles`` steps, or when the grass is gone. The factory
``parallel_env`` is what ``--env`` names; its keywords are the ``--game-options``.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class Commons(ParallelEnv):
    metadata = {"name": "commons_v0", "render_modes": []}

    def __init__(self, num_herders: int = 3, max_cycles: int = 25, rate: float = 0.1, regrowth: float = 0.3):
        if num_herders < 1 or max_cycles < 1:
            raise ValueError(f"num_herders and max_cycles must be >= 1, got {num_herders}, {max_cycles}")
        self.possible_agents = [f"herder_{i}" for i in range(num_herders)]
        self.max_cycles, self.rate, self.regrowth = max_cycles, rate, regrowth
        self.render_mode = None
        self.agents: list[str] = []

    def observation_space(self, agent: str) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (2,), np.float32)

    def action_space(self, agent: str) -> spaces.Discrete:
        return spaces.Discrete(3)

    def _observe(self) -> dict[str, np.ndarray]:
        obs = np.array([self.grass, 1.0 - self.t / self.max_cycles], np.float32)
        return {a: obs.copy() for a in self.agents}

    def reset(self, seed: int | None = None, options: dict | None = None):
        rng = np.random.default_rng(seed)
        self.agents, self.t = list(self.possible_agents), 0
        self.grass = float(rng.uniform(0.5, 1.0))
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, int]):
        wanted = {a: int(actions[a]) * self.rate * self.grass for a in self.agents}
        scale = min(1.0, self.grass / max(sum(wanted.values()), 1e-12))  # never more than there is
        rewards = {a: w * scale for a, w in wanted.items()}
        self.grass -= sum(rewards.values())
        self.grass = min(1.0, self.grass + self.regrowth * self.grass * (1.0 - self.grass))
        self.t += 1
        gone, over = self.grass < 1e-3, self.t >= self.max_cycles
        obs = self._observe()
        terminated = dict.fromkeys(self.agents, gone)
        truncated = dict.fromkeys(self.agents, over and not gone)
        infos: dict[str, dict] = {a: {} for a in self.agents}
        if gone or over:
            self.agents = []
        return obs, rewards, terminated, truncated, infos


def parallel_env(**kwargs) -> Commons:
    """The factory ``--env examples.commons:parallel_env`` names (keywords: Commons's)."""
    return Commons(**kwargs)
