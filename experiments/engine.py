"""Run a campaign: every planned run that is missing or partial, partial ones continued
from their checkpoints, ``jobs`` at a time.

The pieces, so that another executor (a Ray cluster) plugs in:

- :class:`Task`: one run to execute, all of it picklable (the configuration travels as
  its JSON);
- :func:`execute`: runs a Task in the calling process and returns an :class:`Outcome`;
  a run that raises leaves failure.json (the one-line reason, the traceback's tail, the
  attempt) and returns ``ok=False``. A Ray task can simply call it;
- an executor: ``submit(task) -> concurrent.futures.Future[Outcome]`` and
  ``stop(interrupted)``. :class:`InlineExecutor` (``jobs`` 1: in this process) and
  :class:`PoolExecutor` (``jobs`` > 1: a ProcessPoolExecutor of spawned processes);
  :func:`make_executor` picks one;
- :func:`run_campaign`: decides what to run (:func:`decide`, from experiments/status.py),
  schedules it (respecting ``needs``), shows progress and returns a :class:`Report`.

Ctrl-C stops cleanly: no new run starts, the running ones are stopped (their last
checkpoint and metrics.csv are whole: both are written atomically), and no failure
marker is written for them; the next ``run`` continues them.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing
import os
import shutil
import signal
import sys
import time
import traceback as tb
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, TextIO

from experiments import status as st
from experiments.campaign import Campaign, PlannedRun

__all__ = ["Task", "Outcome", "execute", "InlineExecutor", "PoolExecutor", "make_executor", "decide", "Decision",
           "run_campaign", "Report", "RUNNERS"]


# ---------------------------------------------------------------------- one run
def _run_in_process(cfg) -> dict:
    from federation.in_process import run_in_process

    return run_in_process(cfg, checkpoints=True)


def _simulate(cfg) -> dict:
    from federation.simulation import simulate

    return simulate(cfg)


#: runner name -> function(RunConfig) -> summary; looked up when a run starts
RUNNERS: dict[str, Callable] = {"in-process": _run_in_process, "simulation": _simulate}


@dataclass(frozen=True)
class Task:
    """One run to execute, picklable: ``config`` is the RunConfig's JSON (``resume`` set
    when it continues from its checkpoint); ``fresh``: empty the run directory first."""

    scenario: str
    method: str
    seed: int
    config: str
    runner: str = "in-process"
    fresh: bool = False
    attempt: int = 1
    keep_state: bool = True

    @property
    def name(self) -> str:
        return f"{self.scenario} {self.method} seed {self.seed}"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    wall_s: float
    rounds: int = 0
    reason: str = ""
    traceback: str = ""
    attempt: int = 1


def _one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else type(err).__name__


def execute(task: Task) -> Outcome:
    """Run ``task`` here. A run that raises (Exception; not KeyboardInterrupt) leaves
    failure.json in its directory and returns ``ok=False``; a finished one removes it."""
    import logging

    import torch

    from federation.config import RunConfig
    from federation.results import discard_state

    logging.getLogger("fedgames").setLevel(logging.ERROR)
    start = time.perf_counter()
    out = None
    try:
        cfg = RunConfig.from_json(task.config)
        out = Path(cfg.out)
        if task.fresh and out.exists():
            here = Path.cwd().resolve()
            if out.resolve() in (here, *here.parents):
                raise RuntimeError(f"refusing to empty {out}: it holds the working directory")
            shutil.rmtree(out)
        torch.set_num_threads(cfg.execution.torch_threads)
        summary = RUNNERS[task.runner](cfg)
    except Exception as err:  # noqa: BLE001 - any failure of the run is reported, the campaign goes on
        reason = _one_line(err)
        trace = "".join(tb.format_exception(err))[-4000:]
        if out is None:
            out = Path(_out_of(task.config))
        st.write_failure(out, reason, trace, task.attempt)
        return Outcome(False, time.perf_counter() - start, reason=reason, traceback=trace, attempt=task.attempt)
    st.clear_failure(out)
    if not task.keep_state:
        discard_state(out)
    return Outcome(True, time.perf_counter() - start, int(summary.get("rounds_completed", 0)), attempt=task.attempt)


def _out_of(config_json: str) -> str:
    import json

    return json.loads(config_json)["out"]


# ---------------------------------------------------------------------- executors
class Executor(Protocol):
    """Where runs execute: ``jobs`` at once; ``submit`` returns a future of the Outcome
    (a Ray executor: ``ray.remote(execute).remote(task).future()``); ``stop(interrupted)``
    ends it (``interrupted``: Ctrl-C, stop the running ones now). An executor whose
    ``submit`` returns only when the run is over sets ``blocking = True``."""

    jobs: int

    def submit(self, task: Task) -> cf.Future: ...

    def stop(self, interrupted: bool = False) -> None: ...


class InlineExecutor:
    """One run at a time, in this process (``--jobs 1``): ``submit`` runs it and returns a
    finished future."""

    jobs = 1
    blocking = True  # submit returns when the run has finished

    def submit(self, task: Task) -> cf.Future:
        future: cf.Future = cf.Future()
        future.set_result(execute(task))
        return future

    def stop(self, interrupted: bool = False) -> None:
        pass


def _worker_init() -> None:
    """A pool worker: Ctrl-C is the engine's to handle; one torch thread per run."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


