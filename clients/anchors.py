"""The anchors a federation pulls an agent's policy toward (FPF's ω and ω̄, [FPF Eq. 5, 9]).

The pull weights ``w_u``, ``w_e`` are the coefficients of ``(θ - ω)`` and ``(θ - ω̄)`` in
[FPF Eq. 9] (FPF sends ``αλ_u``, ``αλ_e``). How the pull is applied (``step``):

- ``"round"`` (default): once per round, after the agent's own training, as one step of
  the penalty's gradient: ``θ <- θ - w_u(θ - ω) - w_e(θ - ω̄)`` (:meth:`Anchors.interpolate`);
  ``repeats`` times when the round holds several federation events (FPF's ``pull_every``).
  [FPF Eq. 9] and [FPF Eq. 10] are the two partial gradients of the same penalty λ_u/2·||θ - ω||², so
  per round θ moves toward ω with the same coefficient αλ_u with which ω moves toward θ
  ([FPF Eq. 10]); the D&F authors' code applies it as this interpolation per federation event.
- ``"sgd"``: after every optimiser step of the local training, a plain gradient step
  ``θ <- θ - lr·[w_u(θ - ω) + w_e(θ - ω̄)]``; the learning rate multiplies the pull, so the
  pull per round is about ``lr`` times smaller than ``"round"``'s (measured ~3·10⁻⁵ of the
  distance per round with the paper's defaults: the pull is not felt).
- ``"adam"``: the penalty inside the loss stepped by the optimiser (FedProx convention).

Every learner applies it to its *policy* network (the actor, or the Q-network) and nothing
else; critics stay private.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import torch


@dataclass
class Anchors:
    """The parameters a federation pulls the agent toward, with the pull weights it sent."""

    omega: dict[str, torch.Tensor] | None = None
    omega_bar: dict[str, torch.Tensor] | None = None
    weight_u: float = 0.0  # the coefficient of (θ - ω) per step, e.g. αλ_u for FPF
    weight_e: float = 0.0  # the coefficient of (θ - ω̄)
    step: str = "round"  # "round", "sgd" or "adam" (see the module docstring)
    repeats: int = 1  # "round": how many times the pull is applied (federation events this round)

    STEPS = ("round", "sgd", "adam")

    def to(self, device: torch.device | str) -> "Anchors":
        """These anchors with ω and ω̄ on ``device`` (where the policy they pull lives)."""
        move = lambda a: None if a is None else {k: v.to(device) for k, v in a.items()}  # noqa: E731
        return replace(self, omega=move(self.omega), omega_bar=move(self.omega_bar))

    @property
    def active(self) -> bool:
        return any(a is not None and w > 0 for w, a in self._pairs())

    def _pairs(self):
        return ((self.weight_u, self.omega), (self.weight_e, self.omega_bar))

    @property
    def per_step(self) -> bool:
        """Pull after every optimiser step of the local training (``step="sgd"``)."""
        return self.active and self.step == "sgd"

    @property
    def in_loss(self) -> bool:
        """Add the penalty to the training loss (``step="adam"``)."""
        return self.active and self.step == "adam"

    @torch.no_grad()
    def interpolate(self, module: torch.nn.Module) -> float:
        """The per-round pull (``step="round"``): θ <- θ - w_u(θ - ω) - w_e(θ - ω̄), applied
        ``repeats`` times (once per federation event of the round).

        Returns the norm of the whole move ``||Δθ||``; does nothing (and returns 0) unless
        ``step == "round"``.
        """
        if not self.active or self.step != "round":
            return 0.0
        moved = 0.0
        pairs = [(w, a) for w, a in self._pairs() if a is not None and w > 0]
        for name, p in module.named_parameters():
            total = torch.zeros_like(p)
            for _ in range(self.repeats):
                delta = sum(w * (p - a[name]) for w, a in pairs)
                assert isinstance(delta, torch.Tensor)  # pairs is not empty: the anchors are active
                p.sub_(delta)  # in place (p -= delta)
                total += delta
            moved += float((total ** 2).sum())
        return moved ** 0.5

    @torch.no_grad()
    def pull(self, named_params: Sequence[tuple[str, torch.Tensor]], lr: float) -> None:
        """One plain gradient step on the penalty: θ <- θ - lr·[w_u(θ - ω) + w_e(θ - ω̄)]."""
        pairs = [(w, a) for w, a in self._pairs() if a is not None and w > 0]
        if not pairs:
            return
        for name, p in named_params:
            p -= lr * sum(w * (p - a[name]) for w, a in pairs)

    def penalty(self, named_params: Sequence[tuple[str, torch.Tensor]]) -> torch.Tensor:
        """w_u/2·||θ - ω||² + w_e/2·||θ - ω̄||² (zero where an anchor is absent)."""
        total = torch.zeros(())
        for weight, anchor in self._pairs():
            if anchor is not None and weight > 0:
                total = total + weight / 2 * proximal(named_params, anchor)
        return total


def proximal(named_params: Sequence[tuple[str, torch.Tensor]], anchor: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """||θ - anchor||² over all parameters, matched by name."""
    if set(anchor) != {name for name, _ in named_params}:
        raise ValueError(f"anchor has parameters {sorted(anchor)}, policy has {sorted(n for n, _ in named_params)}")
    total = sum(((p - anchor[name]) ** 2).sum() for name, p in named_params)
    return total if isinstance(total, torch.Tensor) else torch.zeros(())  # (no parameters: sum() is 0)
