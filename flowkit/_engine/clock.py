"""The engine's one seam for time that tests can make virtual.

The engine waits with ``anyio.sleep`` and cancel-scope deadlines, which follow the event
loop's clock; a virtual clock (``flowkit.testing``) is a loop whose time jumps. What the
loop cannot see goes through here: the loops flowkit starts itself, the wall-clock time
of cache expiry, and sync bodies at work in threads against a deadline (the loop would
otherwise jump past their deadline while they work).
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = ["TimeSource", "install", "loop_options", "now", "thread_at_work", "uninstall"]


class TimeSource(Protocol):
    """What a virtual clock gives the engine."""

    def now(self) -> datetime:
        """The wall-clock time (UTC)."""
        ...

    def loop_options(self, backend: str) -> dict[str, Any]:
        """Options for an event loop flowkit starts, so that it runs on this clock."""
        ...

    def thread_at_work(self) -> AbstractContextManager[None]:
        """Entered on the loop's thread while a sync body works in a thread."""
        ...


_lock = threading.Lock()
_sources: list[TimeSource] = []


def install(source: TimeSource) -> None:
    """Make ``source`` the engine's clock until ``uninstall``; the latest installed wins."""
    with _lock:
        _sources.append(source)


def uninstall(source: TimeSource) -> None:
    """Stop using ``source`` (installs may end in any order, from any thread)."""
    with _lock:
        _sources.remove(source)


def _current() -> TimeSource | None:
    # A list read without the lock: appends and removals are atomic, and a reader that
    # races an uninstall sees one clock or the other, both valid at that moment.
    return _sources[-1] if _sources else None


def now() -> datetime:
    """The wall-clock time (UTC): virtual under a virtual clock."""
    source = _current()
    return datetime.now(UTC) if source is None else source.now()


def loop_options(backend: str) -> dict[str, Any]:
    """``backend_options`` for an event loop flowkit starts (none without a virtual clock)."""
    source = _current()
    return {} if source is None else source.loop_options(backend)


_NOTHING: AbstractContextManager[None] = nullcontext()


def thread_at_work(deadline: float | None) -> AbstractContextManager[None]:
    """Around awaiting a sync body in a thread: a virtual clock follows real time meanwhile
    if the body has a ``deadline``, so the deadline passes only when it really does."""
    source = _current()
    if source is None or deadline is None:
        return _NOTHING
    return source.thread_at_work()
