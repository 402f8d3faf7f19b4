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

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message
from flwr.serverapp import Grid, ServerApp

import envs
import strategies
from clients import attacks, joint_policy, learners, protocol
from clients.networks import to_record
from clients.policies import ActingSpec
from envs.stackelberg import StackelbergView
from federation.agents import discover_agents, rediscover
from federation.config import ALIASES, RunConfig, check_applies, owner
from federation.metrics import cv, group_mean, welfare_row
from federation.results import RunRecorder, one_line
from federation.world import World
from strategies.graphs import consensus_gap
from strategies.mediator import Mediator
from strategies.participation import Participation

log = logging.getLogger("fedgames")


class NoAgentTrained(RuntimeError):
    """Every agent failed or stayed silent in a round: nothing can be learned from the run."""


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
                         "storage-dir": str(Path(cfg.storage_dir()).resolve())})


def _hyper(cfg: RunConfig, learner: str):
    """The learner's hyperparameter group of the configuration."""
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
        self.node_agent: dict[int, int] = {}
        self._evaluator: World | None = None
        # each attacking agent's attack profile (clients.attacks), attached to its own train
        # message only: attacks belong to the agents, and strategies never see them
        self.attacks = {agent: protocol.config_record(profile)
                        for agent, profile in attacks.profiles(cfg.attack, cfg.agents).items()}
        self.attackers = frozenset(self.attacks)
        # the configured participation set, whatever the strategy makes of it (paired controls)
        self.split = Participation.from_config(cfg.joining, cfg.agents).fixed_set(cfg.seed)
        self.recorder = RunRecorder(cfg.out, cfg.to_json(), notes=_notes(cfg, self.split),
                                    tensorboard=cfg.execution.tensorboard)

    def bind(self, nodes: dict[int, int]) -> None:
        """``nodes``: agent id -> node id."""
        self.node_agent = {n: a for a, n in nodes.items()}
        self.strategy.bind(nodes)

    def rejoin(self, rnd: int, found: dict[int, int], problems: list[str]) -> None:
        """Agents whose node came back under a new id (``agents.rediscover``) play again
        from this round; they reload their learner from their own storage."""
        nodes = {a: n for n, a in self.node_agent.items()}
        for agent, node in sorted(found.items()):
            self.recorder.event(rnd, "agent_rejoined", f"agent {agent} is back, on node {node} (was {nodes.get(agent)})")
            nodes[agent] = node
        for problem in problems:
            self.recorder.event(rnd, "unknown_node", problem)
        if found:
            self.bind(nodes)

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
        replies = list(exchange(messages))
        t3 = time.perf_counter()

        sent = {m.metadata.message_id: self.node_agent[m.metadata.dst_node_id] for m in messages
                if m.metadata.message_id}  # ids are given when a grid pushes the messages
        client_stats = deliver(rnd, replies, world, strategy, self.node_agent, self.recorder,
                               cfg.execution.reply_timeout, sent)
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
        (Flower) and ``federation.in_process.run_in_process``."""
        cfg = self.cfg
        for rnd in range(done + 1, cfg.rounds + 1):
            row = self.play(rnd, exchange)
            if checkpoints:
                self.checkpoint(rnd)
            if after_round is not None:
                after_round(rnd, row)
        save_policies(self, cfg)
        return self.recorder.finish({"strategy": cfg.strategy, "label": cfg.label, "env": cfg.env, "seed": cfg.seed,
                                     "agents": cfg.agents, "learner": cfg.learner, **timings,
                                     "wall_s": time.perf_counter() - started, **(extra or {})})

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
        torch.save(state, tmp)
        tmp.replace(path)

    def restore(self) -> int:
        """Load OUT/checkpoint.pt if there is one; returns the last round it completed (0 if none)."""
        path = Path(self.cfg.out) / CHECKPOINT
        if not path.is_file():
            return 0
        state = torch.load(path, weights_only=False)
        theirs, ours = json.loads(state["config"]), json.loads(_resumable(self.cfg))
        theirs = {ALIASES.get(k.replace("-", "_"), k.replace("-", "_")).replace("_", "-"): v  # older spellings
                  for k, v in theirs.items() if _owner(k) != "execution"}
        defaults = RunConfig().to_flat()
        # a setting the checkpoint predates matches when this run leaves it at its default
        diff = sorted(k for k in set(theirs) | set(ours)
                      if theirs.get(k) != ours.get(k) and not (k not in theirs and ours.get(k) == defaults.get(k)))
        if diff:
            raise ValueError(f"{path} belongs to a run with other settings ({', '.join(diff)}); "
                             "resume it with its own config.json")
        self.strategy.load_state_dict(state["strategy"])
        self.arrays = ArrayRecord({k: Array(v) for k, v in state["arrays"].items()})
        self.world.load_state_dict(state["world"])
        self._act_strategy_policies()
        self.recorder.rows, self.recorder.events = state["rows"], state["events"]
        torch.set_rng_state(state["torch_rng"])
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


def run_federation(grid: Grid, cfg: RunConfig) -> dict:
    """Discover the agents, then run ``cfg.rounds`` rounds; returns the run's summary."""
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    # the rollout's small matrix products gain nothing from threads, and the agents'
    # processes need the cores
    torch.set_num_threads(cfg.execution.torch_threads)
    federation = Federation(cfg)
    build_s = time.perf_counter() - start
    if hasattr(grid, "pull_interval"):  # simulation's in-memory grid polls for replies (default every 0.1 s)
        grid.pull_interval = 0.01
    nodes = discover_agents(grid, cfg.agents, cfg.execution.node_timeout)
    federation.bind(nodes)
    federation.strategy.summary()
    startup_s = time.perf_counter() - start

    def exchange(messages: list[Message]) -> Iterable[Message]:
        return grid.send_and_receive(messages, timeout=cfg.execution.reply_timeout)

    done = federation.restore() if cfg.execution.resume else 0
    if done:
        log.warning("resuming %s after round %d of %d", cfg.out, done, cfg.rounds)
    bar = _progress(cfg, done)

    def after_round(rnd: int, row: dict) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix(collective=f"{row['collective_return']:.1f}", cv=f"{row['cv']:.2f}")
        if row["failed_agents"] > 0 and rnd < cfg.rounds:  # a restarted node comes back under a new id
            federation.rejoin(rnd + 1, *rediscover(grid, {a: n for n, a in federation.node_agent.items()}, cfg.agents))

    try:
        return federation.run(exchange, done, start, {"startup_s": startup_s, "build_s": build_s},
                              after_round=after_round)
    finally:
        if bar is not None:
            bar.close()


