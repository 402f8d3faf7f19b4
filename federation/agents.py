"""Which node plays which agent: wait for the nodes, then ask each one."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from clients import protocol


class AgentDiscoveryError(RuntimeError):
    """The nodes that connected do not form the expected set of agents."""


@dataclass
class Found:
    """Which node plays which agent (``nodes``: agent id -> node id), and the nodes that
    hold a list of agents (``packed``: their train messages go packed, clients.protocol.pack)."""

    nodes: dict[int, int] = field(default_factory=dict)
    packed: set[int] = field(default_factory=set)


def discover_agents(grid: Grid, num_agents: int, timeout: float, poll: float = 0.5, per_node: int = 1) -> Found:
    """The agents' nodes, once the connected nodes hold agents 0..N-1, each once.

    A node holds one agent, or several (``--agents-per-node`` K in a simulation,
    ``agent-ids`` in a deployment, whatever K says); every node is asked as it connects,
    until every agent is there. A node that
    names an agent already held by another, or an agent outside 0..N-1, stops the
    search at once; agents still missing after ``timeout`` stop it then."""
    deadline = time.monotonic() + timeout
    found = Found()
    agents = found.nodes
    asked: set[int] = set()
    while True:
        nodes = list(grid.get_node_ids())
        new = [n for n in nodes if n not in asked]
        if new:
            replies = list(grid.send_and_receive(_hello(new, num_agents, per_node),
                                                 timeout=max(deadline - time.monotonic(), 30.0)))
            asked.update(new)
            for reply in replies:
                node = reply.metadata.src_node_id
                if reply.has_error():
                    raise AgentDiscoveryError(f"node {node} failed to identify itself: {reply.error.reason}")
                held, is_list = _reported(reply)
                for agent in held:
                    if agent in agents:
                        raise AgentDiscoveryError(f"agent {agent} is played by two nodes ({agents[agent]} and {node})")
                    agents[agent] = node
                if is_list:
                    found.packed.add(node)
            unknown = sorted(set(agents) - set(range(num_agents)))
            if unknown:
                raise AgentDiscoveryError(
                    f"expected agents 0..{num_agents - 1}, nodes reported {sorted(agents)} (unknown {unknown}; "
                    f"node of agent {unknown[0]}: {agents[unknown[0]]})")
        if len(agents) == num_agents:
            return found
        if time.monotonic() > deadline:
            missing = sorted(set(range(num_agents)) - set(agents))
            raise AgentDiscoveryError(
                f"only {len(nodes)} agent node{'s' * (len(nodes) != 1)} connected after {timeout:.0f} s, holding "
                f"{len(agents)} of {num_agents} agents (missing {_ids_text(missing)})")
        time.sleep(poll)


def rediscover(grid: Grid, known: dict[int, int], num_agents: int, timeout: float = 30.0,
               per_node: int = 1) -> tuple[Found, list[str]]:
    """Agents that came back on new nodes (a restarted SuperNode registers under a new node id).

    ``known`` is {agent id: node id}. Nodes the grid reports that are not in ``known`` are
    asked which agents they play; returns (the agents found on new nodes, problems), where
    problems are replies that could not be used (an error, an agent id outside 0..N-1).
    """
    new = sorted(set(grid.get_node_ids()) - set(known.values()))
    found, problems = Found(), list[str]()
    if not new:
        return found, problems
    for reply in grid.send_and_receive(_hello(new, num_agents, per_node), timeout=timeout):
        node = reply.metadata.src_node_id
        if reply.has_error():
            problems.append(f"node {node} did not identify itself: {reply.error.reason}")
            continue
        held, is_list = _reported(reply)
        if bad := [a for a in held if not 0 <= a < num_agents]:
            problems.append(f"node {node} claims agent {bad[0]}; valid agent ids: 0..{num_agents - 1}")
            continue
        found.nodes.update({agent: node for agent in held})
        if is_list:
            found.packed.add(node)
    return found, problems


def _hello(nodes: list[int], num_agents: int, per_node: int) -> list[Message]:
    """The query asking each node which agents it plays (a simulated node works its agents
    out from the number of agents and K)."""
    config = ConfigRecord({"agents": num_agents, "agents-per-node": per_node})
    return [Message(RecordDict({protocol.CONFIG: config}), dst_node_id=n, message_type=MessageType.QUERY)
            for n in nodes]


def _reported(reply: Message) -> tuple[list[int], bool]:
    """The agents a node's answer names, and whether it named them as a list."""
    answer = protocol.record(reply.content, protocol.CONFIG, ConfigRecord)
    if "agent-ids" in answer:
        ids = answer["agent-ids"]
        return [int(a) for a in (ids if isinstance(ids, list) else [ids])], True
    return [int(protocol.scalar(answer["agent-id"]))], False


def _ids_text(ids: list[int]) -> str:
    shown = ", ".join(map(str, ids[:10]))
    return shown + (f", ... {ids[-1]}" if len(ids) > 10 else "")
