r"""Pareto and punishing mediators as strategies (McAleer et al., "Improving Social Welfare
While Preserving Autonomy via a Pareto Mediator"), for one-shot games with a utility model.

Every agent's action gains a delegation bit (strategies/mediator.py: the choice
c = a + A·d); agents learn alone on their own rewards, as under ``independent`` (the
paper's ε-greedy learners with ε = 1/t: ``--learner q-table --q-epsilon 1
--q-epsilon-schedule 1/t``, t counting rounds of B plays). After
everyone has chosen, the world asks the mediator for actions and plays them for the
delegators D only: :math:`s'_j = s_j` for :math:`j \notin D`.

- **Pareto mediator** ([Pareto Eq. 3]): when two or more agents delegate,
  :math:`s' = \arg\max_{s'} \sum_{i \in D} u_i(s')` subject to :math:`u_i(s') \ge u_i(s)`
  for all :math:`i \in D`. **Decision: fewer than two delegators** — the submitted actions
  stand, as the paper states before [Pareto Eq. 3] and uses in Proposition 1's proof and Table 1
  ("if up to one agent delegates the game is unchanged"); a lone delegator is not
  best-responded for.
- **Punishing mediator** ([Pareto Eqs. 1-2]): when everyone delegates, maximise
  :math:`\sum_{i \in P} u_i(s')` ([Pareto Eq. 2]); when some but not all delegate, choose the
  delegators' actions minimising the non-delegators' welfare
  :math:`\sum_{j \notin D} u_j(s')` ([Pareto Eq. 1], which the paper states in words: "minimizes
  ... the social welfare of non-delegating agents"); nobody delegating changes nothing.

Sequential games (Cleanup) have no utility model; there the mediator plays trained joint
policies for the delegators (strategies/policy_mediator.py, ``--mediator-policy``,
``--punishing-policy``, ``--delegate first|any``).

**What a mediator may know**: only the game's ``mediator_model()`` (envs/one_shot.py),
given at construction; it never sees the game itself. Normal-form and matching games
give their true payoffs; the restaurant game only the known part u^k. ``state`` is not
needed (payoffs are fixed for a run).

Solvers, by the model's type: payoff tables exactly by enumeration, vectorised over the
copies (strategies/pareto_enumeration.py); the matching game exactly by maximum-weight
matchings (strategies/pareto_matching.py); the restaurant game by the assignment problem
of [Pareto Eq. 4] (strategies/pareto_assignment.py); the last two copy by copy.

Metrics (``end_of_rollout``) besides the world's delegation rates: ``mediated_share``,
the share of plays in which the mediator acted (enough delegators), and
``changed_share``, the share of delegators' actions it changed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from envs.matching import MatchingModel
from envs.normal_form import PayoffTable
from envs.restaurant import RestaurantModel
from strategies import pareto_assignment, pareto_enumeration, pareto_matching
from strategies.base import FederationStrategy, RunSettings
from strategies.mediator import Mediator

SOLVERS: dict[type, Callable[..., np.ndarray]] = {
    PayoffTable: pareto_enumeration.mediate, MatchingModel: pareto_matching.mediate,
    RestaurantModel: pareto_assignment.mediate}


def solver_for(model, rule: str):
    """``solve(actions [B, N], delegate [B, N]) -> [B, N]`` for a game's utility model."""
    solve = SOLVERS.get(type(model))
    if solve is None:
        raise ValueError(f"no {rule} mediator for a {type(model).__name__}; games with one: "
                         "normal-form, matching, restaurant")
    if isinstance(model, PayoffTable):
        pareto_enumeration.check_size(model)
    return partial(solve, model, rule)


class DelegationMediator(Mediator):
    """Acts for the delegators of copies with at least ``minimum`` of them, by ``rule``."""

    delegation = True
    rule: str
    minimum: int

    def __init__(self, model):
        self.model = model
        self.solve = solver_for(model, self.rule)
        self._plays = self._acted = self._delegators = self._changed = 0

    def act_for(self, t: int, state: np.ndarray, actions: np.ndarray, delegate: np.ndarray,
                obs: np.ndarray | None = None) -> np.ndarray:
        acts = delegate.sum(axis=1) >= self.minimum
        out = actions.copy()
        if acts.any():
            out[acts] = self.solve(actions[acts], delegate[acts])
        out = np.where(delegate, out, actions)  # the world does the same; kept here for the metrics
        self._plays += len(actions)
        self._acted += int(acts.sum())
        self._delegators += int(delegate.sum())
        self._changed += int((out != actions).sum())
        return out

    def end_of_rollout(self) -> dict[str, float]:
        metrics = {"mediated_share": self._acted / max(self._plays, 1),
                   "changed_share": self._changed / max(self._delegators, 1)}
        self._plays = self._acted = self._delegators = self._changed = 0
        return metrics


class ParetoMediator(DelegationMediator):
    """[Pareto Eq. 3] when two or more agents delegate."""

    rule, minimum = "pareto", 2


class PunishingMediator(DelegationMediator):
    """[Pareto Eq. 2] when everyone delegates, [Pareto Eq. 1] when some do."""

    rule, minimum = "punishing", 1


class Mediated(FederationStrategy):
    """Independent learners whose actions carry a delegation bit to the strategy's mediator."""

    reads = ("delegation",)
    mediator_class: type[DelegationMediator]  # set by each subclass

    @classmethod
    def check_config(cls, cfg: RunSettings, game) -> None:
        """One-shot games: the utility model must have a solver. Sequential games: the
        joint policies must exist and fit the game."""
        model = getattr(game, "mediator_model", None)
        if model is None:
            cfg.delegation.load(cls.mediator_class.rule, game, cfg.seed)
        else:
            solver_for(model(), cls.mediator_class.rule)

    @classmethod
    def from_config(cls, cfg: RunSettings, game, init) -> "Mediated":
        strategy = super().from_config(cfg, game, init)
        if hasattr(game, "mediator_model"):
            strategy.mediator = cls.mediator_class(game.mediator_model())
        else:  # a sequential game: the mediator plays trained joint policies
            strategy.mediator = cfg.delegation.load(cls.mediator_class.rule, game, cfg.seed)
        return strategy


class Pareto(Mediated):
    name = "pareto"
    mediator_class = ParetoMediator


class Punishing(Mediated):
    name = "punishing"
    mediator_class = PunishingMediator