CHECKPOINT = "checkpoint.pt"
POLICIES = "policies.pt"


def save_policies(federation: Federation, cfg: RunConfig) -> None:
    """OUT/policies.pt: the agents' final acting policies as a joint policy
    (clients/joint_policy.py), when they share one learner."""
    records, world = federation.world.acting_records(), federation.world
    if records is None or len(set(federation.assignment)) != 1:
        return
    joint_policy.save(Path(cfg.out) / POLICIES, cfg.env, federation.assignment[0], world.num_actions,
                      world.game.observation_space, cfg.net, records)


def _resumable(cfg: RunConfig) -> str:
    """The settings a checkpoint must share with the run that resumes it: all but the
    number of rounds (a run may be extended) and how it executes."""
    flat = {k: v for k, v in cfg.to_flat().items() if k != "rounds" and owner(k) != "execution"}
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
    for note in notes:
        log.warning(note)
    return notes


def deliver(rnd: int, replies: list, world: World, strategy, node_agent: dict[int, int], recorder: RunRecorder,
            timeout: float, sent: dict[str, int] | None = None) -> list[dict]:
    """Hand each agent's acting weights to the world (removing them from the reply the
    strategy will see) and its join decision to the participation set; record agents
    that failed or stayed silent as events. Returns the agents' training metrics.

    ``sent`` maps the ids of the messages sent to their agents: an error the SuperLink
    writes for an unreachable node comes from the SuperLink, not from the agent's node."""
    stats, answered, choices = [], set(), {}
    for reply in replies:
        agent = sent.get(reply.metadata.reply_to_message_id) if sent else None
        if agent is None:
            agent = node_agent[reply.metadata.src_node_id]
        answered.add(agent)
        if reply.has_error():
            recorder.event(rnd, "agent_error", f"agent {agent}: {reply.error.reason}")
            continue
        spec = ActingSpec.from_dict(reply.content.pop(protocol.ACTING_SPEC))
        world.set_acting(agent, reply.content.pop(protocol.ACTING), spec)
        metrics = dict(reply.content[protocol.METRICS])
        if "join-next" in metrics:
            choices[agent] = bool(metrics["join-next"])
        if metrics.get("fresh-start", 0.0) > 0:
            recorder.event(rnd, "agent_fresh_start", f"agent {agent} found no stored learner state and started over")
        stats.append(metrics)
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
            "agent_steps": rollout.agent_steps, "failed_agents": num_agents - len(client_stats)}
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


def make_server_app(cfg: RunConfig, outcome: RunOutcome | None = None) -> ServerApp:
    """A ServerApp bound to an already validated configuration (for run_simulation)."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        try:
            summary = run_federation(grid, cfg)
            if outcome is not None:
                outcome.summary = summary
        except BaseException as err:  # handed to the caller, which exits non-zero
            if outcome is None:
                raise
            outcome.error = err

    return server


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Entry point for ``flwr run``: the same loop, configured from the run config (every
    key is there, from pyproject.toml; those that differ from the defaults count as set)."""
    cfg = RunConfig.from_mapping(dict(context.run_config))
    defaults = RunConfig().to_flat()
    check_applies([k for k, v in cfg.to_flat().items() if v != defaults[k]], [cfg])
    run_federation(grid, cfg)
