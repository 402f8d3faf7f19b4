"""Run a campaign's runs on an existing Ray cluster: ``python -m experiments run CAMPAIGN.toml
--ray-address ADDR``.

:class:`RayExecutor` is an executor of experiments/engine.py (``jobs``, ``submit(task) ->
Future[Outcome]``, ``stop(interrupted)``): each run becomes one Ray task that declares the
CPUs it needs (``num_cpus`` = the run's ``client-cpus``; the run's torch threads are set to
that number, at least 1) and runs :func:`experiments.engine.execute` on whichever node Ray
picks (``SPREAD`` scheduling: the runs are spread over the nodes). On that node the task

1. makes a temporary directory ROOT and works in it (``chdir``): the run writes to
   ROOT/<the run's ``out``>, so its ``out`` keeps its relative value and config.json and
   checkpoint.pt are the same as a local run's (a checkpoint names its ``out``: only a run
   of the same ``out`` may continue it). An absolute ``out`` (or one with ``..``) is mapped
   to ROOT/elsewhere/... and written back to the planned path in config.json and
   checkpoint.pt before the run's files leave the node;
2. unpacks what the driver shipped: the run directory of a partial run (so it continues
   from its checkpoint; a run started afresh ships nothing) and the input files its
   settings name by a relative path (e.g. another run's policies.pt for ``mediator-policy``),
   at the same relative paths;
3. runs it (``execute``: a run that raises leaves failure.json, with its one-line reason),
   then returns the whole run directory (config.json, metrics.csv, summary.json,
   checkpoint.pt, agents/, policies, plots, failure.json) as a tar.gz blob, with the
   node's id (``ray.get_runtime_context().get_node_id()``) and hostname, and removes ROOT.

The driver unpacks the blob beside the campaign's run directory and swaps it in (rename
the old one away, rename the new one in, remove the old one), so a run directory is never
half-written and the results live where the campaign lives. :attr:`RayExecutor.placements`
records where each run executed. A task that fails in Ray itself (its worker died, killed
for memory; its node died; the code could not be set up on the node) is reported to the
engine like a local failure: failure.json in the run directory with the one-line reason,
and an ``Outcome`` with ``ok=False``. Ray does not retry a run (``max_retries=0``): the
engine's own ``--retry-failed`` / ``max_attempts`` decide. Each run gets a fresh worker
process (``max_calls=1``: no state of one run, e.g. the client app's cache of learners or
torch's thread setting, reaches the next).

How the code reaches the nodes, two ways:

- ``ship_code=True`` (the default): the driver uploads this repository as the job's
  ``runtime_env={"working_dir": <repo root>, "excludes": [...]}``, without .git, caches,
  results (docs/results, runs/, the campaign's ``out``) and what .gitignore names; every
  worker runs in an unpacked copy of it. The nodes need only the dependencies (the same
  Python, torch, flwr, ... as ``pip install -e .`` installs), not the project's code; the
  code is the driver's, as it is now (uncommitted edits included). This is what the
  same-machine test uses.
- ``ship_code=False``: nothing is uploaded; the nodes must import ``experiments`` and the
  project's packages themselves: a checkout of the same commit on every node, installed
  with ``pip install -e .`` and run with that checkout on ``PYTHONPATH`` (``experiments``
  is not one of the installed packages), e.g. ``PYTHONPATH=/path/to/repo ray start ...``.

What a cluster must offer, and limits:

- the runner must be ``in-process`` (``simulation`` starts Ray itself, which a Ray task
  should not do): other runs are refused with a reason;
- ``storage-dir`` must be empty (the agents keep their state in OUT/agents, which travels
  with the run): a run that sets it is refused;
- input files named by an absolute path (or one with ``..``) are not shipped: they must
  exist at that path on every node (a shared file system);
- ``client-cpus`` is validated against the driver's core count (RunConfig's rule) and must
  fit one node of the cluster, else the run is refused rather than left waiting forever;
- a run directory travels through Ray's object store in memory, twice per run (shipped
  for a resume, returned at the end): fine for these runs (the agents' replay buffers
  included), not for directories of many GB;
- Ctrl-C cancels the running tasks (``ray.cancel``: a KeyboardInterrupt in the task): what
  they did since they started is lost (their run directories on the driver are untouched,
  still at their last shipped state) and no failure marker is written; the next ``run``
  continues them from there. A task still running ``CANCEL_GRACE`` (30) seconds later has
  its worker killed (``ray.cancel(force=True)``). A task's temporary directory that a
  killed worker left behind is removed by the next task on that node.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import io
import json
import logging
import os
import shutil
import socket
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments import status as st
from experiments.engine import Outcome, Task, _one_line

__all__ = ["RayExecutor", "RayClusterError", "Placement", "REPO_ROOT", "EXCLUDES", "run_configs"]

#: the repository uploaded as the job's working_dir
REPO_ROOT = Path(__file__).resolve().parent.parent
#: what the upload leaves out (gitignore syntax, relative to REPO_ROOT; .gitignore's entries too)
EXCLUDES = [".git", ".mypy_cache", ".pytest_cache", ".benchmarks", "**/__pycache__", "*.egg-info", "docs/results",
            "runs", "out", "build", "dist", "agents"]
#: the name of a task's temporary directory on its node: PREFIX<worker pid>-<random>
PREFIX = "fedgames-ray-"
#: flat config keys whose value never names an input file
_NOT_INPUTS = {"out", "storage_dir"}


class RayClusterError(RuntimeError):
    """The cluster cannot be used (not reachable, no CPUs)."""


@dataclass(frozen=True)
class Placement:
    """Where one run executed."""

    run: str
    node_id: str
    hostname: str
    ok: bool
    wall_s: float


# ---------------------------------------------------------------------- packing
def pack(directory: Path) -> bytes:
    """``directory``'s contents as a tar.gz blob (paths relative to it)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for path in sorted(Path(directory).iterdir()):
            tar.add(path, arcname=path.name)
    return buffer.getvalue()


