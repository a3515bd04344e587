"""Sync flows: the flow's lifecycle lives on an event loop, its body in the caller's thread.

A sync flow call blocks its thread, so that thread is lent to the engine: the run is
started on a loop (the parent flow's loop when the caller is a body thread of a running
flow, otherwise a new one in a helper thread: asyncio, asyncio on uvloop, or trio) and
the caller serves the run's body jobs until the run is over. The body therefore runs
where the user called it: Ctrl-C, signal handlers and main-thread-only libraries behave
as they would without flowkit, and the body sees the caller's contextvars.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from contextvars import Context, copy_context
from functools import partial
from typing import Any

import anyio
import anyio.from_thread
import outcome
import sniffio
from anyio.lowlevel import EventLoopToken, current_token

from ...exceptions import CancelledRun
from .. import clock
from ..lifecycle.futures import lending_slot
from ..lifecycle.runs import Run, current_run
from ..loops import Backend, call_soon_threadsafe, loop_args
from ..threadstop import DeadlinePassed, Stoppable, ThreadCancelled
from .local import OnLoop, call_consumed

__all__ = [
    "CallerThread",
    "flow_loop",
    "run_in_caller_thread",
]


_Job = Callable[[], None]


class CallerThread(OnLoop):
    """A venue whose sync bodies run in the thread that made the sync call.

    Async bodies are awaited on the loop like ``ON_LOOP`` does; a sync body becomes a job
    the caller's thread picks up in ``serve``, run in the caller's context.
    """

    def __init__(self, context: Context) -> None:
        self._context = context
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()

    async def call(self, run: Run) -> Any:
        if run.definition.is_async:
            return await super().call(run)
        token = current_token()
        done = anyio.Event()
        result: list[outcome.Outcome[Any]] = []
        stoppable = Stoppable(run.name)

        def in_context() -> Any:
            return self._context.run(stoppable.run, partial(_call_body, run))

        def job() -> None:
            result.append(outcome.capture(in_context))
            with contextlib.suppress(RuntimeError):  # the loop has moved on without us
                anyio.from_thread.run_sync(done.set, token=token)

        self._jobs.put(job)
        try:
            with clock.thread_at_work(run.attempt.deadline):
                await done.wait()
        except anyio.get_cancelled_exc_class() as exc:
            # The body runs in the caller's thread, which goes on when it stops.
            stoppable.stop(DeadlinePassed if self.timed_out(run, exc) else ThreadCancelled)
            raise
        return result[0].unwrap()

    def serve(self, hosted: _Hosted) -> Any:
        """Run body jobs in this thread until the hosted run is over; return its result."""
        hosted.future.add_done_callback(lambda _: self._jobs.put(None))
        try:
            while (job := self._jobs.get()) is not None:
                job()
        except BaseException:
            # Interrupted while the run waits on the loop: cancel it, and keep serving so
            # that it can finish (its body jobs need this thread), then re-raise.
            hosted.cancel()
            while (job := self._jobs.get()) is not None:
                job()
            raise
        return hosted.future.result().unwrap()


def _call_body(run: Run) -> Any:
    current_run.set(run)  # in a copy of the caller's context, private to this run
    return call_consumed(run)


def flow_loop() -> EventLoopToken | None:
    """The loop of the current flow run, when this thread runs sync code of that flow
    (a sync flow's body, a sync task's body in a worker thread) and no loop of its own:
    an async task or flow called here runs on it, and the call returns its value."""
    run = current_run.get()
    flow_run = run.flow_run if run is not None else None
    nursery = flow_run.nursery if flow_run is not None else None
    if nursery is None or nursery.runs_here():
        return None
    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        # Inside a sync task that async code called, the flow's loop waits for this
        # thread: the task's own loop runs the call instead.
        while run is not None and run is not flow_run:
            if (loop := run.attempt.own_loop) is not None:
                return loop
            run = run.parent
        return nursery.token
    return None  # an event loop of the user's own runs here: the caller awaits


class _Hosted:
    """A run started on an event loop from another thread: its outcome, and its cancel."""

    def __init__(self) -> None:
        self.future: Future[outcome.Outcome[Any]] = Future()
        self._scope: anyio.CancelScope | None = None
        self._token: EventLoopToken | None = None
        self._cancelled = False

    async def run(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        self._token = current_token()
        with anyio.CancelScope() as self._scope:
            if self._cancelled:
                self._scope.cancel()
            try:
                self.future.set_result(outcome.Value(await make()))
                return
            except anyio.get_cancelled_exc_class():
                # The caller's thread cannot re-raise the loop's own cancellation.
                self.future.set_result(outcome.Error(CancelledRun("the flow run was cancelled")))
                raise
            except BaseException as exc:  # reported to the caller's thread, which raises it
                self.future.set_result(outcome.Error(exc))

    def cancel(self) -> None:
        self._cancelled = True
        if self._scope is not None and self._token is not None:
            call_soon_threadsafe(self._token)(self._scope.cancel)


def run_in_caller_thread(
    make: Callable[[CallerThread], Coroutine[Any, Any, Any]], backend: Backend
) -> Any:
    """Run ``make(venue)`` on an event loop while this thread serves its sync bodies.

    The loop is the current flow's, when this thread is one of its body threads; otherwise
    a new ``backend`` loop in a helper thread, for the duration of the call.
    """
    context = copy_context()
    # The body is sync code: the async library of the code that called it (trio, say)
    # must not be what the runs it starts on the flow's loop believe they run on.
    context.run(sniffio.current_async_library_cvar.set, None)
    venue = CallerThread(context)
    hosted = _Hosted()
    parent = current_run.get()
    nursery = parent.nursery_around if parent is not None else None
    if nursery is not None and not nursery.runs_here():
        anyio.from_thread.run_sync(
            nursery.task_group.start_soon, hosted.run, lambda: make(venue), token=nursery.token
        )
        # A sync task's thread that serves a subflow waits for the subflow's runs, which
        # may need the worker-thread slot it holds.
        with lending_slot():
            return venue.serve(hosted)
    if backend == "trio" and _runs_trio_task():
        # trio refuses every blocking call into a trio loop from a thread that runs a
        # trio task (this call blocks that task's loop anyway): serve from a helper.
        return _in_helper_thread(partial(_on_new_loop, venue, hosted, make, backend), hosted)
    return _on_new_loop(venue, hosted, make, backend)


def _on_new_loop(
    venue: CallerThread,
    hosted: _Hosted,
    make: Callable[[CallerThread], Coroutine[Any, Any, Any]],
    backend: Backend,
) -> Any:
    with anyio.from_thread.start_blocking_portal(*loop_args(backend)) as portal:
        portal.start_task_soon(hosted.run, lambda: make(venue))
        return venue.serve(hosted)


def _runs_trio_task() -> bool:
    """Whether this thread runs a trio task (that is, a trio loop)."""
    trio: Any = sys.modules.get("trio")  # not imported yet: no trio loop runs anywhere
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def _in_helper_thread(serve: Callable[[], Any], hosted: _Hosted) -> Any:
    """Call ``serve`` in a new thread, and wait for it here; an interrupt cancels the run."""
    result: list[outcome.Outcome[Any]] = []
    thread = threading.Thread(
        target=lambda: result.append(outcome.capture(serve)), name="flowkit-sync-flow"
    )
    thread.start()
    try:
        thread.join()
    except BaseException:
        hosted.cancel()
        thread.join()
        raise
    return result[0].unwrap()
