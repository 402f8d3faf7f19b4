"""Networks built from an observation space, shared by agents, the world and the federation.

One builder, :func:`network`, turns a gymnasium observation space into a module that maps
a batch of observations ``[..., *space.shape]`` to ``out_dim`` outputs (action logits for
PPO, Q-values for DQN, a value for critics):

- ``Box`` of rank 1 (feature vectors): a tanh MLP;
- ``Box`` of rank 3 (images ``H x W x C``, channels last as games emit them): a small
  CNN (two 3x3 convolutions, ReLU), then the MLP; uint8 pixels are scaled to [0, 1]
  (x / 255), float32 images with finite bounds to [0, 1] by their smallest and largest
  bound (e.g. PettingZoo's pursuit, 0..30), unbounded ones are left as they are;
- ``Discrete(n)``: a one-hot encoding, then the MLP;
- ``table=True`` with ``Discrete(n)``: a plain table ``q[n, out_dim]`` (tabular Q-learning).

Every agent's policy ``θ_i``, the utilitarian policy ``ω`` and the egalitarian policy ``ω̄``
are built by the same call, so their parameters can be mixed as FPF and LMF require.

Algorithm 1 of the FPF paper initialises ``θ_i = ω = ω̄ = 0``. A zero MLP cannot learn
(every hidden unit stays identical), so every policy instead starts from the *same*
seeded random initialisation (:func:`initial_network`), which keeps the property the
paper needs: all policies begin at one common point. ``init_weights="per-agent"`` gives
each agent a seeded initialisation of its own instead (:func:`policy_seed`), as the
authors' code does (every network is built with its own random weights).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from flwr.app import ArrayRecord
from gymnasium import spaces
from torch import nn
from typing import ClassVar
from clients.settings import Settings, setting


@dataclass
class NetworkConfig(Settings):
    """Size of every agent's networks (policy, critic, Q-network)."""

    title: ClassVar[str] = "Networks (ppo, dqn)"

    hidden: int = setting(256, "units in each hidden layer of the MLPs", ge=1, le=65_536)
    layers: int = setting(2, "hidden layers of the MLPs", ge=1, le=64)
    channels: int = setting(16, "CNN: channels of the first convolution (the second has twice as many)", ge=1,
                            le=4096)
    init_weights: str = setting("shared", "agents' initial policies: shared (one seeded initialisation for all, "
                                          "[FPF Alg. 1 line 2]) or per-agent (each agent its own seeded draw, the "
                                          "authors' code)", choices=("shared", "per-agent"))


def policy_seed(net: NetworkConfig, seed: int, agent: int) -> int:
    """The seed of ``agent``'s initial policy: the run's seed when every agent shares one
    initialisation (``init_weights="shared"``), else a draw of its own from (seed, agent)."""
    if net.init_weights == "shared":
        return seed
    return int(np.random.SeedSequence([seed, agent, 1_000_003]).generate_state(1)[0] >> 1)


def mlp(in_dim: int, out_dim: int, hidden: int, layers: int, out_gain: float) -> nn.Sequential:
    """Tanh MLP with orthogonal initialisation (CleanRL's PPO convention)."""
    dims = [in_dim] + [hidden] * layers
    modules: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        modules += [_orthogonal(nn.Linear(a, b), np.sqrt(2)), nn.Tanh()]
    modules.append(_orthogonal(nn.Linear(dims[-1], out_dim), out_gain))
    return nn.Sequential(*modules)


_BUILDING = threading.local()  # .restoring: the networks built now are loaded right after


@contextmanager
def restoring() -> Iterator[None]:
    """Build networks whose parameters are all loaded right after (a learner restored from
    its storage): their layers keep PyTorch's default initialisation instead of the
    orthogonal one, a QR decomposition per layer and most of a learner's build time (a
    1,000-agent round rebuilds 1,000 learners). Every initialisation here draws from a
    forked RNG (:func:`initial_network`, the learners), so nothing else changes."""
    previous = getattr(_BUILDING, "restoring", False)
    _BUILDING.restoring = True
    try:
        yield
    finally:
        _BUILDING.restoring = previous


