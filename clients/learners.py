"""The learner registry: which algorithm an agent trains its own policy with.

=========  ======================  ===============================================
name       policy kind             policy network (what federations may mix)
=========  ======================  ===============================================
``ppo``    softmax                 actor (MLP / CNN / one-hot MLP, from the space)
``dqn``    epsilon-greedy          online Q-network
``q-table``  epsilon-greedy        table ``q[n_states, A]`` (Discrete observations)
=========  ======================  ===============================================

Every learner implements :class:`clients.learner.Learner` (the base class, apart from this
registry so that the learners need not import it). Its hyperparameters are one dataclass
(``PPOConfig``, ``DQNConfig``, ``QTableConfig``): the run configuration embeds it and the
server sends its fields to the agent (:func:`hyper_record`), so there is one definition.

Agents may use different learners in one run (``--learner ppo:0-4,dqn:5-9``,
:func:`parse_assignment`); strategies that mix parameters refuse that.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gymnasium import spaces

from clients.dqn import DQNConfig, DQNLearner
from clients.learner import Learner
from clients.networks import NetworkConfig
from clients.ppo import PPOConfig, PPOLearner
from clients.qtable import QTableConfig, QTableLearner

#: learner name -> (learner class, hyperparameter dataclass)
_REGISTRY: dict[str, tuple[type[Learner], type]] = {
    "ppo": (PPOLearner, PPOConfig), "dqn": (DQNLearner, DQNConfig), "q-table": (QTableLearner, QTableConfig),
}


def available() -> list[str]:
    return sorted(_REGISTRY)


def learner_class(name: str) -> type[Learner]:
    return _entry(name)[0]


def config_class(name: str) -> type:
    return _entry(name)[1]


def _entry(name: str):
    if name not in _REGISTRY:
        raise ValueError(f"unknown learner '{name}'; valid choices: {', '.join(available())}")
    return _REGISTRY[name]


def make(name: str, space: spaces.Space, num_actions: int, cfg: Any, net: NetworkConfig, seed: int,
         agent: int) -> Learner:
    return learner_class(name)(space, num_actions, cfg, net, seed, agent)


def parse_assignment(spec: str, num_agents: int) -> list[str]:
    """Each agent's learner from ``"ppo"`` (everyone) or ``"ppo:0-4,dqn:5-9"``.

    Ranges are inclusive; every agent must be named exactly once.
    """
    text = str(spec).strip()
    if ":" not in text:
        learner_class(text)
        return [text] * num_agents
    out: list[str | None] = [None] * num_agents
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if ":" not in part:
            raise ValueError(f"learner part '{part}' must read NAME:IDS, e.g. ppo:0-4")
        name, ids = part.split(":", 1)
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
