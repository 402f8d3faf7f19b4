r"""LMF: Local Multi-Federation (Algorithm 2 of "Beyond Mandatory Federations").

No global policy. Each round the participating agents N_p talk over a graph G_t of the
chosen schedule (strategies/graphs.py) with consensus weights C_t (Metropolis-Hastings by
default, validated against Assumption 5), and each agent receives its own neighbour mix.

**Parameter exchange** ([FPF Eq. 13]): :math:`θ_{i,t+1} = \sum_j c_t(i,j)\,θ_{j,t} + α_t∇J_i(θ_{i,t})`.
Participants share θ_{j,t}; in the next round agent i receives its mix
:math:`m_i = \sum_j c_t(i,j)θ_{j,t}`, trains from its own θ_{i,t} (the local PPO update is
the :math:`α_t∇J_i` term, Δ_i) and sets :math:`θ_{i,t+1} = m_i + Δ_i`.

**Gradient exchange** ([FPF Eq. 14]): :math:`θ_{i,t+1} = θ_{i,t} + α_t \sum_j c_t(i,j)\,g_{j,t}`.
Participants share only their update Δ_j = α_t g_j (the local training step) and do not
apply it themselves; in the next round agent i receives :math:`\sum_j c_t(i,j)Δ_j` and
adds it before training. Only updates leave an agent: neither this strategy nor any
other agent ever holds another agent's parameters (the world, a trusted simulator,
plays the acting weights). The exchange costs one round of delay: an agent acts with
θ_{i,t+1} from the round after its neighbours' updates arrive.

**Diffusion** (adapt, then combine; not in the paper): participants share their trained
parameters θ̃_j = θ_j + Δ_j; the world plays each participant's mix
:math:`θ_i = \sum_j c(i,j)\,θ̃_j`, and in the next round the agent trains from it, so its
own step is taken at the point it acted from. On a complete graph with equal weights this
is FedAvg. [FPF Eq. 13] instead takes the agent's step at its own θ_{i,t} and adds it to the
mix: the consensus iteration of decentralised gradient descent, which can be unstable
with steps each agent alone learns well with (Tu & Sayed 2012, "Diffusion strategies
outperform consensus strategies for distributed estimation over adaptive networks").
Measured with DQN agents on Harvest (experiments/campaigns/lmf-exchange.toml, docs/results/ssd): with
[FPF Eq. 13] the agents' disagreement grows and the collective return falls to about half of
independent learners'; with diffusion it does not.

Step size α_t = α_0 / t^β, t the round: the agents' learning rates are scaled by t^(-β)
(``lmf_beta``; 0 keeps them constant, today's default). [FPF Thm. 2] proves consensus for
α_t = α_0/t^β with β ∈ (1/2, 1) and α_0 ∈ (0, 1/(N_p(2C_L + 1))), C_L the bound on the
local gradients of [FPF Assumption 6]. :func:`theorem2_violations` names what a run's
schedule breaks of that; a run prints it and records it in its config's ``notes``
(:meth:`LMF.config_notes`). C_L is unknown (it bounds the gradients of whatever the agents
learn), so of the bound on α_0 only its necessary part α_0 < 1/N_p (C_L > 0) is checked,
with α_0 the learners' configured learning rate (PPO's actor, DQN's Q-network); the agents
take Adam steps, whose size is not α_t·∇J, so even a schedule that passes is the theorem's
only by analogy. Non-participants train alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from logging import INFO

import networkx as nx
import numpy as np
from scipy import sparse
from flwr.app import Array, ArrayRecord, Message, MetricRecord
from flwr.supercore import log

from clients import protocol
from clients.protocol import LMF_MODES
from strategies.base import FederationStrategy, RunSettings
from strategies.graphs import SCHEDULES, GraphSchedule, check_weights, load_schedule, make_schedule
from strategies.participation import Participation
from strategies.robust import Aggregator, Mean, make_aggregator
from typing import ClassVar
from clients.settings import Settings, setting

MODES = protocol.LMF_MODES


@dataclass
class LMFConfig(Settings):
    """LMF's communication graphs and exchange."""

    title: ClassVar[str] = "LMF (lmf): graphs and exchange"

    graph: str = setting("ring", "LMF's graph schedule: complete, ring, fixed (k disjoint federations), dynamic "
                                 "(overlapping federations redrawn every round), erdos_renyi, b_connected",
                         choices=lambda: sorted(SCHEDULES))
    graph_file: str = setting("", "a periodic graph schedule of your own (JSON), checked against [FPF Assumptions "
                                  "4 and 5]; replaces --graph")
    graph_k: int = setting(2, "graph fixed: the number of disjoint federations", ge=1, le=1_000_000)
    graph_p: float = setting(0.3, "graph erdos_renyi: the probability of each edge", ge=0.0, le=1.0)
    graph_b: int = setting(3, "graph b_connected: every B consecutive graphs are jointly connected", ge=1,
                           le=1_000_000)
    group_size: int = setting(3, "graph dynamic: the size of the overlapping federations", ge=2, le=1_000_000)
    mode: str = setting("parameters", "the exchange: parameters [LMF [FPF Eq. 13]], gradients [LMF [FPF Eq. 14]], diffusion "
                                      "(adapt, then combine), or gradient-steps (the FPF authors' Eq. 14: each "
                                      "neighbour's last gradient is one more step of the agent's optimiser)",
                        flag="lmf-mode", choices=LMF_MODES)
    beta: float = setting(0.0, "step-size decay α_t = α_0/t^β [FPF Thm. 2], t the round; the theorem needs "
                               "β ∈ (1/2, 1), 0 (constant steps) breaks it", flag="lmf-beta", ge=0.0, le=1.0)

    self_weight: float = setting(0.0, "the consensus weights: c(i,i) = w and c(i,j) = (1 - w)/deg(i) for each "
                                      "neighbour (the FPF authors mix 0.9 own / 0.1 neighbours); 0: "
                                      "Metropolis-Hastings weights on the graph", flag="lmf-self-weight", ge=0.0, lt=1.0)
    graph_hops: int = setting(1, "graph ring: each agent's neighbours are the k nearest on each side", ge=1,
                              le=1_000_000)

    def schedule(self, num_agents: int, seed: int) -> GraphSchedule:
        if self.graph_file:
            return load_schedule(self.graph_file, seed=seed)
        options: dict[str, dict[str, object]] = {
            "fixed": {"k": self.graph_k, "agents": num_agents}, "dynamic": {"group_size": self.group_size},
            "erdos_renyi": {"p": self.graph_p}, "b_connected": {"B": self.graph_b}, "ring": {"hops": self.graph_hops}}
        return make_schedule(self.graph, seed=seed, **options.get(self.graph, {}))


