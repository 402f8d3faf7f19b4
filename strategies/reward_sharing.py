"""Reward-sharing baselines: every agent trains on a transformed reward, nothing is federated.

- ``avg``: every agent trains on the mean reward (1/N) Σ_j r_j (utilitarian sharing).
- ``min``: every agent trains on min_j r_j (egalitarian sharing).
- ``spite``: every agent trains on minus the others' mean reward -(1/(N-1)) Σ_{j≠i} r_j;
  not a baseline but how the punishing mediator's joint policy for sequential games is
  trained (McAleer et al., App. B.2: "the negative of the other agent's reward").
- ``ia``: inequity aversion (Hughes et al. 2018)::

      r_i - a/(N-1) Σ_j max(e_j - e_i, 0) - b/(N-1) Σ_j max(e_i - e_j, 0)

  with temporally smoothed rewards e_i,t = γλ·e_i,t-1 + r_i,t (e = 0 at the start of
  each episode). Defaults: a = 5 (envy), b = 0.05 (guilt), γλ = 0.99·0.975 as in the paper.

These transform the rewards the agents *train* on; every metric reports the game's own
rewards. Agents still need the other agents' rewards, so these baselines assume a
reward-sharing channel that FPF and LMF do without.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strategies.base import FederationStrategy, RunSettings
from strategies.participation import Participation
from typing import ClassVar
from clients.settings import Settings, setting


@dataclass
class IAConfig(Settings):
    """Inequity aversion's envy a and guilt b (Hughes et al. 2018)."""

    prefix: ClassVar[str] = "ia"
    title: ClassVar[str] = "Inequity aversion (ia)"

    envy: float = setting(5.0, "a: aversion to earning less than the others", ge=0.0, le=1e6)
    guilt: float = setting(0.05, "b: aversion to earning more than the others", ge=0.0, le=1e6)


class AverageReward(FederationStrategy):
    name = "avg"

    def train_rewards(self, rewards: np.ndarray) -> np.ndarray:
        return np.broadcast_to(rewards.mean(axis=-1, keepdims=True), rewards.shape).copy()


class MinimumReward(FederationStrategy):
    name = "min"

    def train_rewards(self, rewards: np.ndarray) -> np.ndarray:
        return np.broadcast_to(rewards.min(axis=-1, keepdims=True), rewards.shape).copy()


class Spite(FederationStrategy):
    name = "spite"

    @classmethod
    def check_game(cls, game) -> None:
        if game.num_agents < 2:
            raise ValueError("spite trains on the other agents' rewards; it needs at least 2 agents")

    def train_rewards(self, rewards: np.ndarray) -> np.ndarray:
        N = rewards.shape[-1]
        return -(rewards.sum(axis=-1, keepdims=True) - rewards) / (N - 1)


def inequity_averse(rewards: np.ndarray, envy: float, guilt: float, decay: float) -> np.ndarray:
    """IA rewards for ``rewards`` [T, B, N] (one episode per copy, starting at t = 0)."""
    T, _, N = rewards.shape
    if N < 2:
        return rewards.copy()
    smoothed = np.zeros_like(rewards[0])
    out = np.empty_like(rewards)
    for t in range(T):
        smoothed = decay * smoothed + rewards[t]
        diff = smoothed[:, None, :] - smoothed[:, :, None]  # [B, i, j] = e_j - e_i
        disadvantage = np.maximum(diff, 0).sum(-1)
        advantage = np.maximum(-diff, 0).sum(-1)
        out[t] = rewards[t] - envy / (N - 1) * disadvantage - guilt / (N - 1) * advantage
    return out


class InequityAversion(FederationStrategy):
    name = "ia"
    reads = ("ia",)

    def __init__(self, participation, seed: int, envy: float = 5.0, guilt: float = 0.05, decay: float = 0.99 * 0.975):
        super().__init__(participation, seed)
        if envy < 0 or guilt < 0 or not 0 <= decay < 1:
            raise ValueError(f"inequity aversion needs envy >= 0, guilt >= 0, 0 <= decay < 1; got {envy}, {guilt}, {decay}")
        self.envy, self.guilt, self.decay = envy, guilt, decay

    @classmethod
    def from_config(cls, cfg: RunSettings, game, init):
        return cls(Participation.from_config(cfg.joining, cfg.agents), cfg.seed, envy=cfg.ia.envy,
                   guilt=cfg.ia.guilt)

    def train_rewards(self, rewards: np.ndarray) -> np.ndarray:
        return inequity_averse(rewards, self.envy, self.guilt, self.decay)