def unpack(blob: bytes, directory: Path) -> None:
    """Extract a :func:`pack` blob into ``directory`` (refusing links and paths outside it)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(directory, filter="data")
        else:  # pragma: no cover - Pythons before 3.10.12 / 3.11.4
            for member in tar.getmembers():
                target = (directory / member.name).resolve()
                if not (member.isfile() or member.isdir()) or directory.resolve() not in (target, *target.parents):
                    raise ValueError(f"refusing to extract {member.name!r}")
            tar.extractall(directory)


def install(blob: bytes, out: Path) -> None:
    """Make ``out`` hold exactly what ``blob`` holds: unpacked beside it first, then swapped in
    (the old directory renamed away, the new one renamed in, the old one removed)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{out.name}.ray-", dir=out.parent))
    try:
        unpack(blob, new)
        os.chmod(new, 0o755)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        out.rename(old)
    new.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------- on the node
def _worker_out(out: str) -> Path:
    """Where a run of ``out`` writes, relative to the task's working directory: ``out``
    itself if it stays below it, else (absolute, or with ``..``) a path under ``elsewhere/``."""
    path = Path(out)
    if not path.is_absolute() and ".." not in path.parts:
        return path
    parts = path.parts[1:] if path.is_absolute() else path.parts
    return Path("elsewhere", *("up" if part == ".." else part for part in parts))


def _retarget(run_dir: Path, old: str, new: str) -> None:
    """Rename the run's ``out`` from ``old`` to ``new`` in config.json and checkpoint.pt."""
    config = run_dir / "config.json"
    if config.is_file():
        data = json.loads(config.read_text())
        if data.get("out") == old:
            data["out"] = new
            config.write_text(json.dumps(data, indent=2))
    checkpoint = run_dir / st.CHECKPOINT
    if checkpoint.is_file():
        import torch

        state = torch.load(checkpoint, weights_only=False)
        flat = json.loads(state["config"])
        if flat.get("out") == old:
            flat["out"] = new
            state["config"] = json.dumps(flat, sort_keys=True)
            tmp = checkpoint.with_suffix(".tmp")
            torch.save(state, tmp)
            tmp.replace(checkpoint)


def _sweep() -> None:
    """Remove the temporary directories of tasks whose worker process is gone (killed, e.g.
    by a forced cancel, before it could remove its own)."""
    for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = path.name.removeprefix(PREFIX).split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def run_task(task: Task, shipped: bytes | None, inputs: dict[str, bytes], threads: int) -> dict[str, Any]:
    """The Ray task (see the module's docstring): run ``task`` in a temporary directory of
    this node; return its outcome, its run directory as a blob, this node's id and host."""
    import ray

    from experiments.engine import execute

    node_id, hostname = ray.get_runtime_context().get_node_id(), socket.gethostname()
    here = os.getcwd()
    if here not in sys.path:  # the job's working_dir (or the node's checkout) stays importable after chdir
        sys.path.insert(0, here)
    _sweep()
    root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    try:
        os.chdir(root)
        data = json.loads(task.config)
        planned = data["out"]
        run_dir = root / _worker_out(planned)
        target = planned if _worker_out(planned) == Path(planned) else str(run_dir)
        for rel, content in inputs.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(content)
        if shipped is not None:
            unpack(shipped, run_dir)
            if target != planned:
                _retarget(run_dir, planned, target)
        data["out"] = target
        if isinstance(data.get("execution"), dict):
            data["execution"]["torch_threads"] = threads
        outcome = execute(dataclasses.replace(task, config=json.dumps(data)))
        blob = None
        if run_dir.is_dir():
            if target != planned:
                _retarget(run_dir, target, planned)
            blob = pack(run_dir)
        return {"outcome": outcome, "files": blob, "node_id": node_id, "hostname": hostname}
    finally:
        os.chdir(here)
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------- the driver
def _inputs(config: dict[str, Any], out: str) -> dict[str, bytes]:
    """The files the run's settings name by a relative path (outside its own directory)."""
    flat: dict[str, Any] = {k: v for k, v in config.items() if not isinstance(v, dict)}
    for group in config.values():
        if isinstance(group, dict):
            flat.update(group)
    found: dict[str, bytes] = {}
    own = Path(out).resolve()
    for key, value in flat.items():
        if key in _NOT_INPUTS or not isinstance(value, str) or not value or "\n" in value or len(value) > 4096:
            continue
        path = Path(value)
        try:
            if path.is_absolute() or ".." in path.parts or not path.is_file():
                continue
        except OSError:
            continue
        if own in path.resolve().parents:
            continue  # the run's own files travel with its directory
        found[path.as_posix()] = path.read_bytes()
    return found


