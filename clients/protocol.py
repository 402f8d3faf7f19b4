"""What travels between the ServerApp and an agent's ClientApp.

Train message (server -> agent i)::

    "config"      ConfigRecord  agent-id, server-round, seed, learner hyperparameters,
                                share ("none" | "parameters"), lambda-u, lambda-e
    "experience"  ArrayRecord   agent i's own experience only (see clients.ppo.Experience)
    "omega"       ArrayRecord   optional: utilitarian anchor ω
    "omega-bar"   ArrayRecord   optional: egalitarian anchor ω̄
    "replace"     ArrayRecord   optional: parameters to adopt before training (FedAvg)
    "mix"         ArrayRecord   optional: the agent's neighbour mix (LMF): parameters to
                                combine with its own update ("lmf-mode" = "parameters"),
                                or the mixed update to add before training ("gradients")

Reply (agent i -> server)::

    "acting"      ArrayRecord   the policy the agent will act with; for the world only,
                                removed before a strategy sees the reply
    "shared"      ArrayRecord   only if the agent shares: its updated policy θ̃_i
                                (share="parameters") or only its update Δ_i ("gradients")
    "metrics"     MetricRecord  training diagnostics (scalars only)

Query message "hello": the agent replies ``ConfigRecord({"agent-id": i})`` from its node
config (``agent-id`` in deployment, ``partition-id`` in simulation).
"""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord

from clients.ppo import Experience

CONFIG, EXPERIENCE, OMEGA, OMEGA_BAR, REPLACE, MIX = "config", "experience", "omega", "omega-bar", "replace", "mix"
ACTING, SHARED, METRICS = "acting", "shared", "metrics"
SHARE_NONE, SHARE_PARAMETERS, SHARE_GRADIENTS = "none", "parameters", "gradients"


def pack_experience(exp: Experience) -> ArrayRecord:
    return ArrayRecord({name: Array(np.ascontiguousarray(getattr(exp, name))) for name in Experience.FIELDS})


def unpack_experience(record: ArrayRecord) -> Experience:
    missing = [name for name in Experience.FIELDS if name not in record]
    if missing:
        raise ValueError(f"experience record lacks {missing}")
    return Experience(**{name: record[name].numpy() for name in Experience.FIELDS})


def node_agent_id(node_config: dict) -> int:
    """The agent a node plays: ``agent-id`` (deployment) or ``partition-id`` (simulation)."""
    for key in ("agent-id", "partition-id"):
        if key in node_config:
            return int(node_config[key])
    raise ValueError("this node has no agent: start the SuperNode with --node-config \"agent-id=<i>\"")
