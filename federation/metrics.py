"""Welfare and fairness of a vector of per-agent returns."""

from __future__ import annotations

import math

import numpy as np


def cv(returns: np.ndarray) -> float:
    """Coefficient of variation std/mean (population std); NaN when the mean is 0."""
    mean = float(np.mean(returns))
    return float(np.std(returns)) / mean if mean != 0 else math.nan


def jain(returns: np.ndarray) -> float:
    """Jain's index (Σx)² / (N·Σx²): 1 when all equal, 1/N when one agent has everything.

    Meant for non-negative returns. It is computed as written for any sign: when every
    return is negative it measures how equal the losses are, and gains and losses that
    cancel push it toward 0, so read it together with the welfare.
    """
    sq = float(np.sum(np.square(returns)))
    return float(np.sum(returns)) ** 2 / (len(returns) * sq) if sq > 0 else math.nan


def group_mean(returns: np.ndarray, members) -> float:
    """Mean return of the agents in ``members``; NaN for an empty group."""
    idx = sorted(members)
    return float(np.mean(returns[idx])) if idx else math.nan


def welfare_row(returns: np.ndarray, participants) -> dict[str, float]:
    """The per-round welfare and fairness columns of metrics.csv."""
    others = set(range(len(returns))) - set(participants)
    row = {
        "collective_return": float(np.sum(returns)),
        "mean_return": float(np.mean(returns)),
        "cv": cv(returns),
        "jain": jain(returns),
        "min_return": float(np.min(returns)),
        "participants_return": group_mean(returns, participants),
        "nonparticipants_return": group_mean(returns, others),
        "participation_rate": len(set(participants)) / len(returns),
    }
    row.update({f"return_agent_{i}": float(r) for i, r in enumerate(returns)})
    return row
