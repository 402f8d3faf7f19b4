"""Grid mechanics of the sequential social dilemmas (``envs.harvest``, ``envs.cleanup``).

Pure, batched building blocks; the game itself is ``envs.ssd.SocialDilemma``.

Coordinates. A map is a list of equal-length strings; cell ``(row, col)`` is
``rows[row][col]``, row 0 at the top. Orientations are clockwise: ``UP`` (towards row
0), ``RIGHT``, ``DOWN``, ``LEFT``. Every array of cells is a flat index into the map
padded by ``VIEW_RADIUS`` cells on each side (``Layout.flat``), so a move, a beam cell
or a view cell is one integer addition, and the views and beams of agents near the
edge never leave the padded grid.

Actions (the reference's numbering): 0 move left, 1 move right, 2 move up (forward),
3 move down (backward), all relative to the agent's orientation; 4 stay; 5 turn
clockwise; 6 turn counter-clockwise; 7 fire the penalty beam; 8 clean (Cleanup only).

Beams (``Layout.beam_offsets``): three parallel rays of ``BEAM_LENGTH`` cells each, as in the
reference: the front ray starts at the cell in front of the agent, the two side rays at
the cells to its left and right, so the front ray reaches one cell further. A ray ends
before a wall (or the outside of the map) and ends *on* the first stopping cell, e.g.
the first agent (``beam_reach``).

Views (``Layout.view_offsets``): ``VIEW_SIZE x VIEW_SIZE`` cells centred on the agent
and rotated so that the agent faces the top of the image: view pixel ``(i, j)`` shows the
cell ``VIEW_RADIUS - i`` cells ahead and ``j - VIEW_RADIUS`` cells to the right of the
agent. (The reference turns the views of agents facing left or right the wrong way
round, so that what lies ahead appears at the bottom; here it is always at the top.)
``Canvas`` produces the same views fast: it keeps one picture of every copy per
orientation, already rotated, and cuts the views out of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

UP, RIGHT, DOWN, LEFT = range(4)
# (drow, dcol) of each orientation, clockwise from UP.
DIRECTIONS = np.array([(-1, 0), (0, 1), (1, 0), (0, -1)], dtype=np.int64)

MOVE_LEFT, MOVE_RIGHT, MOVE_UP, MOVE_DOWN, STAY, TURN_CW, TURN_CCW, FIRE, CLEAN = range(9)
NUM_ACTIONS = 9
# Quarter turns, clockwise, from the agent's orientation to each move's direction.
MOVE_TURNS = np.array([3, 1, 0, 2], dtype=np.int64)
# TURNS[o, a]: orientation after action a when facing o.
TURNS = np.array([[(o + {TURN_CW: 1, TURN_CCW: 3}.get(a, 0)) % 4 for a in range(NUM_ACTIONS)]
                  for o in range(4)], dtype=np.int64)
# HEADINGS[o, a]: direction of move action a when facing o (-1: not a move).
HEADINGS = np.array([[(o + MOVE_TURNS[a]) % 4 if a < STAY else -1 for a in range(NUM_ACTIONS)]
                     for o in range(4)], dtype=np.int64)

VIEW_RADIUS = 7
VIEW_SIZE = 2 * VIEW_RADIUS + 1
BEAM_LENGTH = 5


class Layout:
    """A parsed map: its characters, the padded grid, and flat offset tables.

    ``rows`` is a sequence of equal-length strings made only of ``allowed`` characters.
    """

    def __init__(self, rows: Sequence[str], allowed: str) -> None:
        rows = tuple(rows)
        if not rows or not all(isinstance(r, str) for r in rows):
            raise ValueError("a map must be a non-empty sequence of strings")
        if len({len(r) for r in rows}) != 1 or not rows[0]:
            raise ValueError("a map's rows must all have the same, non-zero length")
        bad = sorted(set("".join(rows)) - set(allowed))
        if bad:
            raise ValueError(f"map characters {bad} are not allowed; valid: {allowed!r}")
        self.rows = rows
        self.height, self.width = len(rows), len(rows[0])
        self.pad = VIEW_RADIUS
        self.padded_shape = (self.height + 2 * self.pad, self.width + 2 * self.pad)
        self.size = self.padded_shape[0] * self.padded_shape[1]
        self.chars = np.array([list(r) for r in rows])  # [H, W] of 1-char strings

        step = np.array([self.padded_shape[1], 1], dtype=np.int64)
        self.deltas = DIRECTIONS @ step  # flat step of each orientation
        # Flat displacement of action a when facing o (0 for non-moves).
        self.move_deltas = np.where(HEADINGS >= 0, self.deltas[HEADINGS % 4], 0)
        self.view_offsets = _view_offsets(step)
        self.beam_offsets = _beam_offsets(step)
        rr, cc = np.mgrid[: self.height, : self.width]
        self.inside = self.flat(rr.ravel(), cc.ravel())  # every map cell, row-major

    def flat(self, row, col):
        """Padded flat index of map cell(s) ``(row, col)``."""
        return (np.asarray(row) + self.pad) * self.padded_shape[1] + np.asarray(col) + self.pad

    def row_col(self, flat) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates ``(row, col)`` of padded flat indices."""
        row, col = np.divmod(np.asarray(flat), self.padded_shape[1])
        return row - self.pad, col - self.pad

    def cells(self, chars: str) -> np.ndarray:
        """Flat indices of the map cells whose character is in ``chars``, row-major."""
        return self.inside[np.isin(self.chars.ravel(), list(chars))]

    def count(self, chars: str) -> int:
        """Number of map cells whose character is in ``chars``."""
        return int(np.isin(self.chars, list(chars)).sum())


