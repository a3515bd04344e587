"""Venues: where a run's body executes, and how the lifecycle waits, sleeps and shields
there. ``engine.execute`` is written once, as async code, against the ``Venue`` protocol;
``execution`` holds the venues (on the loop, inline, the caller's thread, remote workers).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .futures import TaskFuture
    from .runs import Run

__all__ = ["AttemptScope", "Venue", "interrupted_by"]


class AttemptScope(Protocol):
    """The scope of one attempt: its deadline, and whether the deadline ended it."""

    @property
    def cancelled_caught(self) -> bool: ...

    def __enter__(self) -> Any: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> bool | None: ...


class Venue(Protocol):
    """Where a run's body executes, and how the lifecycle waits, sleeps and shields."""

    @property
    def waits_in_thread(self) -> bool:
        """Whether the lifecycle runs in the calling thread with no event loop, so that
        a wait (for a concurrency slot) blocks that thread."""
        ...

    @property
    def blocks_loop(self) -> bool:
        """Whether a run here holds its flow's event loop in a blocking call, so that it
        and the runs it calls may not put work on that loop."""
        ...

    async def call(self, run: Run) -> Any:
        """Run the body of ``run`` and return its value."""
        ...

    def deadline(self, run: Run, timeout: float | None) -> float | None:
        """When an attempt of ``run`` starting now must end, on this venue's clock, given
        its own ``timeout``; ``None`` for never."""
        ...

    def attempt_scope(self, deadline: float | None) -> AttemptScope:
        """The scope that ends an attempt at ``deadline``."""
        ...

    def timed_out(self, run: Run, exc: BaseException) -> bool:
        """Whether ``exc`` ended the run because a deadline passed."""
        ...

    def is_cancellation(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the run was cancelled."""
        ...

    def shield(self) -> AbstractContextManager[Any]:
        """Protect final state writes and hooks from cancellation."""
        ...

    async def join(self, futures: Iterable[TaskFuture[Any]]) -> None:
        """Wait until every one of ``futures`` is over, without reading their results."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait between attempts."""
        ...

    async def wait_event(self, event: threading.Event, at_most: float | None = None) -> None:
        """Wait until another thread sets ``event`` (a run computed a cached result, the
        store committed a run's rows), ``at_most`` seconds if given."""
        ...

    async def call_hook(self, hook: Callable[..., Any], *args: Any) -> None:
        """Call a state hook (sync or async)."""
        ...


def interrupted_by(exc: BaseException) -> BaseException:
    """What really ended a run that ``exc`` ended: a ``KeyboardInterrupt`` for asyncio's
    cancellation of its main task on Ctrl-C, else ``exc`` itself.

    ``asyncio.run`` turns SIGINT into a cancellation of its main task and raises
    ``KeyboardInterrupt`` only once that task is over; its runner counts the interrupt.
    """
    # asyncio is imported if it runs the loop; importing it up front would cost ~20 ms.
    asyncio: Any = sys.modules.get("asyncio")
    if asyncio is None:
        return exc
    cancelled: bool = isinstance(exc, asyncio.CancelledError)
    if not cancelled:
        return exc
    handler = signal.getsignal(signal.SIGINT)  # asyncio.Runner's while asyncio.run runs
    runner = getattr(getattr(handler, "func", None), "__self__", None)
    if isinstance(runner, asyncio.Runner) and getattr(runner, "_interrupt_count", 0) > 0:
        return KeyboardInterrupt()
    return exc
