"""Shared fixtures: a tiny, fast configuration, clean-up of Ray's session folders and of
the processes a test starts, and one uninterrupted small simulation to compare with."""

import os
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

import envs
from federation.config import RunConfig
from tools.local_deployment import is_alive, pids_with_env

RAY_DIR = Path("/tmp/ray")
#: set in the environment of every process a test starts through ``own_processes``
MARKER = "FEDGAMES_TEST_PROCESSES"
#: a small Flower simulation (3 PPO agents): a few seconds a round
SMALL_RUN = {"agents": 3, "batch": 2, "steps": 20, "hidden": 16, "minibatch": 64, "fed-batch": 64, "fed-updates": 2,
             "epochs": 2, "participation": "voluntary", "eval-every": 2, "eval-batch": 2}
#: the rounds of ``uninterrupted_small_run``
SMALL_ROUNDS = 4


@pytest.fixture(scope="session", autouse=True)
def remove_new_ray_sessions():
    """Ray leaves /tmp/ray/session_* behind; remove the ones this test process started.

    A session's name ends with its driver's PID (here: this process, which runs the
    simulations in-process), so other Ray sessions on the machine are left alone.
    """
    yield
    for path in RAY_DIR.glob(f"session_*_{os.getpid()}"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def tiny(tmp_path) -> RunConfig:
    """3 agents, small networks, short rounds: a whole simulation in ~10 s."""
    return RunConfig.of(agents=3, rounds=2, batch=2, steps=20, hidden=16, minibatch=64, fed_batch=64,
                     fed_updates=2, epochs=2, out=str(tmp_path / "run"), progress=False).validated()


def actor(obs_dim: int = 6, num_actions: int = 5, hidden: int = 8, layers: int = 1, seed: int = 0):
    """A PPO actor for a feature-vector game, as every agent of a run starts with."""
    from gymnasium import spaces

    from clients.networks import NetworkConfig
    from clients.ppo import PPOLearner

    space = spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    return PPOLearner.policy_network(space, num_actions, NetworkConfig(hidden, layers), seed)


def world(game, hidden: int = 8, layers: int = 1, seed: int = 0, learners=None, mediator=None):
    """A world of PPO agents (or ``learners``) with small networks."""
    from clients.networks import NetworkConfig
    from federation.world import World

    return World(game, learners or ["ppo"] * game.num_agents, NetworkConfig(hidden, layers), seed, mediator)


@pytest.fixture
def random_returns():
    """Each agent's return over one episode of uniformly random actions: [episodes, agents]."""
    return envs.random_policy_returns


def small_run_flags(**more) -> list[str]:
    """``SMALL_RUN`` (and ``more``) as run_sim.py's flags, without progress bars."""
    flags = {**SMALL_RUN, **{k.replace("_", "-"): v for k, v in more.items()}}
    return [a for k, v in flags.items() for a in (f"--{k}", str(v))] + ["--no-progress"]


@pytest.fixture(scope="session")
def uninterrupted_small_run(tmp_path_factory) -> Path:
    """The output directory of ``SMALL_RUN`` over ``SMALL_ROUNDS`` rounds, run once without
    interruption: the metrics that a stopped or killed and then resumed run must equal."""
    from federation.simulation import simulate

    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    simulate(RunConfig.of(**{k.replace("-", "_"): v for k, v in SMALL_RUN.items()}, rounds=SMALL_ROUNDS,
                          out=str(out), progress=False).validated())
    return out


class OwnProcesses:
    """The processes a test starts. Each gets ``env()`` as its environment, so it and
    everything it spawns, however detached (SuperExec, ServerApp, Ray's workers), carries
    ``MARKER=<tag>`` and is found by ``alive()``; Ray's session folders of those processes
    go under a temporary root of their own (``RAY_TMPDIR``), not /tmp/ray."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex
        # short: Ray's socket paths under it must stay within 107 characters
        self.ray_root = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))

    def env(self, **extra: str) -> dict[str, str]:
        """The current environment with the marker and Ray's temporary root (and ``extra``)."""
        return {**os.environ, MARKER: self.tag, "RAY_TMPDIR": str(self.ray_root), **extra}

    def alive(self) -> set[int]:
        """PIDs of the live (not zombie) processes that carry this test's marker."""
        return {pid for pid in pids_with_env(MARKER, self.tag) if is_alive(pid)}

    def wait_until_none(self, timeout: float) -> set[int]:
        """Wait up to ``timeout`` s until none of them is left; returns those still alive."""
        deadline = time.monotonic() + timeout
        while (left := self.alive()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left

    def end(self) -> None:
        """SIGKILL every one left, by PID."""
        for _ in range(3):  # a dying parent may still start a child
            left = self.alive()
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            self.wait_until_none(5.0)


@pytest.fixture
def own_processes():
    """The test starts its processes with ``own_processes.env()``; afterwards any of them
    still running is ended by PID and their Ray session folders are removed."""
    procs = OwnProcesses()
    yield procs
    procs.end()
    shutil.rmtree(procs.ray_root, ignore_errors=True)


class FakeReply:
    """A strategy's view of an agent's reply: the sending node and the content."""

    class Meta:
        def __init__(self, node):
            self.src_node_id = node

    def __init__(self, node, content):
        self.metadata, self.content = FakeReply.Meta(node), content

    def has_error(self):
        return False


@pytest.fixture
def upload_spy(monkeypatch):
    """Watches what leaves the agents: ``acting[agent]``, every policy the world was given
    to act with for that agent (flattened), and ``seen``, for every call of FPF's
    aggregation, each reply's record names and its arrays other than the metrics
    (flattened). The privacy tests compare the two."""
    from types import SimpleNamespace

    from clients import protocol
    from clients.networks import flat
    from federation.world import World
    from strategies.fpf import FPF

    spy = SimpleNamespace(acting={}, seen=[])
    original_set, original_agg = World.set_acting, FPF.aggregate_train

    def spy_set(self, agent, record, spec=None):
        spy.acting.setdefault(agent, []).append(flat(record))
        return original_set(self, agent, record, spec)

    def spy_aggregate(self, server_round, replies):
        replies = list(replies)
        spy.seen.append([(set(r.content.keys()), [flat(v) for k, v in r.content.items() if k != protocol.METRICS])
                         for r in replies])
        return original_agg(self, server_round, replies)

    monkeypatch.setattr(World, "set_acting", spy_set)
    monkeypatch.setattr(FPF, "aggregate_train", spy_aggregate)
    return spy
