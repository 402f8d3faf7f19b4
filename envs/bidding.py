"""Multi-agent bidding (the mechanism-design paper's Figure 4, right; c_h = 5, c_i = 1).

A repeated sealed-bid auction of one item of hidden value ``item_value`` = c_h:

- Every step each agent abstains (action 0) or bids b ∈ {1, ..., ``max_bid``} (action b).
- Every bidder pays the bidding cost ``bid_cost`` = c_i. The highest bid wins (ties: a
  uniform draw from the game's generator among the tied); the winner gets c_h - b.
  So r_i = 1[i wins]·(c_h - b_i) - c_i·1[b_i > 0]; bids are paid to the auctioneer, who is
  not a player, so the collective return of a step is c_h - b_win - c_i·#bidders.
- The episode ends after ``episode_length`` steps (10); the state carries t/T, so that
  last step reports ``terminated`` (no bootstrap past the horizon, envs/base.py).

Social optimum: one agent bids the lowest price and the others abstain, c_h - 1 - c_i per
step (3 with the defaults; ``optimal_welfare``, per episode, beside the returns, and
``bidders_per_step``, the mean number of bidders per step of the last episode). Each
bidder is tempted to outbid (c_h - 2 - c_i = 2 > 0 for the overbidder) and competition
wastes the bidding costs: the paper's social dilemma.

Global state: the previous step's bids one-hot (N·(max_bid + 1), zeros at the first step)
and t/T. Observation: the state and the agent's own index one-hot (envs.escape_room).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.base import BatchedGame
from envs.escape_room import with_agent_id


class Bidding(BatchedGame):
    """Batched repeated auction; see the module docstring."""

    name = "bidding"
    horizon_terminal = True  # t/T is in the state: the last step ends the game (envs/base.py)
    min_agents = 2

    def __init__(self, num_agents: int = 4, batch_size: int = 1, item_value: float = 5.0, bid_cost: float = 1.0,
                 max_bid: int = 4, episode_length: int = 10, seed: int | None = None,
                 observation: str | None = None) -> None:
        if isinstance(max_bid, bool) or not isinstance(max_bid, (int, np.integer)) or max_bid < 1:
            raise ValueError(f"max_bid must be an integer >= 1, got {max_bid!r}")
        if item_value < 0 or bid_cost < 0:
            raise ValueError(f"item_value (c_h) and bid_cost (c_i) must be >= 0, got {item_value} and {bid_cost}")
        self.num_actions = int(max_bid) + 1
        self.item_value, self.bid_cost, self.max_bid = float(item_value), float(bid_cost), int(max_bid)
        super().__init__(num_agents, batch_size, episode_length, seed, observation=observation)
        self.last: np.ndarray  # [B, N] previous bids, -1 before the first step
        self.reset()

    def optimal_welfare(self) -> float:
        return self.episode_length * max(self.item_value - 1.0 - self.bid_cost, 0.0)

    def reference_metrics(self) -> dict[str, float]:
        """The optimum, and how many agents bid per step in the episode played last (the
        paper's claim: competition converges to a single bidder)."""
        out = {"optimal_welfare": self.optimal_welfare()}
        return out | ({"bidders_per_step": self._bids / self._steps} if self._steps else {})

    def _state_space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.num_agents * self.num_actions + 1,), np.float32)

    def _observation_space(self) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.num_agents * (self.num_actions + 1) + 1,), np.float32)

    def _state(self, t: int | None = None) -> np.ndarray:
        eye = np.vstack([np.eye(self.num_actions, dtype=np.float32), np.zeros((1, self.num_actions), np.float32)])
        onehot = eye[self.last].reshape(self.batch_size, -1)  # row -1: zeros
        frac = np.full((self.batch_size, 1), (self.t if t is None else t) / self.episode_length, np.float32)
        return np.concatenate([onehot, frac], axis=1)

    def _reset(self) -> np.ndarray:
        self.last = np.full((self.batch_size, self.num_agents), -1, np.int64)
        self._bids, self._steps = 0.0, 0
        return with_agent_id(self._state(), self.num_agents)

    def _step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        bidders = actions > 0
        top = actions.max(axis=1, keepdims=True)
        tied = bidders & (actions == top)
        draw = np.where(tied, self.rng.random(actions.shape), -1.0)
        wins = tied & (np.arange(self.num_agents) == draw.argmax(axis=1)[:, None])
        rewards = wins * (self.item_value - actions) - self.bid_cost * bidders
        self.last = actions.astype(np.int64)
        self._bids, self._steps = self._bids + float(bidders.sum()), self._steps + self.batch_size
        obs = with_agent_id(self._state(self.t + 1), self.num_agents)
        return obs, rewards.astype(np.float32), np.zeros(actions.shape, bool)
