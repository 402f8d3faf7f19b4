"""Actor and critic networks shared by agents, the world and the federation.

Every agent's policy ``θ_i``, the utilitarian policy ``ω`` and the egalitarian policy
``ω̄`` are the same network (:func:`make_actor`), so their parameters can be mixed
exactly as FPF and LMF require. The critic is private to each agent and never shared.

Algorithm 1 of the FPF paper initialises ``θ_i = ω = ω̄ = 0``. A zero MLP cannot learn
(every hidden unit stays identical), so every policy instead starts from the *same*
seeded random initialisation, :func:`initial_policy`, which keeps the property the
paper needs: all policies begin at one common point.
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import ArrayRecord
from torch import nn


def mlp(in_dim: int, out_dim: int, hidden: int, layers: int, out_gain: float) -> nn.Sequential:
    """Tanh MLP with orthogonal initialisation (CleanRL's PPO convention)."""
    dims = [in_dim] + [hidden] * layers
    modules: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        modules += [_orthogonal(nn.Linear(a, b), np.sqrt(2)), nn.Tanh()]
    modules.append(_orthogonal(nn.Linear(dims[-1], out_dim), out_gain))
    return nn.Sequential(*modules)


def _orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def make_actor(obs_dim: int, num_actions: int, hidden: int, layers: int) -> nn.Sequential:
    """Policy network: observation -> action logits."""
    return mlp(obs_dim, num_actions, hidden, layers, out_gain=0.01)


def make_critic(in_dim: int, hidden: int, layers: int) -> nn.Sequential:
    """Value network: observation (or global state) -> scalar value."""
    return mlp(in_dim, 1, hidden, layers, out_gain=1.0)


def initial_policy(obs_dim: int, num_actions: int, hidden: int, layers: int, seed: int) -> nn.Sequential:
    """The common starting point of every policy in a run (see module docstring)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make_actor(obs_dim, num_actions, hidden, layers)


def to_record(module: nn.Module) -> ArrayRecord:
    """A module's parameters as a Flower ArrayRecord (a detached copy)."""
    return ArrayRecord({k: v.detach().clone() for k, v in module.state_dict().items()})


def load_record(module: nn.Module, record: ArrayRecord) -> None:
    """Load an ArrayRecord produced by :func:`to_record` into ``module``."""
    module.load_state_dict(record.to_torch_state_dict(), strict=True)


def flat(record: ArrayRecord) -> np.ndarray:
    """All arrays of a record concatenated into one float64 vector (for norms and tests)."""
    return np.concatenate([a.ravel() for a in record.to_numpy_ndarrays()]).astype(np.float64)
