"""Generator tasks: runs whose values stream to the caller as they are yielded.

A generator task's run goes through ``engine.execute`` like any other; its venue's
``call`` iterates the user's generator and hands each value out through an awaitable
that yields it to whoever drives the run's coroutine. The caller's iterator drives it
one step per value it asks for, in a context of the run's own (so the body sees its
run in ``flowkit.runtime`` and the caller does not):

- the body runs only when the caller asks for the next value, so side effects happen
  in the order a plain generator would give them, with no thread and no channel;
- a sync stream is driven from the caller's thread; an async stream from the caller's
  task, every suspension of the body passed on to the event loop, as ``yield from``
  does;
- the run is Running while it yields and Completed when exhausted; closing the iterator
  early (``break``, ``aclose()``, the iterator being dropped) closes the generator
  (``GeneratorExit`` in the body, ``finally`` blocks run) and completes the run; an
  error in the body fails it and reaches the caller; a stream closed before its first
  value never runs its body (as a generator closed before it started) and its run ends
  Cancelled;
- ``timeout_seconds`` bounds the run from its first step; it is enforced inside each
  step (a cancel scope around an async step, a stopped thread for a sync step), never
  around the caller's own code between steps.

With ``buffer=n`` the producer runs ahead of the caller by up to ``n`` values instead:
an async generator in its own task of the flow's task group, a sync generator in a
worker thread, handing values through a bounded channel.

A generator task that fails after it delivered values is not retried: the caller has
them already, and a replay could not be checked to match. Its state says so.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterator,
)
from contextvars import Context, copy_context
from typing import Any, TypeVar

import anyio

from ..lifecycle.readers import StreamDeadline, register, unregister
from ..lifecycle.runs import Run
from ..lifecycle.venue import Venue
from ..threadstop import DeadlinePassed, Stoppable
from .local import AsyncReader, Inline, OnLoop, SyncReader

__all__ = [
    "ASYNC_STEPS",
    "SYNC_STEPS",
    "AsyncStream",
    "BufferedAsyncStream",
    "BufferedSyncStream",
    "SyncStream",
]

T = TypeVar("T")


class _Item:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _HandOut:
    """``await _HandOut(v)`` in the run's coroutine gives ``v`` to the stream's reader."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, None]:
        yield _Item(self.value)


def _deadline_in(run: Run, now: Callable[[], float]) -> float:
    timeout = run.definition.timeout_seconds
    return math.inf if timeout is None else now() + timeout


Outlet = Callable[[Any], Awaitable[None]]


class _SyncSteps(Inline):
    """Runs a sync generator body one step per value, in the reader's thread; or, with
    an outlet, in a producer thread that hands each value to the outlet."""

    waits_in_thread = False  # its attempts are driven a step at a time, not in one send

    def __init__(self, outlet: Outlet | None = None) -> None:
        self._outlet = outlet

    async def call(self, run: Run) -> Any:
        generator = run.call.body()
        deadline = _deadline_in(run, time.monotonic)
        stoppable = Stoppable(run.name)
        try:
            while True:
                try:
                    value = _step_before(stoppable, generator, deadline)
                except StopIteration as stop:
                    return stop.value  # what the generator returned: the run's result
                except DeadlinePassed:
                    raise StreamDeadline(_late(run)) from None
                await _deliver(run, value, self._outlet)
        except _Closed:
            return None
        finally:
            generator.close()


def _step_before(stoppable: Stoppable, generator: Iterator[T], deadline: float) -> T:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlinePassed
    if left == math.inf:
        return next(generator)
    timer = threading.Timer(left, stoppable.stop, (DeadlinePassed,))
    timer.daemon = True
    timer.start()
    try:
        return stoppable.run(lambda: next(generator))
    finally:
        timer.cancel()


class _AsyncSteps(OnLoop):
    """Runs an async generator body one step per value, in the reader's task; or, with
    an outlet, in a producer task that hands each value to the outlet."""

    waits_in_thread = False  # its attempts are driven a step at a time, not in one send

    def __init__(self, outlet: Outlet | None = None) -> None:
        self._outlet = outlet

    async def call(self, run: Run) -> Any:
        generator = run.call.body()
        deadline = _deadline_in(run, anyio.current_time)
        try:
            while (value := await _next_value(run, generator, deadline)) is not _DONE:
                await _deliver(run, value, self._outlet)
        except _Closed:
            return None
        finally:
            with anyio.CancelScope(shield=True):
                await generator.aclose()

    def deadline(self, run: Run, timeout: float | None) -> float | None:
        return None  # the deadline lives in each step


_DONE: Any = object()


async def _next_value(run: Run, generator: AsyncIterator[Any], deadline: float) -> Any:
    """The generator's next value, or ``_DONE`` at its end.

    Raises:
        StreamDeadline: The run's deadline passed while the body made the value.
    """
    if deadline == math.inf:  # no cancel scope per value: it would cost more than the value
        return await anext(generator, _DONE)
    with anyio.CancelScope(deadline=deadline):
        return await anext(generator, _DONE)
    raise StreamDeadline(_late(run))  # the scope caught its own cancellation: too late