def _cpus(config: dict[str, Any]) -> float:
    value = (config.get("execution") or {}).get("client_cpus", 1.0)
    try:
        return float(value) if float(value) > 0 else 1.0
    except (TypeError, ValueError):
        return 1.0


#: seconds a cancelled task has to end on its KeyboardInterrupt before its worker is killed
CANCEL_GRACE = 30.0


class RayExecutor:
    """Runs the engine's tasks as Ray tasks on the cluster at ``address`` (see the module's
    docstring). ``jobs``: runs in flight at once (default: as many 1-CPU runs as the
    cluster's CPUs hold); ``ship_code``: upload this repository as the job's working_dir;
    ``excludes``: more paths the upload leaves out (e.g. the campaign's ``out``)."""

    def __init__(self, address: str, *, jobs: int | None = None, ship_code: bool = True,
                 excludes: list[str] | None = None, log_to_driver: bool = False):
        import ray

        self._ray = ray
        self._stopped = True  # until ray.init succeeded
        if ray.is_initialized():
            raise RayClusterError("Ray is already initialized in this process (another cluster, or a local one); "
                                  "ray.shutdown() first")
        unreachable = _unreachable(address)
        if unreachable:  # ray.init would retry for minutes
            raise RayClusterError(f"cannot use the Ray cluster at {address}: {unreachable}")
        runtime_env = None
        if ship_code:
            runtime_env = {"working_dir": str(REPO_ROOT), "excludes": EXCLUDES + _repo_relative(excludes or [])}
        try:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=log_to_driver,
                     logging_level=logging.WARNING, configure_logging=False)
        except Exception as err:  # noqa: BLE001 - ConnectionError, a bad address, an upload error
            if ray.is_initialized():
                ray.shutdown()
            raise RayClusterError(f"cannot use the Ray cluster at {address}: {_one_line(err)}") from err
        self._stopped = False
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.node_cpus = {n["NodeID"]: float(n.get("Resources", {}).get("CPU", 0)) for n in nodes}
        total = sum(self.node_cpus.values())
        if total < 1:
            ray.shutdown()
            self._stopped = True
            raise RayClusterError(f"the Ray cluster at {address} has no CPUs")
        self.address = address
        self.jobs = jobs or max(1, int(total))
        self.placements: list[Placement] = []
        self._remote = ray.remote(max_calls=1, max_retries=0)(run_task)
        self._pool = cf.ThreadPoolExecutor(self.jobs, thread_name_prefix="ray-run")
        self._refs: dict[Any, Task] = {}
        self._lock = threading.Lock()
        self._stopping = False

    # the executor protocol
    def submit(self, task: Task) -> cf.Future:
        return self._pool.submit(self._drive, task)

    def stop(self, interrupted: bool = False) -> None:
        if self._stopped:
            return
        self._stopping = interrupted
        if interrupted:
            with self._lock:
                refs = list(self._refs)
            for ref in refs:  # KeyboardInterrupt in the task: it removes its temporary directory
                try:
                    self._ray.cancel(ref)
                except Exception:  # noqa: BLE001 - already finished
                    pass
            self._kill_stragglers(refs)
        self._pool.shutdown(wait=True, cancel_futures=interrupted)
        self._stopped = True
        if self._ray.is_initialized():
            self._ray.shutdown()

    def _kill_stragglers(self, refs: list[Any]) -> None:
        """End the cancelled tasks still running CANCEL_GRACE seconds after their
        KeyboardInterrupt by killing their workers (``ray.cancel(force=True)``): an interrupt
        can be lost (seen once under load: the task ran on and the campaign's Ctrl-C never
        returned), and a stop must not wait for a run of any length."""
        if not refs:
            return
        _, running = self._ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE)
        for ref in running:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - ended meanwhile
                pass

    # one run
    def _drive(self, task: Task) -> Outcome:
        start = time.perf_counter()
        data = json.loads(task.config)
        out = Path(data["out"])
        refused = self._refused(task, data)
        if refused:
            st.write_failure(out, refused, "", task.attempt)
            return Outcome(False, 0.0, reason=refused, attempt=task.attempt)
        cpus = _cpus(data)
        try:
            shipped = pack(out) if out.is_dir() and not task.fresh and any(out.iterdir()) else None
            inputs = _inputs(data, str(out))
            ref = self._remote.options(num_cpus=cpus, scheduling_strategy="SPREAD").remote(
                task, shipped, inputs, max(1, int(cpus)))
            with self._lock:
                self._refs[ref] = task
            if self._stopping:  # stop() may have looked before this task was registered
                self._ray.cancel(ref)
            try:
                result = self._ray.get(ref)
            finally:
                with self._lock:
                    self._refs.pop(ref, None)
        except Exception as err:  # noqa: BLE001 - Ray's errors: the worker or node died, the task raised
            if self._stopping:
                return Outcome(False, time.perf_counter() - start, reason="interrupted", attempt=task.attempt)
            reason = _ray_reason(err)
            st.write_failure(out, reason, _tail(err), task.attempt)
            return Outcome(False, time.perf_counter() - start, reason=reason, attempt=task.attempt)
        outcome: Outcome = result["outcome"]
        if result["files"] is not None:
            install(result["files"], out)
        with self._lock:
            self.placements.append(Placement(task.name, result["node_id"], result["hostname"], outcome.ok,
                                             outcome.wall_s))
        return outcome

    def _refused(self, task: Task, data: dict[str, Any]) -> str:
        if task.runner != "in-process":
            return (f"--ray-address runs the 'in-process' runner only (this run's runner is '{task.runner}', "
                    "which starts Ray itself)")
        if (data.get("execution") or {}).get("storage_dir"):
            return ("--ray-address: storage-dir must be empty (the agents' state has to live in OUT/agents to "
                    "travel with the run)")
        cpus = _cpus(data)
        if cpus > max(self.node_cpus.values()):
            return (f"--ray-address: the run needs {cpus:g} CPUs (client-cpus), more than any node of the cluster "
                    f"has ({max(self.node_cpus.values()):g})")
        return ""

    def where(self) -> str:
        """One line per node: how many runs executed there."""
        by_node: dict[tuple[str, str], list[Placement]] = {}
        for p in self.placements:
            by_node.setdefault((p.node_id, p.hostname), []).append(p)
        return "".join(f"ray: node {node} ({host}): {len(ps)} run(s)"
                       + (f", {sum(not p.ok for p in ps)} failed" if any(not p.ok for p in ps) else "") + "\n"
                       for (node, host), ps in by_node.items())


