"""The ClientApp: one egoistic agent that trains its own policy on its own experience.

``train()`` reads: receive, apply the strategy's instructions (clients.instructions),
train, reply. The learner (clients.learners: ppo, dqn or q-table) is rebuilt each message
from the configuration the server sends and the state kept in the agent's own storage
(clients.storage), so it works in simulation and in deployment, where every message runs
in a fresh process. Everything else the agent needs arrives in the message
(clients.protocol): the server is the single source of truth for the configuration.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from clients import instructions, learners, networks, protocol, stacking
from clients.learner import Learner
from clients.networks import NetworkConfig, flat
from clients.storage import AgentStorage, storage_root
from clients.volunteer import JoinRecord

app = ClientApp()


@app.query()
def hello(msg: Message, context: Context) -> Message:
    """Tell the server which agents this node plays: ``agent-id`` (its first), and
    ``agent-ids`` (all of them) when it holds a list of agents, whose train messages
    then come packed (clients.protocol.pack)."""
    query = protocol.optional_record(msg.content, protocol.CONFIG, ConfigRecord) or ConfigRecord()
    agents = _node_agents(context, query)
    answer = ConfigRecord({"agent-id": agents[0]})
    per_node = int(protocol.scalar(query.get("agents-per-node", 1)))
    if "agent-ids" in context.node_config or ("agent-id" not in context.node_config and per_node > 1):
        answer["agent-ids"] = agents
    return Message(RecordDict({protocol.CONFIG: answer}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train on the agent's own experience with what the strategy sent; a message for
    several agents of this node (clients.protocol.pack) trains them together, stacked
    where their learners stack (``train_many``), and answers in one packed reply. A
    message whose arrays came bundled (clients.protocol.bundle_arrays: through Flower's
    transport) is answered bundled."""
    bundled = protocol.BUNDLE in msg.content
    msg = _with_content(msg, protocol.unbundle_arrays(msg.content))
    packed = protocol.unpack(msg.content)
    if packed is None:
        reply = train_many([(msg, context)])[0]
    else:
        header, contents = packed
        own = _node_agents(context, header)
        if strangers := sorted(set(contents) - set(own)):
            raise ValueError(f"a message for agents {strangers} reached the node of agents {own}")
        jobs = [(_with_content(msg, content), agent_context(context, agent)) for agent, content in contents.items()]
        replies = train_many(jobs, stacked=str(header.get("stacked", "auto")))
        reply = Message(protocol.pack({agent: r.content for agent, r in zip(contents, replies)}), reply_to=msg)
    if bundled and not reply.has_error():
        reply.content = protocol.bundle_arrays(reply.content)
    return reply


def _node_agents(context: Context, sent: ConfigRecord) -> list[int]:
    """The agents this node holds, with the number of agents and agents per node the
    server ``sent`` (a simulated node works its block of agents out from them)."""
    num_agents = int(protocol.scalar(sent["agents"])) if "agents" in sent else None
    per_node = int(protocol.scalar(sent.get("agents-per-node", 1)))
    return protocol.node_agent_ids(context.node_config, num_agents, per_node)


def _with_content(msg: Message, content: RecordDict) -> Message:
    """``msg`` (its metadata: what a reply to it answers) carrying one agent's ``content``."""
    part = copy.copy(msg)
    part.content = content
    return part


def agent_context(context: Context, agent: int) -> Context:
    """The node's context seen by one of its agents: its node config names that agent
    alone (``agent-id``); the rest (storage-dir, the node's state) is the node's."""
    config = {k: v for k, v in context.node_config.items() if k not in ("agent-ids", "partition-id")}
    return Context(run_id=context.run_id, node_id=context.node_id, node_config={**config, "agent-id": agent},
                   state=context.state, run_config=context.run_config)


