"""Futures: handles on submitted task runs, usable from threads and from the event loop.

A future is finished on the event loop of its flow run, by the task that ran it. Sync
code waits for it on a ``threading.Event``; async code on that loop waits on an
``anyio.Event``. A blocking wait on the loop's own thread could never end, so it raises.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from uuid import UUID

import anyio
import anyio.from_thread
import anyio.to_thread

from ...exceptions import FutureDeadlockError
from ...states import State

if TYPE_CHECKING:
    from anyio import TaskHandle
    from anyio.lowlevel import EventLoopToken

    from .runs import TaskRun

__all__ = [
    "Slot",
    "TaskFuture",
    "TaskFutureList",
    "deadline",
    "held_slot",
    "holding_slot",
    "lending_slot",
]

R = TypeVar("R")

_log = logging.getLogger("flowkit.futures")

# Guards every future's finishing against a thread making its event or adding a callback
# at that moment: held for a few instructions, so one lock serves them all.
_lock = threading.Lock()

# The worker-thread slot of the run whose sync body this thread runs, if any.
_held = threading.local()


class Slot:
    """A run's hold on one slot of its flow's worker-thread limiter.

    Changed only on the event loop, so that the loop and the body's thread never disagree
    on who holds it: the body's thread lends it back while it blocks (see
    ``lending_slot``), and the loop gives it up when it stops waiting for the body
    (returned, or abandoned at a deadline) whatever the thread is doing then.
    """

    __slots__ = ("_over", "borrower", "held", "limiter")

    def __init__(self, limiter: anyio.CapacityLimiter, borrower: object) -> None:
        self.limiter = limiter
        self.borrower = borrower
        self.held = False
        self._over = False

    async def take(self) -> None:
        """Wait for a slot, unless the run's body is already over for the loop."""
        if self.held or self._over:
            return
        try:  # a free slot is taken without a trip through the loop's scheduler
            self.limiter.acquire_on_behalf_of_nowait(self.borrower)
        except anyio.WouldBlock:
            await self.limiter.acquire_on_behalf_of(self.borrower)
        if self._over:  # abandoned while it waited: the slot is for the next run
            self.limiter.release_on_behalf_of(self.borrower)
            return
        self.held = True

    def lend(self) -> None:
        """Give the slot back while the body waits for other runs."""
        if self.held:
            self.held = False
            self.limiter.release_on_behalf_of(self.borrower)

    def give_up(self) -> None:
        """The loop no longer waits for the body: the slot is free for good."""
        self._over = True
        self.lend()

    @property
    def over(self) -> bool:
        """Whether the loop has given the slot up (read from the body's thread)."""
        return self._over


@contextmanager
def holding_slot(slot: Slot) -> Generator[None, None, None]:
    """Mark this worker thread as running the body that holds ``slot``."""
    _held.slot = slot
    try:
        yield
    finally:
        _held.slot = None


def held_slot() -> Slot | None:
    """The slot of the body this thread runs, if it holds one now."""
    return getattr(_held, "slot", None)


@contextmanager
def lending_slot() -> Generator[None, None, None]:
    """While this thread blocks, give its worker-thread slot back, and take it again after.

    A sync task that waits for tasks it submitted (or serves a subflow's body) would
    otherwise hold a slot they may need: with a limiter of one slot, it would wait forever.
    """
    slot = held_slot()
    if slot is None:
        yield
        return
    anyio.from_thread.run_sync(slot.lend)
    _held.slot = None
    try:
        yield
    finally:
        _held.slot = slot
        if not slot.over:  # an abandoned body takes no slot: the loop has moved on
            anyio.from_thread.run(slot.take)