def step_scale(server_round: int, beta: float) -> float:
    """α_t/α_0 = t^(-β) in round t >= 1 ([FPF Thm. 2]'s schedule)."""
    return float(server_round ** -beta)


def theorem2_violations(beta: float, alpha0: float | None = None, participants: int | None = None) -> list[str]:
    """The conditions of [FPF Thm. 2] the schedule α_t = α_0/t^β breaks, one sentence each
    (empty: none that can be checked). ``alpha0`` and ``participants`` (N_p), when given,
    check the necessary part α_0 < 1/N_p of α_0 ∈ (0, 1/(N_p(2C_L + 1))) (C_L > 0 unknown)."""
    out = []
    if not 0.5 < beta < 1.0:
        out.append(f"--lmf-beta {beta:g} is outside [FPF Thm. 2]'s β ∈ (1/2, 1)"
                   + (" (β = 0: constant steps)" if beta == 0 else ""))
    if alpha0 is not None and participants:
        if not 0.0 < alpha0 < 1.0 / participants:
            out.append(f"α_0 = {alpha0:g} is not below 1/N_p = {1.0 / participants:g}, so not in [FPF Thm. 2]'s "
                       f"(0, 1/(N_p(2C_L + 1))) for any gradient bound C_L > 0")
    return out


def self_weights(graph: nx.Graph, nodes: list[int], w: float) -> np.ndarray:
    """C over ``nodes`` (in that order) with c(i,i) = w and c(i,j) = (1 - w)/deg(i) for each
    neighbour j on ``graph`` (an isolated agent keeps c(i,i) = 1); doubly stochastic on a
    regular graph (ring, complete)."""
    index = {a: k for k, a in enumerate(nodes)}
    C = np.eye(len(nodes))
    for a in nodes:
        hood = [b for b in graph.neighbors(a) if b != a]
        if hood:
            C[index[a], index[a]] = w
            for b in hood:
                C[index[a], index[b]] = (1.0 - w) / len(hood)
    return C


def neighbour_gradients(graph: nx.Graph, members: list[int], shared: dict[int, ArrayRecord]) -> dict[int, ArrayRecord]:
    """The gradient-steps exchange: agent i receives each neighbour's upload (its last
    gradient) as it is, keyed ``"<k>/<parameter>"`` in the neighbours' order (none: nothing)."""
    out = {}
    for a in members:
        hood = sorted(b for b in graph.neighbors(a) if b != a)
        if hood:
            out[a] = ArrayRecord({f"{k}/{key}": Array(shared[b][key].numpy().astype(np.float32))
                                  for k, b in enumerate(hood) for key in shared[b].keys()})
    return out


#: the most agents :func:`neighbour_mix` mixes with one dense product
DENSE_MIX = 256


