"""Everything a multi-machine Flower deployment of the app needs, for the hosts you name.

::

    python -m tools.deploy --out deploy --superlink 10.0.0.5 \\
        --nodes 10.0.0.10 10.0.0.11 10.0.0.12 --storage-dir /data/fedgames

writes, one folder per machine:

- ``deploy/superlink/``: ``ca.crt``, ``server.pem``, ``server.key``. The server
  certificate names the SuperLink's address, the operator's Control API address,
  ``127.0.0.1`` and ``localhost`` (the SuperLink's own SuperExec connects to the
  Control/Runtime address; ``--san`` adds more names).
- ``deploy/operator/``: ``config.toml`` (the ``flwr`` CLI's connection; use the folder
  as ``FLWR_HOME``), ``ca.crt`` and ``keys/agent-<i>.pub``, the SuperNodes' public
  keys to register.
- ``deploy/node-<i>/``: ``ca.crt`` and the key pair ``agent-<i>``/``agent-<i>.pub`` of
  agent ``i``'s SuperNode (the private key never leaves that folder).
- ``deploy/plan.json``: the steps below, machine by machine, as data.

With ``--agents-per-node K`` each SuperNode holds K agents (node ``i``:
``--node-config 'agent-ids="<iK>-<iK+K-1>"'``) and the run has K agents per host.

and prints the commands to run on each machine, in order. The SuperLink is started
with ``python -m tools.superlink`` (see there): the Fleet API alone on
``<superlink>:<fleet-port>``, everything else (Control API: runs, SuperNode keys;
Runtime API) on ``--control`` only, 127.0.0.1 by default. No CA private key is kept:
running the command again makes new certificates and keys for every machine.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tools.certificates import generate_supernode_keys, generate_tls_certificates
from tools.flwr_connection import write_connection
from tools.superlink import parse_host_port


@dataclass
class Step:
    """Commands to run on one machine, from the folder ``cwd`` names."""

    machine: str  # "superlink", "operator" or "node-<i>"
    address: str  # the machine's address on the fleet network ("" for the operator)
    cwd: str  # where to run: the machine's copy of its folder, or the project checkout
    commands: list[str]
    background: bool = False  # a server that keeps running
    note: str = ""


@dataclass
class Plan:
    """What ``tools.deploy`` wrote and the steps to follow, in order."""

    out: str
    connection: str
    fleet_address: str
    control_address: str
    storage_dir: str
    steps: list[Step] = field(default_factory=list)


def _check_host(host: str) -> str:
    """An IPv4 address or a DNS name (IPv6 would need brackets in every address)."""
    try:
        if ipaddress.ip_address(host).version == 4:
            return host
    except ValueError:
        if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", host):
            return host
    raise ValueError(f"not an IPv4 address or host name: {host!r}")


def make_plan(out: Path, superlink: str, nodes: list[str], fleet_port: int = 9092,
              control: str = "127.0.0.1:9093", connection: str = "fedgames",
              storage_dir: str = "/data/fedgames", operator_dir: Path | None = None,
              run_config: str = "rounds=2", extra_names: tuple[str, ...] = (), agents_per_node: int = 1) -> Plan:
    """Write the certificates, keys and the operator's connection into ``out`` and return
    the steps (see the module's description)."""
    _check_host(superlink)
    for node in nodes:
        _check_host(node)
    if not nodes:
        raise ValueError("name at least one SuperNode host")
    if agents_per_node < 1:
        raise ValueError(f"--agents-per-node must be at least 1, got {agents_per_node}")
    control_host, control_port = parse_host_port(control)
    if control_port == fleet_port and control_host in (superlink, "0.0.0.0"):
        raise ValueError("the Control API needs its own port or address")
    out = out.resolve()
    operator_dir = (operator_dir or out / "operator").resolve()
    fleet_address = f"{superlink}:{fleet_port}"

    names = tuple(dict.fromkeys((superlink, control_host, "127.0.0.1", "localhost", *extra_names)))
    certs = generate_tls_certificates(out / "superlink", hosts=names, days=365)
    ca = certs.ca_cert.read_bytes()
    (out / "operator" / "keys").mkdir(parents=True, exist_ok=True)
    (out / "operator" / "ca.crt").write_bytes(ca)
    write_connection(out / "operator" / "config.toml", connection, control,
                     str(operator_dir / "ca.crt"))

    plan = Plan(out=str(out), connection=connection, fleet_address=fleet_address,
                control_address=control, storage_dir=storage_dir)
    flwr_home = shlex.quote(str(operator_dir))
    plan.steps.append(Step(
        "superlink", superlink, str(out / "superlink"),
        [f"python -m tools.superlink --fleet-address {fleet_address} "
         f"--host {control_host} --port {control_port} "
         "--ssl-ca-certfile ca.crt --ssl-certfile server.pem --ssl-keyfile server.key "
         "--enable-supernode-auth --disable-runtime-dependency-installation"],
        background=True,
        note="needs the project installed (pip install -e .); the run's results are "
             "written under this folder + the run's `out`"))
    register = [f"export FLWR_HOME={flwr_home}"]
    for i in range(len(nodes)):
        register.append(f"flwr supernode register {flwr_home}/keys/agent-{i}.pub "
                        f"{connection} --name agent-{i}")
    plan.steps.append(Step("operator", "", "<project checkout>", register,
                           note="with the SuperLink running; reaches the Control API at "
                                f"{control}"))

    ports: dict[str, int] = {}
    for i, host in enumerate(nodes):
        keys = generate_supernode_keys(out / f"node-{i}", f"agent-{i}")
        (out / "operator" / "keys" / f"agent-{i}.pub").write_bytes(keys.public_key.read_bytes())
        (out / f"node-{i}" / "ca.crt").write_bytes(ca)
        first, last = i * agents_per_node, (i + 1) * agents_per_node - 1
        agents = f"agent-id={i}" if agents_per_node == 1 else f'agent-ids="{first}-{last}"'
        node_config = shlex.quote(f'{agents} storage-dir="{storage_dir}"')
        port = ""
        if host in ports:  # several SuperNodes on one machine: each its own Runtime port
            ports[host] += 1
            port = f" --port {ports[host]}"
        else:
            ports[host] = 9094
        plan.steps.append(Step(
            f"node-{i}", host, str(out / f"node-{i}"),
            [f"flower-supernode --superlink {fleet_address} --root-certificates ca.crt "
             f"--auth-supernode-private-key agent-{i}{port} --node-config {node_config}"],
            background=True,
            note="after its key is registered; to rejoin after a crash, run the same "
                 "command once `flwr supernode ls` shows the node offline"))

    plan.steps.append(Step(
        "operator", "", "<project checkout>",
        [f"export FLWR_HOME={flwr_home}",
         f"flwr supernode ls {connection}",
         f"flwr run . {connection} --stream --run-config "
         + shlex.quote(f"agents={len(nodes) * agents_per_node} {run_config}".strip()),
         f"python -m tools.flwr_connection outcome {connection}"],
        note="once every SuperNode is online"))
    (out / "plan.json").write_text(json.dumps(asdict(plan), indent=2) + "\n")
    return plan


def describe(plan: Plan) -> str:
    """The plan as instructions to follow, machine by machine."""
    out = Path(plan.out)
    lines = [f"Wrote {out}/ (plan.json holds these steps).", "",
             "Copy each folder to its machine (only these files; keep the private keys "
             "where they are):",
             f"  {out}/superlink/  -> the SuperLink ({plan.fleet_address.rsplit(':', 1)[0]})",
             f"  {out}/operator/   -> the operator's machine (FLWR_HOME; the path in its "
             "config.toml must stay valid)"]
    for step in plan.steps:
        if step.machine.startswith("node-"):
            lines.append(f"  {out}/{step.machine}/     -> {step.address}")
    lines.append("")
    for n, step in enumerate(plan.steps, 1):
        where = step.address or "the operator's machine"
        cwd = step.cwd if step.cwd.startswith("<") else f"its copy of {Path(step.cwd).name}/"
        lines.append(f"{n}. on {step.machine} ({where}), from {cwd}"
                     + (" (keeps running)" if step.background else "") + ":")
        lines += [f"   {cmd}" for cmd in step.commands]
        if step.note:
            lines.append(f"   # {step.note}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.deploy",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="deploy", help="folder to write (default: deploy)")
    parser.add_argument("--superlink", required=True,
                        help="the SuperLink's address (IP or DNS name) on the SuperNodes' network")
    parser.add_argument("--nodes", nargs="+", required=True, metavar="HOST",
                        help="one host per SuperNode: agent i's SuperNode runs on the i-th "
                             "(with --agents-per-node K, agents iK..iK+K-1)")
    parser.add_argument("--agents-per-node", type=int, default=1, metavar="K",
                        help="agents each SuperNode holds (agent-ids=\"0-4\"); default 1 (agent-id=i)")
    parser.add_argument("--fleet-port", type=int, default=9092)
    parser.add_argument("--control", default="127.0.0.1:9093", metavar="HOST:PORT",
                        help="where the operator reaches the Control API: the SuperLink's "
                             "loopback (default; use ssh -L) or an operator-only interface")
    parser.add_argument("--connection", default="fedgames", help="the flwr connection's name")
    parser.add_argument("--storage-dir", default="/data/fedgames",
                        help="each SuperNode's directory for its agent's learner")
    parser.add_argument("--operator-dir", default=None,
                        help="where the operator folder will live (default: OUT/operator)")
    parser.add_argument("--run-config", default="rounds=2",
                        help="run settings for the printed `flwr run` (agents= is added)")
    parser.add_argument("--san", nargs="*", default=[],
                        help="more names for the SuperLink's certificate")
    args = parser.parse_args(argv)
    if not 0 < args.fleet_port < 65536:
        parser.error("--fleet-port must be in [1, 65535]")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        parser.error(f"--out {out} exists and is not empty")
    try:
        plan = make_plan(out, args.superlink, args.nodes, args.fleet_port, args.control,
                         args.connection, args.storage_dir,
                         Path(args.operator_dir) if args.operator_dir else None,
                         args.run_config, tuple(args.san), args.agents_per_node)
    except ValueError as err:
        parser.error(str(err))
    print(describe(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