def _orthogonal(layer: nn.Linear | nn.Conv2d, gain: float) -> nn.Module:
    if getattr(_BUILDING, "restoring", False):
        return layer
    nn.init.orthogonal_(layer.weight, gain)
    assert layer.bias is not None  # the layers here are built with a bias
    nn.init.zeros_(layer.bias)
    return layer


class OneHot(nn.Module):
    """Discrete observation index -> one-hot float vector (works under torch.func.vmap)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.long().unsqueeze(-1) == torch.arange(self.n, device=x.device)).float()


class Pixels(nn.Module):
    """Images ``[..., H, W, C]`` -> CNN features ``[..., F]``: uint8 ones scaled by 1/255,
    float ones by ``(x - low) / scale``."""

    def __init__(self, shape: tuple[int, int, int], channels: int, low: float | None = None,
                 scale: float | None = None):
        super().__init__()
        h, w, c = shape
        self.shape = shape
        self.low, self.scale = low, scale  # None: uint8 pixels
        self.conv = nn.Sequential(
            _orthogonal(nn.Conv2d(c, channels, 3, padding=1), np.sqrt(2)), nn.ReLU(),
            _orthogonal(nn.Conv2d(channels, 2 * channels, 3, padding=1), np.sqrt(2)), nn.ReLU(), nn.Flatten())
        self.features = 2 * channels * h * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-3]
        x = x.reshape(-1, *self.shape).permute(0, 3, 1, 2).float()
        x = x / 255.0 if self.low is None or self.scale is None else (x - self.low) / self.scale
        return self.conv(x).reshape(*lead, self.features)


class Table(nn.Module):
    """A table ``q[n, out]`` indexed by a discrete observation (tabular Q-learning)."""

    def __init__(self, n: int, out_dim: int):
        super().__init__()
        self.q = nn.Parameter(torch.zeros(n, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q[x.long()]


def network(space: spaces.Space, out_dim: int, net: NetworkConfig, out_gain: float = 1.0,
            table: bool = False) -> nn.Module:
    """The module for ``space`` (see the module docstring)."""
    if isinstance(space, spaces.Discrete):
        if table:
            return Table(int(space.n), out_dim)
        return nn.Sequential(OneHot(int(space.n)), mlp(int(space.n), out_dim, net.hidden, net.layers, out_gain))
    if table:
        raise ValueError(f"a table needs a Discrete observation space, got {space}")
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        return mlp(int(space.shape[0]), out_dim, net.hidden, net.layers, out_gain)
    if isinstance(space, spaces.Box) and len(space.shape) == 3:
        height, width, depth = (int(s) for s in space.shape)
        low, scale = None, None
        if space.dtype != np.uint8:  # scalar bounds: the agents rebuild the space from them (clients.protocol)
            low, high = float(np.min(space.low)), float(np.max(space.high))
            low, scale = (low, high - low) if np.isfinite([low, high]).all() and high > low else (0.0, 1.0)
        pixels = Pixels((height, width, depth), net.channels, low, scale)
        return nn.Sequential(pixels, mlp(pixels.features, out_dim, net.hidden, net.layers, out_gain))
    raise ValueError(f"no network for observation space {space}: use a feature vector (Box of rank 1), "
                     "an image (Box H x W x C) or Discrete")


def initial_network(space: spaces.Space, out_dim: int, net: NetworkConfig, seed: int, out_gain: float = 0.01,
                    table: bool = False) -> nn.Module:
    """The common starting point of every policy of a run (see the module docstring)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return network(space, out_dim, net, out_gain, table)


def to_record(module: nn.Module) -> ArrayRecord:
    """A module's parameters as a Flower ArrayRecord (a detached copy)."""
    return ArrayRecord({k: v.detach().clone() for k, v in module.state_dict().items()})


def load_record(module: nn.Module, record: ArrayRecord) -> None:
    """Load an ArrayRecord produced by :func:`to_record` into ``module``."""
    module.load_state_dict(record.to_torch_state_dict(), strict=True)


def flat(record: ArrayRecord) -> np.ndarray:
    """All arrays of a record concatenated into one float64 vector (for norms and tests)."""
    return np.concatenate([a.ravel() for a in record.to_numpy_ndarrays()]).astype(np.float64)