def _late(run: Run) -> str:
    return f"Task run {run.name!r} exceeded its timeout of {run.definition.timeout_seconds:g} s"


async def _deliver(run: Run, value: Any, outlet: Outlet | None) -> None:
    run.attempt.handed()
    try:
        if outlet is None:
            await _HandOut(value)
        else:
            await outlet(value)
    except (_ReaderClosed, anyio.BrokenResourceError, anyio.ClosedResourceError):
        raise _Closed from None


class _Closed(Exception):
    """The reader closed the stream: the body is closed and the run completes."""


class _Exhausted(Exception):
    """The run's coroutine returned: the stream has no more values."""


class _ReaderClosed(Exception):
    """Thrown into a run's coroutine where it hands a value out: the reader is gone.

    Not ``GeneratorExit``: thrown into a coroutine, that one closes the awaits in between
    instead of reaching the point where the value is handed out.
    """


SYNC_STEPS: Venue = _SyncSteps()
ASYNC_STEPS: Venue = _AsyncSteps()


# The readers: iterators that drive a run's coroutine one value at a time.


class _Stream:
    """What sync and async readers share: the run, its coroutine and its context."""

    def __init__(
        self,
        run: Run,
        make: Callable[[], Coroutine[Any, Any, Any]],
        unread: Callable[[Run], None],
    ) -> None:
        # ``make`` makes the run's lifecycle, in the run's own context; ``unread`` ends a
        # run whose reader closed before its first value: its lifecycle never started.
        self.run = run
        self.last: Any = None
        # What the generator returned, once the run is over (``yield from`` gives it).
        self.returned: Any = None
        self._context: Context = copy_context()
        self.coroutine = self._context.run(make)
        self._unread = unread
        self._started = False
        self._done = False
        register(run, self, weakly=isinstance(self, SyncReader))

    def close_unread(self) -> None:
        """Close a stream whose first value was never asked for: as with a generator
        closed before it started, the body never runs. (Thrown into a coroutine that has
        not started, an exception would leave it at once, past every handler.)"""
        self._done = True
        unregister(self.run, self)
        self.coroutine.close()
        self._unread(self.run)

    def _finished(self, state: Any) -> None:
        self.returned = state.data if state.is_completed() else None
        self._done = True
        unregister(self.run, self)
        if state.is_failed() or state.is_crashed():
            raise state.exception

    def step(self, method: Callable[..., Any], arg: Any) -> Any:
        """One step of the coroutine, in the run's context; returns what it yielded.

        Raises:
            _Exhausted: The run is over (its errors are raised instead).
        """
        self._started = True
        try:
            return self._context.run(method, arg)
        except StopIteration as stop:
            self._finished(stop.value)
            raise _Exhausted from None
        except BaseException:
            self._done = True
            unregister(self.run, self)
            raise

    def delivered(self, yielded: Any) -> Any:
        if not isinstance(yielded, _Item):  # pragma: no cover - engine invariant
            raise RuntimeError("flowkit engine bug: a sync stream suspended")
        self.last = yielded.value
        return yielded.value


class SyncStream(_Stream, SyncReader, Generator[Any, None, None]):
    """The iterator a sync generator task's call returns."""

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        try:
            yielded = self.step(self.coroutine.send, None)
        except _Exhausted:
            raise StopIteration(self.returned) from None
        return self.delivered(yielded)

    def send(self, value: Any) -> Any:
        """As for a generator; only ``None`` can be sent into a task's stream."""
        if value is not None:
            raise TypeError("a generator task's stream only accepts send(None)")
        return next(self)

    def throw(self, *exc: Any) -> Any:
        """Close the stream, then raise ``exc`` here (values cannot be thrown into a run)."""
        self.close()
        raise exc[0] if len(exc) == 1 else exc[1]

    async def finish_early(self) -> None:
        """Close the stream because its reader's run is ending."""
        self.close()

    def close(self) -> None:
        """Stop reading: the generator is closed and the run completes (or, never read,
        ends Cancelled without running its body)."""
        if self._done:
            return
        if not self._started:
            self.close_unread()
            return
        try:
            self.step(self.coroutine.throw, _ReaderClosed())
        except _Exhausted:
            pass
        finally:
            self._done = True

    def __del__(self) -> None:
        if not self._done:
            self.close()


