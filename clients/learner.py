"""The learner base class: what every learner offers to the agent's ClientApp.

The learners (clients/ppo.py, clients/dqn.py, clients/qtable.py) subclass :class:`Learner`
and use the helpers here; the registry that names them (``ppo``, ``dqn``, ``q-table``) is
clients/learners.py, which imports them, so this module imports none of them.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord
from gymnasium import spaces
from torch import nn

from clients.anchors import Anchors
from clients.experience import Experience
from clients.networks import NetworkConfig, to_record
from clients.policies import ActingSpec
from clients.reshaping import Reshaper


class Learner:
    """What every learner offers to the agent's ClientApp (see clients/ppo.py for one)."""

    name: str = "learner"
    kind: str = ""
    #: the network that acts and that federations may pull, mix or replace
    policy: nn.Module
    #: the dataclass of its hyperparameters, the ``cfg`` it is built with, for learners from
    #: outside the package (clients/learners.py); the built-in ones are registered with theirs
    config_class: type | None = None

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

    def stack_key(self, exp: Experience, anchors: Anchors) -> Any:
        """What must agree for this agent to train in one stacked pass with others of the same
        class (clients/stacking.py): hashable, or None to train on its own (the default)."""
        return None

    @classmethod
    def train_stacked(cls, jobs: list) -> list[dict[str, float]]:
        """``train`` of every ``clients.stacking.Job`` in ``jobs`` (learners of this class with
        equal :meth:`stack_key`) in one pass; each job's diagnostics, in order."""
        return [job.learner.train(job.exp, job.anchors, seed=job.seed) for job in jobs]

    def to(self, device: str) -> "Learner":
        """Move the learner's networks to ``device`` (``"cpu"`` or ``"cuda"``); a learner whose
        state is not a set of torch networks stays on the CPU. Returns the learner."""
        return self

    def epsilon(self) -> float:
        """Exploration rate the agent acts with next (0 for softmax policies)."""
        return 0.0

    def acting(self) -> tuple[ArrayRecord, ActingSpec]:
        """What the world needs to act for this agent: the policy's parameters and spec."""
        return to_record(self.policy), ActingSpec(self.name, self.kind, self.epsilon())

    def scale_lr(self, scale: float) -> None:
        """Scale the learning rates by ``scale`` relative to the configured ones (LMF's α_t)."""

    def policy_optimizer(self) -> torch.optim.Optimizer | None:
        """The optimiser of :attr:`policy`'s parameters (LMF's gradient-steps exchange steps
        with it); None: the learner has none."""
        return None

    def last_gradient(self) -> dict[str, np.ndarray]:
        """The gradient of :attr:`policy`'s parameters as its last optimiser step left it
        (after clipping), zeros where there is none."""
        return gradients(self.policy)

    def gradient_step(self, gradient: dict[str, np.ndarray]) -> None:
        """One step of :meth:`policy_optimizer` with ``gradient`` (by parameter name) as the
        policy's gradient; the policy's own last gradient is kept (:meth:`last_gradient`)."""
        opt = self.policy_optimizer()
        if opt is None:
            raise ValueError(f"the {self.name} learner has no optimiser to step with its neighbours' gradients "
                             "(--lmf-mode gradient-steps needs ppo or dqn agents)")
        check_gradient(self.policy, gradient, "gradient", "policy")
        step_with(opt, self.policy, gradient)

    def reshape_with(self, reshaper: Reshaper | None) -> None:
        """Recompute this round's training rewards on every minibatch with ``reshaper``
        (the mechanism-design mediator's minibatch mode, clients/reshaping.py); None: train
        on the rewards of the experience. Only learners with a replay can."""
        if reshaper is not None:
            raise ValueError(f"the {self.name} learner cannot recompute rewards per minibatch "
                             "(--md-reshape-time minibatch needs dqn agents)")

    def state_dict(self) -> dict:
        """Everything needed to continue learning (networks, optimisers, buffers)."""
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError


def gradients(module: nn.Module) -> dict[str, np.ndarray]:
    """The gradient of ``module``'s parameters by name (float64), zeros where there is none."""
    return {name: (np.zeros(tuple(p.shape)) if p.grad is None else p.grad.detach().cpu().numpy().astype(np.float64))
            for name, p in module.named_parameters()}


def check_gradient(module: nn.Module, gradient: dict[str, np.ndarray], what: str, owner: str) -> None:
    """ValueError unless ``gradient`` names exactly ``module``'s parameters."""
    named = {name for name, _ in module.named_parameters()}
    if set(gradient) != named:
        raise ValueError(f"a neighbour's {what} has parameters {sorted(gradient)}, the {owner} {sorted(named)}")


def step_with(opt: torch.optim.Optimizer, module: nn.Module, gradient: dict[str, np.ndarray]) -> None:
    """One step of ``opt`` with ``gradient`` (checked: :func:`check_gradient`) as ``module``'s
    gradient; the module's own gradient is put back after."""
    named = dict(module.named_parameters())
    own = {name: p.grad for name, p in named.items()}
    for name, p in named.items():
        p.grad = torch.as_tensor(np.asarray(gradient[name]), dtype=p.dtype, device=p.device).reshape(p.shape)
    opt.step()
    for name, p in named.items():
        p.grad = own[name]


def snapshot(owner: Any, *names: str) -> dict:
    """A copy of the state dicts of ``owner``'s named networks and optimisers (an optimiser's
    state dict shares tensors with the live optimiser, hence the copy)."""
    return {name: _copied(getattr(owner, name).state_dict()) for name in names}


def _copied(value: Any) -> Any:
    """A deep copy of a state dict: tensors cloned (``copy.deepcopy`` of a tensor costs ~40
    times a clone, and a learner's state holds dozens), containers rebuilt, the rest deep-copied."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return type(value)((k, _copied(v)) for k, v in value.items())  # dict or OrderedDict
    if isinstance(value, (list, tuple)):
        return type(value)(_copied(v) for v in value)
    return copy.deepcopy(value)


def restore(owner: Any, state: dict) -> None:
    """Load what :func:`snapshot` took back into ``owner``'s networks and optimisers."""
    for name, value in state.items():
        getattr(owner, name).load_state_dict(value)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
