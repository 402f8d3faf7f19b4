"""Harvest (commons harvest): apples regrow only near other apples, so over-harvesting
destroys the orchard.

Shared rules (moves, beams, rewards, views, state, time-outs): ``envs.ssd``. Harvest's
own rules, those of the reference implementation (``harvest.py``):

- Map ``HARVEST_MAP``, 16 x 38, with 155 apple cells (``A``, all holding an apple at
  reset) and 20 spawn points (``P``), hence at most 20 agents; default 5 agents.
  ``map`` may also be a list of strings over ``@ PA`` (a custom layout).
- 8 actions (``envs.gridworld``): moves, stay, turns and 7 = fire the penalty beam.
- Regrowth, after the beams in every step (and once at reset): an apple cell that holds
  no apple and no agent grows one with probability ``SPAWN_PROB[min(k, 3)] = [0, 0.005,
  0.02, 0.05][min(k, 3)]``, where ``k`` is the number of apples in its 3 x 3
  neighbourhood. The reference calls this a radius-2 neighbourhood but counts the cells
  with ``dr**2 + dc**2 <= 2``, which is exactly the 3 x 3 square; so here. A cell with
  no apple around never regrows.
- Episodes of 1000 steps by default (the reference's horizon).

``regrowth_probabilities()`` gives the per-cell probabilities of the current state.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from envs.ssd import APPLE, EMPTY, SocialDilemma

SPAWN_PROB = np.array([0.0, 0.005, 0.02, 0.05])

HARVEST_MAP = (
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    "@ P   P      A    P AAAAA    P  A P  @",
    "@  P     A P AA    P    AAA    A  A  @",
    "@     A AAA  AAA    A    A AA AAAA   @",
    "@ A  AAA A    A  A AAA  A  A   A A   @",
    "@AAA  A A    A  AAA A  AAA        A P@",
    "@ A A  AAA  AAA  A A    A AA   AA AA @",
    "@  A A  AAA    A A  AAA    AAA  A    @",
    "@   AAA  A      AAA  A    AAAA       @",
    "@ P  A       A  A AAA    A  A      P @",
    "@A  AAA  A  A  AAA A    AAAA     P   @",
    "@    A A   AAA  A A      A AA   A  P @",
    "@     AAA   A A  AAA      AA   AAA P @",
    "@ A    A     AAA  A  P          A    @",
    "@       P     A         P  P P     P @",
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
)


class Harvest(SocialDilemma):
    """Batched Harvest; see the module docstring and ``envs.ssd`` for the rules."""

    name = "harvest"
    max_agents = 20
    num_actions = 8
    MAPS = {"canonical": HARVEST_MAP}
    MAP_CHARS = "@ PA"
    CELL_CHARS = {" ": EMPTY, "A": APPLE}
    STATE_CODES = (APPLE,)

    def __init__(
        self,
        num_agents: int = 5,
        batch_size: int = 1,
        episode_length: int = 1000,
        seed: int | None = None,
        observation: str | None = None,
        map: str | Sequence[str] = "canonical",
        timeout: int = 0,
    ) -> None:
        super().__init__(num_agents, batch_size, episode_length, seed, observation,
                         map, timeout)
        lay = self.layout
        self._apples = lay.cells("A")  # [M] apple cells
        self._apples_occ = self._apples + self._offset  # their index into the occupancy
        wide = lay.padded_shape[1]
        self._around = np.array([dr * wide + dc for dr in (-1, 0, 1) for dc in (-1, 0, 1)])
        self.reset()

    def _candidates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The apple cells that may grow an apple (no apple, no agent) as ``(copy, cell)``
        pairs, and their regrowth probabilities."""
        free = (self.grid[:, self._apples] == EMPTY) & (self._occ[self._apples_occ] < 0)
        copy, k = np.nonzero(free)
        cells = self._apples[k]
        near = self.grid[copy[:, None], cells[:, None] + self._around] == APPLE
        return copy, cells, SPAWN_PROB[np.minimum(np.count_nonzero(near, axis=1), 3)]

    def _regrow(self) -> None:
        copy, cells, prob = self._candidates()
        grow = self.rng.random(len(prob)) < prob
        if grow.any():
            self._write(copy[grow], cells[grow], APPLE)

    def regrowth_probabilities(self) -> np.ndarray:
        """``[B, H, W]``: each map cell's probability to grow an apple in the next
        regrowth pass, given the current apples and agents (0 off the apple cells)."""
        lay = self.layout
        copy, cells, prob = self._candidates()
        out = np.zeros((self.batch_size, lay.size))
        out[copy, cells] = prob
        return out[:, lay.inside].reshape(self.batch_size, lay.height, lay.width)
