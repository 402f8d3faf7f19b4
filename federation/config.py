"""The run configuration: one schema for ``run_sim.py`` and ``flwr run``, validated once.

Settings are grouped by concern; each group is the dataclass of the module that owns the
concept (``PPOConfig`` in clients/ppo.py, ``FPFConfig`` in strategies/fpf.py, ...), so
every hyperparameter has one definition. On the command line and in
``[tool.flwr.app.config]`` every field is one flat kebab-case key (``lambda_u`` ->
``--lambda-u``), unique across groups. The server is the single source of truth: it
validates the configuration and sends each client what it needs inside the messages.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from clients.dqn import DQNConfig
from clients.networks import NetworkConfig
from clients.ppo import PPOConfig
from clients.qtable import QTableConfig
from clients.anchors import Anchors
from clients.attacks import ATTACKS, AttackConfig
from clients.protocol import LMF_MODES
from strategies.federated_policy import EGALITARIAN, OBJECTIVES
from strategies.fpf import PULLS, FPFConfig
from strategies.leaders import LeaderConfig
from strategies.lmf import LMFConfig
from strategies.md import MDConfig
from strategies.participation import JoiningConfig
from strategies.policy_mediator import SCOPES, DelegationConfig
from strategies.reward_sharing import IAConfig
from strategies.robust import RULES, RobustConfig, minimum_uploads


class ConfigError(ValueError):
    """A configuration value is invalid; the message names it and the valid choices."""


@dataclass
class WorldConfig:
    """The world: B parallel games, each played for `steps` steps per round (0: one episode)."""

    batch: int = 16
    steps: int = 0
    # the game's observation mode (e.g. job: vector, discrete, image); "" = the game's default
    observation: str = ""
    # more keywords for the game's constructor, "key=value,key=value"
    # (e.g. cleanup: "map=lio-7,episode_length=50"; every game: episode_length)
    game_options: str = ""
    # evaluate the strategy's own policies (FPF's ω, ω̄) every k rounds on `eval_batch`
    # games not used for training (0: never)
    eval_every: int = 5
    eval_batch: int = 16


@dataclass
class ExecutionConfig:
    """How the run executes (not what it computes)."""

    client_cpus: float = 1.0
    torch_threads: int = 1
    node_timeout: float = 300.0
    reply_timeout: float = 1800.0
    progress: bool = True
    # where agents keep their learner state ("" = OUT/agents); a SuperNode's own
    # --node-config "storage-dir=..." takes precedence
    storage_dir: str = ""
    # continue the run in OUT from its last checkpoint (run_sim.py --resume OUT)
    resume: bool = False


# group attribute -> dataclass, in the order flags are listed
GROUPS: dict[str, type] = {
    "joining": JoiningConfig, "world": WorldConfig, "fpf": FPFConfig, "lmf": LMFConfig, "ia": IAConfig,
    "net": NetworkConfig, "ppo": PPOConfig, "dqn": DQNConfig, "qtable": QTableConfig, "attack": AttackConfig,
    "robust": RobustConfig, "delegation": DelegationConfig, "md": MDConfig, "leaders": LeaderConfig,
    "execution": ExecutionConfig,
}


@dataclass
class RunConfig:
    # What to run
    env: str = "matthew"
    strategy: str = "fpf"
    # every agent's learner (ppo, dqn, q-table), or per agent: "ppo:0-4,dqn:5-9"
    learner: str = "ppo"
    agents: int = 10
    rounds: int = 80
    seed: int = 0
    out: str = "runs/latest"
    # Groups (see GROUPS)
    joining: JoiningConfig = field(default_factory=JoiningConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    fpf: FPFConfig = field(default_factory=FPFConfig)
    lmf: LMFConfig = field(default_factory=LMFConfig)
    ia: IAConfig = field(default_factory=IAConfig)
    net: NetworkConfig = field(default_factory=NetworkConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    dqn: DQNConfig = field(default_factory=DQNConfig)
    qtable: QTableConfig = field(default_factory=QTableConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    robust: RobustConfig = field(default_factory=RobustConfig)
    delegation: DelegationConfig = field(default_factory=DelegationConfig)
    md: MDConfig = field(default_factory=MDConfig)
    leaders: LeaderConfig = field(default_factory=LeaderConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)

    # ------------------------------------------------------------------ flat keys
    @staticmethod
    def keys() -> dict[str, tuple[str | None, dataclasses.Field]]:
        """Every flat key (snake_case) -> (group attribute or None for top level, field)."""
        out: dict[str, tuple[str | None, dataclasses.Field]] = {}
        for f in fields(RunConfig):
            if f.name in GROUPS:
                for g in fields(GROUPS[f.name]):
                    out[g.name] = (f.name, g)
            else:
                out[f.name] = (None, f)
        return out

    @classmethod
    def of(cls, **values: Any) -> "RunConfig":
        """Build from flat keyword arguments (``RunConfig.of(agents=3, lambda_u=0.5)``), validated."""
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> "RunConfig":
        """Build from a dict with snake- or kebab-case flat keys (e.g. ``context.run_config``)."""
        return cls()._with(values).validated()

    def _with(self, values: dict[str, Any]) -> "RunConfig":
        known = self.keys()
        top: dict[str, Any] = {}
        groups: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ConfigError(f"unknown config key '{key}'; valid keys: "
                                  f"{', '.join(sorted(k.replace('_', '-') for k in known))}")
            group, f = known[name]
            value = _coerce(name, value, f.type)
            (top if group is None else groups.setdefault(group, {}))[name] = value
        changed = {g: dataclasses.replace(getattr(self, g), **v) for g, v in groups.items()}
        return dataclasses.replace(self, **top, **changed)

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with some flat keys changed, validated."""
        return self._with(changes).validated()

    def get(self, name: str) -> Any:
        """The value of a flat key."""
        group, _ = self.keys()[name.replace("-", "_")]
        return getattr(self if group is None else getattr(self, group), name.replace("-", "_"))

    def to_flat(self) -> dict[str, Any]:
        """Kebab-case dict, as in ``[tool.flwr.app.config]``."""
        return {k.replace("_", "-"): self.get(k) for k in self.keys()}

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        """Read a run's config.json (grouped as ``to_json`` writes it; other keys, such as
        ``notes``, are ignored)."""
        data = json.loads(text)
        flat = {k: v for k, v in data.items() if k in cls.keys() and not isinstance(v, dict)}
        for group in GROUPS:
            flat |= data.get(group, {})
        return cls.from_mapping(flat)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    # ------------------------------------------------------------------ derived
    def learners(self) -> list[str]:
        """Each agent's learner."""
        from clients.learners import parse_assignment

        return parse_assignment(self.learner, self.agents)

    def storage_dir(self) -> str:
        return self.execution.storage_dir or str(Path(self.out) / "agents")

    @property
    def label(self) -> str:
        """Name of the method in tables and plots: the strategy, with LMF's graph and mode."""
        name = self.strategy
        if self.strategy == "lmf":
            graph = "file" if self.lmf.graph_file else self.lmf.graph
            name = f"lmf-{graph}" + ("" if self.lmf.lmf_mode == "parameters" else f"-{self.lmf.lmf_mode}")
        return name if self.learner == "ppo" else f"{name}-{self.learner}"

    def participation_note(self) -> str | None:
        """Why ``participation`` does not apply to this run's strategy, or None."""
        import strategies

        return strategies.strategy_class(self.strategy).overrides_participation()

    # ------------------------------------------------------------------ validation
    def validated(self) -> "RunConfig":
        """Check every value; raise ConfigError naming the problem and the valid choices."""
        import envs
        import strategies
        from strategies.participation import Participation

        if self.env not in envs.available():
            raise ConfigError(f"unknown env '{self.env}'; valid choices: {', '.join(envs.available())}")
        if self.strategy not in strategies.available():
            raise ConfigError(f"unknown strategy '{self.strategy}'; valid choices: {', '.join(strategies.available())}")
        for name, value in _numbers(self):
            if not math.isfinite(value):
                raise ConfigError(f"{_flag(name)} must be a finite number, got {value}")
        for name in ("agents", "rounds", "batch", "epochs", "minibatch", "hidden", "layers", "channels",
                     "fed_updates", "fed_batch", "torch_threads", "dqn_buffer", "dqn_batch", "dqn_updates"):
            if self.get(name) < 1:
                raise ConfigError(f"{_flag(name)} must be >= 1, got {self.get(name)}")
        if self.world.eval_every < 0 or self.world.eval_batch < 1:
            raise ConfigError(f"eval-every must be >= 0 and eval-batch >= 1, got {self.world.eval_every} and "
                              f"{self.world.eval_batch}")
        if self.world.steps < 0:
            raise ConfigError(f"steps must be >= 0 (0 = one whole episode), got {self.world.steps}")
        for name in ("lambda_u", "lambda_e", "lambda_h", "fed_alpha", "ent_coef", "ia_envy", "ia_guilt",
                     "dqn_eps_decay", "fed_conservative"):
            if self.get(name) < 0:
                raise ConfigError(f"{_flag(name)} must be >= 0, got {self.get(name)}")
        for name in ("fed_lr", "fed_critic_lr", "lr_actor", "lr_critic", "client_cpus", "node_timeout",
                     "reply_timeout", "dqn_lr", "q_lr", "dqn_max_grad_norm"):
            if self.get(name) <= 0:
                raise ConfigError(f"{_flag(name)} must be > 0, got {self.get(name)}")
        if not 0 < self.fpf.eta <= 2:
            raise ConfigError(f"eta must be in (0, 2] (1 = plain averaging, > 1 extrapolates), got {self.fpf.eta}")
        for name in ("gamma", "gae_lambda", "clip", "vol_epsilon", "vol_memory", "dqn_gamma", "dqn_tau",
                     "dqn_eps_start", "dqn_eps_end", "q_gamma", "q_epsilon"):
            if not 0 <= self.get(name) <= 1:
                raise ConfigError(f"{_flag(name)} must be in [0, 1], got {self.get(name)}")
        if self.fpf.anchor_step not in Anchors.STEPS:
            raise ConfigError(f"unknown anchor-step '{self.fpf.anchor_step}'; valid choices: {', '.join(Anchors.STEPS)}")
        if self.fpf.egalitarian not in EGALITARIAN:
            raise ConfigError(f"unknown egalitarian '{self.fpf.egalitarian}'; valid choices: {', '.join(EGALITARIAN)}")
        if self.fpf.fed_objective not in OBJECTIVES:
            raise ConfigError(f"unknown fed-objective '{self.fpf.fed_objective}'; valid choices: {', '.join(OBJECTIVES)}")
        if self.fpf.pull not in PULLS:
            raise ConfigError(f"unknown pull '{self.fpf.pull}'; valid choices: {', '.join(PULLS)}")
        if self.fpf.anchor_step == "round" and self.fpf.fed_alpha * (self.fpf.lambda_u + self.fpf.lambda_e) > 1:
            raise ConfigError(f"the per-round pull fed-alpha·(lambda-u + lambda-e) = "
                              f"{self.fpf.fed_alpha * (self.fpf.lambda_u + self.fpf.lambda_e):g} must be <= 1 "
                              "(a larger step overshoots the anchors)")
        if self.delegation.delegate not in SCOPES:
            raise ConfigError(f"unknown delegate '{self.delegation.delegate}'; valid choices: {', '.join(SCOPES)}")
        if self.qtable.q_epsilon_schedule not in ("constant", "1/t"):
            raise ConfigError(f"unknown q-epsilon-schedule '{self.qtable.q_epsilon_schedule}'; "
                              "valid choices: constant, 1/t")
        try:
            self.md.check()
        except ValueError as err:
            raise ConfigError(str(err)) from None
        _check_graph(self)
        _check_attack_and_defence(self)
        try:
            game = envs.make_batched(self.env, self.agents, batch_size=1, **self.game_options())
        except ValueError as err:
            raise ConfigError(str(err)) from None
        except TypeError:  # a keyword the game's constructor does not take
            raise ConfigError(f"game-options {self.world.game_options!r} does not fit {self.env}; it takes: "
                              f"{', '.join(envs.options(self.env))}") from None
        try:
            Participation.parse(self.joining.participation, self.joining.draw, self.agents)
            learners = self.learners()
            strategies.strategy_class(self.strategy).check_learners(learners)
            strategies.strategy_class(self.strategy).check_game(game)
            strategies.strategy_class(self.strategy).check_config(self, game)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        _check_learners_fit(learners, game)
        check_writable(self.out, "out")
        if self.execution.storage_dir:
            check_writable(self.execution.storage_dir, "storage-dir")
        return self

    def game_options(self) -> dict[str, Any]:
        """Keyword arguments for the game's constructor from the configuration."""
        options = parse_game_options(self.world.game_options)
        return {**options, "observation": self.world.observation} if self.world.observation else options


