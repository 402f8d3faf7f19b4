"""The run configuration: one schema for ``run_sim.py`` and ``flwr run``, validated once.

Settings are grouped by concern; each group is a :class:`clients.settings.Settings`
dataclass of the module that owns the concept (``PPOConfig`` in clients/ppo.py,
``FPFConfig`` in strategies/fpf.py, ...), whose fields carry their help sentence and valid
range. On the command line and in ``[tool.flwr.app.config]`` every field is one flat
kebab-case flag, the group's prefix and the field's name (``DQNConfig.lr`` -> ``--dqn-lr``),
unique across groups; ``--help`` lists one section per group. Each strategy declares the
groups it reads (``FederationStrategy.reads``); a flag outside them, and outside the
learners' groups, is refused (:func:`check_applies`). Old flag spellings are kept as
deprecated aliases (:data:`ALIASES`). The server is the single source of truth: it
validates the configuration and sends each client what it needs inside the messages.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from clients.attacks import AttackConfig
from clients.dqn import DQNConfig
from clients.networks import NetworkConfig
from clients.ppo import PPOConfig
from clients.qtable import QTableConfig
from clients.ddpg import DDPGConfig
from clients.settings import ConfigError, Settings, check_value, flag_of, setting
from strategies.fpf import FPFConfig
from strategies.leaders import LeaderConfig
from strategies.lmf import LMFConfig
from strategies.md import MDConfig
from strategies.participation import JoiningConfig
from strategies.policy_mediator import DelegationConfig
from strategies.reward_sharing import IAConfig
from strategies.robust import RobustConfig, minimum_uploads

__all__ = ["ConfigError", "RunConfig", "GROUPS", "ALIASES", "check_applies", "parse_game_options"]


@dataclass
class WorldConfig(Settings):
    """The world: B parallel games, each played for `steps` steps per round (0: one episode)."""

    title: ClassVar[str] = "World"

    batch: int = setting(16, "parallel copies B of the game played each round", ge=1, le=65_536)
    steps: int = setting(0, "steps of each copy per round (0: one whole episode)", ge=0, le=10_000_000)
    observation: str = setting("", "the game's observation mode (job: vector, discrete, image); empty: the game's "
                                   "default")
    game_options: str = setting("", "more keywords for the game's constructor, key=value,key=value (e.g. "
                                    "episode_length=100, or for cleanup map=lio-7)")
    learners: str = setting("", "PettingZoo games (--env module.path:factory): the env's agents that learn, "
                                "comma-separated, e.g. pursuer_0,pursuer_1 (empty: every agent); the others act "
                                "uniformly at random, drawn from the game's seeded generator")
    eval_every: int = setting(5, "play the strategy's own policies (FPF's ω, ω̄) every k rounds on games not used "
                                 "for training (0: never)", ge=0, le=10_000_000)
    eval_batch: int = setting(16, "parallel games of each such evaluation", ge=1, le=65_536)


@dataclass
class ExecutionConfig(Settings):
    """How the run executes (not what it computes)."""

    title: ClassVar[str] = "Execution"

    client_cpus: float = setting(1.0, "CPUs each simulated agent reserves (Ray resources); at most this machine's",
                                 gt=0.0, le=float(os.cpu_count() or 1))
    torch_threads: int = setting(1, "torch threads of the server and of each agent", ge=1, le=1024)
    device: str = setting("cpu", "where the agents' networks train: cpu, cuda, or auto (cuda when torch sees a GPU); "
                                 "replay buffers stay on the host; in a simulation agents then share the GPUs "
                                 "(Ray's num-gpus per agent)", choices=("auto", "cpu", "cuda"))
    stacked: str = setting("off", "in-process runs: agents with the same learner, settings and network train in "
                                  "one stacked pass (auto: faster for MLP networks, slower for the CNN on a CPU: "
                                  "benchmarks/bench_stacked.py; each update equals the one-by-one update within "
                                  "1e-5, clients/stacking.py, so a long run drifts from it) or one after another "
                                  "(off: bit-identical to Flower's runner and to runs made before)",
                           choices=("auto", "off"))
    agents_per_node: int = setting(1, "agents each simulated Flower node hosts: a node receives its agents' "
                                      "experience in one message and trains them stacked (clients/stacking.py; "
                                      "each update equals the one-by-one update within 1e-5); 1: one node per "
                                      "agent; K at least --agents puts every agent on one node. A deployment "
                                      "names each SuperNode's agents itself (--node-config agent-ids=\"0-4\")",
                                   ge=1, le=10_000_000)
    node_timeout: float = setting(300.0, "seconds to wait for the agents' nodes to connect", gt=0.0, le=1e7)
    reply_timeout: float = setting(1800.0, "seconds to wait for the agents' replies in a round", gt=0.0, le=1e7)
    progress: bool = setting(True, "show a progress bar")
    storage_dir: str = setting("", "where agents keep their learner state between rounds (empty: OUT/agents); a "
                                   "SuperNode's own --node-config storage-dir takes precedence")
    resume: bool = setting(False, "continue the run in OUT from its last checkpoint (run_sim.py --resume OUT)")
    overwrite: bool = setting(False, "start afresh in an OUT that holds a run, removing that run's files "
                                     "(without it, or --resume, such an OUT is refused)")
    max_missed_rounds: int = setting(1, "rounds an agent may miss (its worker or node failed, or it stayed silent) "
                                        "before the run, which goes on, ends with an error naming it; the default "
                                        "forgives one missed round, so a lost agent must be back at the next one",
                                     ge=0, le=10_000_000)
    tensorboard: bool = setting(False, "also write every round's metrics as TensorBoard scalars to OUT/tensorboard "
                                       "(watch with: tensorboard --logdir OUT; needs the tensorboard package)")

    def check(self) -> None:
        import importlib.util

        if self.device == "cuda" and not _cuda():
            raise ConfigError("--device cuda: torch sees no GPU here (use --device cpu, or auto)")
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise ConfigError("--tensorboard needs the tensorboard package: pip install tensorboard "
                              "(or pip install -e \".[tensorboard]\")")


#: group attribute -> dataclass, in the order ``--help`` lists them
GROUPS: dict[str, type[Settings]] = {
    "world": WorldConfig, "joining": JoiningConfig, "net": NetworkConfig, "ppo": PPOConfig, "dqn": DQNConfig,
    "qtable": QTableConfig, "ddpg": DDPGConfig, "fpf": FPFConfig, "lmf": LMFConfig, "ia": IAConfig, "delegation": DelegationConfig,
    "md": MDConfig, "leaders": LeaderConfig, "attack": AttackConfig, "robust": RobustConfig,
    "execution": ExecutionConfig,
}
#: groups every run reads, whatever its strategy and learners
UNIVERSAL = ("world", "joining", "execution")
#: the groups each learner reads
LEARNER_GROUPS = {"ppo": ("ppo", "net"), "dqn": ("dqn", "net"), "q-table": ("qtable",), "ddpg": ("ddpg", "net")}
#: the groups a learner from outside the package reads (its networks' size)
PLUGIN_LEARNER_GROUPS = ("net",)


def _strategy_choices() -> list[str]:
    import strategies

    return strategies.available()


def _env_choices() -> list[str]:
    import envs

    return envs.available()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_device(device: str) -> str:
    """``--device`` as torch names it: ``auto`` is ``cuda`` when torch sees a GPU, else ``cpu``."""
    return ("cuda" if _cuda() else "cpu") if device == "auto" else device


def client_gpus(device: str, agents: int) -> float:
    """The share of a GPU each simulated agent reserves (Ray's ``num_gpus``): 0 on the CPU,
    else the machine's GPUs spread over the agents (at most one each)."""
    if resolve_device(device) != "cuda":
        return 0.0
    import torch

    return min(1.0, torch.cuda.device_count() / max(1, agents))


#: Settings added after runs were written whose absence from an older config.json meant
#: another value than today's default: (flat key, when it applies, the value it meant).
#: The resource grid had no mediator state before --mediator-state existed: its JAM-QL
#: mediator and vote learners saw one state.
LEGACY: tuple[tuple[str, Callable[[dict[str, Any]], bool], Any], ...] = (
    ("mediator_state", lambda flat: flat.get("env") == "resource-grid", "none"),
    # agents trained one after another, as before stacked training existed
    ("stacked", lambda flat: True, "off"),
)


@dataclass
class RunConfig:
    """What to run; the groups hold everything else (see GROUPS)."""

    title: ClassVar[str] = "Run"

    env: str = setting("matthew", "the game to play: a name, or a PettingZoo ParallelEnv factory module.path:name "
                                  "(e.g. pettingzoo.sisl.pursuit_v5:parallel_env; docs/EXTENDING.md)",
                       choices=_env_choices, import_path=True)
    strategy: str = setting("fpf", "the federation strategy: a name, or a FederationStrategy subclass "
                                   "module.path:Class", choices=_strategy_choices, import_path=True)
    learner: str = setting("ppo", "every agent's learner (ppo, dqn, q-table, ddpg for continuous games, or a Learner subclass "
                                  "module.path:Class), or per agent, e.g. ppo:0-4,dqn:5-9")
    agents: int = setting(10, "the number of agents N", ge=1, le=100_000)
    rounds: int = setting(80, "the number of federation rounds to run", ge=1, le=10_000_000)
    seed: int = setting(0, "random seed; the same seed gives the same metrics", ge=0, le=2**31 - 1)
    out: str = setting("runs/latest", "the directory the run writes its results to")
    world: WorldConfig = field(default_factory=WorldConfig)
    joining: JoiningConfig = field(default_factory=JoiningConfig)
    net: NetworkConfig = field(default_factory=NetworkConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    dqn: DQNConfig = field(default_factory=DQNConfig)
    qtable: QTableConfig = field(default_factory=QTableConfig)
    ddpg: DDPGConfig = field(default_factory=DDPGConfig)
    fpf: FPFConfig = field(default_factory=FPFConfig)
    lmf: LMFConfig = field(default_factory=LMFConfig)
    ia: IAConfig = field(default_factory=IAConfig)
    delegation: DelegationConfig = field(default_factory=DelegationConfig)
    md: MDConfig = field(default_factory=MDConfig)
    leaders: LeaderConfig = field(default_factory=LeaderConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    robust: RobustConfig = field(default_factory=RobustConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)

    # ------------------------------------------------------------------ flat keys
    @staticmethod
    def keys() -> dict[str, tuple[str | None, dataclasses.Field]]:
        """Every flat key (the flag in snake_case) -> (group attribute or None for the run
        fields, field)."""
        return dict(_KEYS)

    @classmethod
    def of(cls, **values: Any) -> "RunConfig":
        """Build from flat keyword arguments (``RunConfig.of(agents=3, lambda_u=0.5)``), validated."""
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> "RunConfig":
        """Build from a dict with snake- or kebab-case flat keys (e.g. ``context.run_config``)."""
        return cls()._with(values).validated()

    def _with(self, values: dict[str, Any]) -> "RunConfig":
        top: dict[str, Any] = {}
        groups: dict[str, dict[str, Any]] = {}
        for key, value in canonical(values).items():
            group, f = _KEYS[key]
            value = _coerce(key, value, f.type)
            (top if group is None else groups.setdefault(group, {}))[f.name] = value
        changed = {g: dataclasses.replace(getattr(self, g), **v) for g, v in groups.items()}
        return dataclasses.replace(self, **top, **changed)

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with some flat keys changed, validated."""
        return self._with(changes).validated()

    def get(self, name: str) -> Any:
        """The value of a flat key."""
        key = canonical({name: None}).popitem()[0]
        group, f = _KEYS[key]
        return getattr(self if group is None else getattr(self, group), f.name)

    def to_flat(self) -> dict[str, Any]:
        """Kebab-case dict, as in ``[tool.flwr.app.config]``."""
        return {k.replace("_", "-"): self.get(k) for k in _KEYS}

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        """Read a run's config.json (grouped as ``to_json`` writes it, or as older versions
        did; other keys, such as ``notes``, are ignored)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"config.json is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config.json must hold a JSON object, got {type(data).__name__}")
        flat = {k: v for k, v in data.items() if k in _KEYS and _KEYS[k][0] is None}
        for group, cls_ in GROUPS.items():
            values = data.get(group, {})
            if not isinstance(values, dict):
                raise ConfigError(f"config.json: '{group}' must be a JSON object")
            by_field = {f.name: f for f in fields(cls_)}
            for name, value in values.items():  # a field's name, or an older flat key
                flat[flag_of(cls_, by_field[name]).replace("-", "_") if name in by_field else name] = value
        for key, applies, value in LEGACY:
            if key not in flat and applies(flat):
                flat[key] = value
        return cls.from_mapping(flat)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    # ------------------------------------------------------------------ derived
    def learners(self) -> list[str]:
        """Each agent's learner."""
        from clients.learners import parse_assignment

        return parse_assignment(self.learner, self.agents)

    def reads(self) -> tuple[str, ...]:
        """The groups this run reads: every run's, its learners' and its strategy's."""
        import strategies

        from clients import protocol

        strategy = strategies.strategy_class(self.strategy)
        learner_groups = [g for name in dict.fromkeys(self.learners()) for g in LEARNER_GROUPS.get(name, PLUGIN_LEARNER_GROUPS)]
        uploads = protocol.UPLOAD_GROUPS if strategy.share != protocol.SHARE_NONE else ()
        return tuple(dict.fromkeys((*UNIVERSAL, *learner_groups, *strategy.reads, *uploads)))

    def storage_dir(self) -> str:
        return self.execution.storage_dir or str(Path(self.out) / "agents")

    @property
    def label(self) -> str:
        """Name of the method in tables and plots: the strategy, with LMF's graph and mode."""
        import strategies

        name = self.strategy
        if "lmf" in strategies.strategy_class(self.strategy).reads:
            graph = "file" if self.lmf.graph_file else self.lmf.graph
            name = f"lmf-{graph}" + ("" if self.lmf.mode == "parameters" else f"-{self.lmf.mode}")
        if ":" in name:  # a strategy by import path: its own name
            name = strategies.strategy_class(name).name
        learner = self.learner
        if ":" in learner and len(set(self.learners())) == 1:  # a learner by import path: its own name
            from clients.learners import learner_class

            learner = learner_class(self.learners()[0]).name
        return name if learner == "ppo" else f"{name}-{learner}"

    def participation_note(self) -> str | None:
        """Why ``participation`` does not apply to this run's strategy, or None."""
        import strategies

        return strategies.strategy_class(self.strategy).overrides_participation()

    # ------------------------------------------------------------------ validation
    def validated(self) -> "RunConfig":
        """Check every value; raise ConfigError naming the flag and the valid range or choices."""
        import strategies
        from strategies.participation import Participation

        for f in fields(self):
            if f.name in GROUPS:
                getattr(self, f.name).validate()
            else:
                check_value(f.name, getattr(self, f.name), f)
        try:  # a strategy or learner from outside the package is imported and checked here
            chosen = strategies.strategy_class(self.strategy)
            self.learners()
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if unknown := sorted(set(chosen.reads) - set(GROUPS)):
            raise ConfigError(f"strategy {self.strategy} reads configuration groups that do not exist: "
                              f"{', '.join(unknown)}; the groups: {', '.join(GROUPS)}")
        _check_graph(self)
        _check_attack_and_defence(self)
        game = _game(self)
        _check_actions_fit(self.learners(), game)
        try:
            Participation.parse(self.joining.participation, self.joining.draw, self.agents)
            learners = self.learners()
            strategy = strategies.strategy_class(self.strategy)
            strategy.check_learners(learners)
            strategy.check_game(game)
            strategy.check_config(self, game)
            if game.continuous and strategy.mediator_class is not None:
                raise ConfigError(f"{self.strategy}'s mediator chooses or values discrete actions; {game.name} is "
                                  "played with continuous ones")
        except ConfigError:
            raise
        except ValueError as err:
            raise ConfigError(str(err)) from None
        _check_learners_fit(learners, game)
        if not self.out.strip():
            raise ConfigError("out must name a directory, got an empty path (use --out . for this directory)")
        check_writable(self.out, "out")
        if self.execution.storage_dir:
            check_writable(self.execution.storage_dir, "storage-dir")
        return self

    def game_options(self) -> dict[str, Any]:
        """Keyword arguments for the game's constructor from the configuration."""
        options = parse_game_options(self.world.game_options)
        if self.world.learners:
            options["learners"] = self.world.learners
        return {**options, "observation": self.world.observation} if self.world.observation else options


RESERVED_GAME_KEYS = ("num_agents", "batch_size", "seed", "observation", "learners")


def parse_game_options(text: str) -> dict[str, Any]:
    """``"map=lio-7,episode_length=50"`` -> ``{"map": "lio-7", "episode_length": 50}``.

    Values that read as integers, floats or ``true``/``false`` become those; the rest stay
    strings. Keys the run sets itself (agents, batch, seed, observation) are refused.
    """
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key, value = key.strip().replace("-", "_"), value.strip()
        if not sep or not key.isidentifier() or not value:
            raise ConfigError(f"game-options must be key=value pairs separated by commas, got {item!r}")
        if key in RESERVED_GAME_KEYS:
            raise ConfigError(f"game-options cannot set {key!r}; it has its own flag")
        if key in options:
            raise ConfigError(f"game-options sets {key!r} twice")
        options[key] = _option_value(value)
    return options


def _option_value(value: str) -> Any:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _game(cfg: RunConfig):
    """A one-copy game of the run, built to check the game options against the game."""
    import envs

    options = cfg.game_options()
    try:
        if cfg.world.learners and not envs.takes_learners(cfg.env):
            raise ConfigError(f"--learners names the learning agents of a PettingZoo game given by its factory "
                              f"(--env module.path:factory); {cfg.env} is not one (use --agents)")
        if envs.builtin(cfg.env):
            return envs.make_batched(cfg.env, cfg.agents, batch_size=1, **options)
        game = envs.make_batched(cfg.env, cfg.agents, batch_size=1, **options)
        envs.trial(game)  # a game from outside the package shows its errors now
        return game
    except ConfigError:
        raise
    except TypeError as err:
        known = envs.options(cfg.env)
        unknown = sorted(set(options) - set(known) - {"observation"})
        if unknown:
            raise ConfigError(f"--game-options: {cfg.env} takes no option {', '.join(map(repr, unknown))}; it takes: "
                              f"{', '.join(known)}") from None
        raise ConfigError(f"--game-options {cfg.world.game_options!r} does not fit {cfg.env}: {err}") from None
    except ValueError as err:
        raise ConfigError(str(err)) from None
    except (KeyError, IndexError, AttributeError) as err:  # a game that did not check its options
        raise ConfigError(f"--game-options {cfg.world.game_options!r} does not fit {cfg.env} "
                          f"({type(err).__name__}: {err})") from None
    except Exception as err:  # a game from outside the package failed in its own code
        if envs.builtin(cfg.env):
            raise
        raise ConfigError(f"--env {cfg.env}: building the game failed: {type(err).__name__}: {err}") from None


def _check_attack_and_defence(cfg: RunConfig) -> None:
    from strategies.participation import Participation

    attack, robust = cfg.attack, cfg.robust
    try:
        attack.ids(cfg.agents)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    import strategies

    need = minimum_uploads(robust.rule, robust.f)
    if need > 1:
        try:
            p = Participation.parse(cfg.joining.participation, cfg.joining.draw, cfg.agents)
        except ValueError:
            return  # reported by the participation check
        uploads = strategies.strategy_class(cfg.strategy).uploads_per_round(p)
        if uploads is not None and uploads < need:
            raise ConfigError(f"robust {robust.rule} with robust-f {robust.f} needs at least {need} uploads "
                              f"per round; {cfg.strategy} gets at most {uploads}")


def _check_actions_fit(learners: list[str], game) -> None:
    """A continuous game needs learners of a continuous policy kind (ddpg), a discrete one the others."""
    from clients.learners import misfit

    if (name := misfit(learners, game.continuous)) is None:
        return
    if game.continuous:
        raise ConfigError(f"{game.name} is played with continuous actions; learner {name} chooses discrete "
                          "ones (use --learner ddpg, or drop continuous_actions from --game-options)")
    raise ConfigError(f"learner {name} plays continuous actions; {game.name} has discrete ones (the MPE "
                      "games take --game-options continuous_actions=true)")


def _check_learners_fit(learners: list[str], game) -> None:
    from gymnasium import spaces

    if "q-table" in learners and not isinstance(game.observation_space, spaces.Discrete):
        raise ConfigError(f"learner q-table needs discrete observations; {game.name} observes "
                          f"{game.observation_space}. Games with a discrete mode: job (--observation discrete), "
                          "matrix, normal-form, matching, restaurant")


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _check_graph(cfg: RunConfig) -> None:
    from strategies.graphs import load_schedule

    lmf = cfg.lmf
    if lmf.graph_file:
        if not Path(lmf.graph_file).is_file():
            raise ConfigError(f"graph-file '{lmf.graph_file}' does not exist")
        try:
            schedule = load_schedule(lmf.graph_file, seed=cfg.seed)
        except ValueError as err:  # includes GraphAssumptionError (Assumptions 4 and 5)
            raise ConfigError(f"graph-file '{lmf.graph_file}': {err}") from None
        if not set(schedule.nodes) <= set(range(cfg.agents)):
            raise ConfigError(f"graph-file '{lmf.graph_file}' names agents {schedule.nodes}; "
                              f"valid agent ids: 0..{cfg.agents - 1}")
        if cfg.strategy == "lmf":
            _check_schedule_covers(cfg, schedule)
    if cfg.strategy == "lmf" and not lmf.graph_file:
        for name, used_by in (("graph_k", "fixed"), ("group_size", "dynamic")):
            if lmf.graph == used_by and getattr(lmf, name) > cfg.agents:
                raise ConfigError(f"{_flag(name)} must be in [{1 if name == 'graph_k' else 2}, {cfg.agents}] "
                                  f"(the number of agents) for graph {used_by}, got {getattr(lmf, name)}")


def _check_schedule_covers(cfg: RunConfig, schedule) -> None:
    """Every agent that may join must be a vertex of the user schedule, and user weight
    matrices need the participation set to be exactly the schedule's agents."""
    from strategies.participation import Participation

    try:
        participation = Participation.parse(cfg.joining.participation, cfg.joining.draw, cfg.agents)
    except ValueError:
        return  # reported by the participation check
    fixed = participation.fixed_set(cfg.seed)
    may_join = set(range(cfg.agents)) if fixed is None else set(fixed)
    how = "can join" if fixed is None else "participate"
    missing = sorted(may_join - set(schedule.nodes))
    if missing:
        raise ConfigError(f"graph-file '{cfg.lmf.graph_file}' has no vertex for agents {missing}, which {how} "
                          f"(--participation {cfg.joining.participation}); its agents: {schedule.nodes}")
    if schedule.matrices is not None and (fixed is None or set(fixed) != set(schedule.nodes)):
        raise ConfigError(f"graph-file '{cfg.lmf.graph_file}' gives weight matrices for agents {schedule.nodes}, "
                          f"so the participation set must be exactly those agents every round; "
                          f"--participation {cfg.joining.participation} gives "
                          f"{'a set that changes' if fixed is None else sorted(fixed)}. "
                          "Leave out 'weights' to let Metropolis weights adapt")


def check_writable(out: str, flag: str) -> None:
    """The directory ``out`` can be created and written: checked before anything starts,
    in its nearest existing ancestor, leaving nothing behind."""
    probe = Path(out).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        os.rmdir(tempfile.mkdtemp(prefix=".write-test-", dir=probe))
    except OSError as err:
        raise ConfigError(f"{flag} '{out}' cannot be written: {err.strerror or err}") from None


#: the files by which a directory holds a run (``check_out``), and those ``--overwrite`` removes
RUN_MARKERS = ("config.json", "metrics.csv", "checkpoint.pt")
RUN_FILES = (*RUN_MARKERS, "summary.json", "curves.png", "policies.pt", "failure.json", "metrics.csv.tmp",
             "checkpoint.tmp", "agents", "tensorboard")


def holds_run(out: str | Path) -> list[str]:
    """The files by which ``out`` holds a run (empty: it holds none)."""
    return [name for name in RUN_MARKERS if (Path(out) / name).exists()]


def check_out(cfg: "RunConfig") -> None:
    """Refuse to start a run in a directory that holds one, unless it is resumed or
    overwritten: a second run would silently mix with or replace the first."""
    found = holds_run(cfg.out)
    if found and not cfg.execution.resume and not cfg.execution.overwrite:
        raise ConfigError(f"out '{cfg.out}' already holds a run ({', '.join(found)}); continue it with "
                          f"--resume {cfg.out}, or start afresh there with --overwrite (which removes its results)")


def clear_run(out: str | Path) -> None:
    """Remove the files of the run in ``out`` (``RUN_FILES``) and nothing else."""
    import shutil

    for name in RUN_FILES:
        path = Path(out) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """``value`` as the field's type (strings from ``--run-config`` or JSON), or ConfigError."""
    type_name = annotation if isinstance(annotation, str) else annotation.__name__
    kind = {"int": int, "float": float, "str": str, "bool": bool}[type_name]
    if kind is bool and isinstance(value, str):
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise ConfigError(f"{_flag(name)} must be true or false, got {value!r}")
    if kind is int and isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ConfigError(f"{_flag(name)} must be an integer, got {value}")
    if kind in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{_flag(name)} must be a number, got {value!r}")
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{_flag(name)} must be text, got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{_flag(name)} must be of type {kind.__name__}, got {value!r}") from None


# ---------------------------------------------------------------------- flags
def _build_keys() -> dict[str, tuple[str | None, dataclasses.Field]]:
    keys: dict[str, tuple[str | None, dataclasses.Field]] = {}
    for f in fields(RunConfig):
        if f.name in GROUPS:
            for g in fields(GROUPS[f.name]):
                key = flag_of(GROUPS[f.name], g).replace("-", "_")
                assert key not in keys, f"flag {key} defined twice"
                keys[key] = (f.name, g)
        else:
            keys[f.name] = (None, f)
    return keys


_KEYS = _build_keys()

#: old flag spellings (snake_case) -> today's, accepted with a deprecation warning
ALIASES: dict[str, str] = {alias.replace("-", "_"): key for key, (_, f) in _KEYS.items()
                           for alias in f.metadata.get("aliases", ()) if alias.replace("-", "_") != key}


def canonical(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with snake_case keys, old spellings replaced (with a DeprecationWarning),
    unknown keys refused."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name in ALIASES:
            warnings.warn(f"--{_flag(name)} is deprecated; use --{_flag(ALIASES[name])}", DeprecationWarning,
                          stacklevel=3)
            name = ALIASES[name]
        if name not in _KEYS:
            raise ConfigError(f"unknown config key '{key}'; valid keys: "
                              f"{', '.join(sorted(k.replace('_', '-') for k in _KEYS))}")
        if name in out:
            raise ConfigError(f"--{_flag(name)} is given twice (once under an old spelling)")
        out[name] = value
    return out


def owner(key: str) -> str:
    """The group attribute that holds the flat key (``'run'`` for the run fields)."""
    return _KEYS[canonical({key: None}).popitem()[0]][0] or "run"


def check_applies(explicit: Iterable[str], runs: Iterable[RunConfig]) -> None:
    """Refuse a flag that none of ``runs`` reads: the user asked for something that would
    be silently ignored. ``explicit``: the flat keys the user set."""
    runs = list(runs)
    read = {"run"} | {g for cfg in runs for g in cfg.reads()}
    for key in explicit:
        group = owner(key)
        if group in read:
            continue
        name = canonical({key: None}).popitem()[0]
        chosen = sorted({cfg.strategy for cfg in runs})
        learners = sorted({n for cfg in runs for n in cfg.learners()})
        readers = _readers(group)
        raise ConfigError(f"--{_flag(name)} ({GROUPS[group].title}) does not apply: strategy "
                          f"{', '.join(chosen)} with learner {', '.join(learners)} reads only "
                          f"{', '.join(sorted(read - {'run'}))}" + (f"; it is read by {readers}" if readers else ""))


def _readers(group: str) -> str:
    import strategies

    from clients import protocol

    learners = [name for name, groups in LEARNER_GROUPS.items() if group in groups]
    if learners:
        return "learner " + ", ".join(learners)
    names = [n for n in strategies.available() if group in strategies.strategy_class(n).reads
             or (group in protocol.UPLOAD_GROUPS and strategies.strategy_class(n).share != protocol.SHARE_NONE)]
    return "strategy " + ", ".join(names) if names else ""
