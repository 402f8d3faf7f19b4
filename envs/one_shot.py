"""One-shot games played again and again: what the mediated games of McAleer et al.
("Improving Social Welfare While Preserving Autonomy via a Pareto Mediator") share.

Rules common to ``normal-form`` (envs/normal_form.py), ``matching`` (envs/matching.py)
and ``restaurant`` (envs/restaurant.py):

- **Payoffs are fixed per game.** They are drawn once, at construction, from
  ``payoff_seed``; by default that is the constructor's ``seed`` (a run passes its run
  seed, so a run plays one game throughout and every seed another, as the paper averages
  over random games), or 0 when neither is given (so two PettingZoo views are the same
  game). ``reset(seed)`` reseeds the game's generator and never changes the payoffs.
- **Plays.** Each step is one independent play of the one-shot game; an episode is
  ``episode_length`` plays (default 1: a round of B copies is B plays). The last play
  terminates the episode: nothing follows it to bootstrap from.
- **Observation** ``Discrete(1)``, always 0: agents see nothing but their rewards (the
  paper's ε-greedy learners are bandits; the q-table learner fits). The state is the
  default one (every agent's observation: zeros).
- **The mediator's model.** ``mediator_model()`` returns the utility model a mediator
  may use, and nothing else: an object with ``utilities(joint)`` (joint actions
  ``[..., N]`` -> ``[..., N]``) and what a game-specific solver needs. In normal-form
  and matching games it is the true payoff model; in the restaurant game only the known
  part u^k (the agents' private part stays inside the game).
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
from gymnasium import spaces

from envs.base import BatchedGame


class OneShotGame(BatchedGame):
    """A one-shot game with payoffs fixed at construction; see the module docstring."""

    observation_modes = ("discrete",)

    def __init__(self, num_agents: int, batch_size: int, episode_length: int, seed: int | None,
                 payoff_seed: int | None, observation: str | None) -> None:
        super().__init__(num_agents, batch_size, episode_length, seed, observation=observation)
        if payoff_seed is None:
            payoff_seed = 0 if seed is None else seed
        self.payoff_seed = int(payoff_seed)

    def payoff_rng(self) -> np.random.Generator:
        """The generator the payoffs are drawn from (its own stream, apart from play)."""
        return np.random.default_rng([self.payoff_seed, 7])

    @abstractmethod
    def utilities(self, joint: np.ndarray) -> np.ndarray:
        """Every agent's true utility of joint actions ``[..., N]``: ``[..., N]`` float64."""

    @abstractmethod
    def mediator_model(self):
        """What a mediator may know of the utilities (see the module docstring)."""

    def _observation_space(self) -> spaces.Discrete:
        return spaces.Discrete(1)

    def _reset(self) -> np.ndarray:
        return np.zeros((self.batch_size, self.num_agents), np.int64)

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rewards = self.utilities(actions).astype(np.float32)
        last = self.t + 1 >= self.episode_length
        terminated = np.full((self.batch_size, self.num_agents), last, dtype=bool)
        return self._reset(), rewards, terminated
