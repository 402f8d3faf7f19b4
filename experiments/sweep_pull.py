#!/usr/bin/env python
"""Sweep FPF's pull toward ω and ω̄ on the Matthew Effect, to choose its defaults.

    python experiments/sweep_pull.py --seeds 0 1 --rounds 30 --out docs/results/pull_sweep

The pull per round is θ <- θ - αλ_u(θ - ω) - αλ_e(θ - ω̄) (clients.anchors). With
α = ``fed_alpha`` = 0.1 the sweep takes λ_u ∈ {0, 0.1, 0.3, 1, 3}, i.e. αλ_u ∈ {0, 0.01,
0.03, 0.1, 0.3}, and for each λ_e = r·λ_u with r in ``--ratios`` (default {0, 1/4}; add 1
for the control that breaks the theorem). Theorem 1 of the paper asks for
λ_u > 2√2(λ_e + L): λ_e = λ_u/4 satisfies it whenever L < 0.1·λ_u (2√2/4 ≈ 0.71), λ_e = λ_u
never does. Then, at ``--egalitarian-at`` (λ_u = 1, αλ_u = 0.1, with λ_e = λ_u/4), the
three egalitarian rewards of ω̄ (``--egalitarian variance|return-std|min``). Every run
sets ω̄'s reward explicitly (the grid's is ``variance``), so the sweep does not depend on
the default it chose.

For each setting and seed it writes a run directory under OUT/runs/, and into OUT
``sweep.md`` / ``sweep.csv`` (mean ± sample std [95% CI] over seeds of the last quarter of
rounds: collective return, CV, participants' minus non-participants' return, π_ω's and
π_ω̄'s own collective return and CV, the effective pull) and ``sweep.png``. Finished runs
are skipped, so an interrupted sweep resumes.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from federation.compare import fmt_mean_std, last_quarter, mean_sd_ci  # noqa: E402
from federation.config import RunConfig  # noqa: E402
from federation.results import discard_state, plt, read_metrics  # noqa: E402
from federation.simulation import simulate  # noqa: E402

ALPHA = 0.1
LAMBDA_U = (0.0, 0.1, 0.3, 1.0, 3.0)


def settings(egalitarian_at: float | None, ratios=(0.0, 0.25)) -> list[dict]:
    out = []
    for lu in LAMBDA_U:
        for le in sorted({r * lu for r in ratios}):
            out.append({"lambda_u": lu, "lambda_e": le, "egalitarian": "variance"})
    if egalitarian_at is not None:
        for kind in ("return-std", "min"):
            out.append({"lambda_u": egalitarian_at, "lambda_e": egalitarian_at / 4, "egalitarian": kind})
    return out


def name(s: dict) -> str:
    return f"lu{s['lambda_u']:g}_le{s['lambda_e']:g}_{s['egalitarian']}"


def metrics(rows: list[dict]) -> dict[str, float]:
    """Means over the last quarter of the rounds (evaluation columns where they were measured)."""
    def mean(key):
        return last_quarter(rows, key)

    return {"collective": mean("collective_return"), "cv": mean("cv"),
            "opt_in_gain": mean("participants_return") - mean("nonparticipants_return"),
            "omega_collective": mean("omega_eval_collective"), "omega_cv": mean("omega_eval_cv"),
            "omega_bar_collective": mean("omega_bar_eval_collective"), "omega_bar_cv": mean("omega_bar_eval_cv"),
            "pull_norm": mean("agents_pull_norm"), "update_norm": mean("agents_update_norm")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--ratios", type=float, nargs="+", default=[0.0, 0.25], help="λ_e / λ_u values")
    p.add_argument("--egalitarian-at", type=float, default=1.0, help="λ_u at which to compare ω̄'s rewards")
    p.add_argument("--out", default="docs/results/pull_sweep")
    args = p.parse_args()
    out = Path(args.out)
    grid = settings(args.egalitarian_at, args.ratios)
    for seed in args.seeds:  # seed outermost: an interrupted sweep still has whole seeds
        for k, s in enumerate(grid, 1):
            run = out / "runs" / f"{name(s)}_seed{seed}"
            if (run / "summary.json").exists():
                continue
            print(f"[seed {seed}, {k}/{len(grid)}] {name(s)}", flush=True)
            cfg = RunConfig.of(strategy="fpf", rounds=args.rounds, seed=seed, fed_alpha=ALPHA, eval_every=4,
                               progress=False, out=str(run), **s)
            simulate(cfg)
            discard_state(cfg.out)
    report(grid, args.seeds, out)


def report(grid: list[dict], seeds: list[int], out: Path) -> None:
    table, rows_csv = [], []
    for s in grid:
        per_seed = [metrics(read_metrics(out / "runs" / f"{name(s)}_seed{seed}")) for seed in seeds
                    if (out / "runs" / f"{name(s)}_seed{seed}" / "summary.json").exists()]
        if not per_seed:
            continue
        keys = per_seed[0].keys()
        cells = {k: fmt_mean_std([m[k] for m in per_seed]) for k in keys}
        theorem = s["lambda_u"] > 2 * math.sqrt(2) * s["lambda_e"]
        table.append(f"| {ALPHA * s['lambda_u']:g} | {ALPHA * s['lambda_e']:g} | {s['egalitarian']} | "
                     f"{'yes' if theorem else 'no'} | {len(per_seed)} | " + " | ".join(cells[k] for k in keys) + " |")
        for k in keys:
            mean, sd, half, n = mean_sd_ci([m[k] for m in per_seed])
            rows_csv.append({**s, "alpha": ALPHA, "metric": k, "mean": mean, "sd": sd, "ci95": half, "n": n})
    head = ("| αλ_u | αλ_e | ω̄ reward | λ_u > 2√2 λ_e | seeds | collective | CV | participants − others | "
            "π_ω collective | π_ω CV | π_ω̄ collective | π_ω̄ CV | pull ‖Δθ‖ | own update ‖Δθ‖ |")
    (out / "sweep.md").write_text("\n".join([head, "|" + "---|" * 14] + table) + "\n\nCells: mean ± sample std "
                                  "over seeds [± 95% CI half-width] of the last quarter of the rounds.\n")
    with (out / "sweep.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows_csv[0]))
        writer.writeheader()
        writer.writerows(rows_csv)
    plot(grid, seeds, out)
    print((out / "sweep.md").read_text())


def plot(grid: list[dict], seeds: list[int], out: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    for ratio, marker in ((0.0, "o"), (0.25, "s"), (1.0, "^")):
        pts = [s for s in grid if s["egalitarian"] == "variance" and s["lambda_e"] == ratio * s["lambda_u"]]
        for ax, key, label in zip(axes, ("collective", "cv", "opt_in_gain"),
                                  ("collective return", "CV", "participants − non-participants")):
            xs, ys, hs = [], [], []
            for s in pts:
                vals = [metrics(read_metrics(out / "runs" / f"{name(s)}_seed{seed}"))[key] for seed in seeds
                        if (out / "runs" / f"{name(s)}_seed{seed}" / "summary.json").exists()]
                if vals:
                    mean, _, half, _ = mean_sd_ci(vals)
                    xs.append(ALPHA * s["lambda_u"])
                    ys.append(mean)
                    hs.append(0.0 if not np.isfinite(half) else half)
            if len(xs) > 1:  # a ratio of the grid (the pull-free point belongs to every ratio)
                ax.errorbar(xs, ys, yerr=hs, marker=marker, capsize=3, label=f"λ_e = {ratio:g}·λ_u")
            ax.set_xscale("symlog", linthresh=0.01)
            ax.set(xlabel="αλ_u (pull toward ω per round)", ylabel=label, title=label)
    axes[0].legend()
    fig.suptitle("FPF on the Matthew Effect: pull sweep (mean, 95% CI over seeds; last quarter of rounds)")
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
