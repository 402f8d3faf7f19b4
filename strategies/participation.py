"""The participation set N_p: which agents are in the federation this round.

Four ways to choose it, all validated against the number of agents:

- a fraction ``p`` in [0, 1] with ``draw="fixed"`` (the default): ``round(p·N)`` agents drawn
  once from the run's seed, the same every round. In games where agents differ
  (Manufacturing Plant's gem needs) a split by index would confound participation with
  identity, so the set is random; it is reported in the run's notes;
- ``draw="first"``: the first ``round(p·N)`` agents (the FPF paper's code fixes the first
  half);
- a fraction with ``draw="random"``: a fresh uniform draw of ``round(p·N)`` agents each
  round, seeded by (run seed, round) so runs are reproducible;
- an explicit list ``"ids:0,3,7"`` (or ``"0,3,7"`` with at least one comma);
- ``"voluntary"``: free entry and exit. Every agent starts in the federation; each round
  every agent declares, from its own returns in and out (clients/volunteer.py), whether it
  joins the next round (:class:`Voluntary`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from typing import ClassVar
from clients.settings import Settings, setting

DRAWS = ("fixed", "first", "random")


@dataclass
class JoiningConfig(Settings):
    """Who is in the federation: the participation set N_p and how it is drawn."""

    title: ClassVar[str] = "Participation"

    participation: str = setting("0.5", "the agents that join: a fraction in [0, 1], an explicit list ids:0,3,7, "
                                        "or voluntary (each agent decides every round)")
    draw: str = setting("fixed", "how the participation set is drawn: fixed (once, from the seed), first (the "
                                 "first agents, as the FPF authors' code), random (a fresh draw every round)",
                        choices=("fixed", "first", "random"))
    vol_epsilon: float = setting(0.1, "voluntary participation: the probability that an agent explores the "
                                      "other choice (join or stay out) in a round", ge=0.0, le=1.0)
    vol_memory: float = setting(0.8, "voluntary participation: the weight of the past in each agent's running "
                                     "mean of its returns in and out of the federation", ge=0.0, le=1.0)


@dataclass
class Participation:
    num_agents: int
    size: int
    ids: tuple[int, ...] | None = None
    draw: str = "fixed"

    @classmethod
    def from_config(cls, joining: JoiningConfig, num_agents: int) -> "Participation":
        participation = cls.parse(joining.participation, joining.draw, num_agents)
        if isinstance(participation, Voluntary):
            participation.epsilon, participation.memory = joining.vol_epsilon, joining.vol_memory
        return participation

    @classmethod
    def parse(cls, spec: str, draw: str, num_agents: int) -> "Participation":
        if draw not in DRAWS:
            raise ValueError(f"unknown draw '{draw}'; valid choices: {', '.join(DRAWS)}")
        text = str(spec).strip()
        if text == "voluntary":
            return Voluntary(num_agents)
        if text.startswith("ids:") or "," in text:
            parts = [p for p in text.removeprefix("ids:").split(",") if p.strip()]
            try:
                listed = [int(p) for p in parts]
            except ValueError:
                raise ValueError(f"participation list '{spec}' must hold integer agent ids, e.g. ids:0,3,7") from None
            if not listed:
                raise ValueError(f"participation list '{spec}' names no agent; give ids, e.g. ids:0,3,7, or 0 for "
                                 "an empty federation")
            if len(set(listed)) != len(listed):
                raise ValueError(f"participation list '{spec}' names an agent twice")
            ids = tuple(sorted(listed))
            unknown = [i for i in ids if not 0 <= i < num_agents]
            if unknown:
                raise ValueError(f"participation names unknown agents {unknown}; valid agent ids: 0..{num_agents - 1}")
            if draw == "random":
                raise ValueError("draw=random needs a participation fraction, not a list of ids")
            return cls(num_agents, len(ids), ids, "fixed")
        try:
            fraction = float(text)
        except ValueError:
            raise ValueError(f"participation '{spec}' must be a fraction in [0, 1] or a list like ids:0,3,7") from None
        if not 0 <= fraction <= 1:
            raise ValueError(f"participation must be a fraction in [0, 1], got {fraction}")
        return cls(num_agents, int(round(fraction * num_agents)), None, draw)

    @classmethod
    def everyone(cls, num_agents: int) -> "Participation":
        return cls(num_agents, num_agents)

    @classmethod
    def nobody(cls, num_agents: int) -> "Participation":
        return cls(num_agents, 0)

    voluntary = False

    def declare(self, choices: dict[int, bool]) -> None:
        """Agents' declared choices for the next round; only voluntary participation uses them."""

    def members(self, server_round: int, seed: int) -> frozenset[int]:
        """N_p for this round."""
        if self.ids is not None:
            return frozenset(self.ids)
        if self.draw == "random":
            rng = np.random.default_rng([seed, server_round, 7])
            return frozenset(int(i) for i in rng.choice(self.num_agents, self.size, replace=False))
        if self.draw == "fixed":
            rng = np.random.default_rng([seed, 7])
            return frozenset(int(i) for i in rng.choice(self.num_agents, self.size, replace=False))
        return frozenset(range(self.size))

    def fixed_set(self, seed: int) -> list[int] | None:
        """The participation set when it is the same every round (to report it), else None."""
        if self.voluntary or self.draw == "random":
            return None
        return sorted(self.members(1, seed))


class Voluntary(Participation):
    """Free entry and exit: N_p is whoever declared, in the previous round, to join."""

    voluntary = True

    def __init__(self, num_agents: int, epsilon: float = 0.1, memory: float = 0.8):
        super().__init__(num_agents, num_agents, None, "voluntary")
        self.joined = set(range(num_agents))
        self.epsilon, self.memory = epsilon, memory

    def declare(self, choices: dict[int, bool]) -> None:
        for agent, join in choices.items():
            (self.joined.add if join else self.joined.discard)(agent)

    def members(self, server_round: int, seed: int) -> frozenset[int]:
        return frozenset(self.joined)
