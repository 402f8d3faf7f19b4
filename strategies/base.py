"""The loop-strategy contract: every hook the round loop (federation/) calls, and nothing else.

A strategy is a ``flwr.serverapp.strategy.Strategy``. Once, before the first round:

- ``from_config(cfg, game, init)`` builds it from a validated run configuration
  (``check_learners`` and ``check_game`` run first, at validation, to refuse learners it
  cannot federate and games it cannot play);
- ``bind(nodes)`` tells it which node plays which agent; ``summary()`` logs it.

Every round, in this order:

1. ``mediator``: a :class:`strategies.mediator.Mediator` (or None) that the world calls
   during the rollout (delegation, Stackelberg leaders, reward reshaping);
2. ``train_rewards(rewards)``: the rewards ``[T, B, N]`` agents train on;
3. ``configure_train(round, arrays, config, grid)``: one train message per agent, made of
   the strategy's ``instructions(agent, round, arrays)`` (config entries and records such
   as ω, ω̄ or a neighbour mix); the loop then attaches the agent's own experience and
   learner settings;
4. ``declare(choices)``: the agents' declared participation for the next round
   (free entry and exit), read from their replies; the strategy owns its participation set;
5. ``aggregate_train(round, replies)``: the replies *without* any acting weights, i.e.
   only what agents chose to share;
6. ``federated_training(round, rollout, arrays)``: the strategy's own server-side learners
   (FPF's ω and ω̄, a mediator's critic) train on the world's data;
7. ``acting_policies(arrays)``: policies the world plays instead of the agents' own,
   by agent (FedAvg's global policy for everyone, LMF-diffusion's neighbour mixes);
8. ``participants()``: this round's participation set N_p, for the metrics;
9. every few rounds, ``evaluation_policies()``: the strategy's own policies (FPF's ω and
   ω̄) that the loop evaluates in the world on games not used for training, and
   ``evaluation_metrics(policies)``: what the strategy measures on them itself.

Strategies that combine uploads (FPF, D&F, FedAvg, LMF) receive their combination rule,
a :class:`strategies.robust.Aggregator`, in ``from_config``.

``state_dict()`` / ``load_state_dict()`` hold what a checkpoint needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from logging import INFO
from typing import TYPE_CHECKING, Protocol, Self

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.supercore import log

from clients import protocol
from clients.rollout import Rollout
from strategies.mediator import Mediator
from strategies.participation import Participation, Voluntary

if TYPE_CHECKING:
    from clients.dqn import DQNConfig
    from clients.networks import NetworkConfig
    from clients.ppo import PPOConfig
    from strategies.fpf import FPFConfig
    from strategies.leaders import LeaderConfig
    from strategies.lmf import LMFConfig
    from strategies.md import MDConfig
    from strategies.participation import JoiningConfig
    from strategies.policy_mediator import DelegationConfig
    from strategies.reward_sharing import IAConfig
    from strategies.robust import RobustConfig


class WorldSettings(Protocol):
    """What a strategy may read of the world's settings."""

    @property
    def batch(self) -> int: ...  # episodes (parallel copies of the game) played each round


class RunSettings(Protocol):
    """What a strategy may read of the run's configuration: the run's own fields and the
    groups of this layer and the one below (federation.config.RunConfig satisfies it, and
    a type checker holds every strategy to it)."""

    strategy: str
    agents: int
    seed: int
    joining: JoiningConfig
    net: NetworkConfig
    ppo: PPOConfig
    dqn: DQNConfig
    fpf: FPFConfig
    lmf: LMFConfig
    ia: IAConfig
    delegation: DelegationConfig
    md: MDConfig
    leaders: LeaderConfig
    robust: RobustConfig

    @property
    def world(self) -> WorldSettings: ...

    def learners(self) -> list[str]: ...


