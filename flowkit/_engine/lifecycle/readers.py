"""The readers of generator runs: which streams a run's body holds open, what they last
handed out, and the timeout a step of one raises.

A generator task's run is read through a stream (``execution.streams``). The lifecycle
needs to know of them: a body's streams left open end with it, and a task called with a
value a stream just handed out records the run that made it as its upstream.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, cast

from .runs import Run

__all__ = ["StreamDeadline", "last_delivered", "open_readers", "register", "unregister"]


class StreamDeadline(TimeoutError):
    """Raised by the engine inside a generator run whose deadline passed during a step."""


def last_delivered(parent: Run | None, value: object) -> Run | None:
    """The generator run that last handed ``value`` (this very object) to ``parent``'s
    body, if one did: a task called with a streamed value records its producer."""
    if parent is None or not _readers:
        return None
    for stream in open_readers(parent):
        if stream.last is value and stream.run.attempt.streamed:
            producer: Run = stream.run
            return producer
    return None


# Each run whose body reads generator runs keeps its open readers here, to close those
# still open when its body ends. A sync reader is held weakly, so that dropping it
# (after a ``break``) closes it at once; an async reader cannot be closed without its
# loop, so it is held until then.
_readers: weakref.WeakKeyDictionary[Run, list[Any]] = weakref.WeakKeyDictionary()


_readers_lock = threading.Lock()


def register(run: Run, reader: Any, *, weakly: bool) -> None:
    """Note that ``run``'s parent reads ``run`` through ``reader``, held weakly or not."""
    if run.parent is not None:
        entry = weakref.ref(reader) if weakly else reader
        with _readers_lock:
            _readers.setdefault(run.parent, []).append(entry)


def unregister(run: Run, reader: Any) -> None:
    """Note that ``reader`` is closed."""
    if run.parent is None:
        return
    with _readers_lock:
        left = [r for r in _readers.get(run.parent, ()) if _alive(r) is not reader]
        if left:
            _readers[run.parent] = left
        else:
            _readers.pop(run.parent, None)


def _alive(entry: object) -> Any:
    return cast("Callable[[], Any]", entry)() if isinstance(entry, weakref.ref) else entry


def open_readers(run: Run) -> list[Any]:
    """The readers of generator runs that ``run``'s body still has open."""
    if not _readers:
        return []
    with _readers_lock:
        entries = list(_readers.get(run, ()))
    return [reader for entry in entries if (reader := _alive(entry)) is not None]
