"""What travels between the ServerApp and an agent's ClientApp.

Train message (server -> agent i)::

    "config"      ConfigRecord  the strategy's instructions: agent-id, server-round, seed,
                                share ("none" | "parameters" | "gradients"),
                                optional alpha-lambda-u / alpha-lambda-e (the pull weights
                                toward ω and ω̄), lmf-mode, lr-scale, voluntary, vol-*
    "learner"     ConfigRecord  how to build and train the agent's learner: learner
                                (ppo | dqn | q-table), its hyperparameters, network size,
                                observation space (obs-*), num-actions, torch-threads,
                                device (cpu | cuda), storage-dir (suggested)
    "experience"  ArrayRecord   agent i's own experience only (clients.experience)
    "omega"       ArrayRecord   optional: utilitarian anchor ω
    "omega-bar"   ArrayRecord   optional: egalitarian anchor ω̄
    "replace"     ArrayRecord   optional: parameters to adopt before training (FedAvg)
    "mix"         ArrayRecord   optional: the agent's neighbour mix (LMF): parameters to
                                combine with its own update ("lmf-mode" = "parameters"),
                                parameters to adopt before training ("diffusion"),
                                or the mixed update to add before training ("gradients");
                                "gradient-steps": the neighbours' last gradients, keyed
                                "<k>/<parameter>" (k = 0, 1, ...), one optimiser step each
    "mechanism"   ArrayRecord   optional (md, --md-reshape-time minibatch): the mechanism's
                                critic, MRP predictor and MRP buffer, to recompute the
                                reshaped reward on every minibatch (clients.reshaping)
    "joint"       ArrayRecord   optional, with "mechanism": the round's global states, joint
                                actions and game rewards, row by row beside the experience
    "attack"      ConfigRecord  optional, attackers only: the agent's attack profile (kind,
                                scale; clients.attacks), attached by the round loop from the
                                run's configuration; no strategy sees or sets it

Reply (agent i -> server)::

    "acting"      ArrayRecord   the policy the agent will act with; for the world only,
                                removed before a strategy sees the reply
    "acting-spec" ConfigRecord  learner, policy kind and ε of that policy (clients.policies)
    "shared"      ArrayRecord   only if the agent shares: its updated policy θ̃_i
                                (share="parameters") or only its update Δ_i ("gradients")
    "metrics"     MetricRecord  training diagnostics (scalars only)

Query message "hello" (carrying ``agents`` N and ``agents-per-node`` K): the node replies
``ConfigRecord({"agent-id": i})`` from its node config (``agent-id`` in deployment,
``partition-id`` in simulation), plus ``"agent-ids": [...]`` when it holds a list of agents
(``agent-ids`` in deployment, a block of K agents in simulation: :func:`node_agent_ids`).

A node of several agents gets one train message for all of them and answers with one
reply (:func:`pack`, :func:`unpack`): an ``"agents"`` ConfigRecord names the agents (and,
from the server, N, K and ``stacked``), and each agent's records above travel under
``"<agent>/<record>"``; only the node's own agents' records are in either.

Where messages cross processes through Flower's object store (a deployment, ``flwr run``),
each message's arrays travel as one Array (:func:`bundle_arrays`, :func:`unbundle_arrays`):
the ServerApp bundles what it pushes, the ClientApp unbundles what it receives and bundles
its reply when the message came bundled, and the server unbundles replies before a
strategy sees them; strategies and learners see the records above. The simulation's
in-memory grid moves them as they are.

The learner's state never travels: it stays in the agent's storage (clients.storage).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, ConfigRecordValues, MetricRecord, MetricRecordValues, RecordDict
from gymnasium import spaces

from clients.experience import Experience

CONFIG, LEARNER, EXPERIENCE, ATTACK = "config", "learner", "experience", "attack"
OMEGA, OMEGA_BAR, REPLACE, MIX = "omega", "omega-bar", "replace", "mix"
MECHANISM, JOINT = "mechanism", "joint"
ACTING, ACTING_SPEC, SHARED, METRICS = "acting", "acting-spec", "shared", "metrics"
SHARE_NONE, SHARE_PARAMETERS, SHARE_GRADIENTS = "none", "parameters", "gradients"
# LMF's exchanges: [FPF Eq. 13] (consensus, then the own step), [FPF Eq. 14] (mixed updates), and
# diffusion (adapt, then combine: the own step is taken from the neighbours' mix), and
# gradient-steps (the FPF authors' [FPF Eq. 14]: each neighbour's last gradient is one more
# step of the agent's own optimiser; the agent keeps its own update)
LMF_DIFFUSION, LMF_GRADIENT_STEPS = "diffusion", "gradient-steps"
LMF_MODES = (SHARE_PARAMETERS, SHARE_GRADIENTS, LMF_DIFFUSION, LMF_GRADIENT_STEPS)
# the per-step pull coefficients toward ω and ω̄ (FPF sends αλ_u and αλ_e)
PULL_U, PULL_E = "alpha-lambda-u", "alpha-lambda-e"
#: how many times the agent applies the per-round pull this round (federation events; 1 if absent)
PULL_REPEATS = "pull-repeats"
# the configuration groups that govern what agents upload (clients.attacks): they apply to
# every strategy whose participants upload something (federation.config reads them then)
UPLOAD_GROUPS = ("attack",)


# a record of a message, and one value of a ConfigRecord / MetricRecord that is not a list
R = TypeVar("R", ArrayRecord, ConfigRecord, MetricRecord)
Scalar = int | float | str | bytes | bool


def record(content: RecordDict, key: str, kind: type[R]) -> R:
    """``content[key]``, the kind of record this protocol says travels under ``key``."""
    found = content[key]
    if not isinstance(found, kind):
        raise TypeError(f"record {key!r} is a {type(found).__name__}, expected a {kind.__name__}")
    return found


def optional_record(content: RecordDict, key: str, kind: type[R]) -> R | None:
    """:func:`record` for an optional record: None when the message has none under ``key``."""
    return record(content, key, kind) if key in content else None


def scalar(value: object) -> Scalar:
    """One value of a ConfigRecord or MetricRecord that this protocol says is a scalar."""
    if not isinstance(value, (int, float, str, bytes, bool)):
        raise TypeError(f"expected a scalar, got a {type(value).__name__}")
    return value


def config_record(values: Mapping[str, ConfigRecordValues]) -> ConfigRecord:
    """A ConfigRecord of ``values`` (Flower's constructor takes only a dict of exactly its value type)."""
    out = ConfigRecord()
    out.update(values)
    return out


def metric_record(values: Mapping[str, MetricRecordValues]) -> MetricRecord:
    """A MetricRecord of ``values`` (Flower's constructor takes only a dict of exactly its value type)."""
    out = MetricRecord()
    out.update(values)
    return out


def pack_experience(exp: Experience) -> ArrayRecord:
    return ArrayRecord({name: Array(np.ascontiguousarray(getattr(exp, name))) for name in Experience.FIELDS})


def unpack_experience(record: ArrayRecord) -> Experience:
    missing = [name for name in Experience.FIELDS if name not in record]
    if missing:
        raise ValueError(f"experience record lacks {missing}")
    return Experience(**{name: record[name].numpy() for name in Experience.FIELDS})


def space_config(space: spaces.Space) -> dict:
    """An observation space as config entries (the agent rebuilds it with :func:`space_from`)."""
    if isinstance(space, spaces.Discrete):
        return {"obs-kind": "discrete", "obs-n": int(space.n)}
    if isinstance(space, spaces.Box):
        return {"obs-kind": "box", "obs-shape": [int(s) for s in space.shape], "obs-dtype": str(space.dtype),
                "obs-low": float(np.min(space.low)), "obs-high": float(np.max(space.high))}
    raise ValueError(f"unsupported observation space {space}")


def space_from(config) -> spaces.Space:
    if config["obs-kind"] == "discrete":
        return spaces.Discrete(int(config["obs-n"]))
    dtype = np.dtype(str(config["obs-dtype"]))
    return spaces.Box(float(config["obs-low"]), float(config["obs-high"]),
                      tuple(int(s) for s in config["obs-shape"]), dtype)


def node_agent_id(node_config: dict) -> int:
    """The agent a node plays: ``agent-id`` (deployment) or ``partition-id`` (simulation)."""
    agents = node_agent_ids(node_config)
    if len(agents) != 1:
        raise ValueError(f"this node holds agents {agents}, not one")
    return agents[0]


def node_agent_ids(node_config: Mapping, num_agents: int | None = None, per_node: int = 1) -> list[int]:
    """The agents a node holds: ``agent-ids`` (deployment: ``"0-4"``, ``"0,2,5"``), else
    ``agent-id`` (one agent), else, in a simulation, partition ``p``'s block of ``per_node``
    agents, ``p*K .. min((p+1)*K, N) - 1`` (Flower's simulation gives its nodes only a
    partition id: ``num_agents`` N and ``per_node`` K come from the server's message)."""
    if "agent-ids" in node_config:
        if "agent-id" in node_config:
            raise ValueError("the node config names both agent-id and agent-ids: give one of them")
        return parse_agent_ids(node_config["agent-ids"])
    if "agent-id" in node_config:
        return [int(node_config["agent-id"])]
    if "partition-id" in node_config:
        part = int(node_config["partition-id"])
        if per_node == 1:
            return [part]
        if num_agents is None:
            raise ValueError("a simulated node holding several agents needs the number of agents from the server")
        agents = list(range(part * per_node, min(num_agents, (part + 1) * per_node)))
        if not agents:
            raise ValueError(f"partition {part} holds no agent ({num_agents} agents, {per_node} per node)")
        return agents
    raise ValueError("this node has no agent: start the SuperNode with --node-config \"agent-id=<i>\" "
                     "or --node-config 'agent-ids=\"<first>-<last>\"'")


def parse_agent_ids(value: object) -> list[int]:
    """A node's ``agent-ids``: an integer, or text of ids and inclusive ranges separated
    by commas (``"0-4"``, ``"0,2,5"``, ``"0-2,7"``); each id at most once, none negative."""
    text = str(value).strip()
    out: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            if "-" in part.lstrip("-"):
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                out += range(lo, hi + 1)
            else:
                out.append(int(part))
    except ValueError:
        raise ValueError(f"agent-ids {text!r} must list agent ids and ranges, e.g. \"0-4\" or \"0,2,5\"") from None
    if len(set(out)) != len(out) or min(out) < 0:
        raise ValueError(f"agent-ids {text!r} names an agent twice or a negative id")
    return out


#: the record of a message that carries several agents' messages, one node's agents
#: (``--agents-per-node``): ``agent-ids`` and the server's settings for the node; each
#: agent's records travel under ``"<agent>/<record>"`` (:func:`pack`, :func:`unpack`)
AGENTS = "agents"


def pack(contents: Mapping[int, RecordDict], header: Mapping[str, ConfigRecordValues] | None = None) -> RecordDict:
    """One message's content holding each agent's own content (train messages to a node
    of several agents, and its reply), with ``header`` beside the agents' ids."""
    out = RecordDict({AGENTS: config_record({**(header or {}), "agent-ids": [int(a) for a in contents]})})
    for agent, content in contents.items():
        for key, value in content.items():
            out[f"{int(agent)}/{key}"] = value
    return out


def unpack(content: RecordDict) -> tuple[ConfigRecord, dict[int, RecordDict]] | None:
    """:func:`pack`'s header and each agent's content, in the header's order; None for a
    message of one agent."""
    if AGENTS not in content:
        return None
    header = record(content, AGENTS, ConfigRecord)
    ids = header["agent-ids"]
    if not isinstance(ids, list):
        raise TypeError("a packed message's agent-ids is not a list")
    out = {int(a): RecordDict() for a in ids}
    for key, value in content.items():
        if key == AGENTS:
            continue
        agent, sep, name = key.partition("/")
        if not sep or not agent.isdigit() or int(agent) not in out:
            raise ValueError(f"a packed message holds record {key!r} of no agent it names ({sorted(out)})")
        out[int(agent)][name] = value
    return header, out


#: a message's arrays travelling as one (:func:`bundle_arrays`): the bytes of every array of
#: every ArrayRecord in one Array of the ArrayRecord ``BUNDLE``, and where each one lies in
#: the ConfigRecord ``BUNDLE_INDEX``
BUNDLE, BUNDLE_INDEX = "bundle", "bundle-index"


def bundle_arrays(content: RecordDict) -> RecordDict:
    """``content`` with all its ArrayRecords' arrays in one Array (their ConfigRecords and
    MetricRecords as they are): what a Flower message carries between machines.

    Flower moves each Array of a message as an object of its own, one request per object
    and hop (ServerApp -> SuperLink -> SuperNode -> ClientApp, and back): a train message
    of 17-28 arrays became ~20-30 requests per hop. Bundled, a message is a handful of
    objects whatever its number of arrays. :func:`unbundle_arrays` gives back equal records:
    the same names in the same order, each array with its dtype, shape and bytes."""
    arrays = [(key, rec) for key, rec in content.items() if isinstance(rec, ArrayRecord)]
    if not arrays:
        return content
    out = RecordDict({key: rec for key, rec in content.items() if not isinstance(rec, ArrayRecord)})
    records, owners, names, dtypes, shapes, offsets, parts = [], [], [], [], [], [], []
    offset = 0
    for r, (key, rec) in enumerate(arrays):
        records.append(key)
        for name in rec:
            value = rec[name].numpy()
            value = value if value.flags.c_contiguous else value.copy(order="C")  # (ascontiguousarray makes 0-d 1-d)
            raw = value.reshape(-1).view(np.uint8)
            owners.append(r)
            names.append(name)
            dtypes.append(value.dtype.str)
            shapes.append(",".join(str(s) for s in value.shape))
            offsets.append(offset)
            parts.append(raw)
            offset += raw.size
    out[BUNDLE] = ArrayRecord({"data": Array(np.concatenate(parts) if parts else np.zeros(0, np.uint8))})
    out[BUNDLE_INDEX] = config_record({"order": list(content.keys()), "records": records, "owners": owners,
                                       "names": names, "dtypes": dtypes, "shapes": shapes, "offsets": offsets})
    return out


def unbundle_arrays(content: RecordDict) -> RecordDict:
    """The records that :func:`bundle_arrays` bundled, in their order, each array a
    writable copy; ``content`` itself when it holds no bundle."""
    if BUNDLE not in content:
        return content
    index = record(content, BUNDLE_INDEX, ConfigRecord)
    data = record(content, BUNDLE, ArrayRecord)["data"].numpy()
    records = [str(k) for k in _listed(index, "records")]
    rebuilt = [ArrayRecord() for _ in records]
    for owner, name, dtype, shape, offset in zip(_listed(index, "owners"), _listed(index, "names"),
                                                 _listed(index, "dtypes"), _listed(index, "shapes"),
                                                 _listed(index, "offsets"), strict=True):
        kind = np.dtype(str(dtype))
        dims = tuple(int(s) for s in str(shape).split(",")) if shape else ()
        count = int(np.prod(dims, dtype=np.int64))
        start = int(offset)
        if start < 0 or start + count * kind.itemsize > data.size:
            raise ValueError(f"the bundled array {name!r} lies outside the bundle")
        value = np.frombuffer(data, dtype=kind, count=count, offset=start).reshape(dims).copy()
        rebuilt[int(owner)][str(name)] = Array(value)
    found = dict(zip(records, rebuilt)) | {k: v for k, v in content.items() if k not in (BUNDLE, BUNDLE_INDEX)}
    order = [str(k) for k in _listed(index, "order")]
    if sorted(order) != sorted(found):
        raise ValueError(f"a bundle's records {sorted(found)} are not the ones it lists {sorted(order)}")
    return RecordDict({key: found[key] for key in order})


def _listed(index: ConfigRecord, key: str) -> list:
    value = index[key] if key in index else []
    if not isinstance(value, list):
        raise TypeError(f"a bundle's {key!r} is not a list")
    return value
