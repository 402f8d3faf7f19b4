"""Robust aggregation: how a federation combines uploads it cannot trust.

The FPF paper leaves exploitation by participants to future work. Here FPF / D&F's
Eq. 11, FedAvg's average and LMF's neighbour mix can replace the mean of the uploads by a
Byzantine-robust rule, using Flower's own aggregation functions
(``flwr.server.strategy.aggregate``):

- ``mean``: the plain average (the papers' rule; the default);
- ``median``: the coordinate-wise median;
- ``trimmed-mean``: the coordinate-wise mean after cutting the ``trim`` fraction at each end;
- ``krum``: the upload whose n − f − 2 nearest uploads are closest (Blanchard et al. 2017);
- ``multikrum``: the mean of the n − f best uploads by the Krum score;
- ``bulyan``: Krum selection of n − 2f uploads, then the mean of the n − 4f values closest
  to the coordinate-wise median (El Mhamdi et al. 2018).

``f`` (``robust_f``) is the number of attackers the rule must withstand. Krum and MultiKrum
need n ≥ 2f + 3 uploads and Bulyan n ≥ 4f + 3; a round with fewer (agents failed or left)
falls back to the median, and the strategy reports it (``robust_fallback``).

For LMF the rule replaces the weighted mix Σ_j c(i,j)θ_j: agent i receives the rule
applied to its closed neighbourhood {i} ∪ N_t(i) (the weights are dropped: a robust rule is
not a convex combination with fixed weights, so Theorem 2's consensus guarantee no longer
applies; the neighbourhood of a ring, 3 agents, admits no Krum with f ≥ 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from flwr.server.strategy.aggregate import (aggregate, aggregate_bulyan, aggregate_krum, aggregate_median,
                                            aggregate_trimmed_avg)

from clients.settings import Settings, setting

RULES = ("mean", "median", "trimmed-mean", "krum", "multikrum", "bulyan")


@dataclass
class RobustConfig(Settings):
    """How uploads are combined (Flower's aggregation functions)."""

    prefix: ClassVar[str] = "robust"
    title: ClassVar[str] = "Robust aggregation (fpf, dnf, fedavg, lmf)"

    rule: str = setting("mean", "how uploads are combined: mean, median, trimmed-mean, krum, multikrum, bulyan",
                        flag="robust", choices=RULES)
    f: int = setting(1, "the number of attackers the rule must withstand (krum, multikrum, bulyan)", ge=0,
                     le=1_000_000)
    trim: float = setting(0.2, "trimmed-mean: the fraction cut at each end", ge=0.0, lt=0.5, aliases=("trim",))


def minimum_uploads(rule: str, f: int) -> int:
    """The fewest uploads ``rule`` is defined for."""
    return {"krum": 2 * f + 3, "multikrum": 2 * f + 3, "bulyan": 4 * f + 3}.get(rule, 1)


def robust_aggregate(uploads: list[list[np.ndarray]], rule: str = "mean", f: int = 1,
                     trim: float = 0.2) -> tuple[list[np.ndarray], bool]:
    """Combine ``uploads`` (each a list of arrays, layer by layer) with ``rule``.

    Returns ``(arrays, fell_back)``; ``fell_back`` is True when there were too few uploads
    for ``rule`` and the median was used instead.
    """
    if rule not in RULES:
        raise ValueError(f"unknown robust rule '{rule}'; valid choices: {', '.join(RULES)}")
    if not uploads:
        raise ValueError("no uploads to aggregate")
    results = [([np.asarray(a, dtype=np.float64) for a in u], 1) for u in uploads]
    fell_back = len(uploads) < minimum_uploads(rule, f)
    if fell_back:
        rule = "median"
    if rule == "mean":
        out = aggregate(results)
    elif rule == "median":
        out = aggregate_median(results)
    elif rule == "trimmed-mean":
        out = aggregate_trimmed_avg(results, trim)
    elif rule == "krum":
        out = aggregate_krum(results, f, 0)
    elif rule == "multikrum":
        out = aggregate_krum(results, f, len(uploads) - f)
    else:
        out = aggregate_bulyan(list(results), f, aggregate_krum, to_keep=0)
    return [np.asarray(a) for a in out], fell_back
