"""The learner registry: which algorithm an agent trains its own policy with.

=========  ======================  ===============================================
name       policy kind             policy network (what federations may mix)
=========  ======================  ===============================================
``ppo``    softmax                 actor (MLP / CNN / one-hot MLP, from the space)
``dqn``    epsilon-greedy          online Q-network
``q-table``  epsilon-greedy        table ``q[n_states, A]`` (Discrete observations)
``ddpg``   deterministic           actor ``tanh(f(o))`` (continuous games only)
=========  ======================  ===============================================

Every learner implements :class:`clients.learner.Learner` (the base class, apart from this
registry so that the learners need not import it). Its hyperparameters are one dataclass
(``PPOConfig``, ``DQNConfig``, ``QTableConfig``, ``DDPGConfig``): the run configuration embeds it and the
server sends its fields to the agent (:func:`hyper_record`), so there is one definition.

Agents may use different learners in one run (``--learner ppo:0-4,dqn:5-9``,
:func:`parse_assignment`); strategies that mix parameters refuse that.

Learners from outside the package (envs/plugins.py): an installed package's
``fedgames.learners`` entry point or an import path ``module.path:Class``, naming a
:class:`clients.learner.Learner` subclass; :func:`check_learner` holds it to the
interface. Its hyperparameters are its ``config_class`` dataclass with the defaults (none
when it has no ``config_class``). The name travels in the messages, so each agent's
ClientApp resolves it where it runs.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from gymnasium import spaces

from clients.ddpg import DDPGConfig, DDPGLearner
from clients.dqn import DQNConfig, DQNLearner
from clients.learner import Learner
from clients.networks import NetworkConfig, policy_seed
from clients.ppo import PPOConfig, PPOLearner
from clients.policies import CONTINUOUS_KINDS, KINDS
from clients.qtable import QTableConfig, QTableLearner
from envs.plugins import LEARNERS, PluginError, installed, lookup, missing_overrides

#: learner name -> (learner class, hyperparameter dataclass)
_REGISTRY: dict[str, tuple[type[Learner], type]] = {
    "ppo": (PPOLearner, PPOConfig), "dqn": (DQNLearner, DQNConfig), "q-table": (QTableLearner, QTableConfig),
    "ddpg": (DDPGLearner, DDPGConfig),
}

#: the learners this package ships (their state_dict holds every parameter of their networks)
BUILTIN = frozenset(_REGISTRY)


@dataclasses.dataclass
class NoSettings:
    """The hyperparameters of a learner from outside the package that declares none."""


#: the methods a learner must define itself (clients.learner.Learner only raises in them)
REQUIRED = ("__init__", "policy_network", "train", "state_dict", "load_state_dict")


def available() -> list[str]:
    """The built-in learners and those installed packages register, sorted."""
    return sorted(set(_REGISTRY) | set(installed(LEARNERS)))


def builtin(name: str) -> bool:
    return name in _REGISTRY


def learner_class(name: str) -> type[Learner]:
    return _entry(name)[0]


def config_class(name: str) -> type:
    return _entry(name)[1]


def _entry(name: str) -> tuple[type[Learner], type]:
    return lookup(name, _REGISTRY, LEARNERS, "--learner", _learner_entry,
                  lambda: f"unknown learner '{name}'; valid choices: {', '.join(available())}, or a Learner "
                          "subclass module.path:Class")


def _learner_entry(obj: object, what: str) -> tuple[type[Learner], type]:
    cls = check_learner(obj, what)
    return cls, cls.config_class or NoSettings


def check_learner(obj: object, what: str) -> type[Learner]:
    """``obj`` if it is a learner an agent can train, else PluginError naming what is
    missing (the interface: clients/learner.py)."""
    if not isinstance(obj, type):
        raise PluginError(f"{what}: {obj!r} is not a class; name a subclass of clients.learner.Learner")
    if not issubclass(obj, Learner):
        bases = ", ".join(k.__qualname__ for k in obj.__mro__[1:-1]) or "object"
        raise PluginError(f"{what}: {obj.__qualname__} is not a subclass of clients.learner.Learner "
                          f"(its bases: {bases})")
    problems = []
    if missing := missing_overrides(obj, Learner, REQUIRED):
        problems.append(f"it does not define {', '.join(missing)}")
    if obj.kind not in KINDS:
        problems.append(f"its 'kind' is {obj.kind!r}, not a policy kind ({', '.join(KINDS)}: how the world turns "
                        "its policy's outputs into actions)")
    config = obj.config_class
    if config is not None and not dataclasses.is_dataclass(config):
        problems.append(f"its 'config_class' {config!r} is not a dataclass")
    if problems:
        raise PluginError(f"{what}: {obj.__qualname__} does not fit the learner interface: {'; '.join(problems)}")
    return obj


def misfit(learners: list[str], continuous: bool) -> str | None:
    """The first of ``learners`` whose policy kind does not fit a game with continuous actions
    (``continuous``) or with discrete ones; None when all fit."""
    return next((name for name in dict.fromkeys(learners)
                 if (learner_class(name).kind in CONTINUOUS_KINDS) != continuous), None)


def make(name: str, space: spaces.Space, num_actions: int, cfg: Any, net: NetworkConfig, seed: int,
         agent: int) -> Learner:
    """Agent ``agent``'s learner; its seed is :func:`clients.networks.policy_seed`'s (the run's
    seed unless every agent draws its own initial policy)."""
    learner = learner_class(name)(space, num_actions, cfg, net, policy_seed(net, seed, agent), agent)
    learner.name = name  # its acting spec names the learner as the run does (a plug-in by its import path)
    return learner


def parse_assignment(spec: str, num_agents: int) -> list[str]:
    """Each agent's learner from ``"ppo"`` (everyone) or ``"ppo:0-4,dqn:5-9"``.

    Ranges are inclusive; every agent must be named exactly once.
    """
    text = str(spec).strip()
    if ":" not in text or ("," not in text and not _assigns(text)):  # one learner (maybe module.path:Class)
        learner_class(text)
        return [text] * num_agents
    out: list[str | None] = [None] * num_agents
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if ":" not in part:
            raise ValueError(f"learner part '{part}' must read NAME:IDS, e.g. ppo:0-4")
        name, ids = part.rsplit(":", 1) if _assigns(part) else part.split(":", 1)
        learner_class(name)
        for agent in _ids(ids, part):
            if not 0 <= agent < num_agents:
                raise ValueError(f"learner '{spec}' names agent {agent}; valid agent ids: 0..{num_agents - 1}")
            if out[agent] is not None:
                raise ValueError(f"learner '{spec}' assigns agent {agent} twice")
            out[agent] = name
    missing = [i for i, n in enumerate(out) if n is None]
    if missing:
        raise ValueError(f"learner '{spec}' assigns no learner to agents {missing}")
    return [n for n in out if n is not None]  # every agent has one (checked above)


def _assigns(part: str) -> bool:
    """Whether ``part`` reads NAME:IDS (a learner and agent ids), not module.path:Class:
    it ends in ids, or what precedes the colon is a learner's name."""
    return bool(re.fullmatch(r".+:\s*\d+\s*(-\s*\d+\s*)?", part)) or part.split(":", 1)[0] in available()


def _ids(text: str, part: str) -> list[int]:
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-", 1))
            return list(range(lo, hi + 1))
        return [int(text)]
    except ValueError:
        raise ValueError(f"learner part '{part}' must name agent ids like 0-4 or 7") from None


def hyper_record(obj: Any) -> dict:
    """A hyperparameter dataclass as kebab-case config entries."""
    return {f.name.replace("_", "-"): getattr(obj, f.name) for f in dataclasses.fields(obj)}


def hyper_from(cls: type, values) -> Any:
    """Rebuild a hyperparameter dataclass from :func:`hyper_record`'s entries."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f.name.replace("_", "-")
        if key in values:
            default, value = getattr(cls(), f.name), values[key]
            if isinstance(default, bool) and isinstance(value, str):
                value = value.lower() in ("true", "1", "yes")
            kwargs[f.name] = type(default)(value)
    return cls(**kwargs)
