"""The run configuration: one schema for ``run_sim.py`` and ``flwr run``, validated once.

Keys are the dataclass fields; on the command line and in ``[tool.flwr.app.config]`` they
are written in kebab-case (``lambda_u`` -> ``lambda-u``). The server is the single source
of truth: it validates the configuration and sends each client what it needs inside the
messages, so clients never read the run config themselves.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from clients.ppo import PPOConfig


class ConfigError(ValueError):
    """A configuration value is invalid; the message names it and the valid choices."""


@dataclass
class RunConfig:
    # What to run
    env: str = "matthew"
    strategy: str = "fpf"
    agents: int = 10
    rounds: int = 80
    seed: int = 0
    out: str = "runs/latest"
    # Who participates in the federation: a fraction in [0, 1] (the first round(p·N) agents,
    # or a fresh draw each round with draw="random"), an explicit list "ids:0,3,7", or
    # "voluntary" (each agent decides each round).
    participation: str = "0.5"
    draw: str = "fixed"
    # Free entry and exit (participation="voluntary"): exploration rate and return memory
    vol_epsilon: float = 0.1
    vol_memory: float = 0.8
    # The world: B parallel games, each played for `steps` steps per round (0: one episode)
    batch: int = 16
    steps: int = 0
    # FPF / D&F (paper notation)
    lambda_u: float = 1.0
    lambda_e: float = 1.0
    lambda_h: float = 0.01
    eta: float = 1.0
    fed_alpha: float = 1e-3
    fed_lr: float = 3e-4
    fed_critic_lr: float = 1e-3
    fed_updates: int = 4
    fed_batch: int = 4096
    # LMF: graph schedule (complete, ring, fixed, dynamic, erdos_renyi, b_connected) or a
    # user file, exchange mode (parameters: Eq. 13, gradients: Eq. 14), step decay t^-β
    graph: str = "ring"
    graph_file: str = ""
    graph_k: int = 2
    graph_p: float = 0.3
    graph_b: int = 3
    group_size: int = 3
    lmf_mode: str = "parameters"
    lmf_beta: float = 0.0
    # Inequity aversion (strategy ia): envy a and guilt b
    ia_envy: float = 5.0
    ia_guilt: float = 0.05
    # Agents' PPO learner (defaults: clients.ppo.PPOConfig)
    hidden: int = PPOConfig.hidden
    layers: int = PPOConfig.layers
    lr_actor: float = PPOConfig.lr_actor
    lr_critic: float = PPOConfig.lr_critic
    gamma: float = PPOConfig.gamma
    gae_lambda: float = PPOConfig.gae_lambda
    clip: float = PPOConfig.clip
    epochs: int = PPOConfig.epochs
    minibatch: int = PPOConfig.minibatch
    ent_coef: float = PPOConfig.ent_coef
    anchor_step: str = PPOConfig.anchor_step
    # Execution
    client_cpus: float = 1.0
    torch_threads: int = 1
    node_timeout: float = 300.0
    reply_timeout: float = 1800.0
    progress: bool = True

    # ------------------------------------------------------------------ conversion
    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> "RunConfig":
        """Build from a dict with snake- or kebab-case keys (e.g. ``context.run_config``)."""
        known = {f.name: f for f in fields(cls)}
        kwargs = {}
        for key, value in values.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ConfigError(f"unknown config key '{key}'; valid keys: {', '.join(sorted(k.replace('_', '-') for k in known))}")
            kwargs[name] = _coerce(name, value, known[name].type)
        return cls(**kwargs).validated()

    def to_flat(self) -> dict[str, Any]:
        """Kebab-case dict, as in ``[tool.flwr.app.config]``."""
        return {k.replace("_", "-"): v for k, v in asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def ppo(self) -> PPOConfig:
        names = {f.name for f in fields(PPOConfig)}
        return PPOConfig(**{k: v for k, v in asdict(self).items() if k in names})

    @property
    def label(self) -> str:
        """Name of the method in tables and plots: the strategy, with LMF's graph and mode."""
        if self.strategy != "lmf":
            return self.strategy
        graph = "file" if self.graph_file else self.graph
        return f"lmf-{graph}" + ("-gradients" if self.lmf_mode == "gradients" else "")

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes).validated()

    # ------------------------------------------------------------------ validation

    def validated(self) -> "RunConfig":
        """Check every value; raise ConfigError naming the problem and the valid choices."""
        import envs
        import strategies
        from federation.participation import Participation

        if self.env not in envs.available():
            raise ConfigError(f"unknown env '{self.env}'; valid choices: {', '.join(envs.available())}")
        if self.strategy not in strategies.available():
            raise ConfigError(f"unknown strategy '{self.strategy}'; valid choices: {', '.join(strategies.available())}")
        for name in ("agents", "rounds", "batch", "epochs", "minibatch", "hidden", "layers",
                     "fed_updates", "fed_batch", "torch_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.steps < 0:
            raise ConfigError(f"steps must be >= 0 (0 = one whole episode), got {self.steps}")
        for name in ("lambda_u", "lambda_e", "lambda_h", "fed_alpha", "ent_coef", "ia_envy", "ia_guilt"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for name in ("fed_lr", "fed_critic_lr", "lr_actor", "lr_critic", "client_cpus", "node_timeout", "reply_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        if not 0 < self.eta <= 2:
            raise ConfigError(f"eta must be in (0, 2] (1 = plain averaging, > 1 extrapolates), got {self.eta}")
        for name in ("gamma", "gae_lambda", "clip", "vol_epsilon", "vol_memory"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name.replace('_', '-')} must be in [0, 1], got {getattr(self, name)}")
        if self.anchor_step not in ("sgd", "adam"):
            raise ConfigError(f"unknown anchor-step '{self.anchor_step}'; valid choices: sgd, adam")
        _check_graph(self)
        try:
            envs.make_batched(self.env, self.agents, batch_size=1)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        Participation.parse(self.participation, self.draw, self.agents)
        return self


def _check_graph(cfg: RunConfig) -> None:
    from pathlib import Path

    from federation.graphs import SCHEDULES, load_schedule

    if cfg.graph_file:
        if not Path(cfg.graph_file).is_file():
            raise ConfigError(f"graph-file '{cfg.graph_file}' does not exist")
        try:
            schedule = load_schedule(cfg.graph_file, seed=cfg.seed)
        except ValueError as err:  # includes GraphAssumptionError (Assumptions 4 and 5)
            raise ConfigError(f"graph-file '{cfg.graph_file}': {err}") from None
        if not set(schedule.nodes) <= set(range(cfg.agents)):
            raise ConfigError(f"graph-file '{cfg.graph_file}' names agents {schedule.nodes}; valid agent ids: 0..{cfg.agents - 1}")
    elif cfg.graph not in SCHEDULES:
        raise ConfigError(f"unknown graph '{cfg.graph}'; valid choices: {', '.join(sorted(SCHEDULES))}")
    if cfg.lmf_mode not in ("parameters", "gradients"):
        raise ConfigError(f"unknown lmf-mode '{cfg.lmf_mode}'; valid choices: parameters, gradients")
    for name in ("graph_k", "graph_b", "group_size"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    if cfg.group_size < 2:
        raise ConfigError(f"group-size must be >= 2, got {cfg.group_size}")
    if not 0 <= cfg.graph_p <= 1:
        raise ConfigError(f"graph-p must be in [0, 1], got {cfg.graph_p}")
    if not 0 <= cfg.lmf_beta < 1:
        raise ConfigError(f"lmf-beta must be in [0, 1), got {cfg.lmf_beta}")


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    kind = {"int": int, "float": float, "str": str, "bool": bool}[str(annotation)]
    if kind is bool and isinstance(value, str):
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise ConfigError(f"{name.replace('_', '-')} must be true or false, got {value!r}")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"{name.replace('_', '-')} must be an integer, got {value}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name.replace('_', '-')} must be of type {kind.__name__}, got {value!r}") from None
