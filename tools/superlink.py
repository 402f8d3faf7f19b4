"""Flower's SuperLink with the Fleet API alone on the network the SuperNodes use.

``flower-superlink`` (flwr 1.42) serves all its APIs on one HTTP port
(``--host``/``--port``): the Fleet API the SuperNodes call, the Control API of the
``flwr`` CLI (start runs, list runs, register SuperNode keys) and the Runtime API of
its own ServerApp processes. Bound to an address the SuperNodes can reach, anyone
who reaches it can list runs and register a key of their own, which empties
SuperNode authentication of its meaning. ``--control-api-address`` is deprecated in
1.42 and no longer separates anything.

This command runs the same SuperLink (Flower's own application, options and
lifespan) and adds a second listener, ``--fleet-address``, that answers only the
Fleet API (``/v1/fleet/...``) and ``/health``; everything else there gets 404. The
full API stays on ``--host``/``--port``, which should be loopback (the operator
runs ``flwr`` on the SuperLink's machine or through ``ssh -L``) or an interface on
a network only the operator reaches. The ServerApp's SuperExec connects to
``--host``/``--port``, so the server certificate must name that address as well
(``python -m tools.deploy`` always adds 127.0.0.1).

Usage (every option except ``--fleet-address`` is ``flower-superlink``'s)::

    python -m tools.superlink --fleet-address 10.0.0.5:9092 \\
        --host 127.0.0.1 --port 9093 \\
        --ssl-ca-certfile ca.crt --ssl-certfile server.pem --ssl-keyfile server.key \\
        --enable-supernode-auth --disable-runtime-dependency-installation
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from typing import Any

FLEET_PATHS = ("/v1/fleet/",)  # the SuperNodes' API
OPEN_PATHS = ("/health",)  # liveness probe, no data


class FleetOnly:
    """ASGI wrapper: on the fleet listener (local port ``fleet_port``) only the Fleet
    API and ``/health`` are served; requests arriving on other ports pass through."""

    def __init__(self, app: Any, fleet_port: int) -> None:
        self.app = app
        self.fleet_port = fleet_port

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and self._on_fleet_listener(scope):
            path = scope.get("path", "")
            if not (path.startswith(FLEET_PATHS) or path in OPEN_PATHS):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                body = b"Not Found: only the Fleet API is served on this address\n"
                await send({"type": "http.response.start", "status": 404,
                            "headers": [(b"content-type", b"text/plain"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _on_fleet_listener(self, scope: dict[str, Any]) -> bool:
        server = scope.get("server")  # (local address, local port) of the connection
        return server is None or int(server[1]) == self.fleet_port


def parse_host_port(address: str) -> tuple[str, int]:
    """``"10.0.0.5:9092"`` -> ``("10.0.0.5", 9092)``; ``[::1]:9092`` for IPv6."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ValueError(f"not a host:port address: {address!r}")
    return host.strip("[]"), int(port)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> int:
    """Start the SuperLink with a fleet-only listener; blocks until stopped."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.superlink",
        description="flower-superlink with the Fleet API alone on --fleet-address; "
                    "all other options are flower-superlink's (see flower-superlink --help)")
    parser.add_argument("--fleet-address", required=True,
                        help="host:port on which SuperNodes reach the Fleet API")
    args, rest = parser.parse_known_args(argv)
    try:
        fleet_host, fleet_port = parse_host_port(args.fleet_address)
    except ValueError as err:
        parser.error(str(err))

    import importlib  # pylint: disable=import-outside-toplevel

    import uvicorn  # pylint: disable=import-outside-toplevel
    from flwr.common.logger import log  # pylint: disable=import-outside-toplevel
    from flwr.superlink.main import create_app  # pylint: disable=import-outside-toplevel
    from flwr.supercore.http_logging import get_uvicorn_log_config  # pylint: disable=C0415
    from flwr.supercore.logger import console_handler  # pylint: disable=C0415

    # the package re-exports a function under the module's name: import the module itself
    fs = importlib.import_module("flwr.superlink.cli.flower_superlink")
    sys.argv = ["flower-superlink", *rest]  # Flower's own parser and checks
    config = fs._parse_superlink_lifespan_config()  # pylint: disable=protected-access
    if config.simulation:
        parser.error("--simulation has no SuperNodes: use flower-superlink")
    if fleet_port == config.port:
        parser.error("--fleet-address needs a port other than --port")
    try:
        sockets = [_listen(config.host, config.port), _listen(fleet_host, fleet_port)]
    except OSError as err:
        print(f"error: cannot listen: {err}", file=sys.stderr)
        return 2
    app = FleetOnly(create_app(config, fs.SuperLinkLifespan), fleet_port)
    scheme = "https" if config.ssl_certfile else "http"
    log(logging.INFO, "Control, Runtime and Fleet API on %s://%s:%s; Fleet API only on %s://%s:%s",
        scheme, config.host, config.port, scheme, fleet_host, fleet_port)
    server = uvicorn.Server(uvicorn.Config(
        app, host=config.host, port=config.port, reload=False, access_log=True,
        log_config=get_uvicorn_log_config(console_handler.level),
        ssl_keyfile=config.ssl_keyfile, ssl_certfile=config.ssl_certfile, workers=1,
    ))
    server.run(sockets=sockets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
