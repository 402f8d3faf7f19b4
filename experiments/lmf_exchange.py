"""How LMF's exchange decides whether DQN agents learn: Eq. 13 against the alternatives.

    python experiments/lmf_exchange.py --game harvest-3 --seeds 0 1 2 --out docs/results/ssd/diagnostics

Runs LMF with the other exchanges on a scenario of experiments/reproduce_fpf.py, every
other setting the same (``--rounds`` rounds, in-process): ``diffusion`` (adapt, then
combine: the agent trains from and acts with its neighbours' mix), ``gradients`` (Eq. 14)
and ``fedavg``. It then compares them with the reproduction's own runs of the same seeds,
LMF with Eq. 13 and the independent learners (``--reference``, default
docs/results/ssd/runs/GAME), over rounds ``--window``: mean collective return and CV per
seed, and each against Eq. 13 and against the independent learners, paired by seed
(mean ± sample std [95% CI half-width], paired t-test). Finished runs are not run again.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from scipy import stats

from reproduce_fpf import SCENARIOS, VARIANTS  # also puts the project on sys.path

from federation.compare import fmt_mean_std  # noqa: E402
from federation.config import RunConfig  # noqa: E402
from federation.in_process import run_in_process  # noqa: E402

EXCHANGES = {"diffusion": {"strategy": "lmf", "lmf_mode": "diffusion"},
             "gradients": {"strategy": "lmf", "lmf_mode": "gradients"},
             "fedavg": {"strategy": "fedavg"}}
NAMES = {"diffusion": "lmf-diffusion", "gradients": "lmf-gradients", "fedavg": "fedavg"}


def config(game: str, exchange: str, seed: int, rounds: int, out: Path) -> RunConfig:
    scenario = SCENARIOS[game]
    settings = {**scenario.settings, **VARIANTS["lmf"], **EXCHANGES[exchange]}
    if exchange == "fedavg":
        settings = {k: v for k, v in settings.items() if k not in ("participation", "graph")}
    return RunConfig.of(env=scenario.env, agents=scenario.agents, rounds=rounds, seed=seed, progress=False,
                        learner=scenario.learner, game_options=scenario.options,
                        out=str(out / f"{game}_{NAMES[exchange]}_seed{seed}"), **settings)


def window_mean(path: Path, key: str, window: tuple[int, int]) -> float | None:
    """Mean of ``key`` over rounds window[0]..window[1] (1-based, inclusive); None if the run
    has not reached them."""
    if not (path / "metrics.csv").exists():
        return None
    with open(path / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if window[0] <= int(r["round"]) <= window[1]]
    return float(np.mean([float(r[key]) for r in rows])) if len(rows) == window[1] - window[0] + 1 else None


def report(game: str, exchanges: list[str], seeds: list[int], out: Path, reference: Path,
           window: tuple[int, int]) -> str:
    dirs = {"eq13": lambda s: reference / f"lmf_seed{s}", "independent": lambda s: reference / f"independent_seed{s}"}
    dirs |= {e: (lambda s, e=e: out / f"{game}_{NAMES[e]}_seed{s}") for e in exchanges}
    label = {"eq13": "LMF, Eq. 13 (the reproduction's)", "independent": "independent", **NAMES}
    values = {(m, k): {s: window_mean(d(s), k, window) for s in seeds} for m, d in dirs.items()
              for k in ("collective_return", "cv")}
    lines = [f"{game}, rounds {window[0]}-{window[1]}, seeds {' · '.join(map(str, seeds))}\n",
             "| method | collective return | CV |", "|---|---|---|"]
    for m in dirs:
        cells = [" · ".join("–" if values[m, k][s] is None else f"{values[m, k][s]:.{1 if k != 'cv' else 3}f}"
                            for s in seeds) for k in ("collective_return", "cv")]
        lines.append(f"| {label[m]} | {cells[0]} | {cells[1]} |")
    lines += ["", "| comparison | seeds | Δ collective return | p |", "|---|---|---|---|"]
    for m in exchanges:
        for base in ("eq13", "independent"):
            both = [s for s in seeds if values[m, "collective_return"][s] is not None
                    and values[base, "collective_return"][s] is not None]
            if len(both) < 2:
                continue
            a = [values[m, "collective_return"][s] for s in both]
            b = [values[base, "collective_return"][s] for s in both]
            p = stats.ttest_rel(a, b).pvalue
            lines.append(f"| {label[m]} − {label[base]} | {len(both)} | "
                         f"{fmt_mean_std([x - y for x, y in zip(a, b)])} | {p:.2g} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--game", default="harvest-3", choices=sorted(g for g, s in SCENARIOS.items() if "lmf" in s.methods))
    p.add_argument("--exchanges", nargs="+", default=["diffusion"], choices=list(EXCHANGES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--window", nargs=2, type=int, default=[46, 60], metavar=("FIRST", "LAST"))
    p.add_argument("--out", type=Path, default=Path("docs/results/ssd/diagnostics"))
    p.add_argument("--reference", type=Path, default=None, help="the reproduction's runs of the game")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    if not 1 <= args.window[0] <= args.window[1] <= args.rounds:
        p.error(f"--window must lie within rounds 1..{args.rounds}")
    reference = args.reference or Path("docs/results/ssd/runs") / args.game
    if not args.report_only:
        for seed in args.seeds:
            for exchange in args.exchanges:
                cfg = config(args.game, exchange, seed, args.rounds, args.out).validated()
                summary = Path(cfg.out) / "summary.json"
                if summary.exists() and json.loads(summary.read_text()).get("rounds_completed") == args.rounds:
                    continue
                print(f"{args.game} {exchange} seed {seed}", flush=True)
                run_in_process(cfg.replace(resume=True) if (Path(cfg.out) / "checkpoint.pt").exists() else cfg)
    print(report(args.game, args.exchanges, args.seeds, args.out, reference, tuple(args.window)))


if __name__ == "__main__":
    main()
