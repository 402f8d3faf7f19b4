r"""Stackelberg leaders chosen by a mediator, and the baselines of JAM-QL (Dodwadmath and
Maghsudi, "Emergence of Fair Leaders via Mediators in MARL"): fixed, alternating and
vote-based leaders. JAM-QL itself is strategies/jamql.py.

**The Stackelberg step** (through the world's mediator hook, strategies/mediator.py (b)):
each step the mediator names one leader per game copy; the leader acts on its
observation; the followers see the leader's action in their observation's slot
(envs/stackelberg.py) and act; the game pays (games whose rules favour leaders get the
leaders through their ``leader_rules`` hook). The world records who led
(``leader_share``, per agent).

**Agents** are independent Q-learners (``q-table`` on the matrix games' discrete
observations, ``dqn`` on the grid's vectors) on their own rewards. Their observation
carries their role (an empty slot: leading; the leader's action: following), so the
value they bootstrap from, :math:`\max_a Q_i(o_{t+1}, a)`, is the value of the role the
mediator gives them next: their returns include future leadership.

**Sequential learning** (``--mediator-period P`` rounds; one round = B episodes): the
agents learn in turn, P rounds each, then the leader rule's own learner (JAM-QL's
mediator, the vote learners) for P rounds, and again: in round r the phase is
:math:`\lfloor (r-1)/P \rfloor \bmod (N+1)`; phase i < N: agent i learns, phase N: the
mediator. The others keep acting (and exploring) with what they have. P = 0: everyone
learns every round. Every leader strategy uses the same schedule, so all give their
agents the same training. A resting agent is told so (``learn = False``,
clients/instructions.py) and skips its update.

**Metrics** (``end_of_rollout``, per round): ``min_welfare`` — the mean over game copies of
:math:`\min_i G_i`, the episode's minimum welfare (the world's ``min_return`` is the
minimum of the agents' *mean* returns, a different and larger number);
``min_welfare_paid`` — the same after the end-game transfer (jamql); ``min_welfare_var`` — its
sample variance over the round's episodes (copies); ``fair_action_rate``,
``leader_fair_rate`` and ``final_fair_rate`` — the share of all actions, of leaders' actions
and of the last step's actions that are the game's ``fair_action`` (cooperate, swerve);
``learning`` — who learnt this round (agent index, N for the mediator, -1 for everyone).

Baselines:

- ``fixed-leader``: agent ``leader`` [0] always leads.
- ``alternating-leader``: agent t mod N leads at step t.
- ``vote-leader``: every agent learns a vote. Agent i's vote learner is a Q-table
  :math:`V_i(t, m, v)` over the step t, the game's state index m (when the game has one,
  as JAM-QL's mediator: ``--mediator-state``) and the candidate v, learnt from agent i's *own* rewards only:
  :math:`V_i(x_t, v_t) \mathrel{+}= \alpha\,(r_{i,t} + \max_v V_i(x_{t+1}, v) - V_i(x_t, v_t))`
  (undiscounted, finite horizon; a backward sweep over each episode), ε-greedy
  (``--mediator-lr``, ``--mediator-epsilon``). The leader is the plurality of the votes,
  ties broken uniformly at random. **Decision:** the vote learners run at the server (the
  world is a trusted simulator); each reads nothing but its own agent's rewards and the
  public state, so this is the same as each agent learning its vote at home.

**The game's state index** m (``--mediator-state game``, the default): the game's
``mediator_state`` (envs/dilemma.py: the previous joint action; envs/resource_grid.py:
the agents' cells), :math:`M` values; a game without one, or ``--mediator-state none``,
has a single m. The tables grow with M; a configuration whose table would exceed
``MAX_TABLE`` entries (e.g. the grid with 3 or 4 agents) is refused before the run.

ε of the mediator's and the vote learners' choices: ``min(mediator_epsilon, 1/(n+1))``
with n the rounds they have learnt (GLIE, as ``--q-epsilon-schedule 1/t``).
"""

from __future__ import annotations

from dataclasses import dataclass
from logging import INFO

import numpy as np
from flwr.supercore import log

from clients.rollout import Rollout
from strategies.base import FederationStrategy, RunSettings
from strategies.mediator import Mediator
from typing import ClassVar
from clients.settings import Settings, setting


