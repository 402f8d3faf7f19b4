"""Run one configuration in this process, with the ClientApp called directly.

The same round loop as a Flower run (``Federation.run``; per round ``Federation.play``:
rollout, one train message per agent, the ClientApp's ``train``, aggregation, the
strategy's server-side learning; checkpoints, metrics.csv and summary.json), without
Flower's transport: each message is
handed to the ClientApp's ``train`` (``clients.client_app.train_many``), and the agents
whose learners stack train in one pass (``--stacked auto``, clients/stacking.py), as in
benchmarks/bench_round.py's in-process measurement. For studies of many short tabular runs (JAM-QL's matrix
games: ~0.05 s per round here against ~0.3 s plus Ray's start-up in a simulation); the
agents keep their learners in their own storage exactly as in a simulation.
``--agents-per-node`` changes nothing here: every agent already is in this one process,
which trains them one after another or stacked as ``--stacked`` says, with no message
to save.
"""

from __future__ import annotations

import time

import torch
from flwr.app import Context, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from clients import client_app
from federation.config import RunConfig
from federation.server_app import Federation


#: agents trained per call of the ClientApp: a run with more keeps no learner in memory
#: between rounds (each agent reads its state from its storage, as in deployment), so its
#: memory holds the learners of one such group, not of every agent
CHUNK = 256


def run_in_process(cfg: RunConfig, verbose: bool = False, checkpoints: bool = True, chunk: int = CHUNK) -> dict:
    """Run (or, with ``resume``, continue) ``cfg``; return its summary as ``simulate`` does.
    ``checkpoints=False`` skips OUT/checkpoint.pt (short runs that are simply run again).
    ``chunk``: agents trained together per call of the ClientApp (stacked with ``--stacked
    auto``); with more agents than that, the learners are read from the agents' storage
    every round instead of kept in memory (the same results: the state round-trips exactly)."""
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.execution.torch_threads)
    federation = Federation(cfg)
    federation.bind({a: a + 1 for a in range(cfg.agents)})  # node a + 1 plays agent a
    contexts = {a + 1: Context(run_id=1, node_id=a + 1, node_config={"agent-id": a}, state=RecordDict(),
                               run_config={}) for a in range(cfg.agents)}
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1

    def exchange(messages):  # the agents that stack train in one pass (--stacked, clients/stacking.py)
        replies = []
        for k in range(0, len(messages), chunk):  # at most ``chunk`` agents' learners in memory at once
            group = messages[k:k + chunk]
            part = client_app.train_many([(m, contexts[m.metadata.dst_node_id]) for m in group],
                                         stacked=cfg.execution.stacked)
            if len(messages) > chunk:
                client_app.release_learners()
                # the group's messages (experience, LMF's mixes) are done with, and the world
                # takes its acting weights now: a round holds one group's, not every agent's
                for m in group:
                    m.content.clear()
                federation.take_acting(part)
            replies += part
        return replies

    done = federation.restore() if cfg.execution.resume else 0
    startup_s = time.perf_counter() - start
    return federation.run(exchange, done, start, {"startup_s": startup_s, "build_s": startup_s},
                          checkpoints=checkpoints, extra={"runner": "in-process"})
