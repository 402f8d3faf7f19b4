"""The game shared by the sequential social dilemmas Harvest and Cleanup.

The rules of the open reference implementation (``sequential_social_dilemma_games``:
``map_env.py``, ``agent.py``), batched over copies. Grid geometry, actions, beams and
views are in ``envs.gridworld``; each game adds its map, its regrowth rule and
(Cleanup) the cleaning beam. One step, in the reference's order:

1. Turns, then moves (relative to the orientation). A move into a wall fails; conflicts
   between agents are resolved by ``gridworld.resolve_moves``: of several agents aiming
   at one cell a uniformly random one (the game's generator) gets it, two agents
   swapping cells both stay, and nobody enters a cell whose agent stays.
2. An agent standing on an apple eats it: reward +1, the cell becomes empty.
3. Beams, all at once on the state after the moves: firing (action 7) costs the shooter
   1; an agent a penalty beam reaches is hit, reward -50 per beam that hits it. Beams
   end on the first agent and before walls. (The reference fires the beams one agent
   after another in random order; only the cleaning beams could tell the difference,
   see ``envs.cleanup``.)
4. Hit agents leave the map if ``timeout > 0`` (below).
5. Apples (and in Cleanup waste) spawn: the game's ``_regrow``.
6. Agents whose time-out ends come back.

Time-outs (keyword ``timeout``, default 0 = the reference, where a hit costs 50 and
nothing else). With ``timeout = T > 0`` an agent hit in step ``s`` leaves the map at
the end of step ``s`` and stays away for the next ``T`` steps, as tagged agents are in
DeepMind's versions of these games (Leibo et al. 2017; e.g. ``timeout=25``). While away an
agent is invisible, cannot be hit, blocks nothing, earns nothing, its actions are
ignored, and its observation is all zeros. At the end of step ``s + T`` it reappears
on a uniformly random spawn point free of agents, with a random orientation. The
default follows the reference because the reference is what the published results
and the speed figures were measured with.

Reset: every copy restarts from the map; agents get distinct uniformly random spawn
points (``P``) and uniformly random orientations; then one regrowth pass runs, as in
the reference. Nothing terminates; episodes are truncated at ``episode_length``.

Observations (mode ``"image"``, the only one): ``Box(0, 255, (15, 15, 3), uint8)``, the
agent's egocentric view (``gridworld``: facing up, radius 7), in the
reference's colours (``TERRAIN_COLOURS``). Beams are not drawn (the reference's views
do not show them either). Agent ``i`` is drawn in ``AGENT_COLOURS[i]``, in every view
including its own (as in the reference; no separate "self" colour); colours 0-8 are the
reference's, 9-19 added for larger teams. Outside the map is black, like the floor
(the reference's padding; every map is walled in anyway).

Global state, a compact float32 vector in ``[0, 1]``: one 0/1 plane per dynamic item
over the map, row-major (``STATE_CODES``: apples, then for Cleanup waste), then 8
numbers per agent: row / (H - 1), column / (W - 1), one-hot orientation (up, right,
down, left), 1 if on the map, remaining time-out / ``timeout`` (0 without time-outs).
An agent away has zeros except the time-out entry.

Hooks for setting and reading a state by hand (tests, demos): ``place_agents``,
``set_cells``, ``ascii``, ``beam_cells``, and the arrays ``positions``, ``orientation``,
``away``. Set states must keep agents on distinct walkable cells (the hooks check).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium import spaces

from envs.base import BatchedGame
from envs.gridworld import (
    FIRE, STAY, TURNS, VIEW_SIZE, Canvas, Layout, beam_reach, resolve_moves,
)

# Cell codes of the grid; agent i is drawn with code AGENT + i.
OUTSIDE, EMPTY, WALL, APPLE, WASTE, RIVER, STREAM = range(7)
AGENT = 7
TERRAIN_COLOURS = np.array(
    [(0, 0, 0), (0, 0, 0), (180, 180, 180), (0, 255, 0), (99, 156, 194), (113, 75, 24),
     (113, 75, 24)], dtype=np.uint8,
)
AGENT_COLOURS = np.array(
    [(0, 0, 255), (2, 81, 154), (204, 0, 204), (216, 30, 54), (254, 151, 0),
     (100, 255, 255), (99, 99, 255), (250, 204, 255), (238, 223, 16),
     (128, 0, 0), (0, 128, 128), (128, 128, 0), (255, 128, 128), (255, 255, 255),
     (128, 0, 255), (0, 0, 128), (255, 0, 128), (160, 82, 45), (64, 224, 208),
     (112, 112, 112)], dtype=np.uint8,
)
PALETTE = np.concatenate([TERRAIN_COLOURS, AGENT_COLOURS])
# Map character -> initial cell code ('P' spawn points and 'B' apple-spawn cells start empty).
INITIAL = {"@": WALL, " ": EMPTY, "P": EMPTY, "A": APPLE, "B": EMPTY, "H": WASTE,
           "R": RIVER, "S": STREAM}
ASCII = np.array([" ", " ", "@", "A", "H", "R", "S"])
AGENT_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz"
FIRE_COST = 1.0
HIT_PENALTY = 50.0


class SocialDilemma(BatchedGame):
    """Batched sequential social dilemma; see the module docstring for the rules."""

    observation_modes = ("image",)
    min_agents = 1
    # Set by each game:
    MAPS: dict[str, tuple[str, ...]] = {}
    MAP_CHARS = ""  # the characters its maps may use
    CELL_CHARS: dict[str, int] = {}  # what ``set_cells`` may put on a cell
    STATE_CODES: tuple[int, ...] = ()  # the items of the global state's planes

    def __init__(
        self, num_agents: int, batch_size: int, episode_length: int, seed: int | None,
        observation: str | None, map: str | Sequence[str], timeout: int,
    ) -> None:
        super().__init__(
            num_agents, batch_size, episode_length, seed,
            observation=observation,
        )
        if isinstance(timeout, bool) or not isinstance(timeout, (int, np.integer)) or timeout < 0:
            raise ValueError(f"timeout must be an integer >= 0, got {timeout!r}")
        self.timeout = int(timeout)
        self.layout = Layout(self._map_rows(map), self.MAP_CHARS)
        self.map = map if isinstance(map, str) else "custom"
        lay = self.layout
        self._initial = np.full(lay.size, OUTSIDE, dtype=np.uint8)
        self._initial[lay.inside] = [INITIAL[ch] for ch in lay.chars.ravel()]
        self._solid = np.isin(self._initial, (WALL, OUTSIDE))  # stops moves and beams
        self._spawn = lay.cells("P")
        if self.num_agents > len(self._spawn):
            raise ValueError(
                f"{self.name}: the map has {len(self._spawn)} spawn points, so at most "
                f"{len(self._spawn)} agents; got {self.num_agents}"
            )
        if self.num_agents > len(AGENT_COLOURS):
            raise ValueError(f"{self.name}: at most {len(AGENT_COLOURS)} agents (one colour "
                             f"each); got {self.num_agents}")
        b, n = self.batch_size, self.num_agents
        self._offset = np.arange(b, dtype=np.int64)[:, None] * lay.size  # copy -> flat start
        self._index = np.broadcast_to(np.arange(n), (b, n))
        self._copy = np.broadcast_to(np.arange(b)[:, None], (b, n))
        self._canvas = Canvas(lay, b)  # pictures for the views, repainted lazily:
        self._dirty: list[tuple[np.ndarray, np.ndarray]] = []  # cells written since
        self._painted = (np.zeros(0, np.int64), np.zeros(0, np.int64))  # agents drawn
        self._parking = int(lay.flat(0, 0))  # the cell an agent away is kept at
        self._occ = np.full(b * lay.size, -1, dtype=np.int8)  # agent on each cell, or -1
        self.grid: np.ndarray  # [B, cells] uint8 codes, without agents; write with _write
        self.pos: np.ndarray  # [B, N] flat cells (``_parking`` while away)
        self.orientation: np.ndarray  # [B, N] in UP, RIGHT, DOWN, LEFT
        self.away: np.ndarray  # [B, N] steps left off the map (0 = on the map)

    def _map_rows(self, map: str | Sequence[str]) -> tuple[str, ...]:
        if isinstance(map, str):
            if map not in self.MAPS:
                raise ValueError(
                    f"{self.name}: unknown map {map!r}; valid choices: {', '.join(self.MAPS)} "
                    "(or a list of strings)"
                )
            return self.MAPS[map]
        return tuple(map)

    # ------------------------------------------------------------------ spaces

    def _observation_space(self) -> spaces.Box:
        return spaces.Box(0, 255, (VIEW_SIZE, VIEW_SIZE, 3), np.uint8)

    def _state_space(self) -> spaces.Box:
        cells = self.layout.height * self.layout.width
        dim = len(self.STATE_CODES) * cells + 8 * self.num_agents
        return spaces.Box(0.0, 1.0, (dim,), np.float32)

    def _state(self) -> np.ndarray:
        lay = self.layout
        inner = self.grid[:, lay.inside]
        on = self.away == 0
        row, col = lay.row_col(self.pos)
        agents = np.zeros((self.batch_size, self.num_agents, 8), dtype=np.float32)
        agents[..., 0] = on * row / max(lay.height - 1, 1)
        agents[..., 1] = on * col / max(lay.width - 1, 1)
        agents[..., 2:6] = on[..., None] & (self.orientation[..., None] == np.arange(4))
        agents[..., 6] = on
        if self.timeout:
            agents[..., 7] = self.away / self.timeout
        planes = [inner == code for code in self.STATE_CODES]
        return np.concatenate([*planes, agents.reshape(self.batch_size, -1)], axis=1,
                              dtype=np.float32)

    # ------------------------------------------------------------------ dynamics

    def _reset(self) -> np.ndarray:
        b, n = self.batch_size, self.num_agents
        self.grid = np.tile(self._initial, (b, 1))
        self._canvas.fill(PALETTE[self._initial])
        self._dirty, self._painted = [], (np.zeros(0, np.int64), np.zeros(0, np.int64))
        order = np.argsort(self.rng.random((b, len(self._spawn))), axis=1)[:, :n]
        self.pos = self._spawn[order]
        self.orientation = self.rng.integers(0, 4, (b, n))
        self.away = np.zeros((b, n), dtype=np.int64)
        self._occupy()
        self._regrow()
        return self._observe()

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        on = self.away == 0
        everyone = on.all()
        if not everyone:
            actions = np.where(on, actions, STAY)  # the actions of agents away do nothing
        rewards = np.zeros(actions.shape, dtype=np.float32)
        self.orientation = TURNS[self.orientation, actions]
        self._move(actions)
        self._occupy()

        eat = on & (self.grid[self._copy, self.pos] == APPLE)
        if eat.any():
            self._write(self._copy[eat], self.pos[eat], EMPTY)
            rewards += eat

        hit = self._beams(actions, rewards)
        if self.timeout and hit.any():
            self.away[hit] = self.timeout
            self.pos[hit] = self._parking
            self._occupy()
        self._regrow()
        if not everyone:
            self.away = np.where(on, self.away, self.away - 1)
            back = ~on & (self.away == 0)
            if back.any():
                self._respawn(back)
        return self._observe(), rewards, np.zeros(actions.shape, dtype=bool)

    def _move(self, actions: np.ndarray) -> None:
        target = self.pos + self.layout.move_deltas[self.orientation, actions]
        moving = (target != self.pos) & ~self._solid[target]
        priority = self.rng.random(actions.shape)
        if moving.any():
            occupant = self._occ[target + self._offset].astype(np.int64)
            done = resolve_moves(target, moving, occupant, priority)
            self.pos = np.where(done, target, self.pos)

    def _beams(self, actions: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        """Fire the penalty beams; update ``rewards``; return who was hit ``[B, N]``."""
        fire = actions == FIRE
        if not fire.any():
            return np.zeros(actions.shape, dtype=bool)
        rewards -= FIRE_COST * fire
        copy, _, reach, who = self._trace(fire, stop_on_waste=False)
        hit = reach & (who >= 0)
        victims = (copy[:, None, None] * self.num_agents + who)[hit]
        count = np.bincount(victims, minlength=actions.size).reshape(actions.shape)
        rewards -= HIT_PENALTY * count
        return count > 0

    def _trace(self, shooters: np.ndarray, stop_on_waste: bool):
        """The beams of ``shooters`` ``[B, N]``: ``(copy [S], cells [S, 3, L],
        reached [S, 3, L], agent on each cell or -1)``."""
        copy, agent = np.nonzero(shooters)
        cells = self.pos[copy, agent][:, None, None] + \
            self.layout.beam_offsets[self.orientation[copy, agent]]
        who = self._occ[cells + self._offset[copy, :, None]]
        stop = who >= 0
        if stop_on_waste:
            stop |= self.grid[copy[:, None, None], cells] == WASTE
        return copy, cells, beam_reach(self._solid[cells], stop), who

    def _write(self, copies: np.ndarray, cells: np.ndarray, code: int) -> None:
        """Set ``grid[copies, cells] = code`` (1-D arrays of equal length); the views
        are repainted at the next observation."""
        self.grid[copies, cells] = code
        self._dirty.append((copies, cells))

    def _regrow(self) -> None:
        """Spawn apples (and waste); see each game."""
        raise NotImplementedError

    def _occupy(self) -> None:
        """Rebuild the agent-occupancy grid from the positions of the agents on the map."""
        self._occ.fill(-1)
        on = self.away == 0
        self._occ[(self.pos + self._offset)[on]] = self._index[on]

    def _respawn(self, back: np.ndarray) -> None:
        """Put the agents ``back`` ``[B, N]`` on random free spawn points."""
        for i in np.flatnonzero(back.any(axis=0)):
            copies = np.flatnonzero(back[:, i])
            free = self._occ[self._spawn + self._offset[copies]] < 0  # [C, spawn points]
            keys = np.where(free, self.rng.random(free.shape), -1.0)
            cell = self._spawn[keys.argmax(axis=1)]
            self.pos[copies, i] = cell
            self.orientation[copies, i] = self.rng.integers(0, 4, len(copies))
            self._occ[cell + self._offset[copies, 0]] = i

    def _observe(self) -> np.ndarray:
        # Repaint the cells written to and those the agents were drawn on, then the agents.
        on = self.away == 0
        stale = [self._painted, *self._dirty]
        copies = np.concatenate([c for c, _ in stale])
        cells = np.concatenate([x for _, x in stale])
        self._canvas.paint(copies, cells, PALETTE[self.grid[copies, cells]])
        self._painted = (self._copy[on], self.pos[on])
        self._dirty = []
        self._canvas.paint(*self._painted, AGENT_COLOURS[self._index[on]])
        obs = self._canvas.views(self.pos, self.orientation)
        if not on.all():
            obs[~on] = 0
        return obs

    # ------------------------------------------------------------------ hooks

    @property
    def positions(self) -> np.ndarray:
        """``[B, N, 2]`` map coordinates ``(row, col)`` of the agents; -1 while away."""
        row, col = self.layout.row_col(self.pos)
        on = self.away == 0
        return np.stack([np.where(on, row, -1), np.where(on, col, -1)], axis=-1)

    def place_agents(
        self, spots: dict[int, tuple[int, int, int]], b: int | None = 0
    ) -> None:
        """Put each agent ``i`` of ``spots`` on cell ``(row, col)`` facing ``orientation``
        (``spots[i] = (row, col, orientation)``), ending any time-out; the other agents
        stay. In copy ``b``, or every copy if ``b`` is None. Cells must be inside the map,
        not walls, and end up holding one agent each."""
        lay = self.layout
        for i, (row, col, _) in spots.items():
            if not 0 <= i < self.num_agents:
                raise ValueError(f"no agent {i}; agents are 0 .. {self.num_agents - 1}")
            if not (0 <= row < lay.height and 0 <= col < lay.width):
                raise ValueError(f"cell {(row, col)} is outside the {lay.height}x{lay.width} map")
            if self._solid[lay.flat(row, col)]:
                raise ValueError(f"cell {(row, col)} is a wall")
        rows = slice(None) if b is None else [b]
        pos, orientation, away = (a[rows].copy() for a in (self.pos, self.orientation, self.away))
        for i, (row, col, o) in spots.items():
            pos[:, i], orientation[:, i], away[:, i] = lay.flat(row, col), o % 4, 0
        held = np.sort(np.where(away == 0, pos, -1 - np.arange(self.num_agents)), axis=1)
        if (held[:, 1:] == held[:, :-1]).any():
            raise ValueError("two agents on one cell")
        self.pos[rows], self.orientation[rows], self.away[rows] = pos, orientation, away
        self._occupy()

    def beam_cells(self, i: int, b: int = 0, clean: bool = False) -> set[tuple[int, int]]:
        """The map cells agent ``i`` of copy ``b`` would reach now with the penalty beam
        (or with ``clean=True`` the cleaning beam), as ``(row, col)`` pairs."""
        shooter = np.zeros((self.batch_size, self.num_agents), dtype=bool)
        shooter[b, i] = True
        _, cells, reach, _ = self._trace(shooter, stop_on_waste=clean)
        row, col = self.layout.row_col(cells[reach])
        return set(zip(row.tolist(), col.tolist()))

    def set_cells(
        self, char: str, cells: Sequence[tuple[int, int]], b: int | None = 0
    ) -> None:
        """Put ``char`` (one of ``CELL_CHARS``: ``' '`` empty, ``'A'`` apple, Cleanup also
        ``'H'`` waste, ``'R'`` river) on the map cells ``cells`` of copy ``b`` (every copy
        if None). Walls cannot be changed. (Waste density counts only the map's river
        cells, ``H`` and ``R``.)"""
        if char not in self.CELL_CHARS:
            raise ValueError(f"unknown cell {char!r}; valid choices: {list(self.CELL_CHARS)}")
        lay = self.layout
        for row, col in cells:
            if not (0 <= row < lay.height and 0 <= col < lay.width):
                raise ValueError(f"cell {(row, col)} is outside the map")
            if self._solid[lay.flat(row, col)]:
                raise ValueError(f"cell {(row, col)} is a wall")
            copies = np.arange(self.batch_size) if b is None else np.array([b])
            cell = np.full(len(copies), lay.flat(row, col))
            self._write(copies, cell, self.CELL_CHARS[char])

    def ascii(self, b: int = 0) -> list[str]:
        """Copy ``b``'s map as strings: ``@`` wall, ``A`` apple, ``H`` waste, ``R`` river,
        ``S`` stream, space empty; agent ``i`` as ``AGENT_CHARS[i]`` (absent ones not drawn)."""
        lay = self.layout
        chars = ASCII[self.grid[b, lay.inside]].reshape(lay.height, lay.width)
        row, col = lay.row_col(self.pos[b])
        for i in np.flatnonzero(self.away[b] == 0):
            chars[row[i], col[i]] = AGENT_CHARS[i]
        return ["".join(r) for r in chars]