@dataclass
class LeaderConfig(Settings):
    """Settings of the leader strategies (JAM-QL and its baselines)."""

    title: ClassVar[str] = "Leaders (jamql, jamql-naive, fixed-, alternating-, vote-leader)"

    mediator_period: int = setting(5, "rounds each learner (each agent, then the mediator) learns in turn; 0: all "
                                      "learn every round", ge=0, le=1_000_000)
    mediator_lr: float = setting(0.1, "Q-learning rate of the mediator (and of the vote learners)", gt=0.0, le=1.0)
    mediator_epsilon: float = setting(0.1, "cap of the mediator's exploration rate (ε = min(cap, 1/(n+1)))",
                                      ge=0.0, le=1.0)
    end_transfer: float = setting(1.0, "JAM-QL's end-game transfer κ: at the terminal step τ_i = −κ(r_i − mean_j "
                                       "r_j) (1 equalises the last step's rewards)", ge=0.0, le=1.0)
    reward_bins: int = setting(4, "JAM-QL's state: bins of each agent's cumulative reward", ge=1, le=100_000)
    reward_bin_width: float = setting(1.0, "JAM-QL's state: the width of a reward bin", gt=0.0, le=1e9)
    mediator_state: str = setting("game", "the game's part of the state of JAM-QL's mediator and of the vote learners: "
                                          "game = the game's state index (matrix games: the previous joint action; "
                                          "resource grid: the agents' cells), none = one state for every game state",
                                  choices=("game", "none"))
    leader: int = setting(0, "fixed-leader: the agent that always leads", ge=0, le=1_000_000)


def check(cfg: LeaderConfig, agents: int) -> None:
    """Raise ValueError naming the flag for settings out of range."""
    if cfg.mediator_period < 0:
        raise ValueError(f"mediator-period must be >= 0 (0: everyone learns every round), got {cfg.mediator_period}")
    if cfg.mediator_lr <= 0 or cfg.mediator_lr > 1:
        raise ValueError(f"mediator-lr must be in (0, 1], got {cfg.mediator_lr}")
    if not 0 <= cfg.mediator_epsilon <= 1:
        raise ValueError(f"mediator-epsilon must be in [0, 1], got {cfg.mediator_epsilon}")
    if not 0 <= cfg.end_transfer <= 1:
        raise ValueError(f"end-transfer must be in [0, 1] (1 equalises the last step's rewards), got {cfg.end_transfer}")
    if cfg.reward_bins < 1 or cfg.reward_bins ** agents > 100_000:
        raise ValueError(f"reward-bins must be >= 1 with reward-bins^agents <= 100000, got {cfg.reward_bins} "
                         f"for {agents} agents")
    if cfg.reward_bin_width <= 0:
        raise ValueError(f"reward-bin-width must be > 0, got {cfg.reward_bin_width}")
    if not 0 <= cfg.leader < agents:
        raise ValueError(f"leader must be an agent id in [0, {agents}), got {cfg.leader}")


