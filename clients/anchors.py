"""The anchors a federation pulls an agent's policy toward (FPF's ω and ω̄, paper Eq. 5, 9).

Every learner that supports a federation's pull (PPO, DQN) applies it to its *policy*
network (the actor, or the Q-network) and nothing else; critics stay private.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Anchors:
    """The parameters a federation pulls the agent toward, with the pull weights it sent."""

    omega: dict[str, torch.Tensor] | None = None
    omega_bar: dict[str, torch.Tensor] | None = None
    weight_u: float = 0.0  # the coefficient of (θ - ω) per step, e.g. αλ_u for FPF
    weight_e: float = 0.0  # the coefficient of (θ - ω̄)

    @property
    def active(self) -> bool:
        return any(a is not None and w > 0 for w, a in self._pairs())

    def _pairs(self):
        return ((self.weight_u, self.omega), (self.weight_e, self.omega_bar))

    @torch.no_grad()
    def pull(self, named_params: list[tuple[str, torch.Tensor]], lr: float) -> None:
        """One plain gradient step on the penalty: θ <- θ - lr·[w_u(θ - ω) + w_e(θ - ω̄)]."""
        pairs = [(w, a) for w, a in self._pairs() if a is not None and w > 0]
        if not pairs:
            return
        for name, p in named_params:
            p -= lr * sum(w * (p - a[name]) for w, a in pairs)

    def penalty(self, named_params: list[tuple[str, torch.Tensor]]) -> torch.Tensor:
        """w_u/2·||θ - ω||² + w_e/2·||θ - ω̄||² (zero where an anchor is absent)."""
        total = torch.zeros(())
        for weight, anchor in self._pairs():
            if anchor is not None and weight > 0:
                total = total + weight / 2 * proximal(named_params, anchor)
        return total


def proximal(named_params: list[tuple[str, torch.Tensor]], anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """||θ - anchor||² over all parameters, matched by name."""
    if set(anchor) != {name for name, _ in named_params}:
        raise ValueError(f"anchor has parameters {sorted(anchor)}, policy has {sorted(n for n, _ in named_params)}")
    return sum(((p - anchor[name]) ** 2).sum() for name, p in named_params)
