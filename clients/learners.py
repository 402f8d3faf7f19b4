"""The learner registry: which algorithm an agent trains its own policy with.

=========  ======================  ===============================================
name       policy kind             policy network (what federations may mix)
=========  ======================  ===============================================
``ppo``    softmax                 actor (MLP / CNN / one-hot MLP, from the space)
``dqn``    epsilon-greedy          online Q-network
``q-table``  epsilon-greedy        table ``q[n_states, A]`` (Discrete observations)
=========  ======================  ===============================================

Every learner implements :class:`Learner`. Its hyperparameters are one dataclass
(``PPOConfig``, ``DQNConfig``, ``QTableConfig``): the run configuration embeds it and the
server sends its fields to the agent (:func:`hyper_record`), so there is one definition.

Agents may use different learners in one run (``--learner ppo:0-4,dqn:5-9``,
:func:`parse_assignment`); strategies that mix parameters refuse that.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
from flwr.app import ArrayRecord
from gymnasium import spaces
from torch import nn

from clients.anchors import Anchors
from clients.experience import Experience
from clients.networks import NetworkConfig, to_record
from clients.policies import ActingSpec


class Learner:
    """What every learner offers to the agent's ClientApp (see clients/ppo.py for one)."""

    name: str = "learner"
    kind: str = ""
    #: the network that acts and that federations may pull, mix or replace
    policy: nn.Module

    def __init__(self, space: spaces.Space, num_actions: int, cfg: Any, net: NetworkConfig, seed: int, agent: int):
        raise NotImplementedError

    @classmethod
    def policy_network(cls, space: spaces.Space, num_actions: int, net: NetworkConfig, seed: int) -> nn.Module:
        """The common initial policy network of a run (the same for every agent)."""
        raise NotImplementedError

    @classmethod
    def initial_epsilon(cls, cfg: Any) -> float:
        """The exploration rate of the first round, before the agent has reported any (0: softmax)."""
        return 0.0

    def train(self, exp: Experience, anchors: Anchors, seed: int) -> dict[str, float]:
        """Learn from the agent's own experience; return scalar diagnostics."""
        raise NotImplementedError

    def epsilon(self) -> float:
        """Exploration rate the agent acts with next (0 for softmax policies)."""
        return 0.0

    def acting(self) -> tuple[ArrayRecord, ActingSpec]:
        """What the world needs to act for this agent: the policy's parameters and spec."""
        return to_record(self.policy), ActingSpec(self.name, self.kind, self.epsilon())

    def scale_lr(self, scale: float) -> None:
        """Scale the learning rates by ``scale`` relative to the configured ones (LMF's α_t)."""

    def state_dict(self) -> dict:
        """Everything needed to continue learning (networks, optimisers, buffers)."""
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError


def _registry() -> dict[str, tuple[type[Learner], type]]:
    from clients.dqn import DQNConfig, DQNLearner
    from clients.ppo import PPOConfig, PPOLearner
    from clients.qtable import QTableConfig, QTableLearner

    return {"ppo": (PPOLearner, PPOConfig), "dqn": (DQNLearner, DQNConfig), "q-table": (QTableLearner, QTableConfig)}


def available() -> list[str]:
    return sorted(_registry())


def learner_class(name: str) -> type[Learner]:
    return _entry(name)[0]


def config_class(name: str) -> type:
    return _entry(name)[1]


def _entry(name: str):
    registry = _registry()
    if name not in registry:
        raise ValueError(f"unknown learner '{name}'; valid choices: {', '.join(sorted(registry))}")
    return registry[name]


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
    return list(out)  # type: ignore[arg-type]


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


def snapshot(owner: Any, *names: str) -> dict:
    """A copy of the state dicts of ``owner``'s named networks and optimisers (an optimiser's
    state dict shares tensors with the live optimiser, hence the copy)."""
    return copy.deepcopy({name: getattr(owner, name).state_dict() for name in names})


def restore(owner: Any, state: dict) -> None:
    """Load what :func:`snapshot` took back into ``owner``'s networks and optimisers."""
    for name, value in state.items():
        getattr(owner, name).load_state_dict(value)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