def phase(server_round: int, period: int, agents: int) -> int:
    """Who learns in ``server_round`` (1-based): agent i < N, N the mediator, -1 everyone (P = 0)."""
    if period == 0:
        return -1
    return ((server_round - 1) // period) % (agents + 1)


def exploration(cap: float, rounds_learnt: int) -> float:
    return float(min(cap, 1.0 / (rounds_learnt + 1)))


def game_state_index(game, use: str = "game"):
    """``(count, index(state [B, S]) -> [B])``: the game's state part of a mediator's state
    (its ``mediator_state`` when it has one and ``use`` is "game", else a single state)."""
    if use == "game" and hasattr(game, "mediator_state"):
        return int(game.mediator_states), game.mediator_state
    return 1, lambda state: np.zeros(len(state), np.int64)


#: the most entries a leader rule's table may have (JAM-QL's Q̂, the vote learners' V)
MAX_TABLE = 20_000_000


def check_table(table: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    """Raise ValueError if a checkpoint's ``table`` does not fit this run's ``shape``."""
    if table.shape != shape:
        raise ValueError(f"the checkpoint's {what} has shape {table.shape}, this run's {shape}: it was saved with "
                         "other leader settings (--mediator-state, --reward-bins) or another game")


class LeaderMediator(Mediator):
    """Names one leader per copy each step; keeps the episode's tallies for the metrics.

    Subclasses implement :meth:`choose` and, if they learn, :meth:`learn` and the
    state (``tables``). ``reshape`` pays the game's rewards plus :meth:`transfer`.
    """

    stackelberg = True
    reshapes = True

    def __init__(self, game, cfg: LeaderConfig, seed: int):
        self.n, self.horizon, self.cfg, self.seed = game.num_agents, game.episode_length, cfg, seed
        self.fair_action = getattr(game, "fair_action", None)
        self.states, self.state_index = game_state_index(game, cfg.mediator_state)
        self.rounds_learnt = 0
        self.rng = np.random.default_rng(seed)
        self._reset_episode(1)

    # ------------------------------------------------------------ the hook
    def begin_rollout(self, server_round: int) -> None:
        self.rng = np.random.default_rng([self.seed, server_round, 7])
        self._reset_episode(1)

    def _reset_episode(self, batch: int) -> None:
        self.cum = np.zeros((batch, self.n))  # game rewards before the current step
        self.paid = np.zeros((batch, self.n))  # with transfers
        self.chosen: list[np.ndarray] = []
        self.played: list[np.ndarray] = []
        self.returns: list[np.ndarray] = []  # finished episodes' returns (game's, paid)

    def leaders(self, t: int, state: np.ndarray) -> np.ndarray:
        B = state.shape[0]
        if t == 0 or self.cum.shape[0] != B:
            self._flush()
            self.cum, self.paid = np.zeros((B, self.n)), np.zeros((B, self.n))
        leader = np.asarray(self.choose(t, state, self.cum), np.int64)
        self.chosen.append(leader)
        return np.arange(self.n)[None] == leader[:, None]

    def reshape(self, t: int, state: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        r = np.asarray(rewards, np.float64)
        out = r + (self.transfer(r) if t == self.horizon - 1 else 0.0)
        self.cum += r
        self.paid += out
        self.played.append(np.asarray(actions))
        return out.astype(np.float32)

    def transfer(self, rewards: np.ndarray) -> np.ndarray:
        """The zero-sum end-game transfer ``[B, N]`` at the terminal step; none here."""
        return np.zeros_like(rewards)

    def choose(self, t: int, state: np.ndarray, cum: np.ndarray) -> np.ndarray:
        """The leader ``[B]`` of each copy at step t, given the cumulative rewards ``cum``."""
        raise NotImplementedError

    @classmethod
    def table_entries(cls, states: int, agents: int, horizon: int, cfg: LeaderConfig) -> int:
        """Entries of the table the rule keeps with ``states`` game states (0: none)."""
        return 0

    # ------------------------------------------------------------ learning
    @property
    def epsilon(self) -> float:
        return exploration(self.cfg.mediator_epsilon, self.rounds_learnt)

    def learn(self, rollout: Rollout) -> dict[str, float]:
        """Learn from a round's rollout (rules that learn override it)."""
        return {}

    def state_dict(self) -> dict:
        return {"rounds_learnt": self.rounds_learnt}

    def load_state_dict(self, state: dict) -> None:
        self.rounds_learnt = int(state["rounds_learnt"])

    # ------------------------------------------------------------ metrics
    def _flush(self) -> None:
        if self.played:
            self.returns.append(np.stack([self.cum.min(axis=1), self.paid.min(axis=1)], 1))

    def end_of_rollout(self) -> dict[str, float]:
        self._flush()
        out: dict[str, float] = {}
        if self.returns:
            mins = np.concatenate(self.returns)
            out |= {"min_welfare": float(mins[:, 0].mean()), "min_welfare_paid": float(mins[:, 1].mean()),
                    "min_welfare_var": float(mins[:, 0].var(ddof=1)) if len(mins) > 1 else 0.0}
        if self.fair_action is not None and self.played:
            played = np.stack(self.played)  # [T, B, N]
            lead = np.stack(self.chosen)[: len(played)]  # [T, B]
            fair = played == self.fair_action
            out["fair_action_rate"] = float(fair.mean())
            out["leader_fair_rate"] = float(np.take_along_axis(fair, lead[..., None], 2).mean())
            if len(played) == self.horizon:
                out["final_fair_rate"] = float(fair[-1].mean())
        self._reset_episode(1)
        return out


class FixedLeader(LeaderMediator):
    def choose(self, t, state, cum):
        return np.full(len(state), self.cfg.leader, np.int64)


class AlternatingLeader(LeaderMediator):
    def choose(self, t, state, cum):
        return np.full(len(state), t % self.n, np.int64)


class VoteLeader(LeaderMediator):
    """Every agent's vote learner V_i(t, m, v); the plurality leads (module docstring)."""

    @classmethod
    def table_entries(cls, states: int, agents: int, horizon: int, cfg: LeaderConfig) -> int:
        return agents * (horizon + 1) * states * agents

    def __init__(self, game, cfg: LeaderConfig, seed: int):
        super().__init__(game, cfg, seed)
        self.votes = np.zeros((self.n, self.horizon + 1, self.states, self.n))  # V_i[t, m, v]; row T stays 0
        self.cast: list[np.ndarray] = []

    def vote(self, t: int, m: np.ndarray) -> np.ndarray:
        """Each agent's ε-greedy vote ``[B, N]`` (greedy ties: uniformly at random)."""
        B = len(m)
        values = self.votes[:, min(t, self.horizon - 1)][:, m].transpose(1, 0, 2)  # [B, N, N]
        noise = self.rng.random(values.shape) * 1e-9
        greedy = (values + noise).argmax(axis=2)
        explore = self.rng.random((B, self.n)) < self.epsilon
        return np.where(explore, self.rng.integers(0, self.n, (B, self.n)), greedy)

    def choose(self, t, state, cum):
        votes = self.vote(t, self.state_index(state))
        if t == 0:
            self.cast = []
        self.cast.append(votes)
        count = (votes[..., None] == np.arange(self.n)).sum(axis=1)  # [B, N] votes per candidate
        top = count == count.max(axis=1, keepdims=True)
        return (top * self.rng.random(top.shape)).argmax(axis=1)

    def learn(self, rollout: Rollout) -> dict[str, float]:
        T = rollout.rewards.shape[0]
        if len(self.cast) < T:
            return {}
        cast = np.stack(self.cast[:T])  # [T, B, N]
        m = np.stack([self.state_index(s) for s in rollout.state[:T]])  # [T, B]
        r = rollout.rewards * rollout.mask
        lr, deltas = self.cfg.mediator_lr, []
        for b in range(r.shape[1]):
            for t in reversed(range(T)):
                nxt = 0.0 if t == self.horizon - 1 or t + 1 >= T else self.votes[:, t + 1, m[t + 1, b]].max(axis=1)
                i = np.arange(self.n)
                delta = r[t, b] + nxt - self.votes[i, t, m[t, b], cast[t, b]]
                self.votes[i, t, m[t, b], cast[t, b]] += lr * delta
                deltas.append(np.abs(delta).mean())
        self.rounds_learnt += 1
        return {"vote_td_abs": float(np.mean(deltas))}

    def state_dict(self) -> dict:
        return super().state_dict() | {"votes": self.votes.copy()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        check_table(np.asarray(state["votes"]), self.votes.shape, "vote table")
        self.votes = np.array(state["votes"])


class LeaderStrategy(FederationStrategy):
    """Independent learners in Stackelberg steps whose leaders the strategy's mediator names,
    learning in turn (module docstring)."""

    name = "leaders"
    reads = ("leaders",)
    mediator_class: type[LeaderMediator] = LeaderMediator
    mediator: LeaderMediator

    def __init__(self, participation, seed: int, mediator: LeaderMediator, cfg: LeaderConfig, agents: int):
        super().__init__(participation, seed)
        self.mediator, self.cfg, self.agents = mediator, cfg, agents

    @classmethod
    def check_config(cls, cfg: RunSettings, game) -> None:
        check(cfg.leaders, game.num_agents)
        states = game_state_index(game, cfg.leaders.mediator_state)[0]
        size = cls.mediator_class.table_entries(states, game.num_agents, game.episode_length, cfg.leaders)
        if size > MAX_TABLE:
            raise ValueError(f"{cls.name}'s table would have {size:,} entries on {game.name} with "
                             f"{game.num_agents} agents (limit {MAX_TABLE:,}): use --mediator-state none, "
                             "fewer --reward-bins or fewer agents")

    @classmethod
    def from_config(cls, cfg: RunSettings, game, init):
        from strategies.participation import Participation

        check(cfg.leaders, game.num_agents)
        mediator = cls.mediator_class(game, cfg.leaders, cfg.seed)
        return cls(Participation.from_config(cfg.joining, cfg.agents), cfg.seed, mediator, cfg.leaders, cfg.agents)

    def phase(self, server_round: int) -> int:
        return phase(server_round, self.cfg.mediator_period, self.agents)

    def instructions(self, agent, server_round, arrays):
        who = self.phase(server_round)
        return {"learn": who in (-1, agent)}, {}

    def federated_training(self, server_round: int, rollout: Rollout, arrays):
        who = self.phase(server_round)
        metrics = {"learning": float(who)}
        if who in (-1, self.agents):
            metrics |= self.mediator.learn(rollout)
        return arrays, metrics

    def state_dict(self) -> dict:
        return super().state_dict() | {"mediator": self.mediator.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.mediator.load_state_dict(state["mediator"])

    def summary(self) -> None:
        log(INFO, "\t├──> %s: Stackelberg leaders by %s; learning in turn every %d rounds (0: together)",
            self.name, type(self.mediator).__name__, self.cfg.mediator_period)


class Fixed(LeaderStrategy):
    name, mediator_class = "fixed-leader", FixedLeader


class Alternating(LeaderStrategy):
    name, mediator_class = "alternating-leader", AlternatingLeader


class Vote(LeaderStrategy):
    name, mediator_class = "vote-leader", VoteLeader
