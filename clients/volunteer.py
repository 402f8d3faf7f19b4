"""Free entry and exit: each agent decides every round whether to join the federation.

Beyond the FPF paper, which names it as future work. The decision is the agent's own and
uses only its own returns; it estimates what joining adds to its return, net of the
learning curve's drift.

Credit. The return r_t seen in round t is earned by the policy the agent trained in round
t-1, so it is credited to the agent's status in round t-1, m_{t-1} (1: in, 0: out). Round
1's return (the initial policy, trained under no status) is credited to neither.

Model. r_t = trend_t + β·m_{t-1} + noise: β is what one round in the federation adds to
the next return. The trend is predicted from the earlier returns by their moving average
L_t = μ·L_{t-1} + (1-μ)·r_t (μ = ``memory``); the prediction error e_t = r_t - L_{t-1}
is free of the drift up to an offset that in and out rounds share (slope/(1-μ) on a
straight curve, once L has caught up). β̂ is the coefficient of m in a least-squares fit
of e_t on [m_{t-1}, 1-m_{t-1}] with weights λ^age (λ = ``effect_memory``: the same
forgetting for both statuses, so a status sampled long ago is not compared with one
sampled today):

    β̂ = Σ λ^(T-t)·m_{t-1}·e_t / Σ λ^(T-t)·m_{t-1}  -  Σ λ^(T-t)·(1-m_{t-1})·e_t / Σ λ^(T-t)·(1-m_{t-1}),

kept as four running sums multiplied by λ every round. (L also holds β times the recent
participation, about equally for in and out rounds: in expectation this shrinks β̂
toward 0 without flipping its sign.)

Rule for the next round: with probability ε a fair coin decides, so both statuses keep
being sampled; otherwise try a status with no return credited yet (leave first, since
every agent starts in); otherwise join iff β̂ >= 0. The rule is symmetric between in and
out, so with returns that do not depend on the status its neutral participation is 50%.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class JoinRecord:
    level: float = 0.0  # L: moving average of the returns (the trend)
    sum_in: float = 0.0  # Σ λ^age·e over rounds earned in the federation
    weight_in: float = 0.0  # Σ λ^age over those rounds (0: none yet)
    sum_out: float = 0.0
    weight_out: float = 0.0
    prev_member: int = -1  # status in the previous round; -1: no previous round

    @property
    def effect(self) -> float:
        """β̂: the estimated gain in return from one round in the federation."""
        return self.sum_in / self.weight_in - self.sum_out / self.weight_out

    @classmethod
    def from_dict(cls, values: dict) -> "JoinRecord":
        return cls(**{k: type(getattr(cls(), k))(v) for k, v in values.items()})

    def to_dict(self) -> dict:
        return asdict(self)


def decide(record: JoinRecord, episode_return: float, member_now: bool, epsilon: float, memory: float,
           rng: np.random.Generator, effect_memory: float = 0.98) -> tuple[JoinRecord, bool]:
    """Credit ``episode_return`` to the previous status, then choose the next one.

    Updates ``record`` in place (and returns it): the caller keeps that object.
    """
    r = float(episode_return)
    if record.prev_member == -1:
        record.level = r
    else:
        error, record.level = r - record.level, memory * record.level + (1 - memory) * r
        record.sum_in, record.weight_in = effect_memory * record.sum_in, effect_memory * record.weight_in
        record.sum_out, record.weight_out = effect_memory * record.sum_out, effect_memory * record.weight_out
        if record.prev_member == 1:
            record.sum_in, record.weight_in = record.sum_in + error, record.weight_in + 1
        else:
            record.sum_out, record.weight_out = record.sum_out + error, record.weight_out + 1
    record.prev_member = int(member_now)
    if rng.random() < epsilon:
        return record, bool(rng.random() < 0.5)
    if record.weight_out == 0:
        return record, False
    if record.weight_in == 0:
        return record, True
    return record, record.effect >= 0
