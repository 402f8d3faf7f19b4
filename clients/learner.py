"""The learner base class: what every learner offers to the agent's ClientApp.

The learners (clients/ppo.py, clients/dqn.py, clients/qtable.py) subclass :class:`Learner`
and use the helpers here; the registry that names them (``ppo``, ``dqn``, ``q-table``) is
clients/learners.py, which imports them, so this module imports none of them.
"""

from __future__ import annotations

import copy
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
