r"""LMF: Local Multi-Federation (Algorithm 2 of "Beyond Mandatory Federations").

No global policy. Each round the participating agents N_p talk over a graph G_t of the
chosen schedule (federation/graphs.py) with consensus weights C_t (Metropolis-Hastings by
default, validated against Assumption 5), and each agent receives its own neighbour mix.

**Parameter exchange** (Eq. 13): :math:`θ_{i,t+1} = \sum_j c_t(i,j)\,θ_{j,t} + α_t∇J_i(θ_{i,t})`.
Participants share θ_{j,t}; in the next round agent i receives its mix
:math:`m_i = \sum_j c_t(i,j)θ_{j,t}`, trains from its own θ_{i,t} (the local PPO update is
the :math:`α_t∇J_i` term, Δ_i) and sets :math:`θ_{i,t+1} = m_i + Δ_i`.

**Gradient exchange** (Eq. 14): :math:`θ_{i,t+1} = θ_{i,t} + α_t \sum_j c_t(i,j)\,g_{j,t}`.
Participants share only their update Δ_j = α_t g_j (the local training step) and do not
apply it themselves; in the next round agent i receives :math:`\sum_j c_t(i,j)Δ_j` and
adds it before training. Only updates leave an agent: neither this strategy nor any
other agent ever holds another agent's parameters (the world, a trusted simulator,
plays the acting weights). The exchange costs one round of delay: an agent acts with
θ_{i,t+1} from the round after its neighbours' updates arrive.

Step size α_t = α_0 / t^β: the agents' learning rates are scaled by t^(-β) (``lmf_beta``;
the theory wants β ∈ (1/2, 1); 0 keeps them constant). Non-participants train alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from logging import INFO

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord
from flwr.supercore import log

from clients import protocol
from federation.graphs import GraphSchedule, check_weights
from federation.participation import Participation
from strategies.base import FederationStrategy

MODES = (protocol.SHARE_PARAMETERS, protocol.SHARE_GRADIENTS)


def neighbour_mix(C: np.ndarray, shared: list[ArrayRecord]) -> list[dict[str, np.ndarray]]:
    """Row i: Σ_j C[i, j]·shared_j, array by array (Eq. 13/14 without the local step)."""
    keys = list(shared[0].keys())
    mixed = [{} for _ in shared]
    for key in keys:
        stacked = np.stack([s[key].numpy().astype(np.float64) for s in shared])
        out = np.tensordot(C, stacked, axes=1)
        for i in range(len(shared)):
            mixed[i][key] = out[i]
    return mixed


class LMF(FederationStrategy):
    """Local multi-federations over a time-varying communication graph."""

    name = "lmf"

    def __init__(self, participation: Participation, seed: int, schedule: GraphSchedule,
                 mode: str = protocol.SHARE_PARAMETERS, beta: float = 0.0):
        if mode not in MODES:
            raise ValueError(f"unknown LMF mode '{mode}'; valid choices: {', '.join(MODES)}")
        self.share = mode
        super().__init__(participation, seed)
        self.schedule, self.mode, self.beta = schedule, mode, beta
        self.pending: dict[int, ArrayRecord] = {}

    @classmethod
    def from_config(cls, cfg, game, init) -> "LMF":
        from federation.graphs import load_schedule, make_schedule

        if cfg.graph_file:
            schedule = load_schedule(cfg.graph_file, seed=cfg.seed)
        else:
            options = {"fixed": {"k": cfg.graph_k, "agents": cfg.agents}, "dynamic": {"group_size": cfg.group_size},
                       "erdos_renyi": {"p": cfg.graph_p}, "b_connected": {"B": cfg.graph_b}}.get(cfg.graph, {})
            schedule = make_schedule(cfg.graph, seed=cfg.seed, **options)
        return cls(Participation.from_config(cfg), cfg.seed, schedule, cfg.lmf_mode, cfg.lmf_beta)

    def anchors(self, agent: int, arrays: ArrayRecord) -> dict[str, ArrayRecord]:
        mix = self.pending.pop(agent, None)
        return {} if mix is None else {protocol.MIX: mix}

    def agent_config(self, agent: int, server_round: int) -> dict:
        return {"lmf-mode": self.mode, "lr-scale": float(server_round ** -self.beta)}

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        agent_of = {node: agent for agent, node in self.nodes.items()}
        shared = {agent_of[r.metadata.src_node_id]: r.content[protocol.SHARED] for r in replies
                  if not r.has_error() and protocol.SHARED in r.content}
        members = sorted(shared)
        if not members:
            return None, MetricRecord({"uploads": 0})
        graph = self.schedule.graph(server_round, members)
        C = self.schedule.weights(server_round, members)
        index = {a: k for k, a in enumerate(members)}
        eps = check_weights(C, [(index[u], index[v]) for u, v in graph.edges() if u != v])
        for agent, mixed in zip(members, neighbour_mix(C, [shared[a] for a in members])):
            self.pending[agent] = ArrayRecord({k: Array(v.astype(np.float32)) for k, v in mixed.items()})
        return None, MetricRecord({"uploads": len(members), "graph_edges": graph.number_of_edges(), "weights_eps": eps})

    def summary(self) -> None:
        super().summary()
        log(INFO, "\t│\t├── graph %s (B = %s), %s exchange, β = %s", self.schedule.name, self.schedule.interval,
            self.mode, self.beta)
