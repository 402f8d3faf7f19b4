r"""The Stackelberg view of a game: followers observe what this step's leaders played.

``StackelbergView(game)`` wraps any ``BatchedGame`` whose observations are vectors or
discrete; games themselves know nothing about it. With ``N`` agents, ``A`` actions and
``leaders`` a bool ``[B, N]`` (who leads in each copy this step), the observation gets a
fixed slot for the leaders' actions:

- **Vector** ``Box((d,), float32)`` -> ``Box((d + N·A,), float32)``: the slot is the last
  ``N·A`` floats (bounds 0 and 1); block ``j`` (entries ``d + j·A .. d + j·A + A - 1``)
  is the one-hot of agent ``j``'s action if ``j`` leads, else zeros.
- **Discrete** ``Discrete(n)`` -> ``Discrete(n · (1 + N·A))`` (at most one leader per
  copy): the game's index ``o`` becomes ``o · (1 + N·A) + s`` with ``s = 0`` for "no
  leader's action" and ``s = 1 + j·A + a`` when leader ``j`` played ``a``; ``o`` is
  ``index // (1 + N·A)``.
- Image observations have no slot: the view refuses them (``ValueError``).

A Stackelberg step, as the world plays it (federation/world.py):

1. ``obs`` from ``reset``/``step`` have an **empty** slot (zeros, ``s = 0``); the leaders
   act on them.
2. ``observe_leaders(obs, leader_actions, leaders)`` returns the observations with every
   follower's slot holding the leaders' actions; a leader's own slot stays empty. The
   followers act on these.
3. ``set_leaders(leaders)`` then ``step(actions)``: a game whose rules depend on who
   leads (e.g. ``resource-grid``: leaders move first) defines the hook
   ``leader_rules(leaders)``, called by ``set_leaders``; it holds for the next step only.
   Other games ignore the leaders, and without ``set_leaders`` nobody leads.

Everything else (``reset``'s seeding, rewards, flags, ``state``/``state_space`` (no
slot), ``name``, ``num_agents``, ``num_actions``, ``batch_size``, ``episode_length``,
``reference_metrics``, game-specific attributes ...) is the wrapped game's, unchanged:
the view reads attributes through to ``game``. The dynamics, and so a seed's results,
are exactly the game's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from envs.base import BatchedGame


class StackelbergView:
    """A ``BatchedGame`` whose observations carry a slot for this step's leaders' actions;
    see the module docstring."""

    def __init__(self, game: BatchedGame) -> None:
        self.game = game
        base = game.observation_space
        slot = game.num_agents * game.num_actions
        if isinstance(base, spaces.Discrete):
            self.observation_space: spaces.Box | spaces.Discrete = spaces.Discrete(int(base.n) * (1 + slot))
        elif isinstance(base, spaces.Box) and len(base.shape) == 1 and base.dtype == np.float32:
            low = np.concatenate([base.low, np.zeros(slot, dtype=np.float32)])
            high = np.concatenate([base.high, np.ones(slot, dtype=np.float32)])
            self.observation_space = spaces.Box(low, high, dtype=np.float32)
        else:
            raise ValueError(f"stackelberg needs vector or discrete observations, got "
                             f"observation={getattr(game, 'observation', None)!r} with space {base}")

    def __getattr__(self, name: str) -> Any:
        """Everything the view does not define is the wrapped game's."""
        if name == "game":  # not set yet (e.g. while copying): no recursion
            raise AttributeError(name)
        return getattr(self.game, name)

    def __repr__(self) -> str:
        return f"StackelbergView({self.game!r})"

    # ------------------------------------------------------------------ the game, with empty slots

    def reset(self, seed: int | None = None) -> np.ndarray:
        """The game's ``reset`` with empty slots."""
        return self._empty_slot(self.game.reset(seed))

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The game's ``step`` with empty slots in the observations."""
        obs, rewards, terminated, truncated = self.game.step(actions)
        return self._empty_slot(obs), rewards, terminated, truncated

    # ------------------------------------------------------------------ leaders

    def set_leaders(self, leaders: np.ndarray) -> None:
        """Name the leaders (bool ``[B, N]``) of the next ``step``; a game with a
        ``leader_rules`` hook gets them (for that step only), other games ignore them."""
        leaders = self._check_leaders(leaders)
        rules = getattr(self.game, "leader_rules", None)
        if rules is not None:
            rules(leaders)

    def observe_leaders(self, obs: np.ndarray, leader_actions: np.ndarray, leaders: np.ndarray) -> np.ndarray:
        """A copy of ``obs`` whose followers' slots hold this step's leaders' actions.

        ``obs`` is ``[B, N, ...]`` as returned by ``reset``/``step``; ``leaders`` is bool
        ``[B, N]``; ``leader_actions`` is int ``[B, N]``, only read where ``leaders`` is
        True. Every leader's slot is left empty (a slot filled before is overwritten). With
        discrete observations a copy may have at most one leader.
        """
        b, n, a = self.game.batch_size, self.game.num_agents, self.game.num_actions
        space = self.observation_space
        obs, shape = np.asarray(obs), (b, n, *(space.shape or ()))
        if obs.shape != shape:
            raise ValueError(f"obs must have shape {shape}, got {obs.shape}")
        leaders = self._check_leaders(leaders)
        leader_actions = np.asarray(leader_actions)
        integer = np.issubdtype(leader_actions.dtype, np.integer)
        if leader_actions.shape != (b, n) or not integer:
            raise ValueError(f"leader_actions must be integers of shape {(b, n)}, got "
                             f"{leader_actions.dtype} {leader_actions.shape}")
        played = np.where(leaders, leader_actions, 0)
        if played.min() < 0 or played.max() >= a:
            raise ValueError(f"leader actions must be in [0, {a})")

        if isinstance(space, spaces.Discrete):
            count = leaders.sum(axis=1)
            if count.max() > 1:
                raise ValueError("discrete observations take at most one leader per copy")
            j = leaders.argmax(axis=1)
            s = np.where(count == 1, 1 + j * a + played[np.arange(b), j], 0)  # [B]
            s = np.where(leaders, 0, s[:, None])
            return (obs // (1 + n * a)) * (1 + n * a) + s.astype(np.int64)

        onehot = (np.arange(a) == played[..., None]) & leaders[..., None]  # [B, N, A]
        slot = np.where(leaders[..., None], False, onehot.reshape(b, 1, n * a))
        out = obs.astype(np.float32, copy=True)
        out[..., -n * a:] = slot
        return out

    # ------------------------------------------------------------------ helpers

    def _check_leaders(self, leaders: np.ndarray) -> np.ndarray:
        leaders = np.asarray(leaders)
        shape = (self.game.batch_size, self.game.num_agents)
        if leaders.shape != shape or leaders.dtype != bool:
            raise ValueError(f"leaders must be bool of shape {shape}, got {leaders.dtype} {leaders.shape}")
        return leaders

    def _empty_slot(self, obs: np.ndarray) -> np.ndarray:
        """The game's observations with an empty slot (zeros, ``s = 0``)."""
        slot = self.game.num_agents * self.game.num_actions
        if isinstance(self.observation_space, spaces.Discrete):
            return obs * (1 + slot)
        return np.concatenate([obs, np.zeros((*obs.shape[:2], slot), np.float32)], axis=-1)
