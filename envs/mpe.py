"""The four multi-agent particle games of the FPF paper (Figure 7), from ``mpe2``.

Each game is a ``PettingZooGame`` over an ``mpe2`` env with discrete actions. The
paper plays them as fully cooperative games: the cooperative team learns (its members
share one reward in every scenario) and "the adversary agent's policy [is] fixed as a
random policy". So the game's N agents are the team; the other side is played inside
the game, uniformly at random by default, or by ``adversary_policy`` (a
``FixedPolicy``, e.g. a pre-trained one; see envs/pettingzoo_adapter.py).

=====================  ================  ===========================  =================
game                   mpe2 env          learners (N, default)        fixed (random)
=====================  ================  ===========================  =================
mpe-deception          simple_adversary  agent_0..agent_{N-1} (2)     adversary_0
mpe-crypto             simple_crypto     alice_0, bob_0 (always 2)    eve_0
mpe-predator-prey      simple_tag        adversary_0..{N-1} (3)       agent_0.. (prey)
mpe-keep-away          simple_push       agent_0 (always 1)           adversary_0
=====================  ================  ===========================  =================

Predator-prey: the paper follows MADDPG's wording, in which the slower cooperating
agents (the predators) chase "the adversary" (the prey). ``mpe2`` names the predators
``adversary_*`` and the prey ``agent_*``. The learners are therefore ``mpe2``'s
``adversary_*`` (they share the collision reward), and the paper's random adversary is
the prey; ``num_prey`` sets how many. Keep-away in ``mpe2`` has one agent per side, so
its team is a single learner.

Episodes: the paper reports "collective returns per 1000 steps" for these games, as it
reports returns per 200 steps for the classic games (200-step episodes) and per 100
steps for Cleanup/Harvest (100-step episodes). Read the same way, an episode is 1000
steps, the default here; ``mpe2``'s own horizon, ``max_cycles=25``, is
``episode_length=25``. The wrapped env always gets ``max_cycles = episode_length``.

Observations are the team members' own ``mpe2`` observations (unbounded float32 boxes;
the members of each team have the same size, so there is no padding); the global
state is ``mpe2``'s ``state()``, every agent's observation side by side. Actions are
``mpe2``'s discrete ones: 5 moves (no-op, left, right, down, up), or 4 symbols to say
in mpe-crypto. ``continuous_actions=True`` (``--game-options continuous_actions=true``)
builds them with ``mpe2``'s continuous actions instead, a ``Box(0, 1, (5,))`` per moving
agent (``(4,)`` in mpe-crypto): the force along x is a[2] - a[1], along y a[4] - a[3], as
in OpenAI's MPE; the agents then play vectors in [-1, 1]^A, mapped onto [0, 1]
(envs/pettingzoo_adapter.py), with a deterministic-policy learner (``--learner ddpg``). ``mpe2`` (and the pygame it renders with) is imported only when a game
is built, so importing ``envs`` does not need it.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import numpy as np

from envs.base import check_positive_int
from envs.pettingzoo_adapter import FixedPolicy, PettingZooGame

# Steps per episode: the horizon of the paper's Figure 7 (see the module docstring).
EPISODE_LENGTH = 1000


class MPEGame(PettingZooGame):
    """An ``mpe2`` scenario whose team learns while the other side plays a fixed policy."""

    scenario: str  # module of the mpe2 package, e.g. "simple_tag_v3"

    def __init__(
        self,
        learners: list[str],
        scenario_kwargs: dict[str, Any],
        batch_size: int,
        episode_length: int,
        seed: int | None,
        adversary_policy: FixedPolicy | None,
        observation: str | None,
        continuous_actions: bool = False,
    ) -> None:
        check_positive_int("episode_length", episode_length)
        if not isinstance(continuous_actions, (bool, np.bool_)):
            raise ValueError(f"continuous_actions must be true or false, got {continuous_actions!r}")
        if adversary_policy is not None and not callable(adversary_policy):
            raise ValueError(
                "adversary_policy must be a callable policy(agent, obs, rng) -> actions "
                f"(None: uniformly random), got {adversary_policy!r}"
            )
        module = importlib.import_module(f"mpe2.{self.scenario}")
        env_fn = functools.partial(
            module.parallel_env, continuous_actions=bool(continuous_actions),
            max_cycles=episode_length, **scenario_kwargs,
        )
        super().__init__(
            env_fn, learners, batch_size, episode_length, seed,
            fixed_policy=adversary_policy, observation=observation,
        )


class PhysicalDeception(MPEGame):
    """simple_adversary: N agents cover N landmarks so the adversary cannot tell the target.

    The team is rewarded by minus the closest member's distance to the target landmark
    plus the adversary's distance to it.
    """

    name = "mpe-deception"
    scenario = "simple_adversary_v3"
    min_agents = 1

    def __init__(
        self,
        num_agents: int = 2,
        batch_size: int = 1,
        episode_length: int = EPISODE_LENGTH,
        seed: int | None = None,
        *,
        adversary_policy: FixedPolicy | None = None,
        observation: str | None = None,
        continuous_actions: bool = False,
    ) -> None:
        num_agents = check_positive_int("num_agents", num_agents)
        super().__init__(
            [f"agent_{i}" for i in range(num_agents)], {"N": num_agents},
            batch_size, episode_length, seed, adversary_policy, observation, continuous_actions,
        )


class CovertCommunication(MPEGame):
    """simple_crypto: Alice sends Bob a message with a shared key; Eve eavesdrops.

    Alice (agent 0) and Bob (agent 1) share one reward: good when Bob decodes the
    message, bad when Eve does. Neither moves; each action is one of 4 symbols.
    """

    name = "mpe-crypto"
    scenario = "simple_crypto_v3"
    min_agents = 2
    max_agents = 2

    def __init__(
        self,
        num_agents: int = 2,
        batch_size: int = 1,
        episode_length: int = EPISODE_LENGTH,
        seed: int | None = None,
        *,
        adversary_policy: FixedPolicy | None = None,
        observation: str | None = None,
        continuous_actions: bool = False,
    ) -> None:
        if num_agents != 2:
            raise ValueError(f"{self.name} has exactly 2 learners (Alice, Bob), got {num_agents}")
        super().__init__(
            ["alice_0", "bob_0"], {},
            batch_size, episode_length, seed, adversary_policy, observation, continuous_actions,
        )


class PredatorPrey(MPEGame):
    """simple_tag: N slower predators (the learners) chase ``num_prey`` faster prey.

    Every predator gets +10 for each collision of any predator with any prey, so the
    predators share one reward. ``num_obstacles`` landmarks block the way.
    """

    name = "mpe-predator-prey"
    scenario = "simple_tag_v3"
    min_agents = 1

    def __init__(
        self,
        num_agents: int = 3,
        batch_size: int = 1,
        episode_length: int = EPISODE_LENGTH,
        seed: int | None = None,
        *,
        num_prey: int = 1,
        num_obstacles: int = 2,
        adversary_policy: FixedPolicy | None = None,
        observation: str | None = None,
        continuous_actions: bool = False,
    ) -> None:
        num_agents = check_positive_int("num_agents", num_agents)
        num_prey = check_positive_int("num_prey", num_prey)
        if isinstance(num_obstacles, bool) or not isinstance(num_obstacles, int) or num_obstacles < 0:
            raise ValueError(f"num_obstacles must be an integer >= 0, got {num_obstacles!r}")
        super().__init__(
            [f"adversary_{i}" for i in range(num_agents)],
            {"num_adversaries": num_agents, "num_good": num_prey,
             "num_obstacles": num_obstacles},
            batch_size, episode_length, seed, adversary_policy, observation, continuous_actions,
        )


class KeepAway(MPEGame):
    """simple_push: one agent heads for its target landmark; the adversary pushes it away.

    The learner is rewarded by minus its distance to the target.
    """

    name = "mpe-keep-away"
    scenario = "simple_push_v3"
    min_agents = 1
    max_agents = 1

    def __init__(
        self,
        num_agents: int = 1,
        batch_size: int = 1,
        episode_length: int = EPISODE_LENGTH,
        seed: int | None = None,
        *,
        adversary_policy: FixedPolicy | None = None,
        observation: str | None = None,
        continuous_actions: bool = False,
    ) -> None:
        if num_agents != 1:
            raise ValueError(f"{self.name} has exactly 1 learner, got {num_agents}")
        super().__init__(
            ["agent_0"], {},
            batch_size, episode_length, seed, adversary_policy, observation, continuous_actions,
        )
