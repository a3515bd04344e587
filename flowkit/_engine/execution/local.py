"""Runners: where a run's body executes, and how its waits and deadline work there.

``engine.execute`` is written once, as async code, against the ``Venue`` protocol:

- ``ON_LOOP``: async bodies are awaited on the current event loop (asyncio or trio);
  sync bodies go to a worker thread, holding a slot of the flow's limiter. Deadlines are
  cancel scopes; a worker thread past its deadline is abandoned and asked to stop
  (see ``threadstop``).
- ``INLINE``: a sync task body runs right here, in the calling thread. Every await in
  ``execute`` then completes without suspending, so ``drive`` runs the coroutine to its
  end with a single ``send``: a sync task called from sync code costs no event-loop hop.
  Only runs with nothing to enforce around the body (no timeout, retries or hooks) run
  inline; an enclosing deadline still reaches them, by stopping this thread.
- ``bridge.CallerThread``: a sync flow's body runs in the thread that called the flow,
  while the flow's own lifecycle lives on an event loop.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import Any, TypeVar, cast

import anyio
import anyio.to_thread

from .. import clock
from ..lifecycle.futures import Slot, TaskFuture, holding_slot, lending_slot
from ..lifecycle.runs import Run
from ..lifecycle.venue import AttemptScope, Venue
from ..threadstop import DeadlinePassed, Stoppable, ThreadCancelled, ThreadStopped

__all__ = [
    "INLINE",
    "ON_LOOP",
    "AsyncReader",
    "Inline",
    "OnLoop",
    "SyncReader",
    "is_async_generator",
]

T = TypeVar("T")


class _NoDeadline:
    cancelled_caught: bool = False

    def __enter__(self) -> _NoDeadline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


class SyncReader:
    """Base of the iterators over sync generator task runs (see ``streams``): returned by a
    body, one is read to its end like a returned generator."""


class AsyncReader:
    """Base of the async iterators over async generator task runs (see ``streams``)."""


def is_async_generator(value: object) -> bool:
    """Whether a body returned an async generator, or an async generator task's iterator."""
    return inspect.isasyncgen(value) or isinstance(value, AsyncReader)


def consumed(value: Any, owner: str) -> Any:
    """A returned generator is run to its end: the run's result is the list of its values.

    So is the iterator of a generator task's run that the body called and returned unread:
    it could not outlive the run that reads it, which closes its open streams as it ends.

    Raises:
        TypeError: ``value`` is an async generator, which needs an event loop.
    """
    if inspect.isgenerator(value) or isinstance(value, SyncReader):
        return list(cast("Iterable[Any]", value))
    if is_async_generator(value):
        raise TypeError(
            f"{owner} returned an async generator, which only an event loop can run; make "
            "its function async (or yield its values instead of returning a generator)"
        )
    return value


def call_consumed(run: Run) -> Any:
    """Call the body of ``run`` in this thread; its value, a returned generator read out."""
    return consumed(run.call.body(), f"{run.info.kind} run {run.name!r}")


_NO_DEADLINE = _NoDeadline()


class Inline:
    waits_in_thread = True
    blocks_loop = False

    async def call(self, run: Run) -> Any:
        return call_consumed(run)

    def deadline(self, run: Run, timeout: float | None) -> float | None:
        return None  # an enclosing deadline stops this thread (see clock.thread_at_work)

    def attempt_scope(self, deadline: float | None) -> AttemptScope:
        return _NO_DEADLINE

    def timed_out(self, run: Run, exc: BaseException) -> bool:
        return isinstance(exc, DeadlinePassed)

    def is_cancellation(self, exc: BaseException) -> bool:
        return isinstance(exc, ThreadCancelled)

    def shield(self) -> AbstractContextManager[Any]:
        return nullcontext()

    async def join(self, futures: Iterable[TaskFuture[Any]]) -> None:
        for future in futures:
            future.wait()  # blocks this thread; the coroutine does not suspend

    async def sleep(self, seconds: float) -> None:
        # Only runs with a plain policy run inline, and they never retry; blocking here
        # would be right anyway, since this thread waits for the run either way.
        time.sleep(seconds)  # noqa: ASYNC251

    async def wait_event(self, event: threading.Event, at_most: float | None = None) -> None:
        with lending_slot():
            event.wait(at_most)

    async def call_hook(self, hook: Callable[..., Any], *args: Any) -> None:
        hook(*args)


