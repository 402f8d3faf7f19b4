#!/usr/bin/env python
"""Reproduce the comparisons of "Beyond Mandatory Federations": classic games, SSD and MPE.

    python experiments/reproduce_fpf.py --seeds 0 1 --out docs/results
    python experiments/reproduce_fpf.py --games cleanup-3 cleanup-5 harvest-3 harvest-5 \
        --seeds 0 1 2 --out docs/results/ssd
    python experiments/reproduce_fpf.py --games matthew --methods fpf fpf-everyone dnf independent \
        --seeds 0 1 2 3 4 --rounds 150 --out docs/results

For the Matthew Effect (10 agents), Job Scheduling (4) and Manufacturing Plant (5) it
runs the baselines (independent, AVG, MIN, IA, FedAvg), FPF with half the agents
participating, D&F, and LMF with every agent participating over a ring; on the Matthew
Effect also LMF-Fix (two disjoint federations) and LMF-Dynamic (overlapping federations
that change every round). Further scenarios, chosen with ``--games`` (write them to
another OUT, e.g. docs/results/ssd, since the tables cover the games of one invocation):

- ``cleanup-3``, ``cleanup-5``, ``harvest-3``, ``harvest-5`` (Figures 4 and 6): DQN
  agents (the paper's IDQN baselines), 100-step episodes (Cleanup with the FPF authors'
  spawning constants), a small CNN (6 channels, 32 hidden units), 50 minibatches of 64
  per round for every agent and 50 of 128 for ω and ω̄; independent, AVG, MIN, FPF, D&F,
  LMF;
- ``mpe-deception``, ``mpe-crypto``, ``mpe-predator-prey``, ``mpe-keep-away``
  (Figure 7): the cooperative team against a random adversary, 1000-step episodes in 4
  copies per round; independent, D&F, LMF.

It then writes into OUT:

- ``collective_return.png``  FPF against the baselines (the paper's Figure 1);
- ``federations.png``        FPF, LMF and D&F (Figure 2);
- ``participants.png``       FPF's participants vs non-participants (Figure 3a-c), with the
  paired control: independent learners split into the same two groups (the set is drawn
  from the seed, so the same seed gives the same split);
- ``omega.png``              FPF's own policies π_ω and π_ω̄ played by every agent on
  held-out games, against the agents;
- ``lmf_variants.png``       LMF, LMF-Fix and LMF-Dynamic on the Matthew Effect (Figure 3d);
- ``results.md`` / ``results.csv``  collective return, CV, Jain, min return and the
  participants' and non-participants' returns per game and method, mean ± sample std
  over seeds and the 95% confidence interval of the mean; ``opt_in.md``: what opting in
  gains, (participants − others) under FPF minus the same difference for independent
  learners on the same split, seed by seed (a difference of differences), with its 95% CI;
  ``paired.md``: FPF, D&F, FPF (pull everyone) and LMF against the independent learners and
  against each other, AVG and MIN against the independent learners, seed by seed, with
  paired t-tests.

``--in-process`` runs each configuration without Flower's transport (federation/in_process.py:
the same round loop and the same metrics for the same seed, checked by tests/test_simulation.py),
which saves Ray's start-up and messaging on many short runs.

Runs already finished with the planned number of rounds are not run again; a run killed
midway, or finished with fewer rounds, continues from its checkpoint (``--resume``), so an
interrupted reproduction resumes where it stopped and ``--rounds`` can be raised later.
Each run keeps its checkpoint and agents' storage for that (~30 MB for the Matthew Effect).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from federation.config import RunConfig  # noqa: E402
from federation.compare import fmt_mean_std, last_quarter, mean_curve  # noqa: E402
from federation.results import plt, read_metrics  # noqa: E402
from federation.simulation import simulate  # noqa: E402

LABELS = {"independent": "IPPO", "avg": "IPPO-AVG", "min": "IPPO-MIN", "ia": "IA", "fedavg": "FedAvg",
          "fpf": "FPF", "fpf-everyone": "FPF (pull everyone)", "dnf": "D&F", "lmf": "LMF", "lmf-fix": "LMF-Fix",
          "lmf-dynamic": "LMF-Dynamic"}
VARIANTS = {
    "independent": {"strategy": "independent"},
    "avg": {"strategy": "avg"},
    "min": {"strategy": "min"},
    "ia": {"strategy": "ia"},
    "fedavg": {"strategy": "fedavg"},
    "fpf": {"strategy": "fpf", "participation": "0.5"},
    "fpf-everyone": {"strategy": "fpf", "participation": "0.5", "pull": "everyone"},
    "dnf": {"strategy": "dnf"},
    "lmf": {"strategy": "lmf", "participation": "1.0", "graph": "ring"},
    "lmf-fix": {"strategy": "lmf", "participation": "1.0", "graph": "fixed", "graph_k": 2},
    "lmf-dynamic": {"strategy": "lmf", "participation": "1.0", "graph": "dynamic"},
}


def label(variant: str, runs) -> str:
    """The method's name, after its learner: IPPO-AVG with PPO agents, IDQN-AVG with DQN."""
    learner = runs[0][0].get("learner", "ppo") if runs else "ppo"
    return LABELS[variant].replace("IPPO", "IDQN") if learner == "dqn" else LABELS[variant]


