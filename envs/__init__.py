"""Games for the simulations, behind one registry.

Adding a game is one module with a ``BatchedGame`` subclass plus one line in
``_REGISTRY``. ``make_batched`` builds the batched game used for training;
``make`` builds a single-copy PettingZoo ``ParallelEnv`` view of it.

Games from outside the package (envs/plugins.py): an installed package's
``fedgames.games`` entry point, or an import path ``module.path:name``, naming either
a ``BatchedGame`` subclass or a factory of a PettingZoo ``ParallelEnv`` with discrete
actions (e.g. ``pettingzoo.sisl.pursuit_v5:parallel_env``), which is played through the
adapter (``envs.pettingzoo_adapter.FactoryGame``); its keywords are the game options.
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any

import numpy as np

from envs.bandwidth import Bandwidth
from envs.base import BatchedGame
from envs.bidding import Bidding
from envs.cleanup import Cleanup
from envs.dilemma import IteratedDilemma
from envs.escape_room import EscapeRoom
from envs.harvest import Harvest
from envs.job import JobScheduling
from envs.manufacturing import ManufacturingPlant
from envs.matching import MatchingGame
from envs.matrix import MatrixGame
from envs.matthew import MatthewEffect
from envs.mpe import CovertCommunication, KeepAway, PhysicalDeception, PredatorPrey
from envs.normal_form import NormalFormGame
from envs.parallel import BatchedParallelEnv
from envs.pettingzoo_adapter import FactoryGame
from envs.plugins import GAMES, PluginError, installed, lookup
from envs.resource_grid import ResourceGrid
from envs.restaurant import RestaurantGame

_REGISTRY: dict[str, type[BatchedGame]] = {
    "bandwidth": Bandwidth,
    "bidding": Bidding,
    "escape-room": EscapeRoom,
    "cleanup": Cleanup,
    "dilemma": IteratedDilemma,
    "harvest": Harvest,
    "job": JobScheduling,
    "manufacturing": ManufacturingPlant,
    "matching": MatchingGame,
    "matrix": MatrixGame,
    "matthew": MatthewEffect,
    "mpe-crypto": CovertCommunication,
    "mpe-deception": PhysicalDeception,
    "mpe-keep-away": KeepAway,
    "mpe-predator-prey": PredatorPrey,
    "normal-form": NormalFormGame,
    "resource-grid": ResourceGrid,
    "restaurant": RestaurantGame,
}

__all__ = [
    "Bandwidth",
    "BatchedGame",
    "Bidding",
    "EscapeRoom",
    "BatchedParallelEnv",
    "Cleanup",
    "Harvest",
    "IteratedDilemma",
    "JobScheduling",
    "ManufacturingPlant",
    "MatchingGame",
    "MatrixGame",
    "MatthewEffect",
    "CovertCommunication",
    "KeepAway",
    "PhysicalDeception",
    "PredatorPrey",
    "NormalFormGame",
    "ResourceGrid",
    "RestaurantGame",
    "FactoryGame",
    "agents_of",
    "available",
    "builtin",
    "make",
    "make_batched",
    "options",
    "takes_learners",
    "trial",
]


def available() -> list[str]:
    """Names of the registered games and of those installed packages register, sorted."""
    return sorted(set(_REGISTRY) | set(installed(GAMES)))


def builtin(name: str) -> bool:
    """Whether ``name`` is one of this package's games."""
    return name in _REGISTRY


def _game_class(name: str) -> type[BatchedGame]:
    return lookup(name, _REGISTRY, GAMES, "--env", _game_plugin,
                  lambda: f"unknown env {name!r}; valid choices: {', '.join(available())}, "
                          "or a PettingZoo ParallelEnv factory module.path:name")


def _game_plugin(obj: object, what: str) -> type[BatchedGame]:
    """The game a plug-in names: a BatchedGame subclass, or a factory wrapped by the adapter."""
    if isinstance(obj, type) and issubclass(obj, BatchedGame):
        return obj
    if not callable(obj):
        raise PluginError(f"{what}: {obj!r} is neither a BatchedGame subclass nor a factory of a "
                          "PettingZoo ParallelEnv")
    return type("FactoryGame", (FactoryGame,), {"factory": staticmethod(obj), "name": what.split(" ", 1)[1]})


def takes_learners(name: str) -> bool:
    """Whether the game ``name`` is a PettingZoo factory whose learning agents a run names."""
    return issubclass(_game_class(name), FactoryGame)


