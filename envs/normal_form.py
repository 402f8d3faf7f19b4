"""Random normal-form games (McAleer et al., Sec. 4.1), played one-shot again and again.

Rules (the shared ones of one-shot games are in envs/one_shot.py):

- N players (``--agents``), A actions each (``--game-options actions=A``, default 2).
- Payoffs ``u_i(s)`` of every joint action s and player i are drawn i.i.d. from the
  continuous Uniform[0, 1) (the paper's distribution) from ``payoff_seed``, once per game:
  a run plays one fixed random game, every seed another.
- ``payoffs="pd"``, ``"chicken"`` or ``"stag_hunt"`` play instead the fixed two-player,
  two-action table of envs/matrix.py (e.g. the paper's Table 1, the Prisoner's Dilemma).

The mediator's model is the true payoff table (:class:`PayoffTable`): in the paper's
normal-form experiments the mediator knows the game.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.base import check_positive_int
from envs.matrix import PAYOFFS
from envs.one_shot import OneShotGame


@dataclass(frozen=True)
class PayoffTable:
    """``payoffs[a_0, ..., a_{N-1}, i]`` = u_i of the joint action (float64)."""

    payoffs: np.ndarray

    @property
    def num_agents(self) -> int:
        return self.payoffs.ndim - 1

    @property
    def num_actions(self) -> int:
        return self.payoffs.shape[0]

    def utilities(self, joint: np.ndarray) -> np.ndarray:
        """u(s) of joint actions ``[..., N]``: ``[..., N]``."""
        joint = np.asarray(joint)
        return self.payoffs[tuple(np.moveaxis(joint, -1, 0))]

    def profiles(self) -> np.ndarray:
        """Every joint action, ``[A^N, N]``, in the order of ``flat()`` (C order)."""
        n, a = self.num_agents, self.num_actions
        return np.indices((a,) * n).reshape(n, -1).T

    def flat(self) -> np.ndarray:
        """u of every joint action, ``[A^N, N]``."""
        return self.payoffs.reshape(-1, self.num_agents)


class NormalFormGame(OneShotGame):
    """A random normal-form game; see the module docstring for the rules."""

    name = "normal-form"
    min_agents = 1

    def __init__(
        self,
        num_agents: int = 2,
        batch_size: int = 1,
        actions: int = 2,
        payoffs: str = "uniform",
        payoff_seed: int | None = None,
        episode_length: int = 1,
        seed: int | None = None,
        observation: str | None = None,
    ) -> None:
        self.num_actions = check_positive_int("actions", actions)
        super().__init__(num_agents, batch_size, episode_length, seed, payoff_seed, observation)
        n, a = self.num_agents, self.num_actions
        if payoffs == "uniform":
            table = self.payoff_rng().random((a,) * n + (n,))
        elif payoffs in PAYOFFS:
            if (n, a) != (2, 2):
                raise ValueError(f"normal-form payoffs={payoffs!r} is a 2-player, 2-action game; got "
                                 f"{n} players and {a} actions")
            table = PAYOFFS[payoffs].astype(np.float64)
        else:
            raise ValueError(f"unknown payoffs {payoffs!r}; valid choices: uniform, {', '.join(PAYOFFS)}")
        table.setflags(write=False)
        self.payoffs = payoffs
        self.table = PayoffTable(table)
        self.reset()

    def utilities(self, joint: np.ndarray) -> np.ndarray:
        return self.table.utilities(joint)

    def mediator_model(self) -> PayoffTable:
        """The true payoff table."""
        return self.table