def neighbour_mix(C: np.ndarray | sparse.sparray, shared: list[ArrayRecord],
                  dtype: type = np.float64) -> list[dict[str, np.ndarray]]:
    """Row i: Σ_j C[i, j]·shared_j, array by array ([FPF Eq. 13]/14 without the local step),
    summed in float64 and returned as ``dtype`` (each row cast as soon as it is summed, so
    many agents' mixes are not held in float64). Up to DENSE_MIX agents one dense product per
    array (as runs have always been mixed, bit for bit); beyond, C (dense or scipy.sparse)
    is read as CSR and only its nonzeros are summed, in column order: O(nonzeros ×
    parameters) time and no N × N or N × parameters copy, so a ring of 10,000 agents mixes
    in seconds. The two differ only in the order of float64 additions (tests/test_scale.py)."""
    keys = list(shared[0].keys())
    mixed: list[dict[str, np.ndarray]] = [{} for _ in shared]
    if len(shared) <= DENSE_MIX:
        dense = C if isinstance(C, np.ndarray) else C.toarray()
        for key in keys:
            out = np.tensordot(dense, np.stack([s[key].numpy().astype(np.float64) for s in shared]), axes=1)
            for i in range(len(shared)):
                mixed[i][key] = out[i].astype(dtype, copy=False)
        return mixed
    C = sparse.csr_array(C)
    C.sort_indices()
    for key in keys:
        values = [s[key].numpy() for s in shared]
        for i in range(len(shared)):
            lo, hi = C.indptr[i], C.indptr[i + 1]
            out = np.zeros(values[i].shape, np.float64)
            for j, c in zip(C.indices[lo:hi], C.data[lo:hi]):
                out += float(c) * values[j].astype(np.float64)
            mixed[i][key] = out.astype(dtype, copy=False)
    return mixed


