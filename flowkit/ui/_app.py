"""The web app: a page, its assets, and a read-only JSON and event-stream API.

Every endpoint reads; none writes. Each request opens its own read-only connection to the
store (cheap next to the page's work), so the app never holds a lock a writing process
would wait for, and works while flows in other processes record into the same store.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import _queries as q

__all__ = ["KEEPALIVE_SECONDS", "WATCH_SECONDS", "create_app"]

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
T = TypeVar("T")


def create_app(store: Path) -> Starlette:
    """The app serving the page of the run store at ``store``.

    The store may not exist yet (the lists are empty until a flow runs) and may be
    written by other processes while the app reads it.
    """

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