def train_many(messages: Sequence[tuple[Message, Context]], stacked: str = "off") -> list[Message]:
    """``train`` for several agents held by this process: each message's reply, in order.

    With ``stacked="auto"`` the agents whose learners stack (clients/stacking.py: same
    learner, hyperparameters, networks and optimiser state) train in one pass; everything
    else each agent does (instructions, pulls, storage, reply) is its own, as in ``train``.
    """
    rounds = [_receive(msg, context) for msg, context in messages]
    learning = [r for r in rounds if r.learns]
    if any(instructions.needs_last_gradient(r.cfg) for r in learning):
        stacked = "off"  # each agent's own optimiser step leaves the gradient it uploads
    trained = iter(stacking.train_all([r.job for r in learning], stacked))
    return [_reply(r, next(trained) if r.learns else instructions.resting()) for r in rounds]


@dataclass
class _Round:
    """One agent's message, between receiving it and replying to it."""

    msg: Message
    context: Context
    cfg: ConfigRecord
    storage: AgentStorage
    join_record: JoinRecord
    fresh: bool
    before: instructions.Params
    job: stacking.Job
    learns: bool
    elapsed: float  # seconds of this agent's own work so far


def _receive(msg: Message, context: Context) -> _Round:
    """Receive: the agent's learner, its experience and the strategy's instructions applied."""
    start = time.perf_counter()
    cfg = protocol.record(msg.content, protocol.CONFIG, ConfigRecord)
    spec = protocol.record(msg.content, protocol.LEARNER, ConfigRecord)
    agent = int(protocol.scalar(cfg["agent-id"]))
    own = protocol.node_agent_id(context.node_config)
    if agent != own:
        raise ValueError(f"message for agent {agent} reached the node of agent {own}")
    torch.set_num_threads(int(protocol.scalar(spec["torch-threads"])))
    server_round = int(protocol.scalar(cfg["server-round"]))
    seed = int(np.random.SeedSequence([int(protocol.scalar(cfg["seed"])), server_round, agent]).generate_state(1)[0])

    storage = AgentStorage(storage_root(context.node_config, str(spec["storage-dir"])), agent)
    learner, join_record, fresh = _restore(spec, agent, storage, server_round)
    policy = learner.policy
    exp = protocol.unpack_experience(protocol.record(msg.content, protocol.EXPERIENCE, ArrayRecord))

    # apply the strategy's instructions before training
    instructions.adopt_global_policy(policy, msg.content)
    instructions.add_neighbour_update(policy, msg.content, cfg)
    instructions.adopt_neighbour_mix(policy, msg.content, cfg)
    learner.scale_lr(float(protocol.scalar(cfg.get("lr-scale", 1.0))))
    instructions.step_with_neighbour_gradients(learner, msg.content, cfg)
    learner.reshape_with(instructions.reshaper(msg.content, cfg, agent))
    before = instructions.params(policy)
    anchors = instructions.anchors(msg.content, cfg).to(_device(policy))
    return _Round(msg, context, cfg, storage, join_record, fresh, before, stacking.Job(learner, exp, anchors, seed),
                  instructions.learns(cfg), time.perf_counter() - start)


