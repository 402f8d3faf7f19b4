"""Run one configuration in Flower's simulation runtime (one process, Ray actors)."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from federation.config import RunConfig
from federation.server_app import RunOutcome, make_server_app

if TYPE_CHECKING:
    from flwr.app import ConfigRecordValues


class RunFailed(RuntimeError):
    """The ServerApp stopped with an error; the message says why."""


def simulate(cfg: RunConfig, verbose: bool = False) -> dict:
    """Run ``cfg`` with one virtual SuperNode per agent; return the run's summary."""
    from flwr.simulation import run_simulation

    from clients.client_app import app as client_app

    cpus = os.cpu_count() or 1
    outcome = RunOutcome()
    backend_config: dict[str, dict[str, ConfigRecordValues]] = {
        "client_resources": {"num_cpus": cfg.execution.client_cpus, "num_gpus": 0.0},
        "init_args": {"num_cpus": cpus, "include_dashboard": False, "log_to_driver": verbose},
    }
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    if not verbose:
        for name in ("flwr", "ray"):
            logging.getLogger(name).setLevel(logging.ERROR)
    run_simulation(server_app=make_server_app(cfg, outcome), client_app=client_app,
                   num_supernodes=cfg.agents, backend_config=backend_config, verbose_logging=verbose)
    if outcome.error is not None:
        raise RunFailed(f"{type(outcome.error).__name__}: {outcome.error}") from outcome.error
    if not outcome.summary:
        raise RunFailed("the simulation ended without finishing the run (see the log above)")
    return outcome.summary
