"""Federation strategies, chosen by name. One registry; a new strategy is one module plus one line."""

from __future__ import annotations

from flwr.app import ArrayRecord

from strategies.base import FederationStrategy
from strategies.fpf import FPF, DnF
from strategies.fedavg import FedAvg
from strategies.independent import Independent
from strategies.jamql import JAMQL, JAMQLNaive
from strategies.leaders import Alternating, Fixed, Vote
from strategies.lmf import LMF
from strategies.md import IQL, Centralised, MechanismDesign, MechanismDesignNoMRP
from strategies.pareto import Pareto, Punishing
from strategies.reward_sharing import AverageReward, InequityAversion, MinimumReward, Spite

_REGISTRY: dict[str, type[FederationStrategy]] = {
    "independent": Independent,
    "fpf": FPF,
    "dnf": DnF,
    "avg": AverageReward,
    "min": MinimumReward,
    "ia": InequityAversion,
    "fedavg": FedAvg,
    "lmf": LMF,
    "pareto": Pareto,
    "punishing": Punishing,
    "md": MechanismDesign,
    "md-nomrp": MechanismDesignNoMRP,
    "iql": IQL,
    "cen": Centralised,
    "spite": Spite,
    "jamql": JAMQL,
    "jamql-naive": JAMQLNaive,
    "fixed-leader": Fixed,
    "alternating-leader": Alternating,
    "vote-leader": Vote,
}


def available() -> list[str]:
    return sorted(_REGISTRY)


def strategy_class(name: str) -> type[FederationStrategy]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown strategy '{name}'; valid choices: {', '.join(available())}")
    return _REGISTRY[name]


def make(cfg, game, init: ArrayRecord) -> FederationStrategy:
    """Build the strategy ``cfg.strategy`` for ``game`` from a validated RunConfig."""
    return strategy_class(cfg.strategy).from_config(cfg, game, init)