def _reply(r: _Round, stats: dict[str, float]) -> Message:
    """After training: the per-round pull, mixing, the join decision, storage and the reply."""
    start = time.perf_counter()
    msg, cfg, learner, anchors, seed = r.msg, r.cfg, r.job.learner, r.job.anchors, r.job.seed
    policy, before, server_round = learner.policy, r.before, int(protocol.scalar(cfg["server-round"]))
    after = instructions.params(policy)
    stats["update_norm"] = instructions.distance(after, before)
    if anchors.active:  # FPF's per-round pull ([FPF Eq. 9]), after training; ||Δθ|| of the pull
        stats["pull_norm"] = anchors.interpolate(policy)
        after = instructions.params(policy)
    update = {k: v - before[k] for k, v in after.items()}
    instructions.mix_with_neighbours(policy, msg.content, cfg, update)
    instructions.withhold_update(policy, cfg, before)
    if cfg.get("voluntary", False):
        exp = r.job.exp
        episode_return = float((exp.rewards * exp.mask).sum(axis=0).mean())
        stats["join-next"] = float(instructions.decide_to_join(cfg, r.join_record, episode_return, seed))
    r.storage.save({"learner": learner.state_dict(), "volunteer": r.join_record.to_dict()}, server_round)
    _LIVE[r.storage.path] = (r.storage.stamp(), server_round, learner, r.join_record)

    # reply
    acting, acting_spec = learner.acting()
    if (omega := protocol.optional_record(msg.content, protocol.OMEGA, ArrayRecord)) is not None:
        # Theorem 1(b) diagnostic: a scalar, not the parameters
        stats["dist_to_omega"] = float(((flat(acting) - flat(omega)) ** 2).sum())
    stats["fresh-start"] = float(r.fresh)
    stats["context_records"] = float(len(r.context.state))  # the learner's state does not ride in messages
    metrics = protocol.metric_record(stats)
    content = RecordDict({protocol.ACTING: acting, protocol.ACTING_SPEC: ConfigRecord(acting_spec.to_dict()),
                          protocol.METRICS: metrics})
    if instructions.needs_last_gradient(cfg):
        update = learner.last_gradient()  # what LMF's gradient-steps exchange uploads
    if (shared := instructions.shared_record(policy, cfg, update)) is not None:
        content[protocol.SHARED] = instructions.poison_upload(shared, before, cfg, msg.content, seed)
    # all the agent's own work this round (its share of a stacked pass included)
    metrics["client_s"] = r.elapsed + float(stats.get("train_s", 0.0)) + time.perf_counter() - start
    metrics["pid"] = float(os.getpid())  # which process did it (the server's time accounting)
    return Message(content, reply_to=msg)


def _device(module: torch.nn.Module) -> torch.device:
    """Where the module's parameters are (the CPU for one without any)."""
    return next((p.device for p in module.parameters()), torch.device("cpu"))


# Learners this process saved, by storage file: (the file's stamp, its round, learner,
# join record). A process that handles the same agent again (Flower's simulation keeps its
# workers) reuses the learner in memory instead of rebuilding and reloading it, but only
# if the file is still the one it wrote, from an earlier round; a fresh process
# (deployment) always reads the file.
_LIVE: dict[Path, tuple[tuple[int, int] | None, int, Learner, JoinRecord]] = {}


def _restore(spec: ConfigRecord, agent: int, storage: AgentStorage,
             server_round: int) -> tuple[Learner, JoinRecord, bool]:
    """The agent's learner and participation record: fresh in round 1, else the newest
    state stored by an earlier round (so a resumed run never trains a round twice).

    Returns ``(learner, join_record, fresh)``; ``fresh`` is True when a later round found
    no stored state (a new machine, a wiped disk) and the agent had to start over.
    """
    live = _LIVE.pop(storage.path, None)
    if server_round > 1 and live is not None and live[0] == storage.stamp() and live[1] < server_round:
        return live[2], live[3], False
    device = str(spec.get("device", "cpu"))
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"agent {agent}: the run trains on the GPU (--device cuda) but this node has none")
    if server_round == 1:
        storage.clear()
    state = storage.load_before(server_round) if server_round > 1 else None
    name = str(spec["learner"])
    hyper = learners.hyper_from(learners.config_class(name), spec)
    net = learners.hyper_from(NetworkConfig, spec)
    # a built-in learner's state holds all its parameters: its networks need no initialisation
    with networks.restoring() if state is not None and name in learners.BUILTIN else contextlib.nullcontext():
        learner = learners.make(name, protocol.space_from(spec), int(protocol.scalar(spec["num-actions"])), hyper,
                                net, seed=int(protocol.scalar(spec["seed"])), agent=agent)
    learner.to(device)
    if state is None:
        return learner, JoinRecord(), server_round > 1
    learner.load_state_dict(state["learner"])
    return learner, JoinRecord.from_dict(state["volunteer"]), False


def release_learners() -> int:
    """Forget the learners this process keeps in memory (their state stays in the agents'
    storage, which the next round reads); returns how many. A process that handles more
    agents than fit in memory (the in-process runner with many agents) calls it between
    groups of agents."""
    released = len(_LIVE)
    _LIVE.clear()
    return released