class OnLoop:
    waits_in_thread = False
    blocks_loop = False

    async def call(self, run: Run) -> Any:
        definition = run.definition
        if definition.is_async or definition.streams == "async":
            value = run.call.body()
            value = await value if inspect.isawaitable(value) else value
            if is_async_generator(value):
                return [item async for item in value]
            return consumed(value, f"task run {run.name!r}")
        body = partial(call_consumed, run)
        run.attempt.ran_in("thread")
        nursery = run.nursery_around
        if nursery is None:
            return await self.in_thread(run, body, None)
        # The run holds a slot of the flow's limiter while its body runs; the thread
        # itself comes from an unbounded limiter, so that threads which lent their slot
        # back while they wait (see futures.lending_slot) never starve the pool.
        slot = Slot(nursery.limiter, run)
        try:
            asked = anyio.current_time()
            await slot.take()
            run.attempt.waited(anyio.current_time() - asked)  # the timeline draws this wait
            nursery.threaded(run)
            return await self.in_thread(run, partial(_holding, slot, body), nursery.threads)
        finally:
            slot.give_up()

    async def in_thread(
        self, run: Run, body: Callable[[], T], threads: anyio.CapacityLimiter | None
    ) -> T:
        """Run ``body`` in a worker thread; if the run is cancelled, stop and abandon it."""
        stoppable = Stoppable(run.name)
        try:
            with clock.thread_at_work(run.attempt.deadline):
                return await anyio.to_thread.run_sync(
                    stoppable.run, body, abandon_on_cancel=True, limiter=threads
                )
        except anyio.get_cancelled_exc_class() as exc:
            stoppable.stop(DeadlinePassed if self.timed_out(run, exc) else ThreadCancelled)
            raise

    def deadline(self, run: Run, timeout: float | None) -> float | None:
        deadline = math.inf if timeout is None else anyio.current_time() + timeout
        parent = run.parent
        outer = parent.attempt.deadline if parent is not None else None
        if parent is not None and outer is not None and _same_loop(parent):
            deadline = min(deadline, outer)
        return None if deadline == math.inf else deadline

    def attempt_scope(self, deadline: float | None) -> AttemptScope:
        if deadline is None:
            return _NO_DEADLINE  # a cancel scope costs ~10 us to enter and leave
        return anyio.CancelScope(deadline=deadline)

    def timed_out(self, run: Run, exc: BaseException) -> bool:
        if isinstance(exc, ThreadStopped):
            return isinstance(exc, DeadlinePassed)
        return (
            isinstance(exc, anyio.get_cancelled_exc_class())
            and (deadline := run.attempt.deadline) is not None
            and anyio.current_time() >= deadline
        )

    def is_cancellation(self, exc: BaseException) -> bool:
        return isinstance(exc, anyio.get_cancelled_exc_class() | ThreadCancelled)

    def shield(self) -> AbstractContextManager[Any]:
        return anyio.CancelScope(shield=True)

    async def join(self, futures: Iterable[TaskFuture[Any]]) -> None:
        for future in futures:
            await future._until_done()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    async def wait_event(self, event: threading.Event, at_most: float | None = None) -> None:
        if not event.is_set():  # waited for in a worker thread: the loop goes on
            await anyio.to_thread.run_sync(event.wait, at_most, abandon_on_cancel=True)

    async def call_hook(self, hook: Callable[..., Any], *args: Any) -> None:
        if inspect.iscoroutinefunction(hook):
            await hook(*args)
        else:  # a sync hook may block: keep it off the loop
            await anyio.to_thread.run_sync(hook, *args)


def _same_loop(run: Run) -> bool:
    nursery = run.nursery_around
    return nursery is not None and nursery.runs_here()


def _holding(slot: Slot, body: Callable[[], T]) -> T:
    with holding_slot(slot):
        return body()


INLINE: Venue = Inline()
ON_LOOP: Venue = OnLoop()