def _view_offsets(step: np.ndarray) -> np.ndarray:
    """``[4, VIEW_SIZE**2]`` flat offsets of the view pixels, row-major, per orientation."""
    i, j = np.mgrid[:VIEW_SIZE, :VIEW_SIZE]
    ahead, right = VIEW_RADIUS - i.ravel(), j.ravel() - VIEW_RADIUS
    out = np.empty((4, VIEW_SIZE * VIEW_SIZE), dtype=np.int64)
    for o in range(4):
        disp = np.outer(ahead, DIRECTIONS[o]) + np.outer(right, DIRECTIONS[(o + 1) % 4])
        out[o] = disp @ step
    return out


def _beam_offsets(step: np.ndarray) -> np.ndarray:
    """``[4, 3, BEAM_LENGTH]`` flat offsets of the beam cells (front, right, left ray)."""
    k = np.arange(BEAM_LENGTH)
    out = np.empty((4, 3, BEAM_LENGTH), dtype=np.int64)
    for o in range(4):
        ahead, right = DIRECTIONS[o] @ step, DIRECTIONS[(o + 1) % 4] @ step
        out[o] = [(k + 1) * ahead, right + k * ahead, -right + k * ahead]
    return out


class Canvas:
    """RGB pictures of the padded grids of ``batch`` copies, one per orientation ``o``,
    rotated so that ``o`` points up (``np.rot90`` by ``o`` quarter turns), on a square
    of side ``max(padded_shape)``. A view is then one upright ``VIEW_SIZE``-square
    window, so all views are gathered by one fancy index of a strided window array.

    ``pixels [4, batch, side * side, 3]`` is written only through ``paint``/``fill``.
    The views equal gathering ``Layout.view_offsets`` (a test checks it).
    """

    def __init__(self, layout: Layout, batch: int) -> None:
        height, width = layout.padded_shape
        side = max(height, width)
        cells = np.arange(layout.size).reshape(height, width)
        self.where = np.empty((4, layout.size), dtype=np.int64)  # cell -> pixel, per o
        for o in range(4):
            turned = np.rot90(cells, o)
            rr, cc = np.mgrid[: turned.shape[0], : turned.shape[1]]
            self.where[o, turned.ravel()] = (rr * side + cc).ravel()
        self.pixels = np.zeros((4, batch, side * side, 3), dtype=np.uint8)
        s0, s1 = self.pixels.strides[:2]
        starts = side * side - (VIEW_SIZE - 1) * (side + 1)
        # Window rows as single items of VIEW_SIZE pixels: fewer, longer copies.
        self._windows = np.ndarray(
            (4, batch, starts, VIEW_SIZE), dtype=np.dtype((np.void, 3 * VIEW_SIZE)),
            buffer=self.pixels, strides=(s0, s1, 3, 3 * side),
        )
        self._corner = self.where - VIEW_RADIUS * (side + 1)  # window start of each cell
        self._copies = np.arange(batch)[:, None]
        self._flat = self.pixels.view(np.dtype((np.void, 3))).reshape(-1)  # one item a pixel
        # Flat pixel of cell c of copy b in turn o: (o * batch + b) * side**2 + where[o, c].
        self._where = self.where + np.arange(4)[:, None] * batch * side * side
        self._copy_stride = side * side

    def fill(self, colours: np.ndarray) -> None:
        """Paint every copy's cells with ``colours [cells, 3]``."""
        self.pixels[np.arange(4)[:, None], :, self.where] = colours[:, None]

    def paint(self, copies: np.ndarray, cells: np.ndarray, colours: np.ndarray) -> None:
        """Paint cell ``cells[k]`` of copy ``copies[k]`` with ``colours[k]`` (``[K, 3]`` or
        one colour ``[3]``)."""
        colours = np.ascontiguousarray(colours, dtype=np.uint8)
        self._flat[self._where[:, cells] + copies * self._copy_stride] = \
            colours.view(self._flat.dtype)[..., 0]

    def views(self, cells: np.ndarray, orientation: np.ndarray) -> np.ndarray:
        """``[B, N, VIEW_SIZE, VIEW_SIZE, 3]`` views of agents on ``cells [B, N]``."""
        rows = self._windows[orientation, self._copies, self._corner[orientation, cells]]
        return rows.view(np.uint8).reshape(*cells.shape, VIEW_SIZE, VIEW_SIZE, 3)