class TaskFuture(Generic[R]):
    """A task run started by ``Task.submit``: wait for it, read its result, or cancel it.

    ``await future`` gives the value in async code; ``future.result()`` in sync code.
    Reading the result or the state, awaiting the future or passing it to another task
    counts as looking at it: a run that failed while nobody looked fails its flow.
    """

    __slots__ = (
        "_callbacks",
        "_cancel_requested",
        "_event",
        "_finished",
        "_loop_thread",
        "_observed",
        "_on_cancel",
        "_scope",
        "_task_run",
        "_token",
        "_waiters",
    )

    def __init__(self, task_run: TaskRun, loop_thread: int | None, token: EventLoopToken | None):
        self._task_run = task_run
        self._observed = False
        self._loop_thread = loop_thread
        self._token = token
        self._finished = False
        # Made only when a thread has to block on the run: most futures never need one.
        self._event: threading.Event | None = None
        self._waiters: list[anyio.Event] | None = None
        self._callbacks: list[Callable[[TaskFuture[R]], object]] | None = None
        self._scope: TaskHandle[None] | None = None  # the task running it, once started
        self._cancel_requested = False
        # What cancel() does for a run that waits to start outside the task group.
        self._on_cancel: Callable[[], None] | None = None

    @property
    def task_run_id(self) -> UUID:
        """The id of the task run."""
        return self._task_run.id

    @property
    def state(self) -> State[R]:
        """The run's current state (final once ``done()``)."""
        self._observed = True
        return self._task_run.state

    def done(self) -> bool:
        """Whether the run has reached its final state."""
        return self._finished

    def wait(self, timeout: float | None = None) -> None:
        """Block until the run is over, or ``timeout`` seconds have passed.

        Raises:
            ValueError: ``timeout`` is negative.
            FutureDeadlockError: Called on the event loop's thread while the run is not
                over: the loop could never run it. Use ``await future`` there.
        """
        if timeout is not None:
            deadline(timeout, f"task run {self._task_run.name!r}: wait")
        if self._finished:
            return
        self._check_can_block()
        with lending_slot():
            self._thread_event().wait(timeout)

    def _check_can_block(self) -> None:
        """Refuse to block the thread of the event loop that must finish this run.

        Raises:
            FutureDeadlockError: This thread runs that loop and the run is not over.
        """
        if threading.get_ident() == self._loop_thread and not self._finished:
            raise FutureDeadlockError(
                f"task run {self._task_run.name!r} is not finished, and waiting for it here "
                "would block the event loop that has to run it; in async code use "
                "`await future` or `await future.wait_async()`"
            )

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """Block until the run is over and return its value.

        Args:
            timeout: Seconds to wait at most; ``None`` waits as long as it takes.
            raise_on_failure: With ``False``, a failed run's exception is returned.

        Raises:
            ValueError: ``timeout`` is negative.
            TimeoutError: The run was not over within ``timeout`` seconds.
            FutureDeadlockError: Called on the event loop's thread before the run is over.
            BaseException: The run's own exception, if it failed and ``raise_on_failure``.
        """
        if timeout is not None:
            deadline(timeout, f"task run {self._task_run.name!r}: result")
        self.wait(timeout)
        return self._result(timeout, raise_on_failure)

    async def wait_async(self) -> State[R]:
        """Wait for the run without blocking the event loop, and return its final state.

        To bound the wait, put it in ``anyio.fail_after(...)`` or ``move_on_after(...)``.
        """
        await self._until_done()
        return self.state

    async def _until_done(self) -> None:
        """Wait, without blocking the loop, until the run is over."""
        if self._finished:
            return
        if threading.get_ident() == self._loop_thread:
            event = anyio.Event()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(event)
            await event.wait()
        else:  # awaited on another loop than the run's own
            await anyio.to_thread.run_sync(self._thread_event().wait, abandon_on_cancel=True)

    def _thread_event(self) -> threading.Event:
        with _lock:
            if self._event is None:
                self._event = threading.Event()
                if self._finished:
                    self._event.set()
            return self._event

    def __await__(self) -> Generator[Any, None, R]:
        state = yield from self.wait_async().__await__()
        return state.result()

    def add_done_callback(self, fn: Callable[[TaskFuture[R]], object]) -> None:
        """Call ``fn(future)`` once the run is over (at once, if it already is).

        The callback runs on the flow's event loop, so it must not block. An exception
        it raises is logged, never lost.
        """
        with _lock:
            if not self._finished:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        self._call(fn)

    def cancel(self) -> bool:
        """Cancel the run: its cancel scope is cancelled and it ends Cancelled.

        Returns:
            Whether the run was still going; ``False`` if it was already over.
        """
        if self._finished:
            return False
        if threading.get_ident() == self._loop_thread or self._token is None:
            self._cancel_on_loop()
        else:
            anyio.from_thread.run_sync(self._cancel_on_loop, token=self._token)
        return True

    def _cancel_on_loop(self) -> None:
        self._cancel_requested = True
        if self._scope is not None:
            self._scope.cancel()
        elif self._on_cancel is not None:
            self._on_cancel()
            self._on_cancel = None

    def _result(self, timeout: float | None, raise_on_failure: bool) -> R:
        if not self._finished:
            raise self._timeout(timeout)
        return self.state.result(raise_on_failure)  # type: ignore[return-value]

    def _timeout(self, timeout: float | None) -> TimeoutError:
        return TimeoutError(f"task run {self._task_run.name!r} did not finish within {timeout} s")

    def _started(self, handle: TaskHandle[None]) -> None:
        """Note the task running the run (on the loop's thread): ``cancel()`` cancels it."""
        if self._finished:  # it ran to its end before its task was even handed back
            return
        self._scope = handle
        if self._cancel_requested:
            handle.cancel()

    def _finish(self) -> None:
        """Mark the run over, wake its waiters, call its callbacks: on the loop's thread."""
        self._scope = None  # the handle holds the task; the future may live much longer
        with _lock:
            self._finished = True
            event = self._event
            callbacks, self._callbacks = self._callbacks, None
        if event is not None:
            event.set()
        for waiter in self._waiters or ():
            waiter.set()
        for fn in callbacks or ():
            self._call(fn)

    def _call(self, fn: Callable[[TaskFuture[R]], object]) -> None:
        try:
            fn(self)
        except Exception:
            _log.exception("A done callback of task run %r raised", self._task_run.name)

    def __repr__(self) -> str:
        return f"<TaskFuture {self._task_run.name!r} {self._task_run.state}>"


