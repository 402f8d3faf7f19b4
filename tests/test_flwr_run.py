"""The README's `flwr run .` recipe, run command by command as a user would paste it."""

import csv
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP_FILES = ["pyproject.toml", "README.md", "run_sim.py", "analysis", "clients", "envs",
             "experiments", "federation", "strategies", "tools"]


def readme_commands() -> list[str]:
    """The commands of the first bash block of README.md's "With Flower's CLI" section,
    continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## With Flower's CLI"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "no bash block in README's 'With Flower's CLI' section"
    return block.group(1).replace("\\\n", " ").strip().splitlines()


def copy_app(dest: Path) -> Path:
    """The project as a user's checkout holds it, without the run directories."""
    dest.mkdir(parents=True)
    for name in APP_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "runs"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def run_commands(commands: list[str], cwd: Path, env: dict, timeout: float) -> tuple[list[int], str]:
    """Run ``commands`` in one bash, in order (so ``$!`` and variables carry over);
    returns each command's exit status and their output (stdout and stderr, in order)."""
    status_file = cwd / ".status"
    status_file.unlink(missing_ok=True)
    script = "".join(f"{cmd}\necho $? >> {status_file}\n" for cmd in commands)
    res = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=timeout, check=False)
    statuses = [int(s) for s in status_file.read_text().split()] if status_file.exists() else []
    return statuses, res.stdout


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def user(tmp_path, own_processes):
    """A fresh checkout and an empty FLWR_HOME; afterwards, any process the commands left
    is ended by PID (``own_processes``)."""
    env = own_processes.env(FLWR_HOME=str(tmp_path / "flwr-home"), FLWR_DISABLE_UPDATE_CHECK="1",
                            FLWR_TELEMETRY_ENABLED="0")
    app = copy_app(tmp_path / "app")
    return app, env, own_processes


@pytest.mark.slow
def test_readme_flwr_run_recipe(user):
    """The README's commands, verbatim: 2 rounds with 3 agents write metrics.csv with 2 rows
    into runs/flwr (where the README says), `outcome` says completed and exits 0, and
    nothing keeps running after the `kill`. Before that `kill`, the same `flwr run` and
    `outcome` with rounds=0: the run fails, the reason is printed and `outcome` exits 1."""
    app, env, procs = user
    commands = readme_commands()
    port = int(re.search(r"--port (\d+)", next(c for c in commands if "flower-superlink" in c)).group(1))
    assert port_free(port), f"port {port} of the README's SuperLink is in use"
    assert "rounds=2 agents=3" in " ".join(commands) and "out='runs/flwr'" in " ".join(commands)
    run = next(i for i, c in enumerate(commands) if c.startswith("flwr run"))
    outcome = next(i for i, c in enumerate(commands) if "outcome" in c)
    assert outcome == run + 1 and commands[-1].startswith("kill"), commands
    failing = [c.replace("rounds=2", "rounds=0").replace("runs/flwr", "runs/flwr-0") for c in commands[run:outcome + 1]]
    assert failing[0] != commands[run]

    statuses, output = run_commands(commands[:-1] + ["echo ==== rounds=0", *failing, commands[-1]], app, env,
                                    timeout=600)
    completed, failed = output.split("==== rounds=0")
    assert statuses[:-1] == [0] * (len(commands) - 1) + [0, 0, 1], output  # `outcome` of the second run: 1
    assert statuses[-1] == 0, output  # the kill
    with open(app / "runs" / "flwr" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["round"]) for r in rows] == [1, 2]
    assert re.search(r"run \d+: finished:completed", completed), output

    assert "--rounds must be in [1, 10000000], got 0" in failed
    assert re.search(r"run \d+: finished:failed: .*--rounds must be", failed), output
    assert "finished:completed" not in failed
    assert not (app / "runs" / "flwr-0" / "metrics.csv").exists()
    # the SuperExec ends a moment after its SuperLink
    assert procs.wait_until_none(30) == set()  # no SuperLink, SuperExec or simulation left
