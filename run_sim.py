#!/usr/bin/env python
"""Command line: run federations of egoistic agents in Flower's simulation runtime.

    python run_sim.py --env matthew --strategy fpf --agents 10 --participation 0.5 \
        --rounds 100 --seed 0 --out runs/fpf

Several strategies, LMF graphs and seeds at once write one run directory each plus a
comparison table and plot:

    python run_sim.py --strategy fpf dnf independent --seeds 0 1 2 --out runs/cmp
    python run_sim.py --env job --strategy lmf avg --graph ring fixed dynamic --out runs/lmf

Every key of federation.config.RunConfig is a flag (``--lambda-u 0.5``); ``flwr run .``
takes the same keys through ``--run-config``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from federation.config import ConfigError, RunConfig

HELP = {
    "env": "game to play", "strategy": "federation strategies to run (one or more)",
    "agents": "number of agents N", "rounds": "federation rounds", "seed": "random seed",
    "out": "output directory",
    "participation": "fraction in [0,1] of agents that join, ids:0,3,7, or voluntary (each agent decides each round)",
    "learner": "every agent's learner (ppo, dqn, q-table), or per agent, e.g. ppo:0-4,dqn:5-9",
    "observation": "the game's observation mode (job: vector, discrete, image); empty: the game's default",
    "game_options": "more keywords for the game, e.g. episode_length=100 or, for cleanup, map=lio-7",
    "draw": "fixed (a set drawn once from the seed), first (the first agents), or random (a fresh draw each round)",
    "batch": "parallel game copies B per round", "steps": "steps per round (0: one episode)",
    "lambda_u": "pull toward the utilitarian policy ω", "lambda_e": "pull toward the egalitarian policy ω̄",
    "lambda_h": "entropy bonus of ω̄", "eta": "federation update rate η", "fed_alpha": "α in Eq. 10",
    "client_cpus": "CPUs per simulated agent (Ray resources)", "progress": "show a progress bar",
    "attack": "what the attackers upload: none, sign-flip, noise, free-ride (clients/attacks.py)",
    "attackers": "the attacking agents' ids, e.g. 0 or 0,3", "attack_scale": "sign-flip amplification / noise std",
    "robust": "how uploads are combined: mean, median, trimmed-mean, krum, multikrum, bulyan (strategies/robust.py)",
    "robust_f": "attackers the robust rule must withstand", "trim": "trimmed-mean: fraction cut at each end",
}


def parser() -> argparse.ArgumentParser:
    import envs
    import strategies
    from strategies.graphs import SCHEDULES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = RunConfig()
    for name, (group, f) in RunConfig.keys().items():
        flag = "--" + name.replace("_", "-")
        default = defaults.get(name)
        help_text = HELP.get(name, name.replace("_", " ")) + f" (default: {default})"
        if name == "strategy":
            p.add_argument(flag, nargs="+", default=[default], help=help_text + f"; choices: {', '.join(strategies.available())}")
        elif name == "graph":
            p.add_argument(flag, nargs="+", default=[default], help="LMF's graph schedules (one or more; each is a run)"
                           f" (default: {default}); choices: {', '.join(sorted(SCHEDULES))}")
        elif name == "env":
            p.add_argument(flag, default=default, help=help_text + f"; choices: {', '.join(envs.available())}")
        elif name == "resume":
            p.add_argument(flag, metavar="OUT", default=None,
                           help="continue the run in OUT from its last completed round, with the settings in "
                                "OUT/config.json (--rounds, if given, extends it; other flags are ignored)")
        elif name == "progress":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        else:
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            p.add_argument(flag, type={"int": int, "float": float, "str": str}[kind], default=default, help=help_text)
    p.add_argument("--seeds", type=int, nargs="+", help="several seeds (overrides --seed)")
    p.add_argument("--verbose", action="store_true", help="show Flower's and Ray's logs")
    return p


def plan(args: argparse.Namespace) -> list[RunConfig]:
    """One validated RunConfig per (strategy, graph for LMF, seed).

    A single run writes to OUT; several write to OUT/<label>_seed<s>, where the label is
    the strategy (with the graph and mode for LMF).
    """
    if args.resume:
        return [resumed(args)]
    values = {name: getattr(args, name) for name in RunConfig.keys() if name != "resume"}
    seeds = list(dict.fromkeys(args.seeds or [args.seed]))
    variants = [{"strategy": s, "graph": g} for s in dict.fromkeys(args.strategy)
                for g in (dict.fromkeys(args.graph) if s == "lmf" else [args.graph[0]])]
    runs = []
    for variant in variants:
        for seed in seeds:
            cfg = RunConfig.from_mapping(values | variant | {"seed": seed})
            out = args.out if len(variants) * len(seeds) == 1 else str(Path(args.out) / f"{cfg.label}_seed{seed}")
            runs.append(cfg.replace(out=out))
    return runs


def resumed(args: argparse.Namespace) -> RunConfig:
    """The configuration of the run in ``args.resume``, to be continued."""
    path = Path(args.resume) / "config.json"
    if not path.is_file():
        raise ConfigError(f"resume '{args.resume}': no config.json there (is it a run's output directory?)")
    cfg = RunConfig.from_json(path.read_text())
    rounds = args.rounds if args.rounds != RunConfig().rounds else cfg.rounds
    return cfg.replace(resume=True, out=str(args.resume), rounds=rounds, progress=args.progress)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        runs = plan(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for note in dict.fromkeys(n for cfg in runs if (n := cfg.participation_note())):
        print(f"note: --participation does not apply: {note}", file=sys.stderr)
    from federation.compare import compare, format_summary
    from federation.simulation import RunFailed, simulate

    summaries = []
    for cfg in runs:
        try:
            summaries.append(simulate(cfg, verbose=args.verbose))
        except RunFailed as err:
            print(f"error: run {cfg.strategy} seed {cfg.seed} failed: {err}", file=sys.stderr)
            return 1
        print(format_summary([summaries[-1]]))
    if len(runs) > 1:
        table = compare([Path(c.out) for c in runs], Path(args.out))
        print(table)
    print(f"results in {runs[0].out if args.resume else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
