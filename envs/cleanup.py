"""Cleanup: apples grow only while the river is clean, and cleaning it earns nothing.

Shared rules (moves, beams, rewards, views, state, time-outs): ``envs.ssd``. Cleanup's
own rules, those of the reference implementation (``cleanup.py``):

- Maps (keyword ``map``): ``"canonical"`` (``CLEANUP_MAP``, 25 x 18: river cells ``H``
  holding waste at reset and ``R`` clean, stream ``S``, apple-spawn cells ``B``, 10
  spawn points ``P``, so at most 10 agents; default 5), and the two small maps of LIO
  (Yang et al. 2020, ``lio/env/maps.py``): ``"lio-7"`` (7 x 7, 2 spawn points) and
  ``"lio-10"`` (10 x 10, 3 spawn points). Or a list of strings over ``@ PBHRS``.
  Episodes: 1000 steps on the canonical map (the reference), 50 on the LIO maps (LIO's
  ``max_steps``), unless ``episode_length`` is given.
- 9 actions (``envs.gridworld``): moves, stay, turns, 7 = fire the penalty beam, 8 =
  clean. The cleaning beam has the penalty beam's shape and length, costs nothing,
  ends on the first agent or the first waste cell, and turns that waste cell into
  clean river. All beams of a step act at once on the map as it was after the moves:
  two cleaning beams reaching the same waste cell clean it once and both end there. (The
  reference fires one agent after another in random order, so a later beam could pass
  a cell an earlier one just cleaned.)
- Waste density ``d = #waste / #river cells``, over the map's river cells (``H`` and
  ``R``; the stream is not counted), after this step's cleaning.
- Spawning, after the beams in every step (and once at reset), with the constants
  ``c`` (``CleanupConstants``):

  - if ``d >= c.depletion`` nothing spawns;
  - else each apple-spawn cell holding no apple and no agent grows an apple with
    probability ``apple_spawn_probability(d)``: ``c.apple_respawn`` if ``d <=
    c.restoration``, else ``(1 - (d - c.restoration) / (c.depletion - c.restoration))
    * c.apple_respawn``;
  - and at most one waste cell spawns, on a uniformly random clean river cell (an agent
    may stand there). The reference tries the clean river cells in random order, each
    with probability ``c.waste_spawn = 0.5``, and stops at the first success, so one
    waste cell spawns with probability ``1 - (1 - 0.5) ** R`` for ``R`` clean river
    cells (``waste_spawn_probability``), i.e. almost every step, not half the steps as
    "with probability 0.5" may read. Here as in the reference.

- Constants (keyword ``constants``): ``"canonical"`` (depletion 0.4, restoration 0,
  waste 0.5, apples 0.05, the reference), ``"fpf"`` (the FPF authors' copy: depletion
  0.7, restoration 0.1, waste 0.5, apples 0.3), ``"lio-7"`` (0.6, 0, 0.5, 0.5) and ``"lio-10"``
  (0.4, 0, 0.5, 0.3), LIO's per-map constants, or a ``CleanupConstants``. Default: the
  map's own (the LIO maps' for them, else canonical).

LIO differences not followed on its maps: LIO used a 9 x 9 view on the 7 x 7 map, fixed
spawn points and orientations, and removed some actions; here the maps only change the
layout, the constants and the episode length.

``waste_density()``, ``apple_probability()`` and ``waste_probability()`` give the
spawning parameters of the current state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from envs.gridworld import CLEAN
from envs.ssd import APPLE, EMPTY, RIVER, WASTE, SocialDilemma


@dataclass(frozen=True)
class CleanupConstants:
    """Spawning constants; see the module docstring."""

    depletion: float  # waste density at or above which nothing spawns
    restoration: float  # waste density at or below which apples spawn at full rate
    waste_spawn: float  # per-cell waste trial probability
    apple_respawn: float  # full apple spawn probability per cell

    def __post_init__(self) -> None:
        if not 0 <= self.restoration < self.depletion:
            raise ValueError(f"need 0 <= restoration < depletion, got {self}")
        if not (0 <= self.waste_spawn <= 1 and 0 <= self.apple_respawn <= 1):
            raise ValueError(f"spawn probabilities must be in [0, 1], got {self}")


CONSTANTS = {
    "canonical": CleanupConstants(0.4, 0.0, 0.5, 0.05),
    "fpf": CleanupConstants(0.7, 0.1, 0.5, 0.3),
    "lio-7": CleanupConstants(0.6, 0.0, 0.5, 0.5),
    "lio-10": CleanupConstants(0.4, 0.0, 0.5, 0.3),
}

CLEANUP_MAP = (
    "@@@@@@@@@@@@@@@@@@",
    "@RRRRRR     BBBBB@",
    "@HHHHHH      BBBB@",
    "@RRRRRR     BBBBB@",
    "@RRRRR  P    BBBB@",
    "@RRRRR    P BBBBB@",
    "@HHHHH       BBBB@",
    "@RRRRR      BBBBB@",
    "@HHHHHHSSSSSSBBBB@",
    "@HHHHHHSSSSSSBBBB@",
    "@RRRRR   P P BBBB@",
    "@HHHHH   P  BBBBB@",
    "@RRRRRR    P BBBB@",
    "@HHHHHH P   BBBBB@",
    "@RRRRR       BBBB@",
    "@HHHH    P  BBBBB@",
    "@RRRRR       BBBB@",
    "@HHHHH  P P BBBBB@",
    "@RRRRR       BBBB@",
    "@HHHH       BBBBB@",
    "@RRRRR       BBBB@",
    "@HHHHH      BBBBB@",
    "@RRRRR       BBBB@",
    "@HHHH       BBBBB@",
    "@@@@@@@@@@@@@@@@@@",
)
LIO_7 = ("@@@@@@@", "@H  PB@", "@H   B@", "@    B@", "@    B@", "@ P  B@", "@@@@@@@")
LIO_10 = (
    "@@@@@@@@@@",
    "@HH   P B@",
    "@RR    BB@",
    "@HH     B@",
    "@RR    BB@",
    "@HH P   B@",
    "@RR    BB@",
    "@HH     B@",
    "@RRP   BB@",
    "@@@@@@@@@@",
)
EPISODE_LENGTHS = {"canonical": 1000, "lio-7": 50, "lio-10": 50}


def apple_spawn_probability(density, constants: CleanupConstants) -> np.ndarray:
    """Per-cell apple spawn probability at waste density ``density`` (array-like):
    ``apple_respawn * clip((depletion - d) / (depletion - restoration), 0, 1)``, which is
    the reference's three cases in one formula."""
    c = constants
    scale = (c.depletion - np.asarray(density, dtype=float)) / (c.depletion - c.restoration)
    return c.apple_respawn * np.clip(scale, 0.0, 1.0)


