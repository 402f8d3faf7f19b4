r"""Mechanism design (``md``), its ablation without MRP (``md-nomrp``) and the paper's
baselines ``iql`` and ``cen`` ([MD] Figures 3, 4, 8, 9).

**md.** A server-side, training-only mechanism (strategies/mechanism.py) reshapes the
reward every agent trains on; the agents are DQN learners (``--learner dqn``) that act
and learn alone, as under ``independent``, but never see the game's reward unless the
fairness weight λ (``--md-lambda``, Appendix B.1) gives them λ·r_i + R̄_i. Metrics keep
the game's rewards.

**When R̄ is computed (decision).** [MD Eq. 15] needs s and the joint action a of the step
and the critic; it does not need s'. The world's reshaping hook (strategies/mediator.py)
is called at every step with exactly (s, a, r), so R̄ is computed there, by the critic
trained up to the previous round; ``train_rewards`` is then the world's reshaped
rewards. After the agents' replies the mechanism trains (``federated_training``:
Algorithm 1 lines 10-13, once per round, on the round's joint transitions).

**Minibatch-time R̄ (``--md-reshape-time minibatch``).** [MD] Algorithm 1 recomputes R̄ on
every sampled minibatch with the current critic and MRP (line 14), where the default
(``play``) freezes the label of the round the step was played in the agent's replay. In
minibatch mode the mediator keeps the round's joint steps (global state, joint action, the
game's rewards) and each agent's train message carries them with the mechanism itself
(critic, MRP predictor and buffer, clients/reshaping.py); the agent stores them in its
replay and relabels every minibatch (clients/dqn.py), with the norm of its own Q-gradient
on that minibatch. The agent then sees the other agents' actions and rewards, as
Algorithm 1's shared replay does. ``--md-denominator own`` ([MD Eqs. 9, 11]'s Q̄_i, the
agent's own network) needs this mode: only the agent can evaluate its Q̄_i.

**The gradient norm.** |∇θ_i Q̄_i| is what agent i reports in its reply metrics
(``q_grad_norm``, clients/dqn.py); ``aggregate_train`` reads it and the next round's
rewards use it (one round of delay: the norm of round r is only known after the agent
trained on round r's rewards). Before the first report it is 1. The mechanism never
reads the agents' parameters (it does not even receive them: nothing is shared).

**iql**: independent DQN learners on their own rewards (``independent`` under the
paper's name). **cen**: "a single global reward signal is used to train a joint
Q-network for all agents": one Q-network shared by every agent (FedAvg's averaging each
round, every agent acting with the average; the games put the agent's index in its
observation so the shared network can assign roles), trained on the summed reward
Σ_j r_j. **Decision:** no mixing network (QMIX): the agents train locally, and a mixer
would need their Q-values at the server.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord

from clients import protocol
from clients.rollout import Rollout
from clients.reshaping import DENOMINATORS, RESHAPE_TIMES, JointSteps
from strategies.base import FederationStrategy, RunSettings
from strategies.fedavg import FedAvg
from strategies.independent import Independent
from strategies.mechanism import Mechanism, rollout_transitions
from strategies.mediator import Mediator
from strategies.participation import Participation
from typing import ClassVar
from clients.settings import ConfigError, Settings, setting


EXACT_MAX = ("off", "auto", "on")
EXACT_CAP = 1_000_000  # the most joint actions --md-exact-max on enumerates


@dataclass
class MDConfig(Settings):
    """The mechanism's settings. Defaults: the paper's Tables 1 and 2 (γ, learning rates, τ,
    gradient clip 0.04, meta-gradient clip [0.001, 10], dropout 0.5); η and h are not given by
    the paper ("grid search"): ours."""

    prefix: ClassVar[str] = "md"
    title: ClassVar[str] = "Mechanism design (md, md-nomrp)"

    lambda_: float = setting(0.0, "fairness weight λ: agents train on λ·r_i + R̄_i [MD App. B.1]", ge=0.0, le=1e6)
    eta: float = setting(0.5, "η: MRP(s) − Q*_tot above it gives the penalty branch of [MD Eq. 15]", ge=0.0, le=1e6)
    penalty: float = setting(1.0, "h of [MD Eq. 15]: the penalty's size", ge=0.0, le=1e6)
    gamma: float = setting(0.99, "discount factor γ of the critic and the MRP", ge=0.0, le=1.0)
    critic_lr: float = setting(1e-3, "learning rate of the counterfactual critic", gt=0.0, le=1.0)
    mrp_lr: float = setting(1e-3, "learning rate of the maximised-return predictor (MRP)", gt=0.0, le=1.0)
    tau: float = setting(0.01, "soft target update of the critic per gradient step", ge=0.0, le=1.0)
    grad_clip: float = setting(0.04, "the critic's and MRP's gradients are clipped to this norm", gt=0.0, le=1e9)
    clip_min: float = setting(0.001, "lower clip of the meta-gradient ratio of [MD Eq. 15]", gt=0.0, le=1e9)
    clip_max: float = setting(10.0, "upper clip of the meta-gradient ratio of [MD Eq. 15]", gt=0.0, le=1e9)
    dropout: float = setting(0.5, "dropout of the critic's layers", ge=0.0, lt=1.0)
    buffer: int = setting(50_000, "joint transitions the critic replays", ge=1, le=100_000_000)
    mrp_buffer: int = setting(100_000, "states the MRP buffer remembers", ge=1, le=100_000_000)
    batch: int = setting(256, "minibatch size of the critic and MRP", ge=1, le=10_000_000)
    updates: int = setting(100, "critic and MRP gradient steps per round", ge=1, le=10_000_000)
    sweeps: int = setting(1, "passes of the one-agent-at-a-time best-response search [MD Eq. 12]", ge=1, le=1000)
    exact_max: str = setting("off", "the critic's bootstrap max over a' [MD Eq. 13]: off (the best-response search), "
                                    "on (enumerate all |A|^N joint actions), auto (enumerate when |A|^N <= "
                                    "--md-exact-limit)", choices=EXACT_MAX)
    exact_limit: int = setting(1024, "--md-exact-max auto: the most joint actions enumerated", ge=1,
                               le=EXACT_CAP)
    reshape_time: str = setting("play", "when R̄ is computed: play (when the step is played, frozen in the agents' "
                                        "replay) or minibatch (on every minibatch the agent samples, with the "
                                        "round's critic and MRP [MD Alg. 1])", choices=RESHAPE_TIMES)
    denominator: str = setting("heads", "[MD Eq. 15]'s denominator: heads (the critic's Q_i(s, a*) - Q_i(s, a)) or "
                                        "own (the agent's own Q̄_i(s, a_i*) - Q̄_i(s, a_i) [MD Eqs. 9, 11]; needs "
                                        "--md-reshape-time minibatch)", choices=DENOMINATORS)

    def check(self) -> None:
        if self.clip_max < self.clip_min:
            raise ConfigError(f"--md-clip-max ({self.clip_max}) must be >= --md-clip-min ({self.clip_min})")
        if self.denominator == "own" and self.reshape_time != "minibatch":
            raise ConfigError("--md-denominator own needs --md-reshape-time minibatch (only the agent holds its own "
                              f"Q̄_i), got --md-reshape-time {self.reshape_time}")

    def exact(self, num_agents: int, num_actions: int) -> bool:
        """Whether the bootstrap max enumerates the |A|^N joint actions."""
        return self.exact_max == "on" or (self.exact_max == "auto" and num_actions ** num_agents <= self.exact_limit)


class MechanismMediator(Mediator):
    """The world's reshaping hook: λ·r_i + R̄_i ([MD Eq. 15]) at every step."""

    reshapes = True

    def __init__(self, mechanism: Mechanism, cfg: MDConfig):
        self.mechanism, self.cfg = mechanism, cfg
        self.grad_norm = np.ones(mechanism.num_agents, np.float32)  # |∇θ_i Q̄_i| until agents report
        self._sums = np.zeros(4)  # R̄ total, penalised, improved, samples
        self.steps: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # minibatch mode: the round's steps

    def begin_rollout(self, server_round: int) -> None:
        self.steps = []

    def joint_steps(self) -> JointSteps:
        """The last rollout's steps, ``[T, B, ...]`` (minibatch mode)."""
        state, actions, rewards = (np.stack(x) for x in zip(*self.steps))
        return JointSteps(state.astype(np.float32), actions.astype(np.int64), rewards.astype(np.float32))

    def reshape(self, t: int, state: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        c = self.cfg
        if c.reshape_time == "minibatch":
            self.steps.append((np.array(state), np.array(actions), np.array(rewards)))
        r_bar, info = self.mechanism.reward(state, actions, self.grad_norm, c.eta, c.penalty, c.clip_min,
                                            c.clip_max)
        self._sums += (r_bar.mean(axis=1).sum(), info["penalised"].sum(), info["improved"].sum(), len(r_bar))
        return c.lambda_ * np.asarray(rewards, np.float32) + r_bar

    def end_of_rollout(self) -> dict[str, float]:
        total, penalised, improved, n = self._sums
        self._sums = np.zeros(4)
        if n == 0:
            return {}
        return {"md_reward_mean": total / n, "md_penalised_share": penalised / n, "md_improved_share": improved / n,
                "md_grad_norm": float(self.grad_norm.mean())}


class MechanismDesign(FederationStrategy):
    """``md``: DQN agents trained on the mechanism's reshaped rewards; nothing is shared."""

    name = "md"
    reads = ("md",)
    use_mrp = True
    mediator_class = MechanismMediator
    mediator: MechanismMediator  # set by from_config

    @classmethod
    def check_learners(cls, learners: list[str]) -> None:
        others = sorted(set(learners) - {"dqn"})
        if others:
            raise ValueError(f"{cls.name} needs dqn agents (they report the norm of their Q-gradient, [MD Eq. 15]); "
                             f"got {', '.join(others)}")

    @classmethod
    def from_config(cls, cfg: RunSettings, game, init: ArrayRecord) -> "MechanismDesign":
        strategy = cls(Participation.from_config(cfg.joining, cfg.agents), cfg.seed)
        md = cfg.md
        mechanism = Mechanism(game.state_dim, game.num_agents, game.num_actions, cfg.seed, use_mrp=cls.use_mrp,
                              gamma=md.gamma, critic_lr=md.critic_lr, mrp_lr=md.mrp_lr, tau=md.tau,
                              grad_clip=md.grad_clip, dropout=md.dropout, buffer=md.buffer,
                              mrp_buffer=md.mrp_buffer, batch=md.batch, updates=md.updates,
                              sweeps=md.sweeps, exact=md.exact(game.num_agents, game.num_actions))
        strategy.mediator = MechanismMediator(mechanism, md)
        return strategy

    @classmethod
    def check_config(cls, cfg: RunSettings, game) -> None:
        count = game.num_actions ** game.num_agents
        if cfg.md.exact_max == "on" and count > EXACT_CAP:
            raise ValueError(f"--md-exact-max on: {game.num_agents} agents with {game.num_actions} actions have "
                             f"{count:,} joint actions, more than the {EXACT_CAP:,} it enumerates; use auto or off")

    def instructions(self, agent: int, server_round: int, arrays: ArrayRecord) -> tuple[dict, dict[str, ArrayRecord]]:
        """Minibatch mode: the round's joint steps and the mechanism, to relabel minibatches with."""
        md, med = self.mediator.cfg, self.mediator
        if md.reshape_time != "minibatch" or not med.steps:
            return {}, {}
        mech = med.mechanism
        if self._sent_round != server_round:  # one copy for every agent's message
            self._sent_round = server_round
            self._sent = {protocol.MECHANISM: mech.to_record(), protocol.JOINT: med.joint_steps().to_record()}
        entries = {"md-agents": mech.num_agents, "md-actions": mech.num_actions, "md-state-dim": mech.state_dim,
                   "md-dropout": mech.dropout, "md-sweeps": mech.sweeps, "md-use-mrp": mech.use_mrp,
                   "md-eta": md.eta, "md-penalty": md.penalty, "md-clip-min": md.clip_min, "md-clip-max": md.clip_max,
                   "md-lambda": md.lambda_, "md-denominator": md.denominator}
        return entries, dict(self._sent)

    _sent_round: int = 0
    _sent: dict[str, ArrayRecord] = {}

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Read each agent's reported |∇θ_i Q̄_i| (nothing else of the reply is used)."""
        agent_of = {node: agent for agent, node in self.nodes.items()}
        for reply in replies:
            if reply.has_error() or protocol.METRICS not in reply.content:
                continue
            metrics = protocol.record(reply.content, protocol.METRICS, MetricRecord)
            agent = agent_of.get(reply.metadata.src_node_id)
            if agent is not None and "q_grad_norm" in metrics:
                self.mediator.grad_norm[agent] = float(protocol.scalar(metrics["q_grad_norm"]))
        return None, None

    def federated_training(self, server_round: int, rollout: Rollout, arrays: ArrayRecord) -> tuple[ArrayRecord, dict]:
        played = rollout.actions if rollout.played is None else rollout.played
        data = rollout_transitions(rollout.state, played, rollout.rewards, rollout.terminated, rollout.mask)
        return arrays, self.mediator.mechanism.train(data, server_round)

    def state_dict(self) -> dict:
        return super().state_dict() | {"mechanism": self.mediator.mechanism.state_dict(),
                                       "grad_norm": self.mediator.grad_norm.copy()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.mediator.mechanism.load_state_dict(state["mechanism"])
        self.mediator.grad_norm = np.asarray(state["grad_norm"], np.float32).copy()


class MechanismDesignNoMRP(MechanismDesign):
    """``md-nomrp`` (Figure 8's ablation): [MD Eq. 15]'s first branch only, no MRP buffer or predictor."""

    name = "md-nomrp"
    use_mrp = False


class IQL(Independent):
    """``iql``: independent Q-learners on their own rewards (``independent`` by the paper's name)."""

    name = "iql"


class Centralised(FedAvg):
    """``cen``: one Q-network shared by all agents, trained on the summed reward Σ_j r_j."""

    name = "cen"

    def train_rewards(self, rewards: np.ndarray) -> np.ndarray:
        return np.broadcast_to(rewards.sum(axis=-1, keepdims=True), rewards.shape).copy()
