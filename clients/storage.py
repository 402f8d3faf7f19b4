"""Per-agent storage: a learner's state lives in a per-run, per-agent directory on the
agent's machine, not in the messages.

Flower's ``context.state`` travels with every message (measured: 4 MB of state adds
~60 ms per message) and a DQN replay buffer is far larger, so the learner's whole state
(networks, optimisers, replay buffer, the agent's own participation record) is written to
``<root>/agent_<i>/learner.pt`` after each round and read at the start of the next. This
works in simulation and in deployment, where every message runs in a fresh process, and
it is what a resumed run reloads.

Each file records the round it closes, and the previous round's file is kept beside it
(``learner.prev.pt``): a run killed after an agent saved round t but before the server
recorded round t resumes from round t, and the agent then loads the newest state from a
round before t (``load_before``), so no round is trained twice.

``root`` is the node's ``storage-dir`` (``--node-config "agent-id=3 storage-dir=/data"``
on a SuperNode) when set, else the directory the server suggests (``<out>/agents``).
Writes go to a temporary file that is then renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

FILE = "learner.pt"
PREVIOUS = "learner.prev.pt"


class AgentStorage:
    """The directory of one agent of one run."""

    def __init__(self, root: str | os.PathLike, agent: int):
        self.dir = Path(root) / f"agent_{agent}"
        self.path = self.dir / FILE
        self.previous = self.dir / PREVIOUS

    def exists(self) -> bool:
        return self.path.is_file()

    def load_before(self, server_round: int) -> dict | None:
        """The newest stored state saved by a round before ``server_round``; None if none."""
        for path in (self.path, self.previous):
            try:
                # on the host: loading it into the learner moves it to the learner's device
                state = torch.load(path, weights_only=False, map_location="cpu")
            except FileNotFoundError:
                continue
            if state.get("round", 0) < server_round:
                return state
        return None

    def save(self, state: dict, server_round: int) -> None:
        """Store the state that closes ``server_round``, keeping the last one as the previous."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save(state | {"round": server_round}, tmp)
        if self.path.exists():
            self.path.replace(self.previous)
        tmp.replace(self.path)

    def stamp(self) -> tuple[int, int] | None:
        """(modification time in ns, size) of the stored file; None if there is none."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def clear(self) -> None:
        for path in (self.path, self.previous):
            if path.exists():
                path.unlink()


def storage_root(node_config: dict, suggested: str) -> str:
    """The node's own ``storage-dir`` if it has one, else the server's suggestion."""
    root = node_config.get("storage-dir") or suggested
    if not root:
        raise ValueError("no storage directory: start the SuperNode with --node-config \"storage-dir=<path>\"")
    return str(root)
