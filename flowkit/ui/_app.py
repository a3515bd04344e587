"""The web app: a page, its assets, and a read-only JSON and event-stream API.

Every endpoint reads; none writes. Each request opens its own read-only connection to the
store (cheap next to the page's work), so the app never holds a lock a writing process
would wait for, and works while flows in other processes record into the same store.
"""

from __future__ import annotations

import ipaddress
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import _queries as q

__all__ = ["KEEPALIVE_SECONDS", "LOCAL_HOSTS", "WATCH_SECONDS", "create_app", "host_name"]

WATCH_SECONDS = 0.25
"""How often an event stream looks at the store for new rows."""
KEEPALIVE_SECONDS = 15.0
"""How long an event stream stays silent before it sends a comment, to keep proxies open."""
_STATIC = Path(str(files("flowkit.ui") / "static"))
_SECURITY_HEADERS = {
    # The page's own script and style only: nothing inline, nothing from elsewhere.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
"""The names of this machine the page always answers to, in a ``Host`` header."""
_HOST_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?")
T = TypeVar("T")


def host_name(text: str) -> str:
    """``text`` as a ``Host`` header names it: lower case, an IPv6 address in brackets.

    Raises:
        ValueError: ``text`` is neither a host name nor an IP address (a port, a
            wildcard or a URL, say).
    """
    try:
        address = ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))
    except ValueError:
        name = text.lower().removesuffix(".")
        if len(name) <= 253 and all(_HOST_LABEL.fullmatch(part) for part in name.split(".")):
            return name
        raise ValueError(
            f"{text!r} is not a host name or an IP address: give the name the page is "
            "reached by, without a port or a scheme (say, runs.example.org or 10.0.0.5)"
        ) from None
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def create_app(store: Path, *, hosts: Iterable[str] = ()) -> Starlette:
    """The app serving the page of the run store at ``store``.

    The store may not exist yet (the lists are empty until a flow runs) and may be
    written by other processes while the app reads it.

    The app answers only requests whose ``Host`` header names this machine's loopback
    (``LOCAL_HOSTS``) or one of ``hosts``, with any port; others get a 400 and no data.
    A page on loopback is safe from other machines but not from a web page in the
    user's browser that has its own name resolve to 127.0.0.1 (DNS rebinding): the
    browser then sends that page's name, which the app refuses.

    Args:
        store: The run store's file.
        hosts: More names the page is reached by (the address it serves on, a name of
            this machine, a proxy's), as host names or IP addresses.

    Raises:
        ValueError: A name in ``hosts`` is not a host name or an IP address.
    """
    allowed = list(dict.fromkeys([*LOCAL_HOSTS, *(host_name(host) for host in hosts)]))

    def read(work: Callable[[sqlite3.Connection], T], empty: T) -> T:
        db = q.open_readonly(store)
        if db is None:
            return empty
        try:
            return work(db)
        finally:
            db.close()

    async def in_thread(work: Callable[[sqlite3.Connection], T], empty: T) -> T:
        return await anyio.to_thread.run_sync(read, work, empty)

    async def page(request: Request) -> Response:
        return FileResponse(_STATIC / "index.html", headers=_SECURITY_HEADERS)

    async def runs(request: Request) -> Response:
        params = request.query_params
        try:
            filters: dict[str, Any] = {
                "flow": params.get("flow") or None,
                "state": params.get("state") or None,
                "tag": params.get("tag") or None,
                "search": params.get("q") or None,
                "since": _when(params.get("since"), "since"),
                "until": _when(params.get("until"), "until"),
                "before": params.get("before") or None,
                "limit": _count(params.get("limit")),
            }
            empty: dict[str, Any] = {"runs": [], "next": None}
            found = await in_thread(lambda db: q.runs_page(db, **filters), empty)
        except ValueError as exc:
            return _error(400, str(exc))
        return _json(found)

    async def flows(request: Request) -> Response:
        return _json({"flows": await in_thread(q.flow_names, list[str]())})

    async def artifacts(request: Request) -> Response:
        try:
            limit = _count(request.query_params.get("limit"))
        except ValueError as exc:
            return _error(400, str(exc))
        found = await in_thread(lambda db: q.loose_artifacts(db, limit), list[Any]())
        return _json({"artifacts": found})

    async def run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            detail = await in_thread(lambda db: q.run_detail(db, run_id), None)
        except q.RunNotFound as exc:
            return _error(404, str(exc))
        if detail is None:
            return _error(404, f"no run has the id {run_id!r}: the store is empty")
        return _json(detail)

    async def watch(request: Request) -> Response:
        run_id = request.query_params.get("run") or None
        return StreamingResponse(
            _changes(lambda: read(lambda db: q.change_mark(db, run_id), ())),
            media_type="text/event-stream",
            headers={**_SECURITY_HEADERS, "Cache-Control": "no-store"},
        )

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(404, f"nothing at {request.url.path}")

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/runs", runs),
            Route("/api/flows", flows),
            Route("/api/runs/{run_id}", run),
            Route("/api/artifacts", artifacts),
            Route("/api/events", watch),
            Mount("/static", StaticFiles(directory=_STATIC), name="static"),
        ],
        exception_handlers={404: not_found},
        # Starlette's own check: it parses the header (an IPv6 address in brackets, a
        # port) and refuses a missing or malformed one, before any route is reached.
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=allowed)],
    )


async def _changes(mark: Callable[[], tuple[int, ...]]) -> AsyncIterator[str]:
    """Server-sent events: ``change`` each time the store's mark moves."""
    last = await anyio.to_thread.run_sync(mark)
    yield f"event: hello\ndata: {json.dumps(last)}\n\n"
    quiet = 0.0
    while True:
        await anyio.sleep(WATCH_SECONDS)
        now = await anyio.to_thread.run_sync(mark)
        if now != last:
            last, quiet = now, 0.0
            yield f"event: change\ndata: {json.dumps(now)}\n\n"
        else:
            quiet += WATCH_SECONDS
            if quiet >= KEEPALIVE_SECONDS:
                quiet = 0.0
                yield ": still here\n\n"


def _json(data: object) -> Response:
    return JSONResponse(data, headers={**_SECURITY_HEADERS, "Cache-Control": "no-store"})


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=_SECURITY_HEADERS)


def _when(value: str | None, name: str) -> float | None:
    """An ISO date or time (local time when it has no zone) as Unix time."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{name}={value!r} is not an ISO date or time like 2026-11-25T10:00"
        ) from None
    return (parsed if parsed.tzinfo else parsed.astimezone()).timestamp()


def _count(value: str | None) -> int:
    if not value:
        return q.PAGE_SIZE
    if not value.isdigit() or not 1 <= int(value) <= 200:
        raise ValueError(f"limit={value!r} is not a whole number from 1 to 200")
    return int(value)
