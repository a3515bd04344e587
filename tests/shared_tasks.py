"""Tasks and helpers that several test modules share (imported as ``shared_tasks``)."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio.lowlevel
import sniffio

from flowkit import task
from flowkit._engine import events


def recorded_states() -> tuple[list[tuple[str, str]], Any]:
    """Subscribe to engine events; return the (run name, state name) list and unsubscribe."""
    seen: list[tuple[str, str]] = []
    stop = events.subscribe(lambda e: seen.append((e.run.name, e.state.name)))
    return seen, stop


@task
def double(x: int) -> int:
    return 2 * x


@task
async def adouble(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return 2 * x


@task
def boom(message: str = "boom") -> None:
    raise ValueError(message)


@task
def ident(x: Any) -> Any:
    return x


@task
async def loop_name() -> str:
    """The running loop's library as sniffio says: ``asyncio`` or ``trio``."""
    return sniffio.current_async_library()


@task
async def loop_kind() -> str:
    """The running loop's library: ``asyncio``, ``uvloop`` (asyncio's on uvloop) or ``trio``."""
    if sniffio.current_async_library() == "trio":
        return "trio"
    return type(asyncio.get_running_loop()).__module__.split(".")[0]
