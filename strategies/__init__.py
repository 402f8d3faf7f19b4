"""Federation strategies, chosen by name. One registry; a new strategy is one module plus one line.

Strategies from outside the package (envs/plugins.py): an installed package's
``fedgames.strategies`` entry point or an import path ``module.path:Class``, naming a
:class:`strategies.base.FederationStrategy` subclass; :func:`check_strategy` holds it to
the contract.
"""

from __future__ import annotations

import inspect

from flwr.app import ArrayRecord

from clients import protocol
from envs.plugins import STRATEGIES, PluginError, installed, lookup
from strategies.base import FederationStrategy
from strategies.fpf import FPF, DnF
from strategies.fedavg import FedAvg
from strategies.independent import Independent
from strategies.jamql import JAMQL, JAMQLNaive
from strategies.leaders import Alternating, Fixed, Vote
from strategies.lmf import LMF
from strategies.mediator import Mediator
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
    """The built-in strategies and those installed packages register, sorted."""
    return sorted(set(_REGISTRY) | set(installed(STRATEGIES)))


def strategy_class(name: str) -> type[FederationStrategy]:
    return lookup(name, _REGISTRY, STRATEGIES, "--strategy", check_strategy,
                  lambda: f"unknown strategy '{name}'; valid choices: {', '.join(available())}, or a "
                          "FederationStrategy subclass module.path:Class")


def check_strategy(obj: object, what: str) -> type[FederationStrategy]:
    """``obj`` if it is a strategy the round loop can run, else PluginError naming what is
    missing (the contract: strategies/base.py)."""
    if not isinstance(obj, type):
        raise PluginError(f"{what}: {obj!r} is not a class; name a subclass of strategies.base.FederationStrategy")
    if not issubclass(obj, FederationStrategy):
        bases = ", ".join(k.__qualname__ for k in obj.__mro__[1:-1]) or "object"
        raise PluginError(f"{what}: {obj.__qualname__} is not a subclass of strategies.base.FederationStrategy "
                          f"(its bases: {bases}); the round loop calls that class's hooks")
    problems = []
    if inspect.isabstract(obj):
        problems.append(f"it leaves abstract methods unimplemented: {', '.join(sorted(obj.__abstractmethods__))}")
    if obj.name == FederationStrategy.name:
        problems.append("it sets no class attribute 'name' (the name in logs and tables)")
    if obj.share not in (protocol.SHARE_NONE, protocol.SHARE_PARAMETERS, protocol.SHARE_GRADIENTS):
        problems.append(f"its 'share' is {obj.share!r}, not one of protocol.SHARE_NONE, SHARE_PARAMETERS, "
                        "SHARE_GRADIENTS")
    if not isinstance(obj.reads, tuple) or not all(isinstance(g, str) for g in obj.reads):
        problems.append(f"its 'reads' is {obj.reads!r}, not a tuple of configuration group names")
    if obj.mediator_class is not None and not (isinstance(obj.mediator_class, type)
                                               and issubclass(obj.mediator_class, Mediator)):
        problems.append(f"its 'mediator_class' {obj.mediator_class!r} is not a strategies.mediator.Mediator "
                        "subclass")
    if problems:
        raise PluginError(f"{what}: {obj.__qualname__} does not fit the strategy contract: {'; '.join(problems)}")
    return obj


def make(cfg, game, init: ArrayRecord) -> FederationStrategy:
    """Build the strategy ``cfg.strategy`` for ``game`` from a validated RunConfig."""
    return strategy_class(cfg.strategy).from_config(cfg, game, init)
