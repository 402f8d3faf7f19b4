"""Which node plays which agent: wait for the nodes, then ask each one."""

from __future__ import annotations

import time

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from clients import protocol


class AgentDiscoveryError(RuntimeError):
    """The nodes that connected do not form the expected set of agents."""


def discover_agents(grid: Grid, num_agents: int, timeout: float, poll: float = 0.5) -> dict[int, int]:
    """Return {agent id: node id} once ``num_agents`` nodes are connected and identified."""
    deadline = time.monotonic() + timeout
    nodes = list(grid.get_node_ids())
    while len(nodes) < num_agents:
        if time.monotonic() > deadline:
            raise AgentDiscoveryError(f"only {len(nodes)} of {num_agents} agent nodes connected after {timeout:.0f} s")
        time.sleep(poll)
        nodes = list(grid.get_node_ids())
    messages = [Message(RecordDict({protocol.CONFIG: ConfigRecord({})}), dst_node_id=n, message_type=MessageType.QUERY)
                for n in nodes]
    replies = list(grid.send_and_receive(messages, timeout=max(deadline - time.monotonic(), 30.0)))
    agents: dict[int, int] = {}
    for reply in replies:
        node = reply.metadata.src_node_id
        if reply.has_error():
            raise AgentDiscoveryError(f"node {node} failed to identify itself: {reply.error.reason}")
        agent = int(protocol.scalar(protocol.record(reply.content, protocol.CONFIG, ConfigRecord)["agent-id"]))
        if agent in agents:
            raise AgentDiscoveryError(f"agent {agent} is played by two nodes ({agents[agent]} and {node})")
        agents[agent] = node
    expected = set(range(num_agents))
    if set(agents) != expected:
        raise AgentDiscoveryError(
            f"expected agents 0..{num_agents - 1}, nodes reported {sorted(agents)} "
            f"(missing {sorted(expected - set(agents))}, unknown {sorted(set(agents) - expected)})")
    return agents


def rediscover(grid: Grid, known: dict[int, int], num_agents: int, timeout: float = 30.0) -> tuple[dict[int, int], list[str]]:
    """Agents that came back on new nodes (a restarted SuperNode registers under a new node id).

    ``known`` is {agent id: node id}. Nodes the grid reports that are not in ``known`` are
    asked which agent they play; returns ({agent: new node}, problems), where problems are
    replies that could not be used (an error, an agent id outside 0..N-1).
    """
    new = sorted(set(grid.get_node_ids()) - set(known.values()))
    if not new:
        return {}, []
    messages = [Message(RecordDict({protocol.CONFIG: ConfigRecord({})}), dst_node_id=n, message_type=MessageType.QUERY)
                for n in new]
    found, problems = {}, []
    for reply in grid.send_and_receive(messages, timeout=timeout):
        node = reply.metadata.src_node_id
        if reply.has_error():
            problems.append(f"node {node} did not identify itself: {reply.error.reason}")
            continue
        agent = int(protocol.scalar(protocol.record(reply.content, protocol.CONFIG, ConfigRecord)["agent-id"]))
        if not 0 <= agent < num_agents:
            problems.append(f"node {node} claims agent {agent}; valid agent ids: 0..{num_agents - 1}")
            continue
        found[agent] = node
    return found, problems
