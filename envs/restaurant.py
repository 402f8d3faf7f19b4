"""The restaurant game (McAleer et al., Sec. 4.3 and Figure 1), played one-shot again and again.

Rules (the shared ones of one-shot games are in envs/one_shot.py):

- N agents (default 10) each reserve one of ``restaurants`` restaurants (default 300;
  action r). Restaurant r seats ``c_r`` agents, drawn uniformly from
  ``1 .. max_capacity`` (default 10).
- With ``n_r`` agents at r, each gets its utility ``u_i(r)`` if ``n_r <= c_r``, else
  ``(c_r / n_r)·u_i(r)``, the expected value of snagging a table (the paper's formal
  rule; Figure 1's lottery has this expectation).
- ``u_i(r) = u^k_i(r) + a·u^u_i(r)``: the known part u^k, which the platform (the
  mediator) knows, and the agent's private part u^u, i.i.d. Uniform[0, 1) as in the paper;
  ``a`` (``--game-options a=2``) is 0 by default (the paper runs a = 0 and a = 2).
- **Decision: u^k.** The paper's u^k are a Yelp recommender's predicted ratings, which
  are not available here. Predicted ratings share a restaurant-wide component, which is
  what makes good restaurants contested, so ``u^k_i(r) = w·q_r + (1 − w)·t_ir`` with a
  restaurant quality q_r and the agent's taste t_ir, both i.i.d. Uniform[0, 1), and
  ``w = quality`` (default 0.5; 0 gives i.i.d. known utilities).

The mediator's model is the known part only (:class:`RestaurantModel`: u^k and the
capacities); the private part u^u never leaves the game.

The **central planner** (the paper's reference) assigns every agent a seat maximising
the total known utility, i.e. [Pareto Eq. 4] with D = P and no Pareto constraint
(:func:`best_seating`: ``scipy.optimize.linear_sum_assignment`` on one column per seat).
``reference_metrics()`` reports per episode the true welfare of that assignment
(``planner_return``) and the true welfare of the seating that maximises the true
utilities, a planner with full information (``oracle_return``). A seating is optimal
among all joint actions when there are at least N seats: at an over-full restaurant
the c_r agents with the highest utility there earn at least the c_r/n_r share of all,
and the others can take free seats worth >= 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.optimize import linear_sum_assignment

from envs.base import check_positive_int
from envs.one_shot import OneShotGame


def congested(values: np.ndarray, capacities: np.ndarray, joint: np.ndarray) -> np.ndarray:
    """Each agent's utility ``[..., N]`` of joint actions ``[..., N]`` when agent i values
    restaurant r at ``values[i, r]``: in full within capacity, else the c_r/n_r share."""
    joint = np.asarray(joint)
    shape, n = joint.shape, joint.shape[-1]
    flat = joint.reshape(-1, n)
    counts = np.zeros((flat.shape[0], capacities.shape[0]), np.int64)
    np.add.at(counts, (np.arange(flat.shape[0])[:, None], flat), 1)
    crowd = np.take_along_axis(counts, flat, axis=1)
    share = np.minimum(1.0, capacities[flat] / crowd)
    return (share * values[np.arange(n), flat]).reshape(shape)


def seat_columns(free: np.ndarray, limit: int) -> np.ndarray:
    """One column per free seat, each naming its restaurant; at most ``limit`` seats per
    restaurant (more can never be used by ``limit`` agents)."""
    return np.repeat(np.arange(free.shape[0]), np.minimum(np.maximum(free, 0), limit))


def best_seating(values: np.ndarray, capacities: np.ndarray) -> np.ndarray:
    """The restaurants ``[N]`` of a seating (at most c_r agents at r) maximising
    Σ_i values[i, r_i]; needs at least N seats."""
    n = values.shape[0]
    if capacities.sum() < n:
        raise ValueError(f"a seating needs at least {n} seats, there are {capacities.sum()}")
    cols = seat_columns(capacities, n)
    rows, seat = linear_sum_assignment(values[:, cols], maximize=True)
    out = np.empty(n, np.int64)
    out[rows] = cols[seat]
    return out


@dataclass(frozen=True)
class RestaurantModel:
    """What the platform knows: ``known[i, r]`` = u^k_i(r) and ``capacities[r]``."""

    known: np.ndarray
    capacities: np.ndarray

    @property
    def num_agents(self) -> int:
        return self.known.shape[0]

    @property
    def num_actions(self) -> int:
        return self.known.shape[1]

    def utilities(self, joint: np.ndarray) -> np.ndarray:
        """The known utilities u^k (with crowding) of joint actions ``[..., N]``: ``[..., N]``."""
        return congested(self.known, self.capacities, joint)


class RestaurantGame(OneShotGame):
    """The restaurant game; see the module docstring for the rules."""

    name = "restaurant"
    min_agents = 1

    def __init__(
        self,
        num_agents: int = 10,
        batch_size: int = 1,
        restaurants: int = 300,
        max_capacity: int = 10,
        a: float = 0.0,
        quality: float = 0.5,
        payoff_seed: int | None = None,
        episode_length: int = 1,
        seed: int | None = None,
        observation: str | None = None,
    ) -> None:
        self.num_actions = check_positive_int("restaurants", restaurants)
        check_positive_int("max_capacity", max_capacity)
        if not (isinstance(a, (int, float)) and a >= 0):
            raise ValueError(f"a must be a number >= 0, got {a!r}")
        if not (isinstance(quality, (int, float)) and 0 <= quality <= 1):
            raise ValueError(f"quality must be in [0, 1], got {quality!r}")
        super().__init__(num_agents, batch_size, episode_length, seed, payoff_seed, observation)
        n, r = self.num_agents, self.num_actions
        rng = self.payoff_rng()
        capacities = rng.integers(1, max_capacity + 1, r)
        known = quality * rng.random(r) + (1 - quality) * rng.random((n, r))
        private = rng.random((n, r))
        for arr in (capacities, known, private):
            arr.setflags(write=False)
        self.a, self.quality = float(a), float(quality)
        self.capacities, self.known, self.private = capacities, known, private
        self.model = RestaurantModel(known, capacities)
        self.reset()

    @property
    def values(self) -> np.ndarray:
        """True utilities u_i(r) = u^k_i(r) + a·u^u_i(r), ``[N, R]``."""
        return self.known + self.a * self.private

    def utilities(self, joint: np.ndarray) -> np.ndarray:
        return congested(self.values, self.capacities, joint)

    def mediator_model(self) -> RestaurantModel:
        """The known part u^k and the capacities; never the private part."""
        return self.model

    @cached_property
    def planner(self) -> np.ndarray:
        """The central planner's seating ``[N]``: maximal total known utility."""
        return best_seating(self.known, self.capacities)

    def reference_metrics(self) -> dict[str, float]:
        """True welfare per episode of the central planner and of a planner with full
        information (none when there are fewer seats than agents)."""
        return dict(self._references)

    @cached_property
    def _references(self) -> dict[str, float]:
        if self.capacities.sum() < self.num_agents:
            return {}
        oracle = best_seating(self.values, self.capacities)
        welfare = {"planner_return": self.utilities(self.planner).sum(), "oracle_return": self.utilities(oracle).sum()}
        return {k: float(v * self.episode_length) for k, v in welfare.items()}