def deadline(timeout: float | None, caller: str = "wait") -> Callable[[], float | None]:
    """A function giving the seconds left of ``timeout`` from now (``None``: no limit).

    Raises:
        ValueError: ``timeout`` is negative or NaN; ``caller`` names the call in the message.
    """
    if timeout is None:
        return lambda: None
    if not timeout >= 0:  # also refuses NaN, which compares false with everything
        raise ValueError(
            f"{caller}(timeout={timeout!r}): timeout is seconds to wait, at least 0; "
            "pass None to wait as long as it takes"
        )
    end = time.monotonic() + timeout
    return lambda: max(0.0, end - time.monotonic())


class TaskFutureList(list[TaskFuture[R]]):
    """The futures ``Task.map`` returns, in the order of the mapped arguments."""

    def wait(self, timeout: float | None = None) -> None:
        """Block until every run is over, or ``timeout`` seconds have passed in all.

        Raises:
            ValueError: ``timeout`` is negative.
        """
        remaining = deadline(timeout)
        for future in self:
            future.wait(remaining())

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[R]:
        """Block until every run is over and return their values, in order.

        Raises:
            ValueError: ``timeout`` is negative.
            TimeoutError: Not every run was over within ``timeout`` seconds.
            BaseException: The first failed run's exception, if ``raise_on_failure``.
        """
        deadline(timeout, "result")
        self.wait(timeout)
        return [
            f._result(timeout, raise_on_failure)  # pyright: ignore[reportPrivateUsage]
            for f in self
        ]