RESERVED_GAME_KEYS = ("num_agents", "batch_size", "seed", "observation", "stackelberg")


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


def _check_attack_and_defence(cfg: RunConfig) -> None:
    from strategies.participation import Participation

    attack, robust = cfg.attack, cfg.robust
    if attack.attack not in ATTACKS:
        raise ConfigError(f"unknown attack '{attack.attack}'; valid choices: {', '.join(ATTACKS)}")
    try:
        attack.ids(cfg.agents)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if attack.attack_scale < 0:
        raise ConfigError(f"attack-scale must be >= 0, got {attack.attack_scale}")
    if robust.robust not in RULES:
        raise ConfigError(f"unknown robust rule '{robust.robust}'; valid choices: {', '.join(RULES)}")
    if robust.robust_f < 0:
        raise ConfigError(f"robust-f must be >= 0, got {robust.robust_f}")
    if not 0 <= robust.trim < 0.5:
        raise ConfigError(f"trim must be in [0, 0.5), got {robust.trim}")
    need = minimum_uploads(robust.robust, robust.robust_f)
    if need > 1 and cfg.strategy in ("fpf", "dnf", "fedavg"):
        try:
            p = Participation.parse(cfg.joining.participation, cfg.joining.draw, cfg.agents)
        except ValueError:
            return  # reported by the participation check
        uploads = cfg.agents if cfg.strategy != "fpf" or p.voluntary else p.size
        if uploads < need:
            raise ConfigError(f"robust {robust.robust} with robust-f {robust.robust_f} needs at least {need} uploads "
                              f"per round; {cfg.strategy} gets at most {uploads}")


