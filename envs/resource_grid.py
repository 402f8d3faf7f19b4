r"""Resource collection with "unfair" resources that some agents prefer (the grid game of
JAM-QL, "Emergence of Fair Leaders via Mediators in MARL"; the paper gives neither map nor
payoffs, so both are designed here and stated in docs/results/jamql/).

Rules (defaults in brackets):

- An open ``size x size`` grid [5], N agents [2..4], actions 0 stay, 1 up, 2 down,
  3 left, 4 right (a move off the grid stays). Agents start on distinct random cells.
- ``fair`` [2] fair and ``unfair`` [2] unfair resources lie on distinct free cells; a
  collected resource reappears at once on a random free cell (no agent, no resource), so
  their numbers stay constant.
- Collecting (stepping onto a resource):

  - **fair**: every agent gets +1 (a shared good);
  - **unfair**: the collector gets ``greed`` [2] if it is *greedy*, else ``1/2``; every
    other agent loses ``harm`` [1/2].

  The first ``greedy`` agents [N // 2, at least 1] are greedy: alone, they prefer unfair
  resources (2 > 1); the others prefer fair ones (1 > 1/2). Minimum welfare wants fair
  collection only.
- **Leaders move first.** Agents move one after another: this step's leaders (given by
  :meth:`ResourceGrid.leader_rules` before the step; none otherwise) in index order, then
  the others in a random order. A move onto a cell an agent already occupies (after the
  moves so far) fails (the agent stays), so a leader wins a contested cell or resource.
- Finite horizon: the last step (``episode_length`` [25]) is terminal.

Observation (``vector``, 4·size² + 1 floats): the agent's own cell (one-hot), the other
agents' cells, fair resources, unfair resources (0/1 maps, row-major) and t/T. Global
state: every agent's cell one-hot (N·size²), the two resource maps and t/T.

The game's part of a mediator's state (``mediator_state``; strategies/leaders.py,
[JAM-QL augmented state]): the agents' cells, :math:`m = \sum_i p_i\,C^i` with
:math:`p_i` agent i's cell (row-major) and :math:`C` = size², so ``mediator_states`` =
:math:`C^N` (625 on the default 5×5 grid with 2 agents). **Decision**: the resources'
cells are left out. With them the default grid has 625·C(23, 2)·C(21, 2) ≈ 3.3·10⁷ states,
too many for a table whose entries must each be visited to be learnt; the agents' cells
are where a contest for a cell, which the leader wins, can arise.

``reference_metrics()`` reports the episode just played (the world calls it after each
rollout): fair and unfair resources collected per episode and ``unfair_share``.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.base import BatchedGame

MOVES = np.array([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)], dtype=np.int64)


class ResourceGrid(BatchedGame):
    """Batched resource collection with fair and unfair resources; see the module docstring."""

    name = "resource-grid"
    min_agents = 2
    max_agents = 4
    num_actions = 5
    observation_modes = ("vector",)
    fair_action = None  # fairness is which resource is collected: ``unfair_share``

    def __init__(self, num_agents: int = 2, batch_size: int = 1, size: int = 5, fair: int = 2, unfair: int = 2,
                 greedy: int | None = None, greed: float = 2.0, harm: float = 0.5, episode_length: int = 25,
                 seed: int | None = None, observation: str | None = None) -> None:
        super().__init__(num_agents, batch_size, episode_length, seed, observation=observation)
        self.size = int(size)
        self.fair, self.unfair = int(fair), int(unfair)
        self.greedy = max(1, self.num_agents // 2) if greedy is None else int(greedy)
        if self.size < 2 or self.fair < 0 or self.unfair < 0 or not 0 <= self.greedy <= self.num_agents:
            raise ValueError(f"size >= 2, fair, unfair >= 0 and 0 <= greedy <= N needed, got size={size}, "
                             f"fair={fair}, unfair={unfair}, greedy={greedy}")
        if self.num_agents + self.fair + self.unfair > self.size ** 2:
            raise ValueError(f"{self.num_agents} agents and {self.fair + self.unfair} resources do not fit a "
                             f"{self.size}x{self.size} grid")
        self.greed, self.harm = float(greed), float(harm)
        self._leaders: np.ndarray | None = None  # [B, N] bool: who moves first in the next step
        self.pos: np.ndarray  # [B, N] flat cells
        self.kind: np.ndarray  # [B, size²] 0 empty, 1 fair, 2 unfair
        self.collected = np.zeros((batch_size, 2))
        self.reset()

    @property
    def mediator_states(self) -> int:
        return (self.size ** 2) ** self.num_agents

    def mediator_state(self, state: np.ndarray) -> np.ndarray:
        """The agents' cells as one index m ``[...]`` (module docstring) from global states
        ``[..., state_dim]``."""
        C, N = self.size ** 2, self.num_agents
        state = np.asarray(state)
        cells = state[..., : N * C].reshape(*state.shape[:-1], N, C).argmax(axis=-1)
        return (cells * C ** np.arange(N)).sum(axis=-1).astype(np.int64)

    def leader_rules(self, leaders: np.ndarray) -> None:
        """The rules that favour leaders: in the next step the agents where ``leaders``
        (bool ``[B, N]``) is True move first, in index order (for that step only)."""
        self._leaders = np.asarray(leaders, bool)

    # ---------------------------------------------------------------- spaces
    def _observation_space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (4 * self.size ** 2 + 1,), np.float32)

    def _state_space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, ((self.num_agents + 2) * self.size ** 2 + 1,), np.float32)

    def _state(self) -> np.ndarray:
        B, N, C = self.batch_size, self.num_agents, self.size ** 2
        agents = np.zeros((B, N, C), np.float32)
        agents[np.arange(B)[:, None], np.arange(N)[None], self.pos] = 1.0
        time = np.full((B, 1), self.t / self.episode_length, np.float32)
        return np.concatenate([agents.reshape(B, -1), (self.kind == 1), (self.kind == 2), time], 1).astype(np.float32)

    # ---------------------------------------------------------------- dynamics
    def _reset(self) -> np.ndarray:
        B, C = self.batch_size, self.size ** 2
        cells = np.argsort(self.rng.random((B, C)), axis=1)
        self.pos = cells[:, : self.num_agents].copy()
        self.kind = np.zeros((B, C), np.int64)
        rows = np.arange(B)[:, None]
        self.kind[rows, cells[:, self.num_agents: self.num_agents + self.fair]] = 1
        self.kind[rows, cells[:, self.num_agents + self.fair: self.num_agents + self.fair + self.unfair]] = 2
        self.collected = np.zeros((B, 2))
        self._leaders = None
        return self._observe()

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        B, N, S = self.batch_size, self.num_agents, self.size
        lead = np.zeros((B, N), bool) if self._leaders is None else self._leaders
        # move order: leaders by index, then followers in a random order
        order = np.argsort(np.where(lead, np.arange(N), N + self.rng.random((B, N))), axis=1)
        rewards = np.zeros((B, N), np.float32)
        greedy = np.arange(N) < self.greedy
        rows = np.arange(B)
        for k in range(N):
            i = order[:, k]
            r, c = np.divmod(self.pos[rows, i], S)
            dr, dc = MOVES[actions[rows, i]].T
            nr, nc = np.clip(r + dr, 0, S - 1), np.clip(c + dc, 0, S - 1)
            target = nr * S + nc
            taken = (self.pos == target[:, None]).any(axis=1) & (target != self.pos[rows, i])
            new = np.where(taken, self.pos[rows, i], target)
            self.pos[rows, i] = new
            kind = self.kind[rows, new]
            fair, unfair = kind == 1, kind == 2
            rewards += fair[:, None].astype(np.float32)
            mine = np.arange(N)[None] == i[:, None]  # [B, N]
            gain = np.where(greedy[i], self.greed, 0.5)
            rewards += unfair[:, None] * np.where(mine, gain[:, None], -self.harm).astype(np.float32)
            self.collected[:, 0] += fair
            self.collected[:, 1] += unfair
            hit = fair | unfair
            if hit.any():
                self._respawn(rows[hit], kind[hit], new[hit])
        self._leaders = None  # a role holds for one step
        end = self.t + 1 >= self.episode_length
        terminated = np.full((B, N), end, dtype=bool)
        return self._observe(step=self.t + 1), rewards, terminated

    def _respawn(self, copies: np.ndarray, kinds: np.ndarray, cells: np.ndarray) -> None:
        """Move the collected resources of ``copies`` to random free cells."""
        for b, kind, cell in zip(copies, kinds, cells):
            self.kind[b, cell] = 0
            free = np.ones(self.size ** 2, bool)
            free[self.pos[b]] = False
            free[self.kind[b] > 0] = False
            self.kind[b, self.rng.choice(np.flatnonzero(free))] = kind

    def _observe(self, step: int = 0) -> np.ndarray:
        B, N, C = self.batch_size, self.num_agents, self.size ** 2
        here = np.zeros((B, N, C), np.float32)
        here[np.arange(B)[:, None], np.arange(N)[None], self.pos] = 1.0
        others = here.sum(axis=1, keepdims=True) - here
        maps = np.stack([(self.kind == 1), (self.kind == 2)], 1).astype(np.float32).reshape(B, 1, 2 * C)
        time = np.full((B, N, 1), step / self.episode_length, np.float32)
        return np.concatenate([here, others, np.repeat(maps, N, axis=1), time], axis=2)

    def reference_metrics(self) -> dict[str, float]:
        fair, unfair = self.collected.mean(axis=0)
        return {"fair_collected": float(fair), "unfair_collected": float(unfair),
                "unfair_share": float(unfair / (fair + unfair)) if fair + unfair > 0 else 0.0}