class PoolExecutor:
    """``jobs`` runs at once, each in its own process (spawned: no state inherited)."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self._pool = self._new()

    def _new(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_worker_init)

    def submit(self, task: Task) -> cf.Future:
        return self._pool.submit(execute, task)

    def renew(self) -> None:
        """A new pool after a worker died (the old one is broken)."""
        self.stop(interrupted=True)
        self._pool = self._new()

    def stop(self, interrupted: bool = False) -> None:
        if not interrupted:
            self._pool.shutdown(wait=True)
            return
        # the workers ignore SIGINT: end the ones this pool started, then collect them
        processes = list(getattr(self._pool, "_processes", {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=10)


def make_executor(jobs: int = 1) -> Executor:
    """The local executor for ``jobs`` runs at once."""
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    return InlineExecutor() if jobs == 1 else PoolExecutor(jobs)


# ---------------------------------------------------------------------- what to do
@dataclass(frozen=True)
class Decision:
    run: PlannedRun
    status: st.RunStatus
    action: str  # start, resume, restart, skip
    why: str = ""

    @property
    def todo(self) -> bool:
        return self.action != "skip"


def decide(run: PlannedRun, status: st.RunStatus, *, retry_failed: bool = False, force: bool = False,
           max_attempts: int = 2) -> Decision:
    """What the engine does with ``run`` in ``status``: ``start`` (from nothing), ``resume``
    (from its checkpoint), ``restart`` (its directory emptied first) or ``skip``."""
    state = status.state
    if state is st.State.DONE:
        return Decision(run, status, "skip", "done")
    if state is st.State.STALE:
        if force:
            return Decision(run, status, "restart", f"--force: {status.reason}")
        return Decision(run, status, "skip", f"stale ({status.reason}); --force runs it again from scratch")
    if state is st.State.FAILED:
        if not retry_failed:
            return Decision(run, status, "skip", f"failed ({status.reason}); --retry-failed tries it again")
        if status.attempts >= max_attempts:
            return Decision(run, status, "skip", f"failed {status.attempts} times, the most allowed "
                                                  f"(max_attempts {max_attempts}): {status.reason}")
    if status.resumable:
        return Decision(run, status, "resume", f"from round {status.rounds_done}")
    if state is st.State.MISSING and not run.out.exists():
        return Decision(run, status, "start")
    return Decision(run, status, "restart", "no checkpoint to continue from" if status.rounds_done else "")


def task_of(decision: Decision, campaign: Campaign) -> Task:
    run, status = decision.run, decision.status
    cfg = run.cfg.validated() if run.deferred else run.cfg
    # a restart empties the run directory (Task.fresh): it overwrites the run there on purpose
    cfg = cfg.replace(progress=False, resume=decision.action == "resume", overwrite=decision.action == "restart")
    attempt = status.attempts + 1 if status.state is st.State.FAILED else 1
    return Task(run.scenario, run.method, run.seed, cfg.to_json(), campaign.runner,
                fresh=decision.action == "restart", attempt=attempt, keep_state=campaign.keep_state)


# ---------------------------------------------------------------------- progress
def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """One line per finished run; a status line "done D / running R / left L, ETA ..."
    (the ETA from the mean time of the runs finished so far), rewritten in place on a
    terminal, printed after each finished run otherwise."""

    def __init__(self, total: int, jobs: int, stream: TextIO | None = None):
        self.total, self.jobs = total, jobs
        self.stream = stream or sys.stdout
        self.done = self.failed = self.running = 0
        self.times: list[float] = []
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._status_shown = False

    @property
    def left(self) -> int:
        return self.total - self.done - self.failed - self.running

    def eta(self) -> float:
        if not self.times:
            return math.nan
        return sum(self.times) / len(self.times) * (self.left + self.running) / max(1, self.jobs)

    def status_line(self) -> str:
        failed = f" / failed {self.failed}" if self.failed else ""
        mean = f" (mean {_duration(sum(self.times) / len(self.times))} a run)" if self.times else ""
        return (f"done {self.done}{failed} / running {self.running} / left {self.left}, "
                f"ETA {_duration(self.eta())}{mean}")

    def _print(self, text: str) -> None:
        if self.tty and self._status_shown:
            self.stream.write("\r\x1b[2K")
            self._status_shown = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def show_status(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.status_line())
            self._status_shown = True
            self.stream.flush()
        else:
            self._print(self.status_line())

    def started(self, task: Task, why: str) -> None:
        self.running += 1

    def finished(self, task: Task, outcome: Outcome) -> None:
        self.running -= 1
        k = self.done + self.failed + 1
        if outcome.ok:
            self.done += 1
            self.times.append(outcome.wall_s)
            self._print(f"[{k}/{self.total}] {task.name}: done, {outcome.rounds} rounds in {_duration(outcome.wall_s)}")
        else:
            self.failed += 1
            self._print(f"[{k}/{self.total}] {task.name}: FAILED (attempt {outcome.attempt}): {outcome.reason}")

    def note(self, text: str) -> None:
        self._print(text)

    def close(self) -> None:
        if self.tty and self._status_shown:
            self.stream.write("\n")
            self.stream.flush()
            self._status_shown = False


# ---------------------------------------------------------------------- the loop
@dataclass
class Report:
    """What a ``run`` did: the decisions, and per executed run its outcome."""

    decisions: list[Decision]
    outcomes: dict[tuple[str, str, int], Outcome] = field(default_factory=dict)
    blocked: dict[tuple[str, str, int], str] = field(default_factory=dict)  # run -> what it waits for
    interrupted: bool = False

    @property
    def failed(self) -> list[tuple[str, str, int]]:
        return [k for k, o in self.outcomes.items() if not o.ok]

    @property
    def skipped(self) -> list[Decision]:
        return [d for d in self.decisions if not d.todo and d.status.state is not st.State.DONE]

    @property
    def complete(self) -> bool:
        """Every planned run is done now."""
        return (not self.interrupted and not self.failed and not self.blocked and not self.skipped)


def run_campaign(campaign: Campaign, *, jobs: int = 1, scenarios: list[str] | None = None,
                 methods: list[str] | None = None, seeds: list[int] | None = None, retry_failed: bool = False,
                 force: bool = False, dry_run: bool = False, executor: Executor | None = None,
                 stream: TextIO | None = None, max_attempts: int | None = None) -> Report:
    """Run what the campaign still needs (the part chosen by ``scenarios``, ``methods``,
    ``seeds``). ``executor``: where the runs execute (default :func:`make_executor`)."""
    stream = stream or sys.stdout
    plan = campaign.plan(scenarios, methods, seeds)
    attempts = campaign.max_attempts if max_attempts is None else max_attempts
    decisions = [decide(run, st.check(run.cfg), retry_failed=retry_failed, force=force, max_attempts=attempts)
                 for run in plan]
    report = Report(decisions)
    todo = [d for d in decisions if d.todo]
    width = executor.jobs if executor is not None else min(jobs, len(todo))
    print(f"campaign {campaign.name}: {len(plan)} runs planned, {sum(d.status.state is st.State.DONE for d in decisions)}"
          f" done, {len(todo)} to run" + (f" ({width} at a time)" if todo else ""), file=stream, flush=True)
    for d in decisions:
        if not d.todo and d.status.state is not st.State.DONE:
            print(f"  skipping {d.run.name}: {d.why}", file=stream, flush=True)
    if dry_run:
        for d in todo:
            print(f"  would {d.action} {d.run.name}" + (f" ({d.why})" if d.why else "") + f"  -> {d.run.out}",
                  file=stream, flush=True)
        return report
    if not todo:
        return report

    # which runs are finished, for ``needs``: the plan's, and those outside the selection
    finished = {d.run.key for d in decisions if d.status.state is st.State.DONE}
    hopeless = {d.run.key: d.why for d in decisions if not d.todo and d.status.state is not st.State.DONE}
    for d in todo:
        for need in d.run.needs:
            if need not in finished and need not in {x.run.key for x in decisions}:
                other = campaign.planned(*need)
                if st.check(other.cfg).state is st.State.DONE:
                    finished.add(need)
                else:
                    hopeless[need] = "not finished, and not part of this selection"

    executor = executor or make_executor(width)
    progress = Progress(len(todo), executor.jobs, stream)
    waiting = list(todo)
    running: dict[cf.Future, Task] = {}
    changed = True  # show the status line once the first runs have started
    blocking = getattr(executor, "blocking", False)
    try:
        while waiting or running:
            # start what is ready, in plan order, up to the executor's width
            for d in list(waiting):
                if len(running) >= executor.jobs:
                    break
                blocked = [n for n in d.run.needs if n in hopeless]
                if blocked:
                    waiting.remove(d)
                    report.blocked[d.run.key] = ", ".join(f"{s} {m} seed {k}" for s, m, k in blocked)
                    hopeless[d.run.key] = "needs a run that did not finish"
                    progress.total -= 1
                    progress.note(f"not running {d.run.name}: it needs {report.blocked[d.run.key]}, "
                                  "which did not finish")
                    continue
                if any(n not in finished for n in d.run.needs):
                    continue
                waiting.remove(d)
                try:
                    task = task_of(d, campaign)
                except Exception as err:  # noqa: BLE001 - e.g. a deferred configuration that is still invalid
                    outcome = Outcome(False, 0.0, reason=_one_line(err), attempt=d.status.attempts + 1)
                    st.write_failure(d.run.out, outcome.reason, "", outcome.attempt)
                    progress.running += 1
                    _record(report, progress, finished, hopeless, d.run.key, _task_stub(d), outcome)
                    continue
                progress.started(task, d.why)
                if blocking and changed or progress.tty:  # submit returns when the run is over: say it first
                    progress.show_status()
                    changed = False
                future = executor.submit(task)
                running[future] = task
            if changed:  # after each finished run, once its successors have started
                progress.show_status()
            changed = False
            if not running:
                if waiting:  # nothing can start: what is left waits on runs that will not finish
                    for d in waiting:
                        report.blocked[d.run.key] = "runs it needs did not finish"
                        progress.note(f"not running {d.run.name}: runs it needs did not finish")
                    waiting.clear()
                break
            finished_now, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            broken = False
            for future in finished_now:
                task = running.pop(future)
                try:
                    outcome = future.result()
                except cf.process.BrokenProcessPool as err:
                    broken = True
                    outcome = Outcome(False, 0.0, reason=f"the worker process died ({err}); killed for memory?",
                                      attempt=task.attempt)
                    st.write_failure(_out_of(task.config), outcome.reason, "", task.attempt)
                except Exception as err:  # noqa: BLE001 - an executor's own error
                    outcome = Outcome(False, 0.0, reason=_one_line(err), attempt=task.attempt)
                    st.write_failure(_out_of(task.config), outcome.reason, "", task.attempt)
                if outcome.ok:
                    after = st.check(campaign.planned(task.scenario, task.method, task.seed).cfg)
                    if after.state is not st.State.DONE:
                        outcome = Outcome(False, outcome.wall_s, outcome.rounds, attempt=task.attempt,
                                          reason=f"the run ended {after.state} ({after.progress} rounds"
                                                 + (f": {after.reason}" if after.reason else "") + ")")
                        st.write_failure(_out_of(task.config), outcome.reason, "", task.attempt)
                _record(report, progress, finished, hopeless, (task.scenario, task.method, task.seed), task, outcome)
                changed = True
            if broken and isinstance(executor, PoolExecutor):
                executor.renew()
        if changed:
            progress.show_status()
    except KeyboardInterrupt:
        report.interrupted = True
        progress.close()
        print(f"\ninterrupted: stopping {progress.running} running run(s); they continue from their last "
              "checkpoint on the next `run`", file=stream, flush=True)
        executor.stop(interrupted=True)
        return report
    finally:
        progress.close()
    executor.stop()
    return report


def _task_stub(d: Decision) -> Task:
    return Task(d.run.scenario, d.run.method, d.run.seed, "{}")


def _record(report: Report, progress: Progress, finished: set, hopeless: dict, key, task: Task,
            outcome: Outcome) -> None:
    report.outcomes[key] = outcome
    if outcome.ok:
        finished.add(key)
    else:
        hopeless[key] = outcome.reason
    progress.finished(task, outcome)
