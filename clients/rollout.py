"""Everything that happened in a round of the world (federation/world.py plays it).

Each agent receives only its own slice of it (:meth:`Rollout.experience`,
clients/experience.py); strategies' server-side learners (FPF's ω and ω̄, a mediator's
critic) train on the whole of it, so it lives below both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clients.experience import Experience


@dataclass
class Rollout:
    """Everything that happened in a round. Axes: time T, copy B, agent N."""

    obs: np.ndarray  # [T+1, B, N, *obs_shape] what each agent acted on
    state: np.ndarray  # [T+1, B, state_dim] global state (for centralised critics)
    actions: np.ndarray  # [T, B, N] each agent's own choice (with its delegation bit)
    logp: np.ndarray  # [T, B, N] behaviour log-probabilities of those choices
    rewards: np.ndarray  # [T, B, N] the game's rewards
    terminated: np.ndarray  # [T, B, N]
    mask: np.ndarray  # [T, B, N] 1 while the agent's episode is running
    shaped: np.ndarray | None = None  # [T, B, N] the mediator's reshaped rewards
    played: np.ndarray | None = None  # [T, B, N] actions played in the game (after the mediator)
    delegated: np.ndarray | None = None  # [T, B, N] bool
    leaders: np.ndarray | None = None  # [T, B, N] bool

    @property
    def returns(self) -> np.ndarray:
        """Each agent's episode return, averaged over the B copies: [N]."""
        return (self.rewards * self.mask).sum(axis=0).mean(axis=0)

    @property
    def agent_steps(self) -> int:
        return int(self.mask.sum())

    def experience(self, agent: int, rewards: np.ndarray | None = None) -> Experience:
        """Agent ``agent``'s own slice; ``rewards`` [T, B, N] overrides the game's."""
        r = self.rewards if rewards is None else rewards
        return Experience(
            obs=self.obs[:, :, agent], actions=self.actions[:, :, agent], logp=self.logp[:, :, agent],
            rewards=r[:, :, agent], terminated=self.terminated[:, :, agent], mask=self.mask[:, :, agent],
        )

    def mediator_metrics(self) -> dict[str, float]:
        """Delegation rate and leader share, overall and per agent (when the mediator used them)."""
        out: dict[str, float] = {}
        for name, flags in (("delegation_rate", self.delegated), ("leader_share", self.leaders)):
            if flags is None:
                continue
            live = self.mask > 0
            per_agent = (flags * live).sum(axis=(0, 1)) / np.maximum(live.sum(axis=(0, 1)), 1)
            out[name] = float((flags * live).sum() / max(live.sum(), 1))
            out |= {f"{name}_agent_{i}": float(v) for i, v in enumerate(per_agent)}
        return out