def waste_spawn_probability(density, river, constants: CleanupConstants) -> np.ndarray:
    """Probability that one waste cell spawns, with ``river`` clean river cells."""
    trial = 1.0 - (1.0 - constants.waste_spawn) ** np.asarray(river, dtype=float)
    return np.where(np.asarray(density) < constants.depletion, trial, 0.0)


class Cleanup(SocialDilemma):
    """Batched Cleanup; see the module docstring and ``envs.ssd`` for the rules."""

    name = "cleanup"
    max_agents = 10
    num_actions = 9
    MAPS = {"canonical": CLEANUP_MAP, "lio-7": LIO_7, "lio-10": LIO_10}
    MAP_CHARS = "@ PBHRS"
    CELL_CHARS = {" ": EMPTY, "A": APPLE, "H": WASTE, "R": RIVER}
    STATE_CODES = (APPLE, WASTE)

    def __init__(
        self,
        num_agents: int = 5,
        batch_size: int = 1,
        episode_length: int | None = None,
        seed: int | None = None,
        observation: str | None = None,
        map: str | Sequence[str] = "canonical",
        constants: str | CleanupConstants | None = None,
        timeout: int = 0,
    ) -> None:
        if not isinstance(map, str) and not (isinstance(map, Sequence) and all(isinstance(r, str) for r in map)):
            raise ValueError(f"cleanup: map must be a map's name ({', '.join(self.MAPS)}) or rows of text, got {map!r}")
        named = map if isinstance(map, str) else "canonical"
        if episode_length is None:
            episode_length = EPISODE_LENGTHS.get(named, 1000)
        super().__init__(num_agents, batch_size, episode_length, seed, observation,
                         map, timeout)
        if constants is None:
            constants = named if named in CONSTANTS else "canonical"
        if isinstance(constants, str):
            if constants not in CONSTANTS:
                raise ValueError(
                    f"cleanup: unknown constants {constants!r}; valid choices: "
                    f"{', '.join(CONSTANTS)} (or a CleanupConstants)"
                )
            constants = CONSTANTS[constants]
        if not isinstance(constants, CleanupConstants):
            raise ValueError(f"constants must be a name or a CleanupConstants, got {constants!r}")
        self.constants = constants
        self._apples = self.layout.cells("B")  # apple-spawn cells
        self._river = self.layout.cells("HR")  # cells that hold waste or clean river
        self._apples_occ = self._apples + self._offset  # their index into the occupancy
        self.reset()

    def waste_density(self) -> np.ndarray:
        """``[B]`` waste cells / river cells (0 on a map without river)."""
        return self._river_state()[0]

    def apple_probability(self) -> np.ndarray:
        """``[B]`` per-cell apple spawn probability in the current state."""
        return apple_spawn_probability(self.waste_density(), self.constants)

    def waste_probability(self) -> np.ndarray:
        """``[B]`` probability that a waste cell spawns in the current state."""
        density, river = self._river_state()
        return waste_spawn_probability(density, river.sum(axis=1), self.constants)

    def _river_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Waste density ``[B]`` and which river cells are clean ``[B, cells]``."""
        cells = self.grid[:, self._river]
        waste = np.count_nonzero(cells == WASTE, axis=1)
        return waste / max(len(self._river), 1), cells == RIVER

    def _beams(self, actions: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        hit = super()._beams(actions, rewards)
        clean = actions == CLEAN
        if clean.any():
            copy, cells, reach, _ = self._trace(clean, stop_on_waste=True)
            copy = np.broadcast_to(copy[:, None, None], cells.shape)
            done = reach & (self.grid[copy, cells] == WASTE)
            self._write(copy[done], cells[done], RIVER)
        return hit

    def _regrow(self) -> None:
        b = self.batch_size
        density, river = self._river_state()
        apple_p = apple_spawn_probability(density, self.constants)
        waste_p = waste_spawn_probability(density, np.count_nonzero(river, axis=1),
                                          self.constants)
        if apple_p.any():
            free = (self.grid[:, self._apples] == EMPTY) & (self._occ[self._apples_occ] < 0)
            copy, k = np.nonzero(free & (apple_p[:, None] > 0))
            grow = self.rng.random(len(copy)) < apple_p[copy]
            if grow.any():
                self._write(copy[grow], self._apples[k[grow]], APPLE)
        spawn = np.flatnonzero(self.rng.random(b) < waste_p)
        if len(spawn):  # a uniformly random clean river cell of each copy in ``spawn``
            clean = river[spawn]
            count = clean.sum(axis=1)
            pick = (self.rng.random(len(spawn)) * count).astype(np.int64)
            _, where = np.nonzero(clean)  # row-major: copy after copy
            self._write(spawn, self._river[where[np.cumsum(count) - count + pick]], WASTE)
