"""Job Scheduling: one resource on a small grid, and only one agent can hold it.

Rules (defaults: 4 agents, 200 steps per episode). Two variants, chosen with the
constructor keyword ``rules``; they differ only where marked.

- ``rules="reference"`` (default): the rules of the reference implementation, the FEN
  game as ported by the FPF authors, which the FPF paper's figures and random-policy
  levels come from. Use it for anything compared with the paper.
- ``rules="legacy"``: this project's earlier rules, kept to reproduce earlier runs
  (same seed, same trajectories as before the reference rules were added).

The rules:

- The playable area is a ``5 x 5`` grid of cells ``(x, y)``, ``0 <= x, y <= 4``,
  surrounded by walls. Nothing ever stands on a wall.
- At reset the resource is put on a uniform random cell, where it stays for the whole
  episode:

  - reference: a cell of the interior ``3 x 3``, ``1 <= x, y <= 3`` (never next to a
    wall);
  - legacy: any of the 25 cells.

  The agents get distinct uniform random cells (an agent may start on the resource).
  At most ``25`` agents fit, hence ``max_agents = 25``.
- Five actions: 0 stay, 1 up (+y), 2 down (-y), 3 left (-x), 4 right (+x).
- Moves resolve one agent after another in agent index order; a blocked agent stays
  where it is. An agent's move is blocked when its target cell is a wall, or

  - reference: a cell that any agent held at the *start* of the step, or that a
    lower-index agent has already moved into during this step. So no agent enters a
    cell that was vacated in the same step, and agents cannot follow one another: in
    a line of agents all moving the same way, only the head moves.
  - legacy: a cell held by another agent *at that moment*: agents with a lower index
    have already moved, the others have not. So an agent can step into a cell that a
    lower-index agent has just left, but not into one that a higher-index agent is
    about to leave. A line of agents moving the same way moves as a whole when the
    indices increase from its head.

  In both variants agents never share a cell and two agents aiming at one free cell
  leave it to the lower index.
- After all moves, the agent on the resource cell (if any; at most one) gets reward 1,
  every other agent 0.
- Nothing terminates; the episode is truncated after ``episode_length`` steps.
- Observations, three modes with the same dynamics (``observation=...``), identical in
  both rule variants:

  - ``"vector"`` (default), ``Box(-1, 1, (13,), float32)``; positions are normalised
    by dividing grid coordinates by 4, the largest coordinate:

    - ``0:2``  own position ``(x, y) / 4`` in ``[0, 1]``;
    - ``2:4``  resource position minus own position, ``(dx, dy) / 4`` in ``[-1, 1]``;
    - ``4:13`` the 3 x 3 neighbourhood: entry ``3 * (dy + 1) + (dx + 1)`` for offsets
      ``dx, dy`` in ``(-1, 0, 1)`` (so down-left first, up-right last) is 1 when the
      cell ``(x + dx, y + dy)`` is a wall or holds another agent, else 0. The centre
      entry (index 8 of the observation, the agent's own cell) is always 0.

  - ``"discrete"``, ``Discrete(625)`` for tabular learners: ``own_cell * 25 +
    resource_cell`` with ``cell = 5 * y + x``. Other agents are not seen. (With the
    reference rules only the 9 interior resource cells occur; the space is the same.)
  - ``"image"``, ``Box(0, 255, (7, 7, 3), uint8)``: a top-down view of the whole
    grid and its walls. Pixel ``[row, col]`` shows cell ``(x, y) = (col - 1, 5 - row)``
    (+y points to the top of the image; rows 0 and 6, columns 0 and 6 are the walls).
    Channel 0 is 255 on walls and on the other agents' cells, channel 1 on the agent's
    own cell, channel 2 on the resource cell; everything else is 0.

- Global state (``2 N + 2`` floats in ``[0, 1]``): all agents' positions
  ``(x_0, y_0, x_1, ...) / 4``, then the resource position ``/ 4``.

Uniform random policy over the 5 actions (4 agents, 200 steps, 1024 episodes, seed 0;
CV is std/mean of the agents' returns in an episode, averaged over episodes), against
the reference figure of collective return 29.1 +- 9.7, CV 0.65:

- reference rules: 31.6 +- 8.4, CV 0.56 (seeds 1 and 2: 30.9 +- 8.2 and 31.6 +- 8.3,
  CV 0.57);
- legacy rules: 32.1 +- 10.9, CV 0.67.

Neither variant reproduces the reference figure: the mean is 2.5 to 3 too high in
both, and the reference rules make the returns *more* equal than the reference figure
says. Random moves keep the agents spread about uniformly over the 25 cells, so the
resource cell is held about 4/25 of the time, i.e. about 32 steps per episode, whatever
the rules. Swapping one rule at a time shows that the interior resource causes the drop
in spread and CV (31.9 +- 8.8, CV 0.54 with the legacy moves) and the blocking rule
changes little (32.0 +- 10.7, CV 0.68 with a resource on any cell); plausibly a
resource by a wall is held in longer spells, as one or two of its holder's moves are
blocked by walls. Where the remaining gap comes from is not known.

Internal state, public so it can be set directly: ``pos [B,N,2]`` and
``resource [B,2]`` (int64 grid coordinates) and the step counter ``t``. Agents must be
on distinct playable cells; the resource may be set on any cell in either variant.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.base import BatchedGame

# Displacement of each action: stay, up, down, left, right.
MOVES = np.array([[0, 0], [0, 1], [0, -1], [-1, 0], [1, 0]], dtype=np.int64)
# The 3 x 3 neighbourhood offsets (dx, dy) in observation order.
NEIGHBOURS = np.array([(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], dtype=np.int64)
# Rule variants (``rules=...``); the first is the default. See the module docstring.
RULES = ("reference", "legacy")


class JobScheduling(BatchedGame):
    """Batched Job Scheduling game; see the module docstring for the rules."""

    name = "job"
    SIZE = 5
    min_agents = 1
    max_agents = SIZE * SIZE
    num_actions = 5
    observation_modes = ("vector", "discrete", "image")

    def __init__(
        self,
        num_agents: int = 4,
        batch_size: int = 1,
        episode_length: int = 200,
        seed: int | None = None,
        observation: str | None = None,
        rules: str = RULES[0],
    ) -> None:
        super().__init__(
            num_agents, batch_size, episode_length, seed,
            observation=observation,
        )
        if rules not in RULES:
            raise ValueError(
                f"{self.name}: unknown rules {rules!r}; valid choices: {', '.join(RULES)}"
            )
        self.rules = rules
        if self.num_agents > self.max_agents:
            raise ValueError(
                f"job takes at most {self.max_agents} agents (one per cell of the "
                f"{self.SIZE}x{self.SIZE} grid), got {self.num_agents}"
            )
        self.pos: np.ndarray
        self.resource: np.ndarray
        self.reset()

    def _observation_space(self) -> spaces.Box | spaces.Discrete:
        if self.observation == "discrete":
            return spaces.Discrete(self.SIZE**4)
        if self.observation == "image":
            side = self.SIZE + 2
            return spaces.Box(0, 255, (side, side, 3), np.uint8)
        return spaces.Box(-1.0, 1.0, (13,), np.float32)

    def _state_space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (2 * self.num_agents + 2,), np.float32)

    def _state(self) -> np.ndarray:
        parts = [self.pos.reshape(self.batch_size, -1), self.resource]
        return (np.concatenate(parts, axis=1) / (self.SIZE - 1)).astype(np.float32)

    def _reset(self) -> np.ndarray:
        b, n, s = self.batch_size, self.num_agents, self.SIZE
        cells = np.argsort(self.rng.random((b, s * s)), axis=1)[:, :n]  # distinct
        self.pos = np.stack([cells % s, cells // s], axis=-1).astype(np.int64)
        if self.rules == "legacy":
            res = self.rng.integers(0, s * s, b)  # any cell
            self.resource = np.stack([res % s, res // s], axis=-1).astype(np.int64)
        else:
            res = self.rng.integers(0, (s - 2) ** 2, b)  # the interior 3 x 3
            self.resource = 1 + np.stack([res % (s - 2), res // (s - 2)], axis=-1)
            self.resource = self.resource.astype(np.int64)
        return self._observe(self._occupancy())

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # ``blocked``: walls, the cells agents held at the start of the step (reference)
        # or hold now (legacy), and the cells agents have moved into this step.
        blocked = self._occupancy()
        legacy = self.rules == "legacy"
        rows = np.arange(self.batch_size)
        for i in range(self.num_agents):
            cur = self.pos[:, i]
            target = cur + MOVES[actions[:, i]]
            # ``stay`` targets the agent's own (occupied) cell, so it is "blocked" too.
            moves = ~blocked[rows, target[:, 0] + 1, target[:, 1] + 1]
            if not moves.any():
                continue
            r = rows[moves]
            if legacy:  # the cell it leaves is free at once
                blocked[r, cur[moves, 0] + 1, cur[moves, 1] + 1] = False
            blocked[r, target[moves, 0] + 1, target[moves, 1] + 1] = True
            self.pos[moves, i] = target[moves]
        occ = blocked if legacy else self._occupancy()

        on_resource = np.all(self.pos == self.resource[:, None, :], axis=-1)
        terminated = np.zeros((self.batch_size, self.num_agents), dtype=bool)
        return self._observe(occ), on_resource.astype(np.float32), terminated

    def _occupancy(self) -> np.ndarray:
        """Walls and agents, padded: cell ``(x, y)`` is at ``[:, x + 1, y + 1]``."""
        b, s = self.batch_size, self.SIZE
        occ = np.ones((b, s + 2, s + 2), dtype=bool)
        occ[:, 1:-1, 1:-1] = False
        rows = np.arange(b)[:, None]
        occ[rows, self.pos[..., 0] + 1, self.pos[..., 1] + 1] = True
        return occ

    def _observe(self, occ: np.ndarray) -> np.ndarray:
        """Observations of mode ``self.observation``; ``occ`` must match the state."""
        if self.observation == "discrete":
            own = self.SIZE * self.pos[..., 1] + self.pos[..., 0]  # [B, N]
            res = self.SIZE * self.resource[:, 1] + self.resource[:, 0]  # [B]
            return own * self.SIZE**2 + res[:, None]
        if self.observation == "image":
            return self._image(occ)
        scale = self.SIZE - 1
        rows = np.arange(self.batch_size)[:, None, None]
        near = self.pos[:, :, None, :] + 1 + NEIGHBOURS  # [B, N, 9, 2] padded coords
        obs = np.empty((self.batch_size, self.num_agents, 13), dtype=np.float32)
        obs[..., 0:2] = self.pos / scale
        obs[..., 2:4] = (self.resource[:, None, :] - self.pos) / scale
        obs[..., 4:13] = occ[rows, near[..., 0], near[..., 1]]
        obs[..., 8] = 0.0  # the agent's own cell
        return obs

    def _image(self, occ: np.ndarray) -> np.ndarray:
        """``[B, N, 7, 7, 3]`` uint8 top-down views; see the module docstring."""
        b, n, s = self.batch_size, self.num_agents, self.SIZE
        img = np.zeros((b, n, s + 2, s + 2, 3), dtype=np.uint8)
        # padded occ[x + 1, y + 1] -> pixel [5 - y, x + 1] = [6 - (y + 1), x + 1]
        img[..., 0] = 255 * occ[:, None, :, ::-1].transpose(0, 1, 3, 2)
        bi, ai = np.arange(b)[:, None], np.arange(n)[None, :]
        rows, cols = s - self.pos[..., 1], self.pos[..., 0] + 1  # [B, N]
        img[bi, ai, rows, cols, 0] = 0  # own cell: not "another agent"
        img[bi, ai, rows, cols, 1] = 255
        img[np.arange(b), :, s - self.resource[:, 1], self.resource[:, 0] + 1, 2] = 255
        return img
