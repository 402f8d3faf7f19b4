"""A PettingZoo ``ParallelEnv`` view of one copy of a ``BatchedGame``.

The wrapped game must have ``batch_size == 1``. Agents are named ``agent_0 ..
agent_{N-1}``. Decisions:

- ``step`` needs an action for every live agent (``self.agents``); a missing or unknown
  agent name raises ``ValueError``. Agents that already finished are fed action 0 and
  their outputs are not reported.
- An agent leaves ``self.agents`` in the step where it is terminated or truncated.
  Stepping after every agent has finished raises ``RuntimeError`` until ``reset``.
- Rewards are python floats, flags python bools. Observations follow the game's
  ``observation_space``: float32 or uint8 arrays for ``Box`` spaces, int64 numpy scalars
  for ``Discrete`` ones. ``state_space`` and ``state()`` are the game's (one copy).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from envs.base import BatchedGame


class BatchedParallelEnv(ParallelEnv):
    """Single-copy PettingZoo parallel environment backed by a ``BatchedGame``."""

    def __init__(self, game: BatchedGame) -> None:
        if game.batch_size != 1:
            raise ValueError(
                f"BatchedParallelEnv needs a game with batch_size 1, got {game.batch_size}"
            )
        self._game = game
        self.metadata = {"name": game.name, "render_modes": []}
        self.render_mode = None
        self.possible_agents = [f"agent_{i}" for i in range(game.num_agents)]
        self.agents: list[str] = []
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        space = game.observation_space
        self._observation_spaces = {a: space for a in self.possible_agents}
        self._action_spaces = {
            a: spaces.Discrete(game.num_actions) for a in self.possible_agents
        }
        self.state_space = game.state_space
        self._obs: np.ndarray | None = None

    @property
    def game(self) -> BatchedGame:
        """The underlying batched game (batch size 1)."""
        return self._game

    def observation_space(self, agent: str) -> spaces.Space:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        self._obs = self._game.reset(seed)
        self.agents = list(self.possible_agents)
        obs = {a: self._obs[0, i] for i, a in enumerate(self.possible_agents)}
        return obs, {a: {} for a in self.agents}

    def step(
        self, actions: dict[str, int]
    ) -> tuple[
        dict[str, np.ndarray],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict],
    ]:
        if not self.agents:
            raise RuntimeError("no live agents; call reset() first")
        unknown = set(actions) - set(self._index)
        if unknown:
            raise ValueError(f"unknown agents in actions: {sorted(unknown)}")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"missing actions for live agents: {missing}")

        joint = np.zeros((1, self._game.num_agents), dtype=np.int64)
        for agent in self.agents:
            joint[0, self._index[agent]] = int(actions[agent])
        self._obs, rew, term, trunc = self._game.step(joint)

        live = self.agents
        idx = [self._index[a] for a in live]
        obs = {a: self._obs[0, i] for a, i in zip(live, idx)}
        rewards = {a: float(rew[0, i]) for a, i in zip(live, idx)}
        terminations = {a: bool(term[0, i]) for a, i in zip(live, idx)}
        truncations = {a: bool(trunc[0, i]) for a, i in zip(live, idx)}
        infos: dict[str, dict] = {a: {} for a in live}
        self.agents = [a for a in live if not (terminations[a] or truncations[a])]
        return obs, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """Global state ``[state_dim]`` float32 of the current step."""
        if self._obs is None:
            raise RuntimeError("call reset() before state()")
        return self._game.state()[0]

    def render(self) -> None:
        return None

    def close(self) -> None:
        pass
