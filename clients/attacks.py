"""Poisoned uploads: participants that exploit the federation (for robustness studies).

An attacker trains and acts like every other agent (its own return is what it cares
about), but what it uploads is not its honest result. With θ its parameters before the
round's training, θ̃ after, and s = ``attack_scale``:

- ``sign-flip``: the update reversed and amplified, θ − s·(θ̃ − θ) (gradient exchange:
  −s·(θ̃ − θ));
- ``noise``: θ̃ plus Gaussian noise of standard deviation s per coordinate (gradient
  exchange: the update plus that noise);
- ``free-ride``: contributes nothing and takes the federation's policy: it uploads ω back
  when the federation sent one (FPF, D&F), otherwise the parameters it started the round
  with (FedAvg, LMF; gradient exchange: a zero update).

Which agents attack is set by ``attackers`` (ids), how by ``attack``: each attacker's
profile (:func:`profiles`) is part of the agent, not of the federation. The round loop
attaches it to that agent's train message only (record ``protocol.ATTACK``); strategies
never see it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from typing import ClassVar
from clients.settings import Settings, setting

ATTACKS = ("none", "sign-flip", "noise", "free-ride")


@dataclass
class AttackConfig(Settings):
    """Poisoning participants: which agents attack, and how."""

    prefix: ClassVar[str] = "attack"
    title: ClassVar[str] = "Attacks (strategies that share parameters)"

    kind: str = setting("none", "what the attackers upload: none, sign-flip (their update reversed and scaled), "
                                "noise (Gaussian), free-ride (ω or their old parameters back)", flag="attack",
                        choices=ATTACKS)
    agents: str = setting("", "the attacking agents' ids, e.g. 0 or 0,3", flag="attackers")
    scale: float = setting(10.0, "s: the sign-flip's amplification or the noise's standard deviation", ge=0.0,
                           le=1e6)

    def ids(self, num_agents: int) -> list[int]:
        """The attackers' ids, checked against the population."""
        text = self.agents.removeprefix("ids:").strip()
        try:
            listed = [int(p) for p in text.split(",") if p.strip()]
        except ValueError:
            raise ValueError(f"attackers '{self.agents}' must be agent ids, e.g. 0,3") from None
        if len(set(listed)) != len(listed):
            raise ValueError(f"attackers '{self.agents}' names an agent twice")
        ids = sorted(listed)
        unknown = [i for i in ids if not 0 <= i < num_agents]
        if unknown:
            raise ValueError(f"attackers names unknown agents {unknown}; valid agent ids: 0..{num_agents - 1}")
        if self.kind != "none" and not ids:
            raise ValueError(f"attack {self.kind} needs --attackers (agent ids)")
        return ids if self.kind != "none" else []


def profiles(cfg: AttackConfig, num_agents: int) -> dict[int, dict[str, str | float]]:
    """Each attacking agent's attack profile (``kind``, ``scale``), by agent id; empty
    without an attack."""
    return {agent: {"kind": cfg.kind, "scale": float(cfg.scale)} for agent in cfg.ids(num_agents)}


def poison(kind: str, after: dict[str, np.ndarray], before: dict[str, np.ndarray], gradients: bool,
           scale: float, rng: np.random.Generator, omega: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """What an attacker of ``kind`` uploads instead of ``after`` (parameters) or
    ``after − before`` (``gradients``); see the module docstring."""
    if kind not in ATTACKS or kind == "none":
        raise ValueError(f"unknown attack '{kind}'; valid choices: {', '.join(ATTACKS[1:])}")
    out = {}
    for key, new in after.items():
        old = before[key]
        update = new - old
        if kind == "sign-flip":
            value = -scale * update if gradients else old - scale * update
        elif kind == "noise":
            value = (update if gradients else new) + rng.normal(0.0, scale, size=new.shape)
        elif gradients:
            value = np.zeros_like(new)
        else:
            value = omega[key] if omega is not None else old
        out[key] = np.asarray(value, dtype=np.float32)
    return out
