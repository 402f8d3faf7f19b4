"""The ServerApp: the round loop of every federation.

Per round (see docs/ARCHITECTURE.md for why the world lives with the server):

1. **Rollout**: the world plays B copies of the game with every agent's acting policy.
2. **Train**: the strategy addresses one train message to each agent; the loop attaches
   the agent's own experience; agents train locally and reply.
3. **Aggregate**: acting weights go to the world; the strategy sees the replies with the
   acting weights removed, i.e. only what each agent chose to share. Then the strategy's
   server-side learners train on the world's data.

``make_server_app(cfg)`` builds the app for ``run_sim.py`` (Flower's simulation runtime
passes no run config); the module-level ``app`` reads ``context.run_config`` for
``flwr run``. Both validate the same RunConfig once.
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, ConfigRecordValues, Context, Error, Message, MessageType
from flwr.serverapp import Grid, ServerApp

import envs
import strategies
from clients import attacks, joint_policy, learners, protocol
from clients.networks import to_record
from clients.pulls import prompt_pulls
from clients.policies import ActingSpec
from envs.stackelberg import StackelbergView
from federation.agents import discover_agents, rediscover
from federation.config import ALIASES, RunConfig, check_applies, check_out, clear_run, owner, resolve_device
from federation.metrics import cv, group_mean, welfare_row
from federation.results import RunRecorder, one_line
from federation.world import World
from strategies.graphs import consensus_gap
from strategies.mediator import Mediator
from strategies.participation import Participation

log = logging.getLogger("fedgames")


#: how a node of several agents trains them (clients/stacking.py): stacked where their learners stack
NODE_STACKED = "auto"


class NoAgentTrained(RuntimeError):
    """Every agent failed or stayed silent in a round: nothing can be learned from the run."""


class AgentsLost(RuntimeError):
    """The run finished, but agents missed more rounds than ``max-missed-rounds`` allows:
    its results are not those of the federation that was asked for."""


class Stopped(Exception):
    """Raised inside a round that a stop request (Ctrl-C) drops."""


class StopRequest:
    """A request to end the run early (Ctrl-C), made from a signal handler and read by
    the round loop: ``after-round`` lets the round in progress finish (and checkpoint),
    ``now`` drops it. The first request finishes the round when it is expected to end
    within ``grace`` seconds (from the last round's duration), else stops now; a second
    request always stops now."""

    def __init__(self, grace: float = 10.0):
        self.grace = grace
        self.mode: str | None = None
        self.round = 0  # the round in progress (0: none)
        self.round_started = 0.0
        self.last_round_s: float | None = None
        self.worker_pids: set[int] = set()  # the processes that replied, filled when the loop ends

    def request(self) -> str:
        """Record the request; returns what will happen, for the console."""
        if self.mode is not None:
            self.mode = "now"
            return "stopping at once" + (f", dropping round {self.round}" if self.round else "")
        if not self.round:
            self.mode = "now"
            return "stopping at once (no round is in progress)"
        left = None if self.last_round_s is None else self.last_round_s - (time.perf_counter() - self.round_started)
        if left is not None and left <= self.grace:
            self.mode = "after-round"
            return (f"stopping after round {self.round} (about {max(left, 0.0):.0f} s); "
                    "press Ctrl-C again to stop at once")
        self.mode = "now"
        return (f"stopping at once: round {self.round}, in progress, is dropped unless its agents have replied"
                + (f" (it would take about {left:.0f} s more)" if left is not None else "")
                + "; the rounds done are kept")

    def begin(self, rnd: int) -> None:
        self.round, self.round_started = rnd, time.perf_counter()

    def end(self) -> None:
        self.last_round_s, self.round = time.perf_counter() - self.round_started, 0


@dataclass
class RunOutcome:
    """Filled by the server loop; lets the caller of run_simulation see what happened."""

    summary: dict = field(default_factory=dict)
    error: BaseException | None = None


def learner_config(cfg: RunConfig, world: World, learner: str) -> ConfigRecord:
    """What an agent needs to build and train its learner (the same every round)."""
    hyper = learners.hyper_record(_hyper(cfg, learner))
    return ConfigRecord({"learner": learner, **hyper, **learners.hyper_record(cfg.net),
                         **protocol.space_config(world.game.observation_space), "num-actions": world.num_actions,
                         "seed": cfg.seed, "torch-threads": cfg.execution.torch_threads,
                         "device": resolve_device(cfg.execution.device),
                         "storage-dir": str(Path(cfg.storage_dir()).resolve())})


def _hyper(cfg: RunConfig, learner: str):
    """The learner's hyperparameter group of the configuration; for a learner from outside
    the package, its own ``config_class`` with the defaults (clients/learners.py)."""
    if not learners.builtin(learner):
        return learners.config_class(learner)()
    return getattr(cfg, {"q-table": "qtable"}.get(learner, learner))


def build(cfg: RunConfig):
    """The game, the strategy and the world of a run, consistent with each other."""
    mediator = strategies.strategy_class(cfg.strategy).mediator_class or Mediator
    plain = envs.make_batched(cfg.env, cfg.agents, batch_size=cfg.world.batch, seed=cfg.seed, **cfg.game_options())
    # with Stackelberg leaders, followers observe the leaders' actions of each step
    game = StackelbergView(plain) if mediator.stackelberg else plain
    assignment = cfg.learners()
    init = to_record(World.initial_policy(assignment[0], game, mediator.agent_actions(game.num_actions), cfg.net,
                                          cfg.seed))
    strategy = strategies.make(cfg, game, init)
    epsilons = {name: learners.learner_class(name).initial_epsilon(_hyper(cfg, name)) for name in set(assignment)}
    world = World(game, assignment, cfg.net, cfg.seed, mediator=strategy.mediator, epsilons=epsilons)
    return game, strategy, world, init


class Federation:
    """One run's server side: the game, the world, the strategy and the round loop.

    ``play(rnd, exchange)`` runs one round; ``exchange`` delivers the train messages and
    returns the replies (Flower's ``grid.send_and_receive`` in a run; the benchmark's
    in-process reference calls the ClientApp directly, so both do the same work).
    """

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.game, self.strategy, self.world, self.arrays = build(cfg)
        self.assignment = cfg.learners()
        self.learner_cfgs = {name: learner_config(cfg, self.world, name) for name in set(self.assignment)}
        self.node_agent: dict[int, int] = {}  # the address the strategy knows an agent by -> agent
        self.agent_node: dict[int, int] = {}  # agent -> the node that plays it
        self.packed: frozenset[int] = frozenset()  # nodes whose agents' messages travel packed
        self._evaluator: World | None = None
        # each attacking agent's attack profile (clients.attacks), attached to its own train
        # message only: attacks belong to the agents, and strategies never see them
        self.attacks = {agent: protocol.config_record(profile)
                        for agent, profile in attacks.profiles(cfg.attack, cfg.agents).items()}
        self.attackers = frozenset(self.attacks)
        # the configured participation set, whatever the strategy makes of it (paired controls)
        self.split = Participation.from_config(cfg.joining, cfg.agents).fixed_set(cfg.seed)
        # a resumed run's config.json is rewritten only once its checkpoint has loaded
        self.recorder = RunRecorder(cfg.out, cfg.to_json(), notes=_notes(cfg, self.split),
                                    tensorboard=cfg.execution.tensorboard, write_config=not cfg.execution.resume)
        self.missed: dict[int, list[int]] = {}  # agent -> the rounds it missed
        self.worker_pids: set[int] = set()  # the processes that replied (a simulation's workers)
        self.stop: StopRequest | None = None
        self.acted: set[int] = set()  # agents whose acting weights this round's replies already handed over

    def bind(self, nodes: dict[int, int], packed: Iterable[int] = ()) -> None:
        """``nodes``: agent id -> node id; ``packed``: the nodes that hold a list of agents
        (``--agents-per-node``, a SuperNode's ``agent-ids``), whose agents' train messages
        travel in one message per node (``exchange_packed``). The strategy knows each
        agent by an address of its own: its node's id for a node of one agent, else a
        number that is no node's id, so it still sends and receives one message per agent."""
        self.agent_node = dict(nodes)
        self.packed = frozenset(packed) & frozenset(nodes.values())
        taken, free = set(nodes.values()), 1
        addresses = {}
        for agent, node in sorted(nodes.items()):
            if node not in self.packed:
                addresses[agent] = node
                continue
            while free in taken:
                free += 1
            addresses[agent] = free
            taken.add(free)
        self.node_agent = {n: a for a, n in addresses.items()}
        self.strategy.bind(addresses)

    def rejoin(self, rnd: int, found: dict[int, int], problems: list[str], packed: Iterable[int] = ()) -> None:
        """Agents whose node came back under a new id (``agents.rediscover``) play again
        from this round; they reload their learner from their own storage. ``packed``:
        the new nodes that hold a list of agents (see ``bind``)."""
        nodes = dict(self.agent_node)
        for agent, node in sorted(found.items()):
            self.recorder.event(rnd, "agent_rejoined", f"agent {agent} is back, on node {node} (was {nodes.get(agent)})")
            nodes[agent] = node
        for problem in problems:
            self.recorder.event(rnd, "unknown_node", problem)
        if found:
            self.bind(nodes, self.packed | set(packed))

    def exchange_packed(self, messages: list[Message],
                        exchange: Callable[[list[Message]], Iterable[Message]]) -> list[Message]:
        """Deliver the strategy's messages, one per agent, with ``exchange``: as they are to
        a node of one agent; to a node of several, all of its agents' messages in one
        (clients.protocol.pack: each agent's records under its own name, nobody else's),
        whose one reply is unpacked into a reply per agent, as if each had answered alone.
        An error reply of such a node is every one of its agents' error."""
        if not self.packed:
            return list(exchange(messages))
        plain: list[Message] = []
        groups: dict[int, dict[int, Message]] = {}
        for msg in messages:
            agent = self.node_agent[msg.metadata.dst_node_id]
            node = self.agent_node[agent]
            if node in self.packed:
                groups.setdefault(node, {})[agent] = msg
            else:
                plain.append(msg)
        header: dict[str, ConfigRecordValues] = {"agents": self.cfg.agents, "stacked": NODE_STACKED,
                                                 "agents-per-node": self.cfg.execution.agents_per_node}
        outgoing = {node: Message(content=protocol.pack({a: m.content for a, m in members.items()}, header),
                                  dst_node_id=node, message_type=MessageType.TRAIN)
                    for node, members in groups.items()}
        received = list(exchange(plain + list(outgoing.values())))
        by_id = {m.metadata.message_id: node for node, m in outgoing.items() if m.metadata.message_id}
        replies: list[Message] = []
        for reply in received:
            sender = by_id.get(reply.metadata.reply_to_message_id)
            if sender is None and reply.metadata.src_node_id in outgoing and not reply.metadata.reply_to_message_id:
                sender = reply.metadata.src_node_id
            if sender is None:
                replies.append(reply)
                continue
            members = groups[sender]
            unpacked = None if reply.has_error() else protocol.unpack(reply.content)
            if unpacked is None:
                error = reply.error if reply.has_error() else Error(0, f"node {sender} answered without its agents' replies")
                replies += [Message(error, reply_to=m) for m in members.values()]
                continue
            contents = unpacked[1]
            replies += [Message(contents[a], reply_to=m) for a, m in members.items() if a in contents]
        return replies

    def take_acting(self, replies: Iterable[Message]) -> None:
        """Hand the acting weights of these replies (of this round, from nodes of one agent)
        to the world now, so that a runner holding many agents need not keep every agent's
        weights in its replies until the round's end; ``deliver`` then skips them."""
        for reply in replies:
            if not reply.has_error() and protocol.ACTING in reply.content:
                agent = self.node_agent[reply.metadata.src_node_id]
                take_acting(self.world, agent, reply)
                self.acted.add(agent)

    def play(self, rnd: int, exchange: Callable[[list[Message]], Iterable[Message]]) -> dict:
        """One round: rollout, train messages, aggregation, federated training; returns its metrics row."""
        cfg, strategy, world = self.cfg, self.strategy, self.world
        t0 = time.perf_counter()
        rollout = world.rollout(rnd, cfg.world.steps or None)
        rewards = strategy.train_rewards(rollout.rewards if rollout.shaped is None else rollout.shaped)
        t1 = time.perf_counter()
        config = ConfigRecord({"server-round": rnd, "seed": cfg.seed})
        messages = list(strategy.configure_train(rnd, self.arrays, config, None))
        for msg in messages:
            agent = self.node_agent[msg.metadata.dst_node_id]
            msg.content[protocol.LEARNER] = self.learner_cfgs[self.assignment[agent]]
            msg.content[protocol.EXPERIENCE] = protocol.pack_experience(rollout.experience(agent, rewards))
            if agent in self.attacks:
                msg.content[protocol.ATTACK] = self.attacks[agent]
        t2 = time.perf_counter()
        replies = self.exchange_packed(messages, exchange)
        t3 = time.perf_counter()

        sent = {m.metadata.message_id: self.node_agent[m.metadata.dst_node_id] for m in messages
                if m.metadata.message_id}  # ids are given when a grid pushes the messages
        trained: set[int] = set()
        client_stats = deliver(rnd, replies, world, strategy, self.node_agent, self.recorder,
                               cfg.execution.reply_timeout, sent, trained=trained, acted=self.acted)
        self.acted = set()
        self.worker_pids |= {int(s["pid"]) for s in client_stats if _scalar(s.get("pid"))}
        self._count_missed(rnd, trained)
        if not client_stats:
            reasons = [one_line(e["detail"]) for e in self.recorder.events if e["round"] == rnd]
            raise NoAgentTrained(f"round {rnd}: no agent trained ({len(reasons)} failed or silent"
                                 + (f"; first: {reasons[0]}" if reasons else "") + ")")
        new_arrays, agg_metrics = strategy.aggregate_train(rnd, replies)
        arrays = new_arrays if new_arrays is not None else self.arrays
        self.arrays, fed_metrics = strategy.federated_training(rnd, rollout, arrays)
        self._act_strategy_policies()
        t4 = time.perf_counter()

        timings = {"rollout_s": t1 - t0, "exchange_s": t3 - t2, "aggregate_s": t4 - t3, "round_s": t4 - t0}
        row = round_row(rnd, rollout, world, strategy.participants(), client_stats, timings, cfg.agents)
        if self.split is not None:
            returns = rollout.returns
            row["split_in_return"] = group_mean(returns, self.split)
            row["split_out_return"] = group_mean(returns, set(range(cfg.agents)) - set(self.split))
        if self.attackers:  # exploitation: what the honest agents earn beside the attackers
            row["honest_return"] = group_mean(rollout.returns, set(range(cfg.agents)) - self.attackers)
            row["attackers_return"] = group_mean(rollout.returns, self.attackers)
        mediator_metrics = strategy.mediator.end_of_rollout() if strategy.mediator is not None else {}
        row |= {k: float(v) for k, v in (dict(agg_metrics or {}) | fed_metrics | mediator_metrics
                                         | self.game.reference_metrics()).items()}
        if cfg.world.eval_every and rnd % cfg.world.eval_every == 0:
            row |= self.evaluate(rnd)
        self.recorder.add(row)
        return row

    def run(self, exchange: Callable[[list[Message]], Iterable[Message]], done: int, started: float,
            timings: dict[str, float], *, checkpoints: bool = True,
            after_round: Callable[[int, dict], None] | None = None, extra: dict | None = None) -> dict:
        """Rounds ``done + 1`` .. ``cfg.rounds`` with ``exchange``, each followed by its
        checkpoint (unless ``checkpoints`` is False) and ``after_round(rnd, row)``; then the
        final policies (OUT/policies.pt) and OUT/summary.json, whose dict it returns: the
        run's settings, ``timings`` (startup_s, build_s), wall_s since ``started`` (a
        ``time.perf_counter()``) and ``extra``. Both runners end here: ``run_federation``
        (Flower) and ``federation.in_process.run_in_process``.

        A stop request (``self.stop``, Ctrl-C) ends the loop early; the files are written
        from the rounds done and the summary says ``interrupted``. Agents that missed more
        rounds than ``max-missed-rounds`` raise AgentsLost once the files are written."""
        cfg, stop = self.cfg, self.stop
        for rnd in range(done + 1, cfg.rounds + 1):
            if stop is not None:
                if stop.mode is not None:
                    break
                stop.begin(rnd)
            try:
                row = self.play(rnd, exchange)
            except Stopped:
                break
            if checkpoints:
                self.checkpoint(rnd)
            release_memory()
            if rnd == done + 1 and (note := cost_note(row.get("round_s", 0.0), _size(Path(cfg.out) / CHECKPOINT),
                                                      cfg.rounds - rnd)):
                log.warning(note)
            if stop is not None:
                stop.end()
            if after_round is not None:
                after_round(rnd, row)
        interrupted = stop is not None and stop.mode is not None
        save_policies(self, cfg)
        missed = {a: r for a, r in sorted(self.missed.items()) if len(r) > cfg.execution.max_missed_rounds}
        summary = self.recorder.finish({"strategy": cfg.strategy, "label": cfg.label, "env": cfg.env,
                                        "seed": cfg.seed, "agents": cfg.agents, "learner": cfg.learner, **timings,
                                        "wall_s": time.perf_counter() - started, **(extra or {}),
                                        **({"interrupted": True, "rounds_planned": cfg.rounds} if interrupted else {}),
                                        **({"missed_rounds": {str(a): r for a, r in missed.items()}} if missed else {})})
        if missed:
            raise AgentsLost(missed_rounds_line(missed, cfg.execution.max_missed_rounds))
        return summary

    def _count_missed(self, rnd: int, trained: set[int]) -> None:
        """Record the round for each agent that did not train in it; say on the console
        when an agent has missed more rounds than allowed (the run goes on)."""
        allowed = self.cfg.execution.max_missed_rounds
        for agent in sorted(set(range(self.cfg.agents)) - trained):
            self.missed.setdefault(agent, []).append(rnd)
            if len(self.missed[agent]) > allowed:
                log.warning("agent %d has missed %d rounds (%s); the run goes on and will end with an error "
                            "(max-missed-rounds %d)", agent, len(self.missed[agent]),
                            _rounds_text(self.missed[agent]), allowed)

    def _act_strategy_policies(self) -> None:
        """The world plays the strategy's policies where it has them (FedAvg's shared one,
        LMF-diffusion's mixes) and the agents' own replies elsewhere."""
        for agent, record in self.strategy.acting_policies(self.arrays).items():
            self.world.set_acting(agent, record)

    def checkpoint(self, rnd: int) -> None:
        """Save what the next round needs (written atomically to OUT/checkpoint.pt after the
        round's metrics row): the strategy's state (ω, ω̄ and their optimisers, LMF's pending
        mixes, who joins), the global arrays, the acting policies the world plays, the
        metrics so far and the server's random state. The agents keep theirs in their storage."""
        state = {"round": rnd, "config": _resumable(self.cfg), "strategy": self.strategy.state_dict(),
                 "arrays": {k: v.numpy() for k, v in self.arrays.items()}, "world": self.world.state_dict(),
                 "rows": self.recorder.rows, "events": self.recorder.events, "torch_rng": torch.get_rng_state()}
        path = Path(self.cfg.out) / CHECKPOINT
        tmp = path.with_suffix(".tmp")
        torch.save(as_tensors(state), tmp)
        tmp.replace(path)

    def restore(self) -> int:
        """Load OUT/checkpoint.pt if there is one (checked by ``load_checkpoint``); returns
        the last round it completed (0 if none). Then, and only then, config.json is
        rewritten with this run's settings."""
        state = load_checkpoint(self.cfg)
        if state is None:
            self.recorder.write_config()
            return 0
        self.strategy.load_state_dict(state["strategy"])
        self.arrays = ArrayRecord({k: Array(v) for k, v in state["arrays"].items()})
        self.world.load_state_dict(state["world"])
        self._act_strategy_policies()
        self.recorder.rows, self.recorder.events = state["rows"], state["events"]
        torch.set_rng_state(state["torch_rng"])
        self.recorder.write_config()
        return int(state["round"])

    def evaluate(self, rnd: int) -> dict[str, float]:
        """The strategy's own policies played by every agent on games not used for training
        (another seed stream; greedy for value-based policies): returns, CV and minimum of
        each, and the strategy's own metrics of them (``evaluation_metrics``)."""
        policies = self.strategy.evaluation_policies()
        if not policies:
            return {}
        cfg = self.cfg
        if self._evaluator is None:
            game = envs.make_batched(cfg.env, cfg.agents, batch_size=cfg.world.eval_batch, seed=cfg.seed,
                                     **cfg.game_options())
            self._evaluator = World(game, self.assignment, cfg.net, cfg.seed + 7919)
        learner = self.assignment[0]
        spec = ActingSpec(learner, learners.learner_class(learner).kind, 0.0)
        out: dict[str, float] = {}
        for name, record in policies.items():
            for agent in range(cfg.agents):
                self._evaluator.set_acting(agent, record, spec)
            returns = self._evaluator.rollout(rnd, cfg.world.steps or None).returns
            out |= {f"{name}_eval_collective": float(returns.sum()), f"{name}_eval_cv": cv(returns),
                    f"{name}_eval_min": float(returns.min())}
        return out | self.strategy.evaluation_metrics(policies)


class CheckpointError(ValueError):
    """OUT/checkpoint.pt cannot be resumed: unreadable, or from a run with other settings."""


#: the key under which a checkpoint holds a numpy array as a tensor sharing its memory
NDARRAY = "__ndarray__"


def as_tensors(obj):
    """``obj`` with its numpy arrays (in dicts, lists and tuples) as ``{NDARRAY: tensor}``,
    tensors sharing the arrays' memory: torch.save writes a tensor's storage straight to the
    file, where it pickles a numpy array in memory first (a second copy of a checkpoint of
    many agents). ``as_arrays`` undoes it; arrays torch cannot share stay as they are."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject or not obj.flags.writeable or not obj.dtype.isnative:
            return obj
        try:
            return {NDARRAY: torch.from_numpy(obj)}
        except TypeError:  # a dtype torch has no tensor for
            return obj
    if isinstance(obj, dict):
        return {k: as_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(as_tensors(v) for v in obj)
    return obj


def as_arrays(obj):
    """The inverse of ``as_tensors`` (a checkpoint written before it passes unchanged)."""
    if isinstance(obj, dict):
        if len(obj) == 1 and NDARRAY in obj:
            return obj[NDARRAY].numpy()
        return {k: as_arrays(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(as_arrays(v) for v in obj)
    return obj


def release_memory() -> None:
    """Return the memory a round freed to the system (glibc's ``malloc_trim``; nothing
    elsewhere). A round of many agents frees as much as it allocates, but the allocator keeps
    the pages, and the process would carry the largest round's transients to the end."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def load_checkpoint(cfg: RunConfig) -> dict | None:
    """OUT/checkpoint.pt of the run ``cfg`` resumes, checked: readable (a truncated or
    empty file is refused with a clear CheckpointError), written by a run with the same
    settings (all but ``out``, ``rounds`` and the execution group, so a moved or copied
    run directory resumes) and not past ``cfg.rounds``. None when there is no checkpoint."""
    path = Path(cfg.out) / CHECKPOINT
    if not path.is_file():
        return None
    try:
        state = as_arrays(torch.load(path, weights_only=False))
        theirs, rounds = json.loads(state["config"]), int(state["round"])
    except Exception as err:  # noqa: BLE001 - whatever a damaged file raises
        size = path.stat().st_size
        raise CheckpointError(f"{path} cannot be read ({size} bytes; {type(err).__name__}: "
                              f"{one_line(str(err)) or 'no detail'}): it is damaged or incomplete. Start the run "
                              "again with --overwrite, or restore the file from a copy") from None
    ours = json.loads(_resumable(cfg))
    theirs = {ALIASES.get(k.replace("-", "_"), k.replace("-", "_")).replace("_", "-"): v  # older spellings
              for k, v in theirs.items() if _owner(k) != "execution" and k != "out"}
    defaults = RunConfig().to_flat()
    # a setting the checkpoint predates matches when this run leaves it at its default
    diff = sorted(k for k in set(theirs) | set(ours)
                  if theirs.get(k) != ours.get(k) and not (k not in theirs and ours.get(k) == defaults.get(k)))
    if diff:
        raise CheckpointError(f"{path} belongs to a run with other settings ({', '.join(diff)}); "
                              "resume it with its own config.json")
    if rounds > cfg.rounds:
        raise CheckpointError(f"{path} holds {rounds} rounds, more than --rounds {cfg.rounds}; a run can be "
                              f"extended but not shortened (give --rounds {rounds} or more)")
    return state


#: a run is called costly, with a note after its first round, past these (seconds per
#: round, seconds in all, checkpoint bytes)
COSTLY_ROUND_S, COSTLY_TOTAL_S, COSTLY_CHECKPOINT = 60.0, 4 * 3600.0, 200e6


def cost_note(round_s: float, checkpoint_bytes: int, rounds_left: int) -> str | None:
    """What the rest of the run will cost, from its first round, when it is past a
    COSTLY_* threshold (None otherwise), so that the user can stop it early."""
    total = round_s * rounds_left
    if round_s < COSTLY_ROUND_S and total < COSTLY_TOTAL_S and checkpoint_bytes < COSTLY_CHECKPOINT:
        return None
    return (f"this run is costly: the first round took {_duration(round_s)} and its checkpoint is "
            f"{checkpoint_bytes / 1e6:.0f} MB (rewritten every round); the {rounds_left} rounds left will take "
            f"about {_duration(total)}. Ctrl-C stops it after a round (--resume continues it)")


def _duration(seconds: float) -> str:
    if seconds < 300:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def missed_rounds_line(missed: dict[int, list[int]], allowed: int) -> str:
    """One line naming the agents that missed too many rounds, and which."""
    parts = [f"agent {a} missed {len(r)} round{'s' * (len(r) != 1)} ({_rounds_text(r)})" for a, r in missed.items()]
    return (f"{'; '.join(parts)}: more than --max-missed-rounds {allowed}, so the results are not those of "
            "the whole federation (their workers or nodes failed; see the events in summary.json)")


def _rounds_text(rounds: list[int]) -> str:
    shown = ", ".join(map(str, rounds[:8]))
    return shown + (f", ... {rounds[-1]}" if len(rounds) > 8 else "")


def run_federation(grid: Grid, cfg: RunConfig, stop: StopRequest | None = None,
                   on_round: Callable[[], object] | None = None) -> dict:
    """Discover the agents, then run ``cfg.rounds`` rounds; returns the run's summary.
    ``stop``: a stop request the loop obeys (see ``Federation.run``); ``on_round`` is
    called once the agents are found and after every round (the simulation records its
    processes there)."""
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    # the rollout's small matrix products gain nothing from threads, and the agents'
    # processes need the cores
    torch.set_num_threads(cfg.execution.torch_threads)
    federation = Federation(cfg)
    federation.stop = stop
    build_s = time.perf_counter() - start
    if hasattr(grid, "pull_interval"):  # the simulation's in-memory grid polls for replies (default every 0.1 s)
        grid.pull_interval = 0.01
    in_memory = hasattr(grid, "pull_interval")
    found = discover_agents(grid, cfg.agents, cfg.execution.node_timeout, per_node=cfg.execution.agents_per_node)
    federation.bind(found.nodes, found.packed)
    federation.strategy.summary()
    startup_s = time.perf_counter() - start
    if on_round is not None:
        on_round()

    def exchange(messages: list[Message]) -> Iterable[Message]:
        # grid.send_and_receive's loop, which also gives up when the round is to be dropped,
        # and pulls every 0.1 s where the deployment's grid (no pull_interval) waits 3 s
        # messages that cross processes through Flower's object store travel bundled
        waiting, replies = set(grid.push_messages(messages) if in_memory else _push_bundled(grid, messages)), []
        deadline = time.monotonic() + cfg.execution.reply_timeout
        while waiting and time.monotonic() < deadline:
            if stop is not None and stop.mode == "now":
                raise Stopped
            got = [_unbundled(m) for m in grid.pull_messages(waiting)]
            replies += got
            waiting -= {m.metadata.reply_to_message_id for m in got}
            if waiting:
                time.sleep(getattr(grid, "pull_interval", 0.1))
        return replies

    done = federation.restore() if cfg.execution.resume else 0
    if done:
        log.warning("resuming %s after round %d of %d", cfg.out, done, cfg.rounds)
    bar = _progress(cfg, done)

    def after_round(rnd: int, row: dict) -> None:
        if on_round is not None:
            on_round()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(collective=f"{row['collective_return']:.1f}", cv=f"{row['cv']:.2f}")
        if row["failed_agents"] > 0 and rnd < cfg.rounds:  # a restarted node comes back under a new id
            back, problems = rediscover(grid, dict(federation.agent_node), cfg.agents,
                                        per_node=cfg.execution.agents_per_node)
            federation.rejoin(rnd + 1, back.nodes, problems, back.packed)

    try:
        return federation.run(exchange, done, start, {"startup_s": startup_s, "build_s": build_s},
                              after_round=after_round)
    finally:
        if bar is not None:
            bar.close()
        if stop is not None:
            stop.worker_pids = federation.worker_pids


def _push_bundled(grid: Grid, messages: list[Message]) -> Iterable[str]:
    """``grid.push_messages`` with each message's arrays travelling as one
    (clients.protocol.bundle_arrays); the messages keep their own content and get their ids."""
    contents = [m.content for m in messages]
    for msg in messages:
        msg.content = protocol.bundle_arrays(msg.content)
    try:
        return list(grid.push_messages(messages))
    finally:
        for msg, content in zip(messages, contents):
            msg.content = content


def _unbundled(reply: Message) -> Message:
    """``reply`` with the arrays it may carry bundled (a reply to a bundled message) unbundled."""
    if not reply.has_error():
        reply.content = protocol.unbundle_arrays(reply.content)
    return reply


CHECKPOINT = "checkpoint.pt"
POLICIES = "policies.pt"


def save_policies(federation: Federation, cfg: RunConfig) -> None:
    """OUT/policies.pt: the agents' final acting policies as a joint policy
    (clients/joint_policy.py), when they share one learner."""
    records, world = federation.world.acting_arrays(), federation.world
    if records is None or len(set(federation.assignment)) != 1:
        return
    joint_policy.save(Path(cfg.out) / POLICIES, cfg.env, federation.assignment[0], world.num_actions,
                      world.game.observation_space, cfg.net, records)


def _resumable(cfg: RunConfig) -> str:
    """The settings a checkpoint must share with the run that resumes it: all but the
    number of rounds (a run may be extended), where it is (a run directory may be moved)
    and how it executes."""
    flat = {k: v for k, v in cfg.to_flat().items() if k not in ("rounds", "out") and owner(k) != "execution"}
    return json.dumps(flat, sort_keys=True)


def _owner(key: str) -> str | None:
    """The group of a flat key, None for a key that no longer exists."""
    try:
        return owner(key)
    except ValueError:
        return None


def _notes(cfg: RunConfig, split: list[int] | None) -> list[str]:
    """Things the user should know about how the configuration was applied."""
    notes = []
    if (why := cfg.participation_note()) is not None:
        notes.append(f"--participation {cfg.joining.participation} does not apply: {why}")
    if split is not None and why is None:
        notes.append(f"participation set: agents {split}")
    notes += strategies.strategy_class(cfg.strategy).config_notes(cfg)
    for note in notes:
        log.warning(note)
    return notes


def take_acting(world: World, agent: int, reply: Message) -> None:
    """Hand the agent's acting weights in ``reply`` to the world, removing them from the reply."""
    spec = ActingSpec.from_dict(reply.content.pop(protocol.ACTING_SPEC))
    acting = protocol.record(reply.content, protocol.ACTING, ArrayRecord)
    del reply.content[protocol.ACTING]
    world.set_acting(agent, acting, spec)


def deliver(rnd: int, replies: list, world: World, strategy, node_agent: dict[int, int], recorder: RunRecorder,
            timeout: float, sent: dict[str, int] | None = None, trained: set[int] | None = None,
            acted: frozenset[int] | set[int] = frozenset()) -> list[dict]:
    """Hand each agent's acting weights to the world (removing them from the reply the
    strategy will see) and its join decision to the participation set; record agents
    that failed or stayed silent as events. Returns the agents' training metrics.

    ``sent`` maps the ids of the messages sent to their agents: an error the SuperLink
    writes for an unreachable node comes from the SuperLink, not from the agent's node.
    ``trained``, if given, receives the ids of the agents that trained. ``acted``: the
    agents whose acting weights the world already took from their reply this round
    (``Federation.take_acting``: the in-process runner hands them over group by group)."""
    stats, answered, choices = [], set(), {}
    for reply in replies:
        agent = sent.get(reply.metadata.reply_to_message_id) if sent else None
        if agent is None:
            agent = node_agent[reply.metadata.src_node_id]
        answered.add(agent)
        if reply.has_error():
            recorder.event(rnd, "agent_error", f"agent {agent}: {reply.error.reason}")
            continue
        if agent not in acted:
            take_acting(world, agent, reply)
        metrics = dict(reply.content[protocol.METRICS])
        if "join-next" in metrics:
            choices[agent] = bool(metrics["join-next"])
        if metrics.get("fresh-start", 0.0) > 0:
            recorder.event(rnd, "agent_fresh_start", f"agent {agent} found no stored learner state and started over")
        stats.append(metrics)
        if trained is not None:
            trained.add(agent)
    for agent in sorted(set(node_agent.values()) - answered):
        recorder.event(rnd, "agent_timeout", f"agent {agent} did not reply within {timeout} s; it keeps its last policy")
    strategy.declare(choices)
    return stats


def round_row(rnd: int, rollout, world: World, participants: frozenset[int], client_stats: list[dict], timings: dict,
              num_agents: int) -> dict:
    """One row of metrics.csv: welfare, fairness, diagnostics and timings."""
    row = {"round": rnd, **welfare_row(rollout.returns, participants), **rollout.mediator_metrics()}
    if len(participants) >= 2:  # Theorem 2's consensus gap among the participants
        thetas = world.flat_policies(sorted(participants))
        if thetas is not None:
            row["consensus_gap"] = consensus_gap(thetas)
    train_s = float(sum(s.get("train_s", 0.0) for s in client_stats))
    client_s = float(sum(s.get("client_s", 0.0) for s in client_stats))
    # the exchange lasts at least as long as the busiest process's agents' work; the rest is
    # Flower's messaging (a process that handles several agents does them one after another)
    per_process: dict[float, float] = {}
    for s in client_stats:
        per_process[s.get("pid", 0.0)] = per_process.get(s.get("pid", 0.0), 0.0) + s.get("client_s", 0.0)
    busiest = max(per_process.values(), default=0.0)
    row |= {**timings, "train_s": train_s, "client_s": client_s, "busiest_s": busiest,
            "flower_s": max(0.0, timings["exchange_s"] - busiest),
            "agent_steps": rollout.agent_steps, "trained_agents": len(client_stats),
            "failed_agents": num_agents - len(client_stats)}
    # every diagnostic the agents report, averaged over the agents that report it
    keys = sorted({k for s in client_stats for k, v in s.items() if k not in BOOKKEEPING and _scalar(v)})
    for key in keys:
        vals = [float(s[key]) for s in client_stats if key in s and _scalar(s[key])]
        # fsum: exact, so the mean does not depend on the order the replies arrived in
        row[f"agents_{key}"] = math.fsum(vals) / len(vals)
    return row


#: what agents report besides their learners' diagnostics, used by the loop in its own way
#: or not at all, so ``round_row`` does not average it into an ``agents_*`` column: the time
#: accounting (train_s, client_s, pid: summed or per process above), the declared
#: participation (join-next: ``deliver``), the fresh-start event (fresh-start: ``deliver``),
#: the round's example count (num-examples, Flower's aggregation weight) and a resting
#: agent's flag (resting: 1 whenever it is there, clients.instructions.resting)
BOOKKEEPING = frozenset({"train_s", "client_s", "pid", "join-next", "fresh-start", "num-examples", "resting"})


def _scalar(value) -> bool:
    """A number (a MetricRecord may also hold lists of them)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _progress(cfg: RunConfig, done: int = 0):
    if not cfg.execution.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=cfg.rounds, initial=done, desc=f"{cfg.strategy} seed {cfg.seed}", unit="round")


def make_server_app(cfg: RunConfig, outcome: RunOutcome | None = None, stop: StopRequest | None = None,
                    on_round: Callable[[], object] | None = None,
                    on_stopped: Callable[[], None] | None = None) -> ServerApp:
    """A ServerApp bound to an already validated configuration (for run_simulation).
    ``stop`` and ``on_round``: see ``run_federation``; ``on_stopped`` is called when a
    stop request dropped a round, after the run's files are written."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        try:
            summary = run_federation(grid, cfg, stop=stop, on_round=on_round)
            if outcome is not None:
                outcome.summary = summary
        except BaseException as err:  # handed to the caller, which exits non-zero
            if outcome is None:
                raise
            outcome.error = err
        finally:
            if stop is not None and stop.mode == "now" and on_stopped is not None:
                on_stopped()

    return server


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Entry point for ``flwr run``: the same loop, configured from the run config (every
    key is there, from pyproject.toml; those that differ from the defaults count as set)."""
    prompt_pulls()  # replies' objects pulled as soon as they are there (clients/pulls.py)
    cfg = RunConfig.from_mapping(dict(context.run_config))
    defaults = RunConfig().to_flat()
    check_applies([k for k, v in cfg.to_flat().items() if v != defaults[k]], [cfg])
    check_out(cfg)
    if cfg.execution.overwrite:
        clear_run(cfg.out)
    run_federation(grid, cfg)
