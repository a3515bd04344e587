"""Serving the page: a socket bound first (so a taken port is a clear error), then uvicorn."""

from __future__ import annotations

import ipaddress
import socket
import webbrowser
from collections.abc import Callable, Iterable
from pathlib import Path

import uvicorn

from ..store._schema import SCHEMA_VERSION, connect, default_path
from ._app import LOCAL_HOSTS, create_app, host_name

__all__ = ["DEFAULT_PORT", "bind", "serve"]

DEFAULT_PORT = 4300


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (``port`` 0: any free port).

    Raises:
        OSError: The address cannot be used (say, the port is taken); the message says
            which and what to do.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot serve on {host}:{port} ({exc.strerror}); pick another with --port"
        ) from None
    return sock


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _upgrade(store: Path) -> None:
    """Bring an older store's schema up to date once, before serving it read-only."""
    if store.exists():
        connect(store, create=False).close()


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    open_browser: bool = False,
    store: Path | None = None,
    allow_hosts: Iterable[str] = (),
    echo: Callable[[str], object] = print,
) -> None:
    """Serve the page of ``store`` (default ``$FLOWKIT_HOME/runs.db``) until interrupted.

    The page answers to the loopback names, ``host`` and ``allow_hosts`` in a request's
    ``Host`` header, and to no other (see ``create_app``).

    Raises:
        OSError: ``host:port`` cannot be bound.
        StoreError: The file at ``store`` is not a flowkit run store, or is newer.
        ValueError: ``host`` or a name in ``allow_hosts`` is not a host name or an IP
            address.
    """
    store = store if store is not None else default_path()
    names = list(dict.fromkeys([*LOCAL_HOSTS, host_name(host), *map(host_name, allow_hosts)]))
    app = create_app(store, hosts=names)
    _upgrade(store)
    sock = bind(host, port)
    address = sock.getsockname()
    shown = f"[{address[0]}]" if sock.family == socket.AF_INET6 else address[0]
    url = f"http://{shown}:{address[1]}/"
    if not _loopback(host):
        echo(
            f"Warning: serving on {host}, beyond this machine; the page has no authentication, "
            "so anyone who can reach it can read every run, parameter and log line"
        )
        echo(
            f"It answers to {', '.join(names)} in the address: name any other it is "
            "reached by with --allow-host"
        )
    echo(f"flowkit ui: runs in {store} (schema {SCHEMA_VERSION}) at {url}  (Ctrl-C stops)")
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_graceful_shutdown=1,
        lifespan="off",
    )  # fmt: skip
    server = uvicorn.Server(config)
    if open_browser:
        webbrowser.open(url)
    server.run(sockets=[sock])