class AsyncStream(_Stream, AsyncReader, AsyncGenerator[Any, None]):
    """The async iterator an async generator task's call returns."""

    def __anext__(self) -> Coroutine[Any, Any, Any]:
        return self._step(None)

    async def asend(self, value: Any) -> Any:
        """As for an async generator; only ``None`` can be sent into a task's stream."""
        if value is not None:
            raise TypeError("a generator task's stream only accepts asend(None)")
        return await self._step(None)

    async def athrow(self, *exc: Any) -> Any:
        """Close the stream, then raise ``exc`` here."""
        await self.aclose()
        raise exc[0] if len(exc) == 1 else exc[1]

    async def finish_early(self) -> None:
        """Close the stream because its reader's run is ending."""
        await self.aclose()

    async def aclose(self) -> None:
        """Stop reading: the generator is closed and the run completes (or, never read,
        ends Cancelled without running its body)."""
        if self._done:
            return
        if not self._started:
            self.close_unread()
            return
        with contextlib.suppress(StopAsyncIteration):
            await self._step(_ReaderClosed())

    async def _step(self, throw: BaseException | None) -> Any:
        if self._done:
            raise StopAsyncIteration
        return await _Trampoline(self, throw)


class _Trampoline:
    """Drives the run's coroutine to its next value, passing its suspensions to the loop."""

    def __init__(self, stream: AsyncStream, throw: BaseException | None) -> None:
        # ``throw``: an exception to throw in at once instead of asking for a value.
        self.stream = stream
        self.throw = throw

    def __await__(self) -> Generator[Any, Any, Any]:
        stream, coroutine = self.stream, self.stream.coroutine
        sent: Any = None
        throw = self.throw
        while True:
            try:
                if throw is not None:
                    yielded = stream.step(coroutine.throw, throw)
                else:
                    yielded = stream.step(coroutine.send, sent)
            except _Exhausted:
                raise StopAsyncIteration from None
            throw = None
            if isinstance(yielded, _Item):
                return stream.delivered(yielded)
            try:
                sent = yield yielded
            except BaseException as exc:  # cancellation and the like go to the run's body
                throw, sent = exc, None


# Read-ahead: the producer runs in its own task or thread, up to ``buffer`` values ahead.

_END: Any = object()


class BufferedSyncStream(SyncReader, Iterator[Any]):
    """Reads a sync generator run that a thread of its own produces up to ``buffer`` ahead."""

    def __init__(self, run: Run, buffer: int, drive_run: Callable[[Run, Venue], Any]) -> None:
        self.run = run
        self._queue: queue.Queue[Any] = queue.Queue(buffer)
        self._closed = threading.Event()
        self._done = False
        register(run, self, weakly=isinstance(self, SyncReader))
        context = copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._produce, drive_run), daemon=True,
            name=f"flowkit-stream-{run.name}",
        )  # fmt: skip
        self._thread.start()

    def _produce(self, drive_run: Callable[[Run, Venue], Any]) -> None:
        try:
            drive_run(self.run, _SyncSteps(self._put))
        finally:
            self._put_end()

    def _put_end(self) -> None:
        while not self._closed.is_set():
            try:
                self._queue.put(_END, timeout=0.05)
                return
            except queue.Full:
                continue

    async def _put(self, value: Any) -> None:  # never suspends: it runs in the producer thread
        while True:
            if self._closed.is_set():
                raise _Closed
            try:
                self._queue.put(value, timeout=0.05)
                return
            except queue.Full:
                continue

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        value = self._queue.get()
        if value is _END:
            self._done = True
            unregister(self.run, self)
            self._thread.join()
            state = self.run.state
            if state.is_failed() or state.is_crashed():
                raise state.exception  # type: ignore[misc]
            raise StopIteration
        return value

    def close(self) -> None:
        """Stop reading: the producer closes the generator at its next value."""
        if not self._done:
            self._done = True
            unregister(self.run, self)
            self._closed.set()
            self._thread.join()

    async def finish_early(self) -> None:
        """Close the stream because its reader's run is ending."""
        self.close()

    def __del__(self) -> None:
        self.close()


class BufferedAsyncStream(AsyncReader, AsyncIterator[Any]):
    """Reads an async generator run produced up to ``buffer`` ahead by a task of the
    flow's task group."""

    def __init__(self, run: Run, buffer: int) -> None:
        self.run = run
        self._send, self._receive = anyio.create_memory_object_stream[Any](buffer)
        register(run, self, weakly=isinstance(self, SyncReader))

    async def produce(self, execute: Callable[[Run, Venue], Coroutine[Any, Any, Any]]) -> None:
        """The producer task's body: run the generator run, then close the channel."""
        with self._send:
            await execute(self.run, _AsyncSteps(self._send.send))

    def __anext__(self) -> Coroutine[Any, Any, Any]:
        return self._next()

    async def _next(self) -> Any:
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            unregister(self.run, self)
            self._receive.close()
            state = self.run.state
            if state.is_failed() or state.is_crashed():
                raise state.exception from None  # type: ignore[misc]
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Stop reading: the producer closes the generator at its next value."""
        unregister(self.run, self)
        self._receive.close()

    async def finish_early(self) -> None:
        """Close the stream because its reader's run is ending."""
        await self.aclose()
