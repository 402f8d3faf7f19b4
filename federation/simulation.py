"""Run one configuration in Flower's simulation runtime (one process, Ray actors).

Faults are not silent: an agent's worker that dies is restarted by Ray (the agent trains
again from its stored learner at the next round; the loop ends the run with an error if
an agent misses more rounds than allowed), the first Ctrl-C stops the run cleanly
(``RunInterrupted``, after its files are written), and every process Ray started is ended
by PID at the end, or by the next run if this one was killed (``federation.processes``).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

from federation import processes
from federation.config import RunConfig, client_gpus
from federation.server_app import RunOutcome, StopRequest, make_server_app

if TYPE_CHECKING:
    from flwr.app import ConfigRecordValues


class RunFailed(RuntimeError):
    """The ServerApp stopped with an error; the message says why."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run; its files hold the rounds done (``summary``) and
    ``run_sim.py --resume OUT`` continues it."""

    def __init__(self, summary: dict):
        super().__init__(f"stopped after round {summary.get('rounds_completed', 0)}")
        self.summary = summary


def simulate(cfg: RunConfig, verbose: bool = False) -> dict:
    """Run ``cfg`` with one virtual SuperNode per agent, or per ``--agents-per-node`` K
    agents (ceil(N/K) nodes; node p holds agents pK .. min(pK + K, N) - 1); return the
    run's summary.

    Raises RunFailed when the run failed (AgentsLost among the reasons) and, after a
    Ctrl-C, RunInterrupted once the rounds done are saved and Ray's processes ended."""
    from flwr.simulation import run_simulation

    from clients.client_app import app as client_app

    for out, pids in processes.cleanup():
        print(f"note: ended {len(pids)} processes left behind by an earlier run into {out} (PIDs "
              f"{', '.join(map(str, pids))})", file=sys.stderr)
    cpus = os.cpu_count() or 1
    nodes = math.ceil(cfg.agents / cfg.execution.agents_per_node)
    outcome = RunOutcome()
    init_args: dict[str, ConfigRecordValues] = {"num_cpus": cpus, "include_dashboard": False,
                                                "log_to_driver": verbose}
    backend_config: dict[str, dict[str, ConfigRecordValues]] = {
        # max_restarts: Ray starts a new worker in place of one that died, so its agents
        # train again (from their stored learners) at the next round
        "client_resources": {"num_cpus": cfg.execution.client_cpus,
                             "num_gpus": client_gpus(cfg.execution.device, nodes), "max_restarts": -1,
                             "max_task_retries": 3},
        "init_args": init_args,
    }
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    if not verbose:
        for name in ("flwr", "ray"):
            logging.getLogger(name).setLevel(logging.ERROR)
    registry = processes.Registry(cfg.out)
    stop = StopRequest()
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT)
    try:
        if in_main:  # Ray's processes inherit ignoring Ctrl-C: the run ends them itself, in order
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        _start_ray(init_args)
        registry.update()
        if in_main:
            signal.signal(signal.SIGINT, _on_ctrl_c(stop, registry))

        def stopped_now() -> None:  # the dropped round's workers are still busy: end them
            processes.end({p: t for p, t in registry.update().items() if p in stop.worker_pids}, grace=1.0)

        run_simulation(server_app=make_server_app(cfg, outcome, stop=stop, on_round=registry.update,
                                                  on_stopped=stopped_now),
                       client_app=client_app, num_supernodes=nodes, backend_config=backend_config,
                       verbose_logging=verbose)
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
        _stop_ray()
        registry.close()
    if outcome.error is not None:
        raise RunFailed(f"{type(outcome.error).__name__}: {outcome.error}") from outcome.error
    if outcome.summary.get("interrupted"):
        raise RunInterrupted(outcome.summary)
    if not outcome.summary:
        raise RunFailed("the simulation ended without finishing the run (see the log above)")
    return outcome.summary


def _start_ray(init_args: dict) -> None:
    """Start Ray as Flower's RayBackend would (which then uses it), so that its processes
    are started here, under this process's signal settings."""
    import ray

    if ray.is_initialized():
        return
    pythonpath = os.pathsep.join(sys.path)
    if os.environ.get("PYTHONPATH"):
        pythonpath = f"{pythonpath}{os.pathsep}{os.environ['PYTHONPATH']}"
    os.environ["PYTHONPATH"] = pythonpath
    ray.init(runtime_env={"env_vars": {"PYTHONPATH": pythonpath}}, **init_args)


def _stop_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _on_ctrl_c(stop: StopRequest, registry: processes.Registry):
    """The SIGINT handler of a run: the first two requests go to the round loop (see
    StopRequest); a third ends Ray's processes by PID and exits at once with 130."""
    count = 0

    def handler(signum, frame) -> None:
        nonlocal count
        count += 1
        if count >= 3:
            print("\nCtrl-C a third time: ending the run's processes and exiting now", file=sys.stderr, flush=True)
            registry.close(grace=0.5)
            os._exit(130)
        print(f"\nCtrl-C: {stop.request()}", file=sys.stderr, flush=True)

    return handler
