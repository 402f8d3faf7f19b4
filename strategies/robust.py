"""Robust aggregation: how a federation combines uploads it cannot trust.

The FPF paper leaves exploitation by participants to future work. Here FPF / D&F's
[FPF Eq. 11], FedAvg's average and LMF's neighbour mix can replace the mean of the uploads by a
Byzantine-robust rule, using Flower's own aggregation functions
(``flwr.server.strategy.aggregate``):

- ``mean``: the plain average (the papers' rule; the default);
- ``median``: the coordinate-wise median;
- ``trimmed-mean``: the coordinate-wise mean after cutting the ``trim`` fraction at each end;
- ``krum``: the upload whose n − f − 2 nearest uploads are closest (Blanchard et al. 2017);
- ``multikrum``: the mean of the n − f best uploads by the Krum score;
- ``bulyan``: Krum selection of n − 2f uploads, then the mean of the n − 4f values closest
  to the coordinate-wise median (El Mhamdi et al. 2018).

``f`` (``robust_f``) is the number of Byzantine uploads the rule must withstand. Krum and MultiKrum
need n ≥ 2f + 3 uploads and Bulyan n ≥ 4f + 3; a round with fewer (agents failed or left)
falls back to the median, and the strategy reports it (``robust_fallback``).

Each rule is one :class:`Aggregator` (:class:`Mean`, :class:`Median`, :class:`TrimmedMean`,
:class:`Krum`, :class:`MultiKrum`, :class:`Bulyan`), as Flower keeps them apart;
``make_aggregator(cfg.robust)`` builds the run's, and the strategies that combine uploads
receive it at construction.

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
    f: int = setting(1, "the number of poisoned uploads the rule must withstand (krum, multikrum, bulyan)", ge=0,
                     le=1_000_000)
    trim: float = setting(0.2, "trimmed-mean: the fraction cut at each end", ge=0.0, lt=0.5, aliases=("trim",))


#: Flower's aggregation functions take (arrays, weight) pairs; every upload weighs 1
Results = list[tuple[list[np.ndarray], int]]


class Aggregator:
    """One combination rule: a strategy that combines uploads receives one at construction
    (``make_aggregator(cfg.robust)``) and calls :meth:`aggregate`."""

    #: the rule's name (``--robust``)
    name: ClassVar[str] = ""
    #: False for the plain mean: a strategy with weights of its own (LMF's C_t) keeps them,
    #: and no ``robust_fallback`` metric is reported
    robust: ClassVar[bool] = True

    @property
    def minimum_uploads(self) -> int:
        """The fewest uploads the rule is defined for; with fewer it falls back to the median."""
        return 1

    def apply(self, results: Results) -> list[np.ndarray]:
        """Flower's aggregation function of the rule on ``results`` (at least ``minimum_uploads``)."""
        raise NotImplementedError

    def combine(self, uploads: list[list[np.ndarray]]) -> tuple[list[np.ndarray], bool]:
        """Combine ``uploads`` (each a list of arrays, layer by layer).

        Returns ``(arrays, fell_back)``; ``fell_back`` is True when there were too few
        uploads for the rule and the median was used instead.
        """
        if not uploads:
            raise ValueError("no uploads to aggregate")
        results = [([np.asarray(a, dtype=np.float64) for a in u], 1) for u in uploads]
        fell_back = len(uploads) < self.minimum_uploads
        out = (Median() if fell_back else self).apply(results)
        return [np.asarray(a) for a in out], fell_back

    def aggregate(self, uploads: list[list[np.ndarray]]) -> tuple[list[np.ndarray], dict[str, float]]:
        """The combined uploads and the metrics that say how (``robust_fallback``, robust rules only)."""
        out, fell_back = self.combine(uploads)
        return out, ({"robust_fallback": float(fell_back)} if self.robust else {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Mean(Aggregator):
    """The plain average (the papers' rule; the default)."""

    name = "mean"
    robust = False

    def apply(self, results: Results) -> list[np.ndarray]:
        return aggregate(results)


class Median(Aggregator):
    """The coordinate-wise median."""

    name = "median"

    def apply(self, results: Results) -> list[np.ndarray]:
        return aggregate_median(results)


class TrimmedMean(Aggregator):
    """The coordinate-wise mean after cutting the ``trim`` fraction at each end."""

    name = "trimmed-mean"

    def __init__(self, trim: float = 0.2):
        self.trim = trim

    def apply(self, results: Results) -> list[np.ndarray]:
        return aggregate_trimmed_avg(results, self.trim)

    def __repr__(self) -> str:
        return f"TrimmedMean(trim={self.trim})"


class Krum(Aggregator):
    """The upload whose n − f − 2 nearest uploads are closest (Blanchard et al. 2017)."""

    name = "krum"

    def __init__(self, f: int = 1):
        self.f = f

    @property
    def minimum_uploads(self) -> int:
        return 2 * self.f + 3

    def apply(self, results: Results) -> list[np.ndarray]:
        return aggregate_krum(results, self.f, 0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(f={self.f})"


class MultiKrum(Krum):
    """The mean of the n − f best uploads by the Krum score."""

    name = "multikrum"

    def apply(self, results: Results) -> list[np.ndarray]:
        return aggregate_krum(results, self.f, len(results) - self.f)


class Bulyan(Krum):
    """Krum selection of n − 2f uploads, then the mean of the n − 4f values closest to the
    coordinate-wise median (El Mhamdi et al. 2018)."""

    name = "bulyan"

    @property
    def minimum_uploads(self) -> int:
        return 4 * self.f + 3

    def apply(self, results: Results) -> list[np.ndarray]:
        return aggregate_bulyan(list(results), self.f, aggregate_krum, to_keep=0)


def aggregator(rule: str = "mean", f: int = 1, trim: float = 0.2) -> Aggregator:
    """The aggregator of ``rule`` (one of :data:`RULES`)."""
    if rule not in RULES:
        raise ValueError(f"unknown robust rule '{rule}'; valid choices: {', '.join(RULES)}")
    if rule == "trimmed-mean":
        return TrimmedMean(trim)
    if rule in ("krum", "multikrum", "bulyan"):
        return {"krum": Krum, "multikrum": MultiKrum, "bulyan": Bulyan}[rule](f)
    return {"mean": Mean, "median": Median}[rule]()


def make_aggregator(cfg: RobustConfig) -> Aggregator:
    """The aggregator a run's ``robust`` settings choose."""
    return aggregator(cfg.rule, cfg.f, cfg.trim)


def minimum_uploads(rule: str, f: int) -> int:
    """The fewest uploads ``rule`` is defined for (1 for a name that is no rule)."""
    return aggregator(rule, f).minimum_uploads if rule in RULES else 1


def robust_aggregate(uploads: list[list[np.ndarray]], rule: str = "mean", f: int = 1,
                     trim: float = 0.2) -> tuple[list[np.ndarray], bool]:
    """Combine ``uploads`` with ``rule``: :meth:`Aggregator.combine` of :func:`aggregator`."""
    return aggregator(rule, f, trim).combine(uploads)