def _check_learners_fit(learners: list[str], game) -> None:
    from gymnasium import spaces

    if "q-table" in learners and not isinstance(game.observation_space, spaces.Discrete):
        raise ConfigError(f"learner q-table needs discrete observations; {game.name} observes "
                          f"{game.observation_space}. Games with a discrete mode: job (--observation discrete), "
                          "matrix, normal-form, matching, restaurant")


def _numbers(cfg: RunConfig):
    for name in cfg.keys():
        value = cfg.get(name)
        if isinstance(value, float):
            yield name, value


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _check_graph(cfg: RunConfig) -> None:
    from strategies.graphs import SCHEDULES, load_schedule

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
    elif lmf.graph not in SCHEDULES:
        raise ConfigError(f"unknown graph '{lmf.graph}'; valid choices: {', '.join(sorted(SCHEDULES))}")
    if lmf.lmf_mode not in LMF_MODES:
        raise ConfigError(f"unknown lmf-mode '{lmf.lmf_mode}'; valid choices: {', '.join(LMF_MODES)}")
    for name in ("graph_k", "graph_b", "group_size"):
        if getattr(lmf, name) < 1:
            raise ConfigError(f"{_flag(name)} must be >= 1, got {getattr(lmf, name)}")
    if lmf.group_size < 2:
        raise ConfigError(f"group-size must be >= 2, got {lmf.group_size}")
    if cfg.strategy == "lmf" and not lmf.graph_file:
        for name, used_by in (("graph_k", "fixed"), ("group_size", "dynamic")):
            if lmf.graph == used_by and getattr(lmf, name) > cfg.agents:
                raise ConfigError(f"{_flag(name)} must be in [{1 if name == 'graph_k' else 2}, {cfg.agents}] "
                                  f"(the number of agents) for graph {used_by}, got {getattr(lmf, name)}")
    if not 0 <= lmf.graph_p <= 1:
        raise ConfigError(f"graph-p must be in [0, 1], got {lmf.graph_p}")
    if not 0 <= lmf.lmf_beta < 1:
        raise ConfigError(f"lmf-beta must be in [0, 1), got {lmf.lmf_beta}")


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


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    type_name = annotation if isinstance(annotation, str) else annotation.__name__
    kind = {"int": int, "float": float, "str": str, "bool": bool}[type_name]
    if kind is bool and isinstance(value, str):
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise ConfigError(f"{_flag(name)} must be true or false, got {value!r}")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"{_flag(name)} must be an integer, got {value}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{_flag(name)} must be of type {kind.__name__}, got {value!r}") from None