def _unreachable(address: str, timeout: float = 10.0) -> str:
    """Why nothing answers at ``address`` (``host:port`` or ``ray://host:port``), or "" when
    something does or the address has no port to try (``auto``)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return ""
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        return f"nothing answers at {host}:{port} ({err.strerror or err}); is the head node started?"
    return ""


def _ray_reason(err: BaseException) -> str:
    """The one-line reason of a Ray error: the task's own exception if it raised one."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException) and not isinstance(cause, type(err)):
        return _one_line(cause)
    text = _one_line(err)
    return text if len(text) <= 300 else text[:297] + "..."


def _tail(err: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(err))[-4000:]


def _repo_relative(paths: list[str]) -> list[str]:
    """``paths`` (relative to the working directory, or absolute) that lie inside REPO_ROOT,
    relative to it (upload excludes)."""
    out = []
    for p in paths:
        full = (Path.cwd() / p).resolve()
        if full == REPO_ROOT:
            continue
        if REPO_ROOT in full.parents:
            out.append(full.relative_to(REPO_ROOT).as_posix())
    return out


def run_configs(configs: list, address: str, **options: Any) -> tuple[list[Outcome], list[Placement]]:
    """Run RunConfigs (their ``out`` directories) on the cluster at ``address``, without a
    campaign: every one afresh, or continued when its directory holds a checkpoint."""
    executor = RayExecutor(address, **options)
    try:
        futures = []
        for k, cfg in enumerate(configs):
            resume = (Path(cfg.out) / st.CHECKPOINT).is_file()
            task = Task("configs", str(k), cfg.seed, cfg.replace(progress=False, resume=resume).to_json())
            futures.append(executor.submit(task))
        return [f.result() for f in futures], list(executor.placements)
    finally:
        executor.stop()
