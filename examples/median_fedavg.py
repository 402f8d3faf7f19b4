"""A strategy from outside the package: FedAvg over the agents above the median return.

    python run_sim.py --env matthew --strategy examples.median_fedavg:MedianFedAvg --rounds 5

Every agent adopts the average and trains (FedAvg's instructions, unchanged); the next
average is formed only from the uploads of the agents whose return this round was above
the median of all agents' returns (from everyone's, if nobody's was). The metrics show
the rule: ``averaged`` agents, and ``averaged_agent_<i>`` 1 or 0 for each agent.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, MetricRecord

from clients import protocol
from strategies.fedavg import FedAvg


class MedianFedAvg(FedAvg):
    name = "median-fedavg"
    reads = ()  # no settings of its own (and the plain mean, not a robust rule)

    def train_rewards(self, rewards: np.ndarray) -> np.ndarray:
        """Called first in every round, with the rewards [T, B, N]: keep each agent's return."""
        self.returns = rewards.sum(axis=0).mean(axis=0)
        return rewards

    def aggregate_train(self, server_round, replies):
        agent_of = {node: agent for agent, node in self.nodes.items()}
        uploads = {agent_of[r.metadata.src_node_id]: r.content[protocol.SHARED] for r in replies
                   if not r.has_error() and protocol.SHARED in r.content}
        median = np.median(self.returns)
        chosen = sorted(a for a in uploads if self.returns[a] > median) or sorted(uploads)
        if not chosen:
            return None, MetricRecord({"averaged": 0})
        average = {key: np.mean([uploads[a][key].numpy() for a in chosen], axis=0) for key in uploads[chosen[0]]}
        metrics = {f"averaged_agent_{a}": float(a in chosen) for a in range(len(self.returns))}
        return (ArrayRecord({k: Array(v.astype(np.float32)) for k, v in average.items()}),
                MetricRecord({"averaged": len(chosen), "median_return": float(median), **metrics}))
