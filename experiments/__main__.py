"""python -m experiments run|status|report CAMPAIGN.toml; python -m experiments verdicts --since REVISION

    python -m experiments run experiments/campaigns/fpf-ssd-3.toml --jobs 2
    python -m experiments run experiments/campaigns/fpf-ssd-3.toml --only-scenarios harvest-3 --seeds 0 --dry-run
    python -m experiments status experiments/campaigns/fpf-ssd-3.toml
    python -m experiments status --all
    python -m experiments report experiments/campaigns/fpf-ssd-3.toml
    python -m experiments report --all        # every campaign, then docs/results/CLAIMS.md
    python -m experiments verdicts --since 4dc520a   # how the verdicts moved since that commit

Paths in a campaign (``out``) are relative to the working directory: run from the
repository's root.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from experiments.campaign import DIRECTORY, CampaignError, load


def _run(args) -> int:
    from experiments.engine import run_campaign

    campaign = load(args.campaign)
    if campaign.runner == "simulation" and args.jobs > 1:
        print("note: runner 'simulation' starts Ray for every run; with --jobs > 1 several start side by side",
              flush=True)
    executor = None
    if args.ray_address and not args.dry_run:
        from experiments.ray_cluster import RayClusterError, RayExecutor

        if campaign.runner != "in-process":
            raise CampaignError(f"{args.campaign}: --ray-address runs the 'in-process' runner only, not "
                                f"{campaign.runner!r}")
        try:
            executor = RayExecutor(args.ray_address, jobs=args.jobs if args.jobs > 1 else None,
                                   excludes=[campaign.out])
        except RayClusterError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    try:
        report = run_campaign(campaign, jobs=executor.jobs if executor else args.jobs, scenarios=args.only_scenarios,
                              methods=args.only_methods, seeds=args.seeds, retry_failed=args.retry_failed,
                              force=args.force, dry_run=args.dry_run, max_attempts=args.max_attempts,
                              executor=executor)
    finally:
        if executor is not None:
            executor.stop()
            print(executor.where(), end="", flush=True)
    if report.interrupted:
        return 130
    if args.dry_run:
        return 0
    failed = [(k, o) for k, o in report.outcomes.items() if not o.ok]
    for (scenario, method, seed), outcome in failed:
        print(f"failed: {scenario} {method} seed {seed}: {outcome.reason}", flush=True)
    left = len(failed) + len(report.blocked) + len(report.skipped)
    print(f"campaign {campaign.name}: " + ("every selected run is done" if not left else
                                           f"{left} run(s) not done (python -m experiments status {args.campaign})"),
          flush=True)
    return 0 if not left else 1


def _status(args) -> int:
    from experiments import status

    if args.all:
        paths = sorted(DIRECTORY.glob("*.toml"))
        if not paths:
            print(f"no campaigns in {DIRECTORY}")
            return 0
    elif args.campaign is None:
        raise CampaignError("status: give a campaign file, or --all")
    else:
        paths = [Path(args.campaign)]
    code = 0
    for k, path in enumerate(paths):
        try:
            campaign = load(path)
        except CampaignError as err:
            if not args.all:
                raise
            print(f"{path}: cannot be read: {err}\n", flush=True)
            code = 2
            continue
        plan = campaign.plan(args.only_scenarios, args.only_methods, args.seeds) if not args.all else campaign.plan()
        print(f"{'' if k == 0 else chr(10)}campaign {campaign.name} ({path}), runs under {campaign.out}")
        print(status.table(status.of_plan(plan)), end="", flush=True)
    return code


def _report(args) -> int:
    try:
        module = importlib.import_module("experiments.report")
    except ModuleNotFoundError as err:
        if err.name != "experiments.report":
            raise
        print("report: not available yet", file=sys.stderr)
        return 2
    jobs = args.report_jobs or module.default_jobs()
    if args.all:
        return module.report_all(jobs=jobs)
    if args.campaign is None:
        raise CampaignError("report: give a campaign file, or --all")
    result = module.report(load(args.campaign), jobs=jobs)
    return result if isinstance(result, int) else 0


def _verdicts(args) -> int:
    from experiments import verdicts
    from experiments.report import CLAIMS_FILE

    if (args.since is None) == (args.old is None):
        raise CampaignError("verdicts: give one of --since REVISION and --old FILE")
    new_path, new_name = (Path(args.new), args.new) if args.new else (CLAIMS_FILE, verdicts.LEDGER)
    try:
        if args.since is not None:
            old_text, old_name = verdicts.at_revision(args.since), f"{verdicts.LEDGER} at {args.since}"
        else:
            old_text, old_name = Path(args.old).read_text(encoding="utf-8"), args.old
        new_text = new_path.read_text(encoding="utf-8")
        old, new = verdicts.parse(old_text, old_name), verdicts.parse(new_text, new_name)
    except (OSError, verdicts.VerdictsError) as err:
        raise CampaignError(f"verdicts: {err}") from err
    print(verdicts.markdown(old, new, old_name=old_name, new_name=new_name, every=args.all), end="", flush=True)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def selection(q: argparse.ArgumentParser) -> None:
        q.add_argument("--only-scenarios", nargs="+", metavar="SCENARIO", help="only these scenarios")
        q.add_argument("--only-methods", nargs="+", metavar="METHOD", help="only these methods")
        q.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="only these seeds (of the campaign's)")

    run = sub.add_parser("run", help="run what is missing or partial (partial runs continue from their checkpoint)")
    run.add_argument("campaign", help="the campaign's TOML file")
    run.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process (default 1: in "
                                                         "this process)")
    run.add_argument("--ray-address", metavar="ADDR",
                     help="run each run as a task on the Ray cluster at ADDR (experiments/ray_cluster.py); --jobs: "
                          "runs in flight (default: as many as the cluster's CPUs)")
    selection(run)
    run.add_argument("--retry-failed", action="store_true",
                     help="run failed runs again (each at most max_attempts times in all, the campaign's, default 2)")
    run.add_argument("--max-attempts", type=int, default=None, help="override the campaign's max_attempts")
    run.add_argument("--force", action="store_true",
                     help="run stale runs (a directory with other settings) again from scratch, overwriting them")
    run.add_argument("--dry-run", action="store_true", help="say what would run, run nothing")
    run.set_defaults(handler=_run)

    stat = sub.add_parser("status", help="a table of every run: scenario, method, seed, state, rounds, reason")
    stat.add_argument("campaign", nargs="?", help="the campaign's TOML file")
    stat.add_argument("--all", action="store_true", help=f"every campaign in {DIRECTORY}")
    selection(stat)
    stat.set_defaults(handler=_status)

    rep = sub.add_parser("report", help="tables and figures of the finished runs (experiments/report.py)")
    rep.add_argument("campaign", nargs="?", help="the campaign's TOML file")
    rep.add_argument("--all", action="store_true", help=f"every campaign in {DIRECTORY}, then docs/results/CLAIMS.md")
    rep.add_argument("--jobs", type=int, default=None, dest="report_jobs", help="processes for the bootstraps (default: the CPUs, at most 8)")
    rep.set_defaults(handler=_report)

    ver = sub.add_parser("verdicts", help="how the claims' verdicts moved between two versions of "
                                          "docs/results/CLAIMS.md (experiments/verdicts.py)")
    ver.add_argument("--since", metavar="REVISION", help="the old ledger: docs/results/CLAIMS.md at this git revision")
    ver.add_argument("--old", metavar="FILE", help="the old ledger: this file")
    ver.add_argument("--new", metavar="FILE", help="the new ledger (default: docs/results/CLAIMS.md)")
    ver.add_argument("--all", action="store_true", help="list every claim, not only those that changed")
    ver.set_defaults(handler=_verdicts)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "jobs", 1) < 1:
        parser().error("--jobs must be >= 1")
    if (getattr(args, "max_attempts", None) or 1) < 1:
        parser().error("--max-attempts must be >= 1")
    try:
        return args.handler(args)
    except CampaignError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
