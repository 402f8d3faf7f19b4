"""The matching game (McAleer et al., Sec. 4.2 and Figure 2, left), played one-shot again and again.

Rules (the shared ones of one-shot games are in envs/one_shot.py):

- N agents (default 4) each point at another agent at once. Agent i's action k in
  ``0 .. N-2`` names its partner ``k`` if ``k < i``, else ``k + 1`` (every other agent,
  in order; nobody points at itself), so ``num_actions = N - 1``.
- If i and j point at each other they are matched: i gets ``R[i, j]``, j gets
  ``R[j, i]``; an agent that is not matched gets 0.
- Rewards are match-dependent and asymmetric: ``R[i, j]`` (i != j) i.i.d. Uniform[0, 1)
  (the paper samples them "from a uniform distribution"), drawn once from ``payoff_seed``.

The mediator's model is the true reward matrix (:class:`MatchingModel`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.one_shot import OneShotGame


@dataclass(frozen=True)
class MatchingModel:
    """``rewards[i, j]``: what i gets when matched with j (0 on the diagonal)."""

    rewards: np.ndarray

    @property
    def num_agents(self) -> int:
        return self.rewards.shape[0]

    @property
    def num_actions(self) -> int:
        return self.num_agents - 1

    def partners(self, joint: np.ndarray) -> np.ndarray:
        """Whom each agent points at, ``[..., N]``, from joint actions ``[..., N]``."""
        joint = np.asarray(joint)
        return joint + (joint >= np.arange(self.num_agents))

    def action(self, agent: int, partner: np.ndarray) -> np.ndarray:
        """The action with which ``agent`` points at ``partner`` (the inverse of ``partners``)."""
        return partner - (partner > agent)

    def utilities(self, joint: np.ndarray) -> np.ndarray:
        """u(s) of joint actions ``[..., N]``: ``[..., N]``."""
        p = self.partners(joint)
        matched = np.take_along_axis(p, p, axis=-1) == np.arange(self.num_agents)
        return np.where(matched, self.rewards[np.arange(self.num_agents), p], 0.0)


class MatchingGame(OneShotGame):
    """The matching game; see the module docstring for the rules."""

    name = "matching"
    min_agents = 2

    def __init__(
        self,
        num_agents: int = 4,
        batch_size: int = 1,
        payoff_seed: int | None = None,
        episode_length: int = 1,
        seed: int | None = None,
        observation: str | None = None,
    ) -> None:
        super().__init__(num_agents, batch_size, episode_length, seed, payoff_seed, observation)
        self.num_actions = self.num_agents - 1
        n = self.num_agents
        rewards = self.payoff_rng().random((n, n))
        np.fill_diagonal(rewards, 0.0)
        rewards.setflags(write=False)
        self.model = MatchingModel(rewards)
        self.reset()

    def utilities(self, joint: np.ndarray) -> np.ndarray:
        return self.model.utilities(joint)

    def mediator_model(self) -> MatchingModel:
        """The true reward matrix."""
        return self.model
