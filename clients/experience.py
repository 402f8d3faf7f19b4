"""One agent's own experience from a round: what the world sends it to learn from.

Every learner (PPO, DQN, tabular Q) trains on this record. Axes: time ``T``, copy ``B``;
``obs`` has ``T+1`` rows (the last is the observation after the final step, used to
bootstrap truncated episodes) and keeps the observation space's shape and dtype
(float32 vectors, uint8 images, int64 discrete indices). ``mask`` is 0 once the agent's
episode has terminated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Experience:
    obs: np.ndarray  # [T+1, B, *obs_shape]
    actions: np.ndarray  # [T, B] int64 (a continuous game: [T, B, A] float32 in [-1, 1])
    logp: np.ndarray  # [T, B] float32, behaviour log-probabilities
    rewards: np.ndarray  # [T, B] float32
    terminated: np.ndarray  # [T, B] bool
    mask: np.ndarray  # [T, B] float32

    FIELDS = ("obs", "actions", "logp", "rewards", "terminated", "mask")

    def transitions(self) -> tuple[np.ndarray, ...]:
        """Flat (obs, action, reward, next_obs, done) of the live steps, for off-policy learners.

        ``done`` is 1 where the episode terminated at that step (no bootstrap); the last
        step of a truncated round keeps its bootstrap from ``obs[T]``.
        """
        T, B = self.actions.shape[:2]
        keep = self.mask.reshape(-1) > 0
        obs = self.obs[:-1].reshape(T * B, *self.obs.shape[2:])[keep]
        nxt = self.obs[1:].reshape(T * B, *self.obs.shape[2:])[keep]
        actions = self.actions.reshape(T * B, *self.actions.shape[2:])[keep]
        return (obs, actions, self.rewards.reshape(-1)[keep], nxt,
                self.terminated.reshape(-1)[keep].astype(np.float32))