def resolve_moves(
    target: np.ndarray, moving: np.ndarray, occupant: np.ndarray, priority: np.ndarray
) -> np.ndarray:
    """Which agents complete their move, ``[B, N]`` bool; all arguments are ``[B, N]``.

    ``target`` is each agent's target cell, ``moving`` marks the agents on the map whose
    target differs from their cell, ``occupant`` is the agent now on the target cell
    (-1 if none). Rules (the reference's, without its order effects):

    1. agents aiming at the same cell: the one with the highest ``priority`` (distinct
       numbers) keeps its move, the others stay; i.i.d. uniform priorities make it a
       uniformly random choice;
    2. two agents swapping cells both stay;
    3. a move into a cell held by an agent that stays (for any reason, repeatedly) fails.

    A cycle of three or more agents each entering the next one's cell all move.
    """
    n = target.shape[1]
    rival = (target[:, :, None] == target[:, None, :]) & moving[:, None, :]
    rival &= priority[:, None, :] > priority[:, :, None]  # never i itself
    moving = moving & ~rival.any(axis=2)
    held = occupant >= 0
    if not held.any():
        return moving
    copy = np.arange(len(target))[:, None]
    ahead = np.where(held, occupant, 0)  # the agent ahead (valid where held)
    back = occupant[copy, ahead] == np.arange(n)
    moving &= ~(held & back & moving[copy, ahead])
    for _ in range(n):
        free = ~held | moving[copy, ahead]
        if free[moving].all():
            break
        moving &= free
    return moving


def beam_reach(wall: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Cells ``[..., L]`` a ray reaches: it ends before the first ``wall`` cell and on
    the first ``stop`` cell (both ``[..., L]`` bool, cells in order along the ray)."""
    ok = ~wall
    ok[..., 1:] &= ~stop[..., :-1]
    return np.logical_and.accumulate(ok, axis=-1)
