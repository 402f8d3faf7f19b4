#!/usr/bin/env python
"""Command line: run federations of egoistic agents in Flower's simulation runtime.

    python run_sim.py --env matthew --strategy fpf --agents 10 --participation 0.5 --rounds 100 --out runs/fpf

Several strategies, LMF graphs and seeds at once write one run directory each plus a
comparison table and plot:

    python run_sim.py --strategy fpf dnf independent --seeds 0 1 2 --out runs/cmp
    python run_sim.py --env job --strategy lmf avg --graph ring fixed dynamic --out runs/lmf

Every key of federation.config.RunConfig is a flag (``--lambda-u 0.5``); a flag that the
chosen strategies and learners do not read is refused. ``--preset NAME`` starts from a
named set of values (``--list-presets``). ``flwr run .`` takes the same keys through
``--run-config``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from federation import presets
from federation.config import ALIASES, GROUPS, ConfigError, RunConfig, check_applies, check_out, clear_run

#: flags that take several values, one run each
MULTI = {"strategy": "STRATEGY", "graph": "GRAPH"}
#: the runners of ``--runner``
RUNNERS = ("simulation", "in-process")
#: what ``--resume OUT`` may change about the run it continues
RESUMABLE = {"rounds", "progress", "resume"}


def parser() -> argparse.ArgumentParser:
    """Every configuration key as a flag, one section per group. No flag has a default
    here (absent flags are absent from the namespace), so an explicit value, even one
    equal to the default, is told apart from a missing one."""
    from clients.settings import choices_of, flag_of, range_text

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                argument_default=argparse.SUPPRESS,
                                usage="%(prog)s [--preset NAME] [--FLAG VALUE ...]   (flags by section below)")
    sections = {None: p.add_argument_group(RunConfig.title)}
    sections |= {name: p.add_argument_group(cls.title, cls.__doc__.split("\n")[0]) for name, cls in GROUPS.items()}
    defaults = RunConfig()
    for key, (group, f) in RunConfig.keys().items():
        owner = RunConfig if group is None else GROUPS[group]
        flags = ["--" + flag_of(owner, f)] + ["--" + a for a in f.metadata.get("aliases", ()) if a != flag_of(owner, f)]
        default = defaults.get(key)
        help_text = f.metadata["help"] + f" (default: {default if default != '' else 'none'}"
        if (choices := choices_of(f)) is not None:
            help_text += f"; choices: {', '.join(choices)}"
            if f.metadata.get("import_path"):
                help_text += ", or module.path:Name (docs/EXTENDING.md)"
        elif range_text(f):
            help_text += f"; range: {range_text(f)}"
        help_text += ")"
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        section = sections[group]
        if key in MULTI:
            section.add_argument(*flags, dest=key, nargs="+", metavar=MULTI[key],
                                 help=help_text + "; several values give one run each")
        elif key == "resume":
            section.add_argument(*flags, dest=key, metavar="OUT",
                                 help="continue the run in OUT from its last completed round, with the settings in "
                                      "OUT/config.json; only --rounds (to extend it) and --progress may be given")
        elif kind == "bool":
            section.add_argument(*flags, dest=key, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            metavar = {"int": "N", "float": "X"}.get(kind, "NAME" if choices is not None else "TEXT")
            section.add_argument(*flags, dest=key, type={"int": int, "float": float, "str": str}[kind],
                                 metavar=metavar, help=help_text)
    p.add_argument("--seeds", type=int, nargs="+", help="several seeds, one run each (overrides --seed)")
    p.add_argument("--preset", metavar="NAME",
                   help="start from a named set of flag values (see --list-presets) or a TOML file of your own; "
                        "flags given here win")
    p.add_argument("--list-presets", action="store_true", help="list the shipped presets and exit")
    p.add_argument("--cleanup", action="store_true",
                   help="end the processes (Ray's) left behind by runs that were killed, found by the PIDs each run "
                        "recorded when it started, and exit")
    p.add_argument("--verbose", action="store_true", help="show Flower's and Ray's logs")
    p.add_argument("--runner", choices=RUNNERS, default="simulation",
                   help="simulation: Flower's simulation runtime, one Ray actor per CPU (default); in-process: the "
                        "same round loop in this process with the ClientApp called directly, learners read from "
                        "the agents' storage, no Ray (for many agents: with --stacked auto, see README 'Many agents')")
    return p


def given(args: argparse.Namespace) -> dict:
    """The configuration keys given on the command line (flags not given are absent)."""
    return {k: v for k, v in vars(args).items() if k in RunConfig.keys()}


def plan(args: argparse.Namespace, argv: list[str] | None = None) -> list[RunConfig]:
    """One validated RunConfig per (strategy, graph for LMF, seed).

    A single run writes to OUT; several write to OUT/<label>_seed<s>, where the label is
    the strategy (with the graph and mode for LMF). Values come from the preset, if any,
    then from the flags given, which win.
    """
    _warn_aliases(argv if argv is not None else sys.argv[1:])
    if getattr(args, "resume", None):
        return [resumed(args)]
    values = presets.load(args.preset) if getattr(args, "preset", None) else {}
    values |= given(args)
    explicit = set(values)  # what the preset and the flags set, checked against what the runs read
    defaults = RunConfig()
    if "agents" not in values and (agents := _game_agents(values, defaults)) is not None:
        values["agents"] = agents  # a PettingZoo game given by its factory has its own number of learners
    strategies_ = _several(values.pop("strategy", defaults.strategy))
    graphs = _several(values.pop("graph", defaults.lmf.graph))
    seeds = list(dict.fromkeys(getattr(args, "seeds", None) or [values.get("seed", defaults.seed)]))
    out = values.get("out", defaults.out)
    variants = [{"strategy": s, "graph": g} for s in dict.fromkeys(strategies_)
                for g in (dict.fromkeys(graphs) if _reads_graphs(s) else [graphs[0]])]
    runs = []
    for variant in variants:
        for seed in seeds:
            cfg = RunConfig.from_mapping(values | variant | {"seed": seed})
            run_out = out if len(variants) * len(seeds) == 1 else str(Path(out) / f"{cfg.label}_seed{seed}")
            runs.append(cfg.replace(out=run_out))
    check_applies(explicit, runs)
    for cfg in runs:
        check_out(cfg)
    return runs


def _game_agents(values: dict, defaults: RunConfig) -> int | None:
    """The number of agents when ``--agents`` is not given: a PettingZoo factory game's
    learners (``--learners``, by default every agent of the env); None for other games."""
    import envs
    from federation.config import parse_game_options

    env = values.get("env", defaults.env)
    try:
        if envs.builtin(env) or not envs.takes_learners(env):
            return None
        options = parse_game_options(values.get("game_options", ""))
        if values.get("learners"):
            options["learners"] = values["learners"]
        return envs.agents_of(env, **options)
    except ValueError:
        return None  # RunConfig reports the problem


def _reads_graphs(strategy: str) -> bool:
    """Whether the strategy reads the graph settings (then each --graph is a run)."""
    import strategies

    try:
        return "lmf" in strategies.strategy_class(strategy).reads
    except ValueError:
        return False  # an unknown strategy: RunConfig reports it


def _several(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _warn_aliases(argv: list[str]) -> None:
    for arg in argv:
        name = arg.removeprefix("--").split("=")[0].replace("-", "_")
        if arg.startswith("--") and name in ALIASES:
            print(f"note: --{name.replace('_', '-')} is deprecated; use --{ALIASES[name].replace('_', '-')}",
                  file=sys.stderr)


def resumed(args: argparse.Namespace) -> RunConfig:
    """The configuration of the run in ``args.resume``, to be continued."""
    others = sorted(k for k in given(args) if k not in RESUMABLE)
    if getattr(args, "preset", None):
        others.append("preset")
    if others:
        raise ConfigError(f"--resume continues a run with the settings in its config.json; "
                          f"{', '.join('--' + k.replace('_', '-') for k in others)} cannot be given with it "
                          "(only --rounds, to extend the run, and --progress)")
    path = Path(args.resume) / "config.json"
    if not path.is_file():
        raise ConfigError(f"resume '{args.resume}': no config.json there (is it a run's output directory?)")
    try:
        cfg = RunConfig.from_json(path.read_text())
    except ConfigError as err:
        raise ConfigError(f"resume '{args.resume}': {err}") from None
    rounds = getattr(args, "rounds", cfg.rounds)
    # the directory is where the run is now, wherever it was written
    cfg = cfg.replace(resume=True, overwrite=False, out=str(Path(args.resume)), rounds=rounds,
                      progress=getattr(args, "progress", cfg.execution.progress))
    from federation.server_app import CheckpointError, load_checkpoint

    try:  # checked here, before anything starts; nothing in OUT is written by a refused resume
        load_checkpoint(cfg)
    except CheckpointError as err:
        raise ConfigError(f"resume '{args.resume}': {err}") from None
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "list_presets", False):
        print(presets.describe())
        return 0
    if getattr(args, "cleanup", False):
        from federation.processes import cleanup

        ended = cleanup()
        for out, pids in ended:
            print(f"ended {len(pids)} processes left behind by a run into {out}: PIDs {', '.join(map(str, pids))}")
        print("no processes of killed runs were left" if not ended else f"cleaned up after {len(ended)} runs")
        return 0
    try:
        runs = plan(args, argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for note in dict.fromkeys(n for cfg in runs if (n := cfg.participation_note())):
        print(f"note: --participation does not apply: {note}", file=sys.stderr)
    from federation.compare import compare, format_summary
    from federation.simulation import RunFailed, RunInterrupted, simulate

    summaries = []
    for cfg in runs:
        if cfg.execution.overwrite:
            clear_run(cfg.out)
        try:
            if getattr(args, "runner", "simulation") == "in-process":
                from federation.in_process import run_in_process
                from federation.server_app import AgentsLost, NoAgentTrained

                try:
                    summaries.append(run_in_process(cfg))
                except (NoAgentTrained, AgentsLost) as err:
                    raise RunFailed(str(err)) from None
                except KeyboardInterrupt:  # the checkpoint of the last round done stays
                    print(f"stopped; the rounds done are in {cfg.out}. Continue with: python run_sim.py --runner "
                          f"in-process --resume {cfg.out}", file=sys.stderr)
                    return 130
            else:
                summaries.append(simulate(cfg, verbose=getattr(args, "verbose", False)))
        except RunFailed as err:
            print(f"error: run {cfg.strategy} seed {cfg.seed} failed: {err}", file=sys.stderr)
            return 1
        except RunInterrupted as stopped:
            done = stopped.summary.get("rounds_completed", 0)
            print(f"stopped after round {done} of {cfg.rounds}; the rounds done are in {cfg.out} (summary.json, "
                  f"curves.png). Continue with: python run_sim.py --resume {cfg.out}", file=sys.stderr)
            return 130
        print(format_summary([summaries[-1]]))
    root = Path(runs[0].out) if len(runs) == 1 else Path(runs[0].out).parent
    if len(runs) > 1:
        print(compare([Path(c.out) for c in runs], root))
    print(f"results in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