class LMF(FederationStrategy):
    """Local multi-federations over a time-varying communication graph."""

    name = "lmf"
    reads = ("lmf", "robust")
    share = protocol.SHARE_PARAMETERS  # the default mode; an instance may share gradients instead
    mixes_parameters = True

    def __init__(self, participation: Participation, seed: int, schedule: GraphSchedule,
                 mode: str = protocol.SHARE_PARAMETERS, beta: float = 0.0, aggregator: Aggregator | None = None,
                 self_weight: float = 0.0):
        """``aggregator``: the mean keeps the weighted mix Σ_j c(i,j)θ_j; a robust rule
        replaces it over each closed neighbourhood (strategies.robust). ``self_weight`` w > 0:
        c(i,i) = w, c(i,j) = (1 - w)/deg(i) (:func:`self_weights`) instead of the schedule's."""
        if mode not in MODES:
            raise ValueError(f"unknown LMF mode '{mode}'; valid choices: {', '.join(MODES)}")
        if not 0.0 <= self_weight < 1.0:
            raise ValueError(f"the LMF self weight must be in [0, 1), got {self_weight}")
        gradients = mode in (protocol.SHARE_GRADIENTS, protocol.LMF_GRADIENT_STEPS)
        self.share = protocol.SHARE_GRADIENTS if gradients else protocol.SHARE_PARAMETERS
        super().__init__(participation, seed)
        self.schedule, self.mode, self.beta, self.self_weight = schedule, mode, beta, self_weight
        self.pending: dict[int, ArrayRecord] = {}
        self.aggregator = aggregator or Mean()

    @classmethod
    def uploads_per_round(cls, participation) -> int | None:
        """None: LMF applies the rule over each agent's closed neighbourhood, whose size the
        graph decides round by round (strategies.robust falls back to the median there)."""
        return None

    @classmethod
    def check_config(cls, cfg: RunSettings, game) -> None:
        if cfg.agents < 2:
            raise ValueError(f"lmf needs at least 2 agents (it mixes with neighbours), got --agents {cfg.agents}")
        if cfg.lmf.mode == protocol.LMF_GRADIENT_STEPS:
            if cfg.robust.rule != "mean":
                raise ValueError(f"--lmf-mode gradient-steps applies each neighbour's gradient as it is; it combines "
                                 f"nothing, so --robust {cfg.robust.rule} has nothing to do (use --robust mean)")
            if "q-table" in cfg.learners():
                raise ValueError("--lmf-mode gradient-steps needs agents with an optimiser (ppo or dqn), not q-table")
            if cfg.lmf.self_weight:
                raise ValueError("--lmf-self-weight weighs a mix; --lmf-mode gradient-steps mixes nothing (each "
                                 "neighbour's gradient is one whole step)")
        if cfg.lmf.self_weight and (cfg.lmf.graph_file or cfg.lmf.graph not in ("ring", "complete")):
            graph = "--graph-file" if cfg.lmf.graph_file else f"--graph {cfg.lmf.graph}"
            raise ValueError(f"--lmf-self-weight needs a regular graph (ring or complete): on {graph} the weights "
                             "c(i,j) = (1 - w)/deg(i) are not doubly stochastic ([FPF Assumption 5])")

    @classmethod
    def config_notes(cls, cfg: RunSettings) -> list[str]:
        """[FPF Thm. 2]'s conditions the run's step schedule breaks (:func:`theorem2_violations`)."""
        alphas = {"ppo": cfg.ppo.lr_actor, "dqn": cfg.dqn.lr}
        learners = set(cfg.learners())
        alpha0 = max((alphas[name] for name in learners if name in alphas), default=None)
        participants = cls.effective_participation(Participation.from_config(cfg.joining, cfg.agents)).size
        return [f"lmf: the step schedule breaks [FPF Thm. 2]: {why}"
                for why in theorem2_violations(cfg.lmf.beta, alpha0, participants)]

    @classmethod
    def from_config(cls, cfg: RunSettings, game, init) -> "LMF":
        lmf = cfg.lmf
        return cls(Participation.from_config(cfg.joining, cfg.agents), cfg.seed, lmf.schedule(cfg.agents, cfg.seed),
                   lmf.mode, lmf.beta, make_aggregator(cfg.robust), lmf.self_weight)

    def instructions(self, agent: int, server_round: int, arrays: ArrayRecord) -> tuple[dict, dict[str, ArrayRecord]]:
        """The agent's neighbour mix from the last exchange (delivered once), the mode and α_t/α_0."""
        mix = self.pending.pop(agent, None)
        entries = {"lmf-mode": self.mode, "lr-scale": step_scale(server_round, self.beta)}
        return entries, ({} if mix is None else {protocol.MIX: mix})

    def acting_policies(self, arrays: ArrayRecord) -> dict[int, ArrayRecord]:
        """Diffusion: each participant acts with the mix it will train from (its experience is
        then on-policy for that start); [FPF Eq. 13]/14: each agent acts with its own reply."""
        return dict(self.pending) if self.mode == protocol.LMF_DIFFUSION else {}

    def state_dict(self) -> dict:
        return super().state_dict() | {"pending": {a: r.to_numpy_ndarrays() for a, r in self.pending.items()},
                                       "keys": {a: list(r.keys()) for a, r in self.pending.items()}}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.pending = {a: ArrayRecord({k: Array(v) for k, v in zip(state["keys"][a], arrays)})
                        for a, arrays in state["pending"].items()}

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        agent_of = {node: agent for agent, node in self.nodes.items()}
        shared = {agent_of[r.metadata.src_node_id]: protocol.record(r.content, protocol.SHARED, ArrayRecord)
                  for r in replies if not r.has_error() and protocol.SHARED in r.content}
        members = sorted(shared)
        if not members:
            return None, MetricRecord({"uploads": 0})
        graph = self.schedule.graph(server_round, members)
        if self.mode == protocol.LMF_GRADIENT_STEPS:  # no mix: each neighbour's gradient as it is
            self.pending.update(neighbour_gradients(graph, members, shared))
            return None, MetricRecord({"uploads": len(members), "graph_edges": graph.number_of_edges()})
        C = (self_weights(graph, members, self.self_weight) if self.self_weight
             else self.schedule.sparse_weights(server_round, members, graph))
        index = {a: k for k, a in enumerate(members)}
        eps = check_weights(C, [(index[u], index[v]) for u, v in graph.edges() if u != v])
        how: dict[str, float] = {}
        if not self.aggregator.robust:
            mixes = neighbour_mix(C, [shared[a] for a in members], np.float32)
        else:  # the rule over each closed neighbourhood instead of the weighted mix (strategies.robust)
            keys = list(shared[members[0]].keys())
            mixes, fallbacks = [], 0.0
            for agent in members:
                hood = [agent, *sorted(graph.neighbors(agent))]
                combined, metrics = self.aggregator.aggregate([[shared[j][k].numpy() for k in keys] for j in hood])
                mixes.append(dict(zip(keys, combined)))
                fallbacks += metrics.get("robust_fallback", 0.0)
            how["robust_fallback"] = fallbacks / len(members)
        for agent, mixed in zip(members, mixes):
            self.pending[agent] = ArrayRecord({k: Array(v.astype(np.float32, copy=False)) for k, v in mixed.items()})
        return None, MetricRecord({"uploads": len(members), "graph_edges": graph.number_of_edges(), "weights_eps": eps,
                                   **how})

    def summary(self) -> None:
        super().summary()
        log(INFO, "\t│\t├── graph %s (B = %s), %s exchange, β = %s%s", self.schedule.name, self.schedule.interval,
            self.mode, self.beta, f", c(i,i) = {self.self_weight}" if self.self_weight else "")
