"""Escape Room ER(N, M) (Yang et al. 2020, LIO; the mechanism-design paper's Figure 3).

Rules (the LIO reference's, which the paper cites):

- Three positions: 0 lever, 1 start, 2 door. Every agent starts at the start. An action
  is the position to be at after the step (0 lever, 1 start, 2 door).
- The door is open this step iff at least ``min_lever`` = M agents choose the lever.
- Rewards: +``exit_reward`` (10) to an agent that chooses the door while it is open;
  otherwise 0 for staying where it is and -``move_cost`` (1) for moving.
- The episode terminates (for every agent of the copy) when the door was open and some
  agent is at the door after the step, and at the horizon, after ``episode_length`` steps
  (default 5, LIO's; the state carries t/T, so the horizon is part of the game and the
  last step reports ``terminated`` as well as ``truncated``: learners do not bootstrap
  past it). A terminated copy is frozen: further steps give 0 and change nothing.

**Decision (the paper's text vs its game).** The paper's ablation text calls (lever,
lever, escape, escape, escape) optimal in ER(5, 3), two at the lever; with "the door
opens only if at least M agents pull the lever" that joint action keeps the door shut.
The rule decides: M = 3 agents pull, N - M = 2 escape. The optimal welfare (undiscounted,
one episode) is therefore ``exit_reward·(N - M) - move_cost·M`` (:func:`optimal_welfare`:
17, 25 and 34 for (5, 3), (8, 5), (10, 6)), reached in one step; every agent at the lever
pays at least one move, at most N - M agents can be at the door, and an episode has one
exit step. A copy's welfare is reported beside the returns as ``optimal_welfare``.

Global state: every agent's position one-hot (3N) and the elapsed fraction t/T.
Observation (vector): the global state and the agent's own index one-hot (N), so that a
parameter-shared network (``cen``) can tell agents apart (pymarl's ``obs_agent_id``).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.base import BatchedGame

LEVER, START, DOOR = 0, 1, 2


def optimal_welfare(num_agents: int, min_lever: int, exit_reward: float = 10.0, move_cost: float = 1.0) -> float:
    """The largest collective return of one episode: M pull, N - M escape, in one step."""
    return max(exit_reward * (num_agents - min_lever) - move_cost * min_lever, 0.0)


def with_agent_id(state: np.ndarray, num_agents: int) -> np.ndarray:
    """Observations ``[B, N, state_dim + N]``: the global state and each agent's index one-hot."""
    B = state.shape[0]
    ids = np.broadcast_to(np.eye(num_agents, dtype=np.float32), (B, num_agents, num_agents))
    return np.concatenate([np.repeat(state[:, None], num_agents, axis=1), ids], axis=-1)


class EscapeRoom(BatchedGame):
    """Batched ER(N, M); see the module docstring."""

    name = "escape-room"
    horizon_terminal = True  # t/T is in the state: the last step ends the game (envs/base.py)
    min_agents = 2
    num_actions = 3

    def __init__(self, num_agents: int = 5, batch_size: int = 1, min_lever: int = 3, episode_length: int = 5,
                 seed: int | None = None, observation: str | None = None,
                 exit_reward: float = 10.0, move_cost: float = 1.0) -> None:
        super().__init__(num_agents, batch_size, episode_length, seed, observation=observation)
        if isinstance(min_lever, bool) or not isinstance(min_lever, (int, np.integer)) or not 1 <= min_lever < num_agents:
            raise ValueError(f"min_lever (M) must be an integer in [1, N - 1] = [1, {num_agents - 1}], got {min_lever!r}")
        if exit_reward < 0 or move_cost < 0:
            raise ValueError(f"exit_reward and move_cost must be >= 0, got {exit_reward} and {move_cost}")
        self.min_lever, self.exit_reward, self.move_cost = int(min_lever), float(exit_reward), float(move_cost)
        self.pos: np.ndarray  # [B, N] int64 positions
        self.done: np.ndarray  # [B] bool, the copy's episode is over
        self.reset()

    def optimal_welfare(self) -> float:
        return optimal_welfare(self.num_agents, self.min_lever, self.exit_reward, self.move_cost)

    def reference_metrics(self) -> dict[str, float]:
        return {"optimal_welfare": self.optimal_welfare()}

    def _state_space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (3 * self.num_agents + 1,), np.float32)

    def _observation_space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (4 * self.num_agents + 1,), np.float32)

    def _state(self) -> np.ndarray:
        onehot = np.eye(3, dtype=np.float32)[self.pos].reshape(self.batch_size, -1)
        t = np.full((self.batch_size, 1), self.t / self.episode_length, np.float32)
        return np.concatenate([onehot, t], axis=1)

    def _reset(self) -> np.ndarray:
        self.pos = np.full((self.batch_size, self.num_agents), START, np.int64)
        self.done = np.zeros(self.batch_size, bool)
        return with_agent_id(self._state(), self.num_agents)

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        live = ~self.done
        door_open = (actions == LEVER).sum(axis=1) >= self.min_lever
        exits = door_open[:, None] & (actions == DOOR)
        rewards = np.where(exits, self.exit_reward, np.where(actions == self.pos, 0.0, -self.move_cost))
        rewards = (rewards * live[:, None]).astype(np.float32)
        self.pos = np.where(live[:, None], actions, self.pos)
        self.done = self.done | (live & door_open & (self.pos == DOOR).any(axis=1))
        self.t += 1  # the state after the step carries the new time; the base class counts it again
        obs = with_agent_id(self._state(), self.num_agents)
        self.t -= 1
        return obs, rewards, np.repeat(self.done[:, None], self.num_agents, axis=1)
