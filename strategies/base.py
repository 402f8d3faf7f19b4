"""The base of every federation strategy: who trains with what, and what is aggregated.

A strategy is a ``flwr.serverapp.strategy.Strategy``. The round loop (federation/) calls

1. ``configure_train`` -> one train message per agent (the loop then attaches the
   agent's own experience);
2. ``aggregate_train`` on the replies, from which the loop has removed every agent's
   acting weights: a strategy sees only what agents chose to share;
3. ``federated_training`` with the round's rollout, for strategies that own server-side
   learners trained on the world's data (FPF's ω and ω̄).

Subclasses override the hooks ``anchors``, ``aggregate_train`` and ``federated_training``.
"""

from __future__ import annotations

from collections.abc import Iterable
from logging import INFO

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.supercore import log

from clients import protocol
from federation.participation import Participation


class FederationStrategy(Strategy):
    """Shared machinery: the participation set and per-agent train messages."""

    name = "base"
    #: what participants upload: protocol.SHARE_NONE or protocol.SHARE_PARAMETERS
    share = protocol.SHARE_NONE
    #: D&F-style strategies force every agent into the federation
    mandatory = False

    def __init__(self, participation: Participation, seed: int):
        if self.mandatory:
            participation = Participation.everyone(participation.num_agents)
        elif self.share == protocol.SHARE_NONE:
            participation = Participation.nobody(participation.num_agents)
        self.participation = participation
        self.seed = seed
        self.nodes: dict[int, int] = {}  # agent id -> node id
        self.members: frozenset[int] = frozenset()

    @classmethod
    def from_config(cls, cfg, game, init: ArrayRecord) -> "FederationStrategy":
        """Build from a validated RunConfig (subclasses with settings override this)."""
        return cls(Participation.from_config(cfg), cfg.seed)

    def bind(self, nodes: dict[int, int]) -> None:
        """Tell the strategy which node plays which agent."""
        self.nodes = dict(nodes)

    # ---------------------------------------------------------------- hooks
    def anchors(self, agent: int, arrays: ArrayRecord) -> dict[str, ArrayRecord]:
        """Records sent to ``agent`` besides its experience (none by default)."""
        return {}

    def agent_config(self, agent: int, server_round: int) -> dict:
        """Extra config entries for ``agent`` this round (none by default)."""
        return {}

    def train_rewards(self, rewards: np.ndarray) -> np.ndarray:
        """Rewards the agents train on, [T, B, N]; the game's own by default."""
        return rewards

    def shared_policy(self, arrays: ArrayRecord) -> ArrayRecord | None:
        """A policy every agent acts with after aggregation (FedAvg's global one); None: each its own."""
        return None

    def federated_training(self, server_round: int, rollout, arrays: ArrayRecord) -> tuple[ArrayRecord, dict]:
        """Server-side training on the world's data; nothing by default."""
        return arrays, {}

    def _volunteer_config(self) -> dict:
        p = self.participation
        return {"voluntary": True, "vol-epsilon": p.epsilon, "vol-memory": p.memory} if p.voluntary else {}

    # ---------------------------------------------------------------- Flower API
    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        self.members = self.participation.members(server_round, self.seed)
        messages = []
        for agent, node in sorted(self.nodes.items()):
            share = self.share if agent in self.members else protocol.SHARE_NONE
            agent_cfg = ConfigRecord({**dict(config), **self.agent_config(agent, server_round), "agent-id": agent, "share": share,
                                      **self._volunteer_config()})
            content = RecordDict({protocol.CONFIG: agent_cfg, **self.anchors(agent, arrays)})
            messages.append(Message(content=content, dst_node_id=node, message_type=MessageType.TRAIN))
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return None, None

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        return []

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return None

    def summary(self) -> None:
        p = self.participation
        who = list(p.ids) if p.ids is not None else f"{p.size} of {p.num_agents} ({p.draw})"
        log(INFO, "\t├──> %s: participation set %s", self.name, who)


def shared_uploads(replies: Iterable[Message]) -> list[ArrayRecord]:
    """The parameters that participants chose to share (replies without errors)."""
    return [r.content[protocol.SHARED] for r in replies
            if not r.has_error() and protocol.SHARED in r.content]
