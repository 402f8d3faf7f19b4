"""Manufacturing Plant: agents collect gems of several types to build their products.

Rules (defaults: 5 agents, 3 gem types, 8 gems, 200 steps per episode). Two variants,
chosen with the constructor keyword ``rules``; they differ only where marked.

- ``rules="reference"`` (default): the rules of the reference implementation, the FEN
  game as ported by the FPF authors, which the FPF paper's figures and random-policy
  levels come from. Use it for anything compared with the paper.
- ``rules="legacy"``: this project's earlier rules, kept to reproduce earlier runs
  (same seed, same trajectories as before the reference rules were added).

The rules:

- The grid is ``12 x 12`` with cells ``(x, y)``, ``0 <= x, y <= 11``. Agents live on
  cells ``2..9`` (both coordinates); gems lie on cells ``3..8``. The margins make
  every 5 x 5 view fit inside the grid.
- Agent ``i`` needs ``requirements[i, k]`` gems of type ``k`` for one product. The
  default requirement rows are ``[2,1,0], [1,0,1], [0,1,1], [1,1,0], [0,1,2]``; a game
  with ``N <= 5`` agents uses the first ``N`` rows. A custom ``requirements`` array
  (non-negative integers, one row per agent, one column per gem type, no all-zero
  row) fixes ``N`` to its number of rows; the number of gem types is its number of
  columns. (``envs.make`` still caps the team at ``max_agents = 5``; build the class
  directly for a bigger custom team.)
- At reset:

  - reference: agents get distinct uniform random cells; each gem gets a type drawn
    uniformly from the ``T`` types, independently (so a type may be missing);
  - legacy: agents get independent uniform random cells (they may coincide); gem ``g``
    has type ``g mod T`` for the whole episode (8 gems, 3 types: 3, 3 and 2 gems of
    types 0, 1, 2).

  In both, the gems get distinct uniform random cells that hold no agent.
- Five actions: 0 stay, 1 up (+y), 2 down (-y), 3 left (-x), 4 right (+x). A move off
  the agent area is clipped (the agent stays on that axis).

  - reference: agents block each other. Moves resolve one agent after another in
    agent index order, like Job Scheduling's legacy moves: a move into a cell another
    agent holds *at that moment* is blocked (the agent stays). Agents with a lower
    index have already moved, so a cell one of them has just left may be entered; a
    cell a higher-index agent is about to leave may not. Agents never share a cell.
  - legacy: all agents move at once and never block each other; cells may be shared.

- After moving, every agent standing on a gem's cell (also after staying, a clipped or
  a blocked move) picks the gem up. Two agents on one gem's cell (legacy only): the
  lower agent index takes it. Gems have distinct cells, so an agent picks up at most
  one gem per step.
- A picked gem goes to the agent's possession and respawns at once on a uniform random
  gem cell that holds neither a gem nor an agent (after moving). Gems picked in the
  same step get distinct cells (a draw without replacement). So there are always
  ``num_gems`` gems on distinct cells. A respawned gem

  - reference: gets a fresh type, drawn uniformly from the ``T`` types;
  - legacy: keeps its type.

- Then each agent builds as many products as its possession allows (at most one in
  play, since one gem arrives per step); a product consumes ``requirements[i]`` from
  the possession. Gems of types the agent does not need are kept forever.
- Reward (independent of ``rules``): +1 per product, plus for each gem picked up

  - ``reward="ref"`` (default): +0.01 for any gem;
  - ``reward="fen"``: +0.1 if the agent's requirement row needs its type (entry > 0),
    0 otherwise. Dynamics are the same for both rewards.

- Nothing terminates; the episode is truncated after ``episode_length`` steps.
- Observation (mode ``"vector"`` only), ``Box(0, inf, (2 + T + 25 T,), float32)``,
  80 floats for ``T = 3``:

  - ``0:2`` own position, ``(x - 2, y - 2) / 7`` in ``[0, 1]``;
  - ``2:2+T`` possession count of each gem type (raw count, unbounded above);
  - the 5 x 5 view centred on the agent, one-hot by gem type: entry
    ``2 + T + T * (5 * (dy + 2) + (dx + 2)) + k`` is 1 when the cell
    ``(x + dx, y + dy)`` holds a gem of type ``k``, for ``dx, dy`` in ``-2..2``.

  Other agents are not seen, in either variant.
- Global state (``2 N + N T + 2 G + G T`` floats, the same layout in both variants): all
  agents' positions ``(x_0, y_0, x_1, ...)``, then all held counts ``held[0, :],
  held[1, :], ...`` (raw), then all gems' positions ``(x_0, y_0, x_1, ...)``, then each
  gem's type one-hot (gem 0's ``T`` entries first); positions are normalised like the
  observation, ``(x - 2) / 7``, so gems lie in ``[1/7, 6/7]``. The types matter to a
  centralised critic: with the reference rules they change on every respawn.

Uniform random policy over the 5 actions (5 agents, 200 steps, ``reward="ref"``, 1024
episodes, seed 0; CV is std/mean of the agents' returns in an episode, averaged over
episodes), against the reference figure of collective return 15.8 +- 4.0, CV 0.55:

- reference rules: 13.8 +- 3.9, CV 0.55 (seeds 1 and 2: 13.8 +- 3.8 and 13.9 +- 3.6,
  CV 0.55 and 0.54). Uniform over the four moves only (never staying): 17.6 +- 4.3,
  CV 0.48. With ``reward="fen"``: 17.4 +- 4.6, CV 0.49.
- legacy rules: 12.8 +- 3.6, CV 0.58; four moves only 16.3 +- 4.1, CV 0.51;
  ``reward="fen"`` 16.4 +- 4.2, CV 0.51.

The reference rules match the reference CV and spread but not the mean, which is 2.0
lower; blocking and random gem types each raise the legacy 12.8 to about 13.2 on
their own.
Never staying now overshoots the reference by about as much (17.6), so the earlier
guess that the reference's random policy never stayed (which matched the legacy
rules) no longer explains the gap. Where it comes from is not known.

Internal state, public so it can be set directly: ``pos [B,N,2]``, ``gems [B,G,2]``
(int64 grid coordinates), ``gem_type [B,G]`` and ``held [B,N,T]`` (int64), the constant
``requirements [N,T]``, and the step counter ``t``. With the reference rules agents
must be on distinct cells. Random draws, in order: at reset agent cells, gem cells,
then (reference) gem types; at a respawn the new cells, then (reference) their types.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from gymnasium import spaces

from envs.base import BatchedGame, check_positive_int

# Displacement of each action: stay, up, down, left, right.
MOVES = np.array([[0, 0], [0, 1], [0, -1], [-1, 0], [1, 0]], dtype=np.int64)
DEFAULT_REQUIREMENTS = np.array(
    [[2, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 1, 2]], dtype=np.int64
)
REWARDS = ("ref", "fen")
# Rule variants (``rules=...``); the first is the default. See the module docstring.
RULES = ("reference", "legacy")
_NO_LIMIT = np.iinfo(np.int64).max  # products allowed by a type the agent does not need


class ManufacturingPlant(BatchedGame):
    """Batched Manufacturing Plant game; see the module docstring for the rules."""

    name = "manufacturing"
    min_agents = 1
    max_agents = len(DEFAULT_REQUIREMENTS)
    num_actions = 5

    GRID = 12
    AGENT_LOW, AGENT_HIGH = 2, 9
    GEM_LOW, GEM_HIGH = 3, 8
    VIEW = 2  # view radius: a (2 * VIEW + 1)^2 window
    GEM_REWARD = {"ref": 0.01, "fen": 0.1}

    def __init__(
        self,
        num_agents: int | None = None,
        batch_size: int = 1,
        num_gems: int = 8,
        requirements: np.ndarray | list | None = None,
        reward: Literal["ref", "fen"] = "ref",
        episode_length: int = 200,
        seed: int | None = None,
        observation: str | None = None,
        rules: str = RULES[0],
    ) -> None:
        req = _requirements(num_agents, requirements)
        super().__init__(
            len(req), batch_size, episode_length, seed,
            observation=observation,
        )
        self.requirements = req
        self.num_types = req.shape[1]
        self.num_gems = check_positive_int("num_gems", num_gems)
        gem_cells = (self.GEM_HIGH - self.GEM_LOW + 1) ** 2
        if not self.num_types <= self.num_gems <= gem_cells - self.num_agents:
            raise ValueError(
                f"num_gems must be between the number of gem types ({self.num_types}) "
                f"and {gem_cells - self.num_agents} (gem cells minus agents), "
                f"got {num_gems}"
            )
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
        self.reward = reward
        if rules not in RULES:
            raise ValueError(
                f"{self.name}: unknown rules {rules!r}; valid choices: {', '.join(RULES)}"
            )
        self.rules = rules
        self._needs = req > 0
        self._req_or_1 = np.maximum(req, 1)
        self.pos: np.ndarray
        self.gems: np.ndarray
        self.gem_type: np.ndarray
        self.held: np.ndarray
        self.reset()

    def _observation_space(self) -> spaces.Box:
        dim = 2 + self.num_types * (1 + (2 * self.VIEW + 1) ** 2)
        return spaces.Box(0.0, np.inf, (dim,), np.float32)

    def _state_space(self) -> spaces.Box:
        n, t, g = self.num_agents, self.num_types, self.num_gems
        high = np.concatenate([np.ones(2 * n), np.full(n * t, np.inf), np.ones(2 * g), np.ones(g * t)])
        high = high.astype(np.float32)
        return spaces.Box(np.zeros_like(high), high, dtype=np.float32)

    def _state(self) -> np.ndarray:
        b, scale = self.batch_size, self.AGENT_HIGH - self.AGENT_LOW
        parts = [
            (self.pos.reshape(b, -1) - self.AGENT_LOW) / scale,
            self.held.reshape(b, -1),
            (self.gems.reshape(b, -1) - self.AGENT_LOW) / scale,
            np.eye(self.num_types)[self.gem_type].reshape(b, -1),
        ]
        return np.concatenate(parts, axis=1).astype(np.float32)

    def _reset(self) -> np.ndarray:
        b, n, g, t = self.batch_size, self.num_agents, self.num_gems, self.num_types
        low, side = self.AGENT_LOW, self.AGENT_HIGH - self.AGENT_LOW + 1
        if self.rules == "legacy":  # independent cells, may coincide
            self.pos = self.rng.integers(low, low + side, (b, n, 2))
        else:  # distinct cells
            cells = np.argsort(self.rng.random((b, side * side)), axis=1)[:, :n]
            self.pos = np.stack([cells % side, cells // side], axis=-1) + low
        keys = self.rng.random((b, self._gem_side**2))
        keys[self._taken(gems=False)] = -1.0  # gems avoid agents
        cells = np.argsort(-keys, axis=1, kind="stable")[:, :g]
        self.gems = self._cell_coords(cells)
        if self.rules == "legacy":
            self.gem_type = np.tile(np.arange(g) % t, (b, 1))
        else:
            self.gem_type = self.rng.integers(0, t, (b, g))
        self.held = np.zeros((b, n, t), dtype=np.int64)
        return self._observe()

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.rules == "legacy":
            self._move_together(actions)
        else:
            self._move_in_turn(actions)

        on = np.all(self.pos[:, :, None, :] == self.gems[:, None, :, :], axis=-1)
        got = on & (np.cumsum(on, axis=1) == 1)  # [B,N,G]: lowest agent index wins
        onehot = np.eye(self.num_types, dtype=np.int64)[self.gem_type]  # [B,G,T]
        gained = got.astype(np.int64) @ onehot  # [B,N,T]
        self.held += gained

        if self.reward == "ref":
            rewards = self.GEM_REWARD["ref"] * gained.sum(axis=-1)
        else:
            needed = gained * self._needs
            rewards = self.GEM_REWARD["fen"] * needed.sum(axis=-1)

        per_type = np.where(self._needs, self.held // self._req_or_1, _NO_LIMIT)
        products = per_type.min(axis=-1)  # [B,N]
        self.held -= products[..., None] * self.requirements
        rewards = (rewards + products).astype(np.float32)

        picked = got.any(axis=1)  # [B,G]
        if picked.any():
            self._respawn(picked)
        terminated = np.zeros((self.batch_size, self.num_agents), dtype=bool)
        return self._observe(), rewards, terminated

    # ------------------------------------------------------------------ helpers

    def _move_together(self, actions: np.ndarray) -> None:
        """Legacy moves: all at once, clipped to the agent area, cells may be shared."""
        self.pos = np.clip(self.pos + MOVES[actions], self.AGENT_LOW, self.AGENT_HIGH)

    def _move_in_turn(self, actions: np.ndarray) -> None:
        """Reference moves: in agent index order, into free cells of the agent area.

        A clipped move or ``stay`` targets the agent's own cell and changes nothing; a
        move into a cell another agent holds at that moment is blocked.
        """
        b = self.batch_size
        rows = np.arange(b)
        occ = np.zeros((b, self.GRID, self.GRID), dtype=bool)  # [B, x, y]
        occ[rows[:, None], self.pos[..., 0], self.pos[..., 1]] = True
        for i in range(self.num_agents):
            cur = self.pos[:, i]
            target = np.clip(cur + MOVES[actions[:, i]], self.AGENT_LOW, self.AGENT_HIGH)
            moves = ~occ[rows, target[:, 0], target[:, 1]]
            if not moves.any():
                continue
            r = rows[moves]
            occ[r, cur[moves, 0], cur[moves, 1]] = False
            occ[r, target[moves, 0], target[moves, 1]] = True
            self.pos[moves, i] = target[moves]

    @property
    def _gem_side(self) -> int:
        return self.GEM_HIGH - self.GEM_LOW + 1

    def _cell_coords(self, cells: np.ndarray) -> np.ndarray:
        """Gem-area cell index ``-> (x, y)`` grid coordinates (int64)."""
        side = self._gem_side
        return np.stack([cells % side, cells // side], axis=-1) + self.GEM_LOW

    def _taken(self, gems: bool) -> np.ndarray:
        """``[B, side * side]``: gem-area cells holding an agent (or, if ``gems``, a gem).

        Cell index ``c`` is the cell ``(GEM_LOW + c % side, GEM_LOW + c // side)``.
        """
        b = self.batch_size
        full = np.zeros((b, self.GRID, self.GRID), dtype=bool)  # [B, x, y]
        full[np.arange(b)[:, None], self.pos[..., 0], self.pos[..., 1]] = True
        if gems:
            full[np.arange(b)[:, None], self.gems[..., 0], self.gems[..., 1]] = True
        area = full[:, self.GEM_LOW : self.GEM_HIGH + 1, self.GEM_LOW : self.GEM_HIGH + 1]
        return area.transpose(0, 2, 1).reshape(b, -1)

    def _respawn(self, picked: np.ndarray) -> None:
        """Move every picked gem to a random gem cell free of gems and agents.

        One random ranking of the free cells per copy; the picked gems take its first
        cells in gem index order (a uniform draw without replacement).
        """
        rows = np.flatnonzero(picked.any(axis=1))
        keys = self.rng.random((len(rows), self._gem_side**2))
        keys[self._taken(gems=True)[rows]] = -1.0
        ranking = np.argsort(-keys, axis=1, kind="stable")  # free cells first
        sub = picked[rows]
        r, g = np.nonzero(sub)
        rank = (np.cumsum(sub, axis=1) - 1)[r, g]
        self.gems[rows[r], g] = self._cell_coords(ranking[r, rank])
        if self.rules != "legacy":  # a fresh type, drawn after the cells
            self.gem_type[rows[r], g] = self.rng.integers(0, self.num_types, len(r))

    def _observe(self) -> np.ndarray:
        """Observations ``[B, N, 2 + T + 25 T]`` from the current state."""
        b, n, t, v = self.batch_size, self.num_agents, self.num_types, self.VIEW
        grid = np.zeros((b, self.GRID, self.GRID, t), dtype=np.float32)
        rows = np.arange(b)[:, None]
        grid[rows, self.gems[..., 0], self.gems[..., 1], self.gem_type] = 1.0
        offsets = np.arange(-v, v + 1)
        xs = self.pos[..., 0, None, None] + offsets[None, :]  # [B,N,1,W]: dx fastest
        ys = self.pos[..., 1, None, None] + offsets[:, None]  # [B,N,W,1]: dy outer
        view = grid[np.arange(b)[:, None, None, None], xs, ys]  # [B,N,W,W,T]
        obs = np.empty((b, n, 2 + t + view[0, 0].size), dtype=np.float32)
        obs[..., 0:2] = (self.pos - self.AGENT_LOW) / (self.AGENT_HIGH - self.AGENT_LOW)
        obs[..., 2 : 2 + t] = self.held
        obs[..., 2 + t :] = view.reshape(b, n, -1)
        return obs


def _requirements(num_agents: int | None, requirements: object) -> np.ndarray:
    """The validated ``[N, T]`` requirement table for the requested team."""
    if requirements is None:
        n = len(DEFAULT_REQUIREMENTS) if num_agents is None else num_agents
        n = check_positive_int("num_agents", n)
        if n > len(DEFAULT_REQUIREMENTS):
            raise ValueError(
                f"manufacturing has default requirements for at most "
                f"{len(DEFAULT_REQUIREMENTS)} agents, got num_agents={n}; pass a "
                f"`requirements` array with one row per agent for a bigger team"
            )
        return DEFAULT_REQUIREMENTS[:n].copy()

    req = np.asarray(requirements)
    if req.ndim != 2 or req.size == 0 or not np.issubdtype(req.dtype, np.integer):
        raise ValueError(
            "requirements must be a non-empty 2-D integer array [agents, gem types], "
            f"got shape {req.shape} and dtype {req.dtype}"
        )
    if (req < 0).any() or not (req.sum(axis=1) > 0).all():
        raise ValueError(
            "requirements must be >= 0 with at least one gem in every row, "
            f"got {req.tolist()}"
        )
    if num_agents is not None and check_positive_int("num_agents", num_agents) != len(req):
        raise ValueError(
            f"num_agents ({num_agents}) must equal the number of requirement rows "
            f"({len(req)})"
        )
    return req.astype(np.int64)
