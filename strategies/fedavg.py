r"""FedAvg: all agents share one policy by plain parameter averaging each round.

Round t: every agent adopts the global policy ω_t (the ``replace`` record), trains on its
own experience, and shares θ̃_i; the federation sets
:math:`ω_{t+1} = \frac{1}{|S|}\sum_{i∈S} θ̃_i` over the agents S that replied. Participation is
mandatory (``robust`` replaces the mean by a robust rule, strategies.robust). Every agent acts with ω_{t+1}: the one shared policy. (Letting each agent act
with its own θ̃_i instead makes the next round's experience off-policy for ω_{t+1}, the
point its training starts from; measured on the Matthew Effect that drove the agents'
policies apart every round and the collective return below random play.)
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord

from clients import protocol
from strategies.base import FederationStrategy, RunSettings, shared_uploads
from strategies.participation import Participation
from strategies.robust import Aggregator, Mean, make_aggregator


class FedAvg(FederationStrategy):
    name = "fedavg"
    reads = ("robust",)
    share = protocol.SHARE_PARAMETERS
    mandatory = True
    mixes_parameters = True

    def __init__(self, participation: Participation, seed: int, aggregator: Aggregator | None = None):
        """``aggregator``: how the uploads are combined (strategies.robust; the mean by default)."""
        super().__init__(participation, seed)
        self.aggregator = aggregator or Mean()

    @classmethod
    def from_config(cls, cfg: RunSettings, game, init: ArrayRecord) -> "FedAvg":
        return cls(Participation.from_config(cfg.joining, cfg.agents), cfg.seed, make_aggregator(cfg.robust))

    def instructions(self, agent: int, server_round: int, arrays: ArrayRecord) -> tuple[dict, dict[str, ArrayRecord]]:
        return {}, {protocol.REPLACE: arrays}

    def acting_policies(self, arrays: ArrayRecord) -> dict[int, ArrayRecord]:
        return dict.fromkeys(range(self.participation.num_agents), arrays)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        uploads = shared_uploads(replies)
        if not uploads:
            return None, MetricRecord({"uploads": 0})
        keys = list(uploads[0].keys())
        combined, how = self.aggregator.aggregate([[u[k].numpy() for k in keys] for u in uploads])
        record = ArrayRecord({k: Array(v.astype(np.float32)) for k, v in zip(keys, combined)})
        return record, MetricRecord({"uploads": len(uploads), **how})
