"""Free entry and exit: each agent decides every round whether to join the federation.

Beyond the FPF paper, which names it as future work. The decision is the agent's own and
uses only its own experience: it keeps exponential moving averages of its episode
return while it was in the federation (``ema_in``) and while it was out (``ema_out``).
A round's return is credited to the status the agent held when it trained the policy
that earned it, i.e. its status in the previous round.

Rule for the next round: with probability ε explore (join or leave at random);
otherwise try a status never tried yet (leave first, since every agent starts in);
otherwise join iff ``ema_in >= ema_out``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class JoinRecord:
    ema_in: float = 0.0
    ema_out: float = 0.0
    n_in: int = 0
    n_out: int = 0
    prev_member: int = -1  # -1: no previous round

    @classmethod
    def from_dict(cls, values: dict) -> "JoinRecord":
        return cls(**{k: type(getattr(cls(), k))(v) for k, v in values.items()})

    def to_dict(self) -> dict:
        return asdict(self)


def decide(record: JoinRecord, episode_return: float, member_now: bool, epsilon: float, memory: float,
           rng: np.random.Generator) -> tuple[JoinRecord, bool]:
    """Credit ``episode_return`` to the previous status, then choose the next one."""
    if record.prev_member == 1:
        record.ema_in = episode_return if record.n_in == 0 else memory * record.ema_in + (1 - memory) * episode_return
        record.n_in += 1
    elif record.prev_member == 0:
        record.ema_out = episode_return if record.n_out == 0 else memory * record.ema_out + (1 - memory) * episode_return
        record.n_out += 1
    record.prev_member = int(member_now)
    if rng.random() < epsilon:
        return record, bool(rng.random() < 0.5)
    if record.n_out == 0:
        return record, False
    if record.n_in == 0:
        return record, True
    return record, record.ema_in >= record.ema_out