CLASSIC = ("independent", "avg", "min", "ia", "fedavg", "fpf", "fpf-everyone", "dnf", "lmf")


@dataclass(frozen=True)
class Scenario:
    """One panel of the paper's figures: a game, its team size, options and default plan."""

    env: str
    agents: int
    rounds: int
    methods: tuple[str, ...]
    options: str = ""  # --game-options
    note: str = ""     # what a round is, for the plots
    learner: str = "ppo"
    settings: dict = field(default_factory=dict)  # other configuration keys of every run


SCENARIOS = {
    "matthew": Scenario("matthew", 10, 150, CLASSIC + ("lmf-fix", "lmf-dynamic"), note="one 200-step episode"),
    "job": Scenario("job", 4, 40, CLASSIC, note="one 200-step episode"),
    "manufacturing": Scenario("manufacturing", 5, 40, CLASSIC, note="one 200-step episode"),
}
# Figures 4 and 6: the paper's learners here are DQN (IDQN, IDQN-AVG, IDQN-MIN); 100-step
# episodes and, on Cleanup, the spawning constants of the authors' code (``constants=fpf``);
# the small CNN of the sequential-social-dilemma literature (6 channels, 32 hidden units)
# and 50 minibatches of 64 per round for every agent (a replay ratio of 2 on the 1,600
# transitions an agent collects in a round) and 50 of 128 for each of FPF's ω and ω̄
# (about one pass over the round's N·1,600 transitions) keep a round at seconds (the
# defaults, 200 of 256 and 16 of 1,024, cost several times as much: docs/results/ssd).
SSD = ("independent", "avg", "min", "fpf", "dnf", "lmf")
SSD_DQN = {"channels": 6, "hidden": 32, "dqn_updates": 50, "dqn_batch": 64, "fed_updates": 50, "fed_batch": 128}
for _game, _options in (("cleanup", "episode_length=100,constants=fpf"), ("harvest", "episode_length=100")):
    for _n in (3, 5):
        SCENARIOS[f"{_game}-{_n}"] = Scenario(_game, _n, 100, SSD, _options, "one 100-step episode", "dqn", SSD_DQN)
# Figure 7: the cooperative team against a random adversary; 1000-step episodes (the
# paper's "returns per 1000 steps"), 4 copies a round; each game runs until its curves are
# flat (deception's seed-averaged curves are level within noise at 100; docs/results/mpe).
for _game, _n, _rounds in (("mpe-deception", 2, 100), ("mpe-crypto", 2, 200), ("mpe-predator-prey", 3, 300),
                           ("mpe-keep-away", 1, 100)):
    SCENARIOS[_game] = Scenario(_game, _n, _rounds, ("independent", "dnf", "lmf"), note="one 1000-step episode",
                                settings={"batch": 4})
CLASSIC_GAMES = ("matthew", "job", "manufacturing")


def plan(games: dict[str, int], seeds: list[int], out: Path, methods: list[str] | None,
         learner: str | None = None) -> list[tuple[str, str, RunConfig]]:
    runs = []  # seed outermost: an interrupted reproduction still has whole seeds
    for seed in seeds:
        for game, rounds in games.items():
            scenario = SCENARIOS[game]
            chosen = learner or scenario.learner
            suffix = "" if chosen == scenario.learner else f"_{chosen}"
            for variant in VARIANTS:
                if variant not in scenario.methods or (methods and variant not in methods):
                    continue
                cfg = RunConfig.of(env=scenario.env, agents=scenario.agents, rounds=rounds, seed=seed, progress=False,
                                   learner=chosen, game_options=scenario.options,
                                   out=str(out / "runs" / game / f"{variant}{suffix}_seed{seed}"),
                                   **{**scenario.settings, **VARIANTS[variant]})
                runs.append((game, variant, cfg))
    return runs


