"""Shared fixtures: a tiny, fast configuration and clean-up of Ray's session folders."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import envs
from federation.config import RunConfig

RAY_DIR = Path("/tmp/ray")


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
