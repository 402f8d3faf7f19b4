#!/usr/bin/env python
"""Peak memory of a command and every process it starts (Ray's workers included).

    python benchmarks/peak_memory.py -- python run_sim.py --env cleanup --agents 5 \
        --strategy fpf --learner dqn --rounds 3 --out /tmp/cleanup_dqn

Polls the process tree every ``--interval`` seconds (Linux ``/proc``) and sums each
process's proportional set size (PSS: shared pages such as torch's libraries are split
among the processes sharing them, so the sum is what the run really occupies), then prints
the peak of that sum, the peak of the plain RSS sum (which counts shared pages once per
process, an upper bound) and the largest single process. The command's exit code is
passed on.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def children() -> dict[int, list[int]]:
    """Every live process's children, from /proc/*/stat."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    tree, out, todo = children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(tree.get(p, []))
    return out


def memory_kib(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of one process in KiB; (0, 0) if it is gone or unreadable."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
        return int(fields["Pss"].split()[0]), int(fields["Rss"].split()[0])
    except (OSError, KeyError, ValueError):
        return 0, 0


def measure(command: list[str], interval: float = 0.5, **popen) -> tuple[int, int, int, int]:
    """Run ``command`` to its end; (exit code, peak PSS sum, peak RSS sum, largest process's
    peak RSS), sizes in KiB, polled every ``interval`` seconds over its process tree."""
    proc = subprocess.Popen(command, env=popen.pop("env", os.environ), **popen)
    peak_pss = peak_rss = peak_one = 0
    while proc.poll() is None:
        sizes = [memory_kib(pid) for pid in descendants(proc.pid)]
        peak_pss = max(peak_pss, sum(s[0] for s in sizes))
        peak_rss = max(peak_rss, sum(s[1] for s in sizes))
        peak_one = max([peak_one] + [s[1] for s in sizes])
        time.sleep(interval)
    return proc.returncode, peak_pss, peak_rss, peak_one


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = p.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("give the command to measure after --")
    returncode, peak_pss, peak_rss, peak_one = measure(command, args.interval)
    mib = 1024
    print(f"peak memory (PSS, whole process tree): {peak_pss / mib:.0f} MiB; RSS sum {peak_rss / mib:.0f} MiB; "
          f"largest process {peak_one / mib:.0f} MiB", flush=True)
    return returncode


if __name__ == "__main__":
    sys.exit(main())