def agents_of(name: str, **kwargs: Any) -> int | None:
    """How many agents learn in the PettingZoo factory game ``name`` with these options
    (its ``learners``, by default every agent); None for other games, whose number of
    agents a run chooses."""
    cls = _game_class(name)
    if not issubclass(cls, FactoryGame):
        return None
    return cls(batch_size=1, **kwargs).num_agents


def trial(game: BatchedGame, steps: int = 10) -> None:
    """Play ``steps`` steps of uniformly random actions, then reset, so that a game from
    outside the package shows its errors (agents that come and go, a step that raises)
    as a ``ValueError`` before a run starts."""
    try:
        for _ in range(min(steps, game.episode_length)):
            size = (game.batch_size, game.num_agents)
            actions = (game.rng.uniform(-1, 1, size=(*size, *game.action_shape)).astype(np.float32) if game.continuous
                       else game.rng.integers(game.num_actions, size=size))
            if game.step(actions)[2].all():
                break
        game.reset()
    except ValueError:
        raise
    except Exception as err:
        raise ValueError(f"{game.name}: playing the game failed: {type(err).__name__}: {err}") from None


def _check_num_agents(name: str, cls: type[BatchedGame], num_agents: Any) -> None:
    if isinstance(num_agents, bool) or not isinstance(num_agents, numbers.Integral):
        raise ValueError(f"{name} needs an integer number of agents, got {num_agents!r}")
    if num_agents < cls.min_agents:
        raise ValueError(
            f"{name} needs at least {cls.min_agents} agent(s), got {num_agents}; "
            f"valid choices: {_agent_range(cls)}"
        )
    if cls.max_agents is not None and int(num_agents) > cls.max_agents:
        raise ValueError(
            f"{name} takes at most {cls.max_agents} agent(s), got {num_agents}; "
            f"valid choices: {_agent_range(cls)}"
        )


def _agent_range(cls: type[BatchedGame]) -> str:
    if cls.max_agents is None:
        return f"num_agents >= {cls.min_agents}"
    return f"{cls.min_agents} <= num_agents <= {cls.max_agents}"


def _build(
    name: str, num_agents: int | None, batch_size: int, kwargs: dict[str, Any]
) -> BatchedGame:
    cls = _game_class(name)
    if num_agents is None:
        return cls(batch_size=batch_size, **kwargs)
    if not issubclass(cls, FactoryGame):  # a factory game checks its learners itself
        _check_num_agents(name, cls, num_agents)
    return cls(num_agents=num_agents, batch_size=batch_size, **kwargs)


def make_batched(
    name: str, num_agents: int, batch_size: int = 1, **kwargs: Any
) -> BatchedGame:
    """Build the game ``name`` with ``num_agents`` agents and ``batch_size`` copies.

    Extra keyword arguments go to the game's constructor (e.g. ``episode_length``,
    ``seed``, ``observation``, ``payoffs`` for "matrix").
    ``num_agents=None`` means the game's default.
    """
    return _build(name, num_agents, batch_size, kwargs)


def options(name: str) -> list[str]:
    """The constructor keywords of the game ``name`` a run may set (``--game-options``)."""
    taken = {"self", "num_agents", "batch_size", "seed", "observation"}
    cls = _game_class(name)
    if issubclass(cls, FactoryGame):
        return cls.option_names()
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params if p.name not in taken and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def make(name: str, num_agents: int | None = None, **kwargs: Any) -> BatchedParallelEnv:
    """Build a single-copy PettingZoo view of the game ``name``.

    ``num_agents=None`` means the game's default; extra keyword arguments go to the
    game's constructor.
    """
    if kwargs.get("batch_size", 1) != 1:
        raise ValueError("make() builds one copy; use make_batched() for batch_size > 1")
    kwargs.pop("batch_size", None)
    return BatchedParallelEnv(_build(name, num_agents, 1, kwargs))


def random_policy_returns(name: str, num_agents: int, episodes: int = 64, seed: int = 0, **kwargs: Any) -> np.ndarray:
    """Each agent's return over one episode of uniformly random actions, in ``episodes``
    copies of the game ``name``: ``[episodes, num_agents]`` (the level a learner must beat;
    ``kwargs`` go to the game's constructor, e.g. ``rules``)."""
    game = make_batched(name, num_agents, batch_size=episodes, seed=seed, **kwargs)
    rng = np.random.default_rng(seed)
    total = np.zeros((episodes, num_agents))
    for _ in range(game.episode_length):
        total += game.step(rng.integers(0, game.num_actions, (episodes, num_agents)))[1]
    return total