class FederationStrategy(Strategy):
    """Shared machinery: the participation set and per-agent train messages."""

    name = "base"
    #: what participants upload: protocol.SHARE_NONE or protocol.SHARE_PARAMETERS
    share = protocol.SHARE_NONE
    #: D&F-style strategies force every agent into the federation
    mandatory = False
    #: the strategy mixes, averages or pulls policy parameters: every agent needs one learner
    mixes_parameters = False
    #: learners the strategy cannot federate (e.g. FPF's ω for tabular agents)
    refuses_learners: tuple[str, ...] = ()
    #: the configuration groups the strategy reads, besides every run's (world, joining,
    #: execution), its learners' and, when participants upload (``share``), the agents'
    #: upload settings (federation.config.reads); a flag of any other group is refused
    reads: tuple[str, ...] = ()

    def __init__(self, participation: Participation, seed: int):
        self.participation = self.effective_participation(participation)
        self.seed = seed
        self.nodes: dict[int, int] = {}  # agent id -> node id
        self.members: frozenset[int] = frozenset()

    @classmethod
    def effective_participation(cls, participation: Participation) -> Participation:
        """The participation set this strategy really uses (mandatory: everyone; no sharing: nobody)."""
        if cls.mandatory:
            return Participation.everyone(participation.num_agents)
        if cls.share == protocol.SHARE_NONE:
            return Participation.nobody(participation.num_agents)
        return participation

    @classmethod
    def uploads_per_round(cls, participation: Participation) -> int | None:
        """The most uploads the combination rule (``robust``) sees in a round: the
        participation set's size (everyone's under free entry and exit); None when the
        strategy combines no uploads with it."""
        if "robust" not in cls.reads:
            return None
        p = cls.effective_participation(participation)
        return p.num_agents if p.voluntary else p.size

    @classmethod
    def overrides_participation(cls) -> str | None:
        """Why ``--participation`` does not apply to this strategy, or None when it does."""
        if cls.mandatory:
            return f"{cls.name} is mandatory: every agent participates"
        if cls.share == protocol.SHARE_NONE:
            return f"{cls.name} has no federation: nobody participates"
        return None

    @classmethod
    def config_notes(cls, cfg: RunSettings) -> list[str]:
        """What the user should know about how this strategy reads the configuration ``cfg``
        (e.g. a setting outside the conditions of the theorem it implements); printed and
        recorded in the run's config.json ``notes``. None by default."""
        return []

    @classmethod
    def check_learners(cls, learners: list[str]) -> None:
        """Raise ValueError if this strategy cannot federate agents with these learners."""
        refused = sorted(set(learners) & set(cls.refuses_learners))
        if refused:
            raise ValueError(f"{cls.name} cannot federate {', '.join(refused)} agents; use another learner "
                             f"or strategy")
        if cls.mixes_parameters and len(set(learners)) > 1:
            groups = {name: [i for i, n in enumerate(learners) if n == name] for name in dict.fromkeys(learners)}
            desc = "; ".join(f"{name} for agents {ids}" for name, ids in groups.items())
            raise ValueError(f"{cls.name} mixes policy parameters, so every agent needs the same learner; got {desc}")

    @classmethod
    def check_game(cls, game) -> None:
        """Raise ValueError if this strategy cannot run on ``game`` (e.g. its mediator needs
        the game's utility model); any game by default."""

    @classmethod
    def check_config(cls, cfg: RunSettings, game) -> None:
        """Raise ValueError if this strategy's settings in the RunConfig ``cfg`` do not fit
        ``game`` (e.g. a file it needs is missing); nothing to check by default."""

    @classmethod
    def from_config(cls, cfg: RunSettings, game, init: ArrayRecord) -> Self:
        """Build from a validated RunConfig (subclasses with settings override this)."""
        return cls(Participation.from_config(cfg.joining, cfg.agents), cfg.seed)

    def bind(self, nodes: dict[int, int]) -> None:
        """Tell the strategy which node plays which agent."""
        self.nodes = dict(nodes)

    # ---------------------------------------------------------------- hooks
    #: the class of the strategy's mediator, so the game can be built for it (a Stackelberg
    #: slot, a delegation bit) before the strategy exists; None: no mediator
    mediator_class: type[Mediator] | None = None
    #: the mediator instance the world calls during rollouts
    mediator: Mediator | None = None

    def instructions(self, agent: int, server_round: int, arrays: ArrayRecord) -> tuple[dict, dict[str, ArrayRecord]]:
        """Config entries and records for ``agent`` this round, besides its experience."""
        return {}, {}

    def train_rewards(self, rewards: np.ndarray) -> np.ndarray:
        """Rewards the agents train on, [T, B, N]; the given ones by default."""
        return rewards

    def declare(self, choices: dict[int, bool]) -> None:
        """Agents' declared choices (join the next round or not)."""
        self.participation.declare(choices)

    def federated_training(self, server_round: int, rollout: Rollout, arrays: ArrayRecord) -> tuple[ArrayRecord, dict]:
        """Server-side training on the world's data; nothing by default."""
        return arrays, {}

    def acting_policies(self, arrays: ArrayRecord) -> dict[int, ArrayRecord]:
        """Policies the world plays after aggregation instead of the agents' own replies, by
        agent (FedAvg: the global one for everyone); empty: each agent acts with its own."""
        return {}

    def evaluation_policies(self) -> dict[str, ArrayRecord]:
        """Policies of the strategy's own to evaluate in the world (every agent acting with each)."""
        return {}

    def evaluation_metrics(self, policies: dict[str, ArrayRecord]) -> dict[str, float]:
        """Metrics of the evaluated ``policies`` themselves, beside their returns in the
        world (FPF: ||ω - ω̄||²); none by default."""
        return {}

    def participants(self) -> frozenset[int]:
        """This round's participation set N_p."""
        return self.members

    def state_dict(self) -> dict:
        """What a checkpoint of the strategy holds (subclasses with learners extend it)."""
        state = {"members": sorted(self.members)}
        if isinstance(self.participation, Voluntary):  # who declared to join the next round
            state["joined"] = sorted(self.participation.joined)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.members = frozenset(state["members"])
        if "joined" in state and isinstance(self.participation, Voluntary):
            self.participation.joined = set(state["joined"])

    def _volunteer_config(self) -> dict:
        p = self.participation
        if not isinstance(p, Voluntary):
            return {}
        return {"voluntary": True, "vol-epsilon": p.epsilon, "vol-memory": p.memory}

    # ---------------------------------------------------------------- Flower API
    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        self.members = self.participation.members(server_round, self.seed)
        messages = []
        for agent, node in sorted(self.nodes.items()):
            share = self.share if agent in self.members else protocol.SHARE_NONE
            entries, records = self.instructions(agent, server_round, arrays)
            agent_cfg = ConfigRecord({**dict(config), **entries, "agent-id": agent, "share": share,
                                      **self._volunteer_config()})
            content = RecordDict({protocol.CONFIG: agent_cfg, **records})
            messages.append(Message(content=content, dst_node_id=node, message_type=MessageType.TRAIN))
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return None, None

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        return []

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        return None

    def summary(self) -> None:
        p = self.participation
        who = list(p.ids) if p.ids is not None else f"{p.size} of {p.num_agents} ({p.draw})"
        log(INFO, "\t├──> %s: participation set %s", self.name, who)


def shared_uploads(replies: Iterable[Message]) -> list[ArrayRecord]:
    """The parameters that participants chose to share (replies without errors)."""
    return [protocol.record(r.content, protocol.SHARED, ArrayRecord) for r in replies
            if not r.has_error() and protocol.SHARED in r.content]