def rounds_done(path: Path) -> int:
    """Rounds of the finished run in ``path`` (0 if it has not finished)."""
    summary = path / "summary.json"
    return int(json.loads(summary.read_text()).get("rounds_completed", 0)) if summary.exists() else 0


def load(runs) -> dict[tuple[str, str], list[tuple[dict, list[dict]]]]:
    """The finished runs of the plan, with exactly the planned number of rounds."""
    results = defaultdict(list)
    for game, variant, cfg in runs:
        path = Path(cfg.out)
        if not (path / "summary.json").exists():
            continue
        summary = json.loads((path / "summary.json").read_text())
        if summary.get("rounds_completed", 0) == cfg.rounds:
            results[game, variant].append((summary, read_metrics(path)))
        else:
            print(f"left out {path}: {summary.get('rounds_completed', 0)} rounds, not {cfg.rounds}", flush=True)
    return results


def with_runs(results, games, variants) -> list[str]:
    """The games among ``games`` that have a finished run of one of ``variants``."""
    return [g for g in games if any(results.get((g, v)) for v in variants)]


def plot(results, games, variants, key, path: Path, title: str, ylabel: str) -> None:
    games = with_runs(results, games, variants)
    if not games:  # nothing of this figure was run: leave no empty figure behind
        return
    fig, axes = plt.subplots(1, len(games), figsize=(5 * len(games), 4), squeeze=False)
    for ax, game in zip(axes[0], games):
        for c, variant in enumerate(variants):
            runs = results.get((game, variant))
            if not runs:
                continue
            mean, half = mean_curve([m for _, m in runs], key, smoothing=0.1)
            x = np.arange(1, len(mean) + 1)
            ax.plot(x, mean, color=f"C{c}", label=f"{label(variant, runs)} (n={len(runs)})")
            ax.fill_between(x, mean - half, mean + half, color=f"C{c}", alpha=0.15)
        note = SCENARIOS[game].note
        ax.set(title=game, xlabel=f"round ({note} per game copy)" if note else "round", ylabel=ylabel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_participants(results, games, path: Path) -> None:
    """FPF's participants vs the others, and the same split under independent learners."""
    games = with_runs(results, games, ["fpf"])
    if not games:
        return
    fig, axes = plt.subplots(1, len(games), figsize=(5 * len(games), 4), squeeze=False)
    for ax, game in zip(axes[0], games):
        ind = label("independent", results.get((game, "independent")))
        lines = [("fpf", "participants_return", "FPF participants", "C2", "-"),
                 ("fpf", "nonparticipants_return", "FPF non-participants", "C3", "-"),
                 ("independent", "split_in_return", f"{ind}, same split: 'participants'", "C2", ":"),
                 ("independent", "split_out_return", f"{ind}, same split: the others", "C3", ":")]
        for variant, key, name, color, style in lines:
            runs = results.get((game, variant))
            if not runs:
                continue
            mean, half = mean_curve([m for _, m in runs], key, smoothing=0.1)
            x = np.arange(1, len(mean) + 1)
            ax.plot(x, mean, color=color, linestyle=style, label=name)
            ax.fill_between(x, mean - half, mean + half, color=color, alpha=0.12)
        ax.set(title=f"{game}: mean return per agent (95% CI)", xlabel="round", ylabel="mean return per agent")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_omega(results, games, path: Path) -> None:
    """π_ω's and π_ω̄'s own collective return on held-out games, against FPF's agents."""
    games = with_runs(results, games, ["fpf"])
    if not games:
        return
    fig, axes = plt.subplots(1, len(games), figsize=(5 * len(games), 4), squeeze=False)
    for ax, game in zip(axes[0], games):
        runs = results[game, "fpf"]  # with_runs kept only the games with FPF runs
        for key, label, color in (("collective_return", "FPF agents", "C0"), ("omega_eval_collective", "π_ω", "C1"),
                                  ("omega_bar_eval_collective", "π_ω̄", "C4")):
            rows = [[r for r in m if np.isfinite(r.get(key, np.nan))] for _, m in runs]
            if not all(rows):
                continue
            mean, half = mean_curve(rows, key, smoothing=0.1)
            x = np.array([r["round"] for r in rows[0][:len(mean)]])
            ax.plot(x, mean, color=color, label=label)
            ax.fill_between(x, mean - half, mean + half, color=color, alpha=0.12)
        ax.set(title=f"FPF on {game} (95% CI)", xlabel="round", ylabel="collective return")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def opt_in_table(results, games, out: Path) -> str:
    """Difference of differences per seed: (participants − others) under the FPF variant minus
    (the same split's difference) under independent learners, over the last quarter of rounds."""
    def gap(metrics, a, b):
        return last_quarter(metrics, a) - last_quarter(metrics, b)

    lines = ["| game | method | seeds | participants − others | independent learners on the same split | difference of differences |",
             "|---|---|---|---|---|---|"]
    for game in games:
        control = {s["seed"]: gap(m, "split_in_return", "split_out_return") for s, m in results.get((game, "independent"), [])}
        for variant in ("fpf", "fpf-everyone"):
            runs = [(s, m) for s, m in results.get((game, variant), []) if s["seed"] in control]
            if not runs:
                continue
            own = [gap(m, "participants_return", "nonparticipants_return") for _, m in runs]
            ctl = [control[s["seed"]] for s, _ in runs]
            lines.append(f"| {game} | {label(variant, runs)} | {len(runs)} | {fmt_mean_std(own)} | {fmt_mean_std(ctl)} | "
                         f"{fmt_mean_std([a - b for a, b in zip(own, ctl)])} |")
    text = "\n".join(lines) + ("\n\nMean return per agent over the last quarter of the rounds; cells: mean ± sample "
                               "std over seeds [± 95% CI half-width]. Seeds are paired: the participation set is "
                               "drawn from the seed, so FPF and the independent learners split the same agents.\n")
    (out / "opt_in.md").write_text(text)
    return text


PAIRS = (("fpf", "independent"), ("dnf", "independent"), ("fpf-everyone", "independent"), ("fpf", "dnf"),
         ("fpf", "fpf-everyone"), ("lmf", "independent"), ("lmf", "dnf"), ("fpf", "lmf"), ("avg", "independent"),
         ("min", "independent"))


def paired_table(results, games, out: Path) -> str:
    """Differences between two methods on the same seed (same games, same participation set),
    last quarter of the rounds: collective return and CV; mean ± sample std [95% CI] and the
    paired t-test's p-value (``paired.md``)."""
    from scipy import stats

    lines = ["| game | comparison | seeds | Δ collective | p | Δ CV | p |", "|---|---|---|---|---|---|---|"]
    for game in games:
        for a, b in PAIRS:
            runs_a = {s["seed"]: m for s, m in results.get((game, a), [])}
            runs_b = {s["seed"]: m for s, m in results.get((game, b), [])}
            seeds = sorted(set(runs_a) & set(runs_b))
            if len(seeds) < 2:
                continue
            cells = []
            for key in ("collective_return", "cv"):
                xa = [last_quarter(runs_a[k], key) for k in seeds]
                xb = [last_quarter(runs_b[k], key) for k in seeds]
                p = stats.ttest_rel(xa, xb).pvalue
                cells += [fmt_mean_std([x - y for x, y in zip(xa, xb)]), f"{p:.2g}"]
            la, lb = label(a, results[game, a]), label(b, results[game, b])
            lines.append(f"| {game} | {la} − {lb} | {len(seeds)} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + ("\n\nLast quarter of the rounds, per seed; cells: mean ± sample std of the per-seed "
                               "differences [± 95% CI half-width]; p: two-sided paired t-test.\n")
    (out / "paired.md").write_text(text)
    return text


def table(results, games, out: Path) -> str:
    cols = [("collective_return_last", "collective (last 10%)"), ("collective_return_avg", "collective (avg)"),
            ("cv_last", "CV (last 10%)"), ("cv_avg", "CV (avg)"), ("jain_last", "Jain (last)"),
            ("min_return_last", "min (last)"), ("participants_return_last", "participants (last)"),
            ("nonparticipants_return_last", "non-participants (last)")]
    lines, rows = [], []
    for game in games:
        lines += [f"\n### {game} ({SCENARIOS[game].agents} agents)\n", "| method | seeds | " + " | ".join(c for _, c in cols) + " |",
                  "|" + "---|" * (len(cols) + 2)]
        for variant in VARIANTS:
            runs = results.get((game, variant))
            if not runs:
                continue
            seeds = ",".join(str(s["seed"]) for s, _ in runs)
            cells = [fmt_mean_std([s.get(k) for s, _ in runs]) for k, _ in cols]
            lines.append(f"| {label(variant, runs)} | {seeds} | " + " | ".join(cells) + " |")
            for s, _ in runs:
                rows.append({"game": game, "method": label(variant, runs), "seed": s["seed"], **{k: s.get(k) for k, _ in cols}})
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["game", "method", "seed"] + [k for k, _ in cols])
        writer.writeheader()
        writer.writerows(rows)
    text = "\n".join(lines).strip() + "\n"
    (out / "results.md").write_text(text)
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--out", type=Path, default=Path("docs/results"))
    p.add_argument("--games", nargs="+", default=list(CLASSIC_GAMES), choices=list(SCENARIOS))
    p.add_argument("--rounds", type=int, nargs="+", default=None,
                   help="rounds per game, in the order of --games, or one number for all (default: each game's: "
                        + ", ".join(f"{g} {s.rounds}" for g, s in SCENARIOS.items()) + ")")
    p.add_argument("--methods", nargs="+", default=None, choices=list(VARIANTS),
                   help="default: each game's methods")
    p.add_argument("--learner", default=None, help="every agent's learner (ppo, dqn); default: each game's "
                   "(dqn on cleanup and harvest, as the paper's IDQN baselines; ppo elsewhere)")
    p.add_argument("--in-process", action="store_true",
                   help="run each configuration in this process, without Flower's transport (the same round loop "
                        "and metrics, tests/test_simulation.py; no Ray start-up per run)")
    p.add_argument("--report-only", action="store_true", help="only redraw figures and tables from finished runs")
    args = p.parse_args()
    if args.in_process:
        from federation.in_process import run_in_process as run
    else:
        run = simulate
    rounds = args.rounds or [SCENARIOS[g].rounds for g in args.games]
    if len(rounds) == 1:
        rounds = rounds * len(args.games)
    if len(rounds) != len(args.games):
        p.error(f"--rounds takes one number or one per game ({len(args.games)}), got {len(rounds)}")
    games = dict(zip(args.games, rounds))
    runs = plan(games, args.seeds, args.out, args.methods, args.learner)
    if not args.report_only:
        for k, (game, variant, cfg) in enumerate(runs, 1):
            path, done = Path(cfg.out), rounds_done(Path(cfg.out))
            if done >= cfg.rounds:
                continue
            resumable = (path / "checkpoint.pt").exists()
            if done and not resumable:  # finished shorter, without the state to extend it
                print(f"{path} has {done} rounds and no checkpoint: running it again", flush=True)
                shutil.rmtree(path)
            print(f"[{k}/{len(runs)}] {game} {variant} seed {cfg.seed}"
                  + (" (continuing from its checkpoint)" if resumable else ""), flush=True)
            run(cfg.replace(resume=True) if resumable else cfg)
    results = load(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    baselines = ["independent", "avg", "min", "ia", "fedavg", "fpf"]
    plot(results, list(games), baselines, "collective_return", args.out / "collective_return.png",
         "Collective return: FPF and the baselines", "collective return")
    plot(results, list(games), ["fpf", "lmf", "dnf"], "collective_return", args.out / "federations.png",
         "Collective return: FPF, LMF and D&F", "collective return")
    plot(results, ["matthew"], ["lmf", "lmf-fix", "lmf-dynamic"], "collective_return", args.out / "lmf_variants.png",
         "LMF variants on the Matthew Effect", "collective return")
    plot(results, list(games), baselines + ["dnf", "lmf"], "cv", args.out / "cv.png", "Coefficient of variation", "CV")
    plot_participants(results, list(games), args.out / "participants.png")
    plot_omega(results, list(games), args.out / "omega.png")
    print(table(results, list(games), args.out))
    print(opt_in_table(results, list(games), args.out))
    print(paired_table(results, list(games), args.out))


if __name__ == "__main__":
    main()
