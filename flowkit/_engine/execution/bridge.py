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
import importlib
import os
import queue
import sys
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from contextvars import Context, copy_context
from functools import partial
from typing import Any, Literal, cast

import anyio
import anyio.from_thread
import outcome
import sniffio
from anyio.lowlevel import EventLoopToken, current_token

from ...exceptions import CancelledRun
from .. import clock
from ..lifecycle.futures import lending_slot
from ..lifecycle.runs import FlowRun, Run, current_run
from ..threadstop import DeadlinePassed, Stoppable, ThreadCancelled
from .local import OnLoop, call_soon_threadsafe, consumed

__all__ = [
    "BACKENDS",
    "Backend",
    "CallerThread",
    "flow_loop",
    "loop_args",
    "resolve_backend",
    "run_in_caller_thread",
    "running_backend",
]

Backend = Literal["asyncio", "trio", "asyncio+uvloop"]
BACKENDS: tuple[Backend, ...] = ("asyncio", "trio", "asyncio+uvloop")
_ALIASES: dict[str, Backend] = {"uvloop": "asyncio+uvloop"}


def resolve_backend(choice: Backend | None, *, owner: str) -> Backend:
    """The event loop for a sync flow: its own choice, else ``FLOWKIT_BACKEND``, else asyncio.

    ``FLOWKIT_BACKEND=uvloop`` is short for ``asyncio+uvloop``.

    Raises:
        ValueError: ``FLOWKIT_BACKEND`` names no supported backend.
        ModuleNotFoundError: The backend is uvloop, which is not installed (or this is
            Windows, where it does not run).
    """
    if choice is not None:
        source, backend = f"backend={choice!r}", choice
    else:
        env = os.environ.get("FLOWKIT_BACKEND", "asyncio")
        backend = _ALIASES.get(env, cast("Backend", env))
        if backend not in BACKENDS:
            raise ValueError(
                f"{owner}: FLOWKIT_BACKEND={env!r} is not a supported event loop; "
                "set it to 'asyncio', 'trio' or 'uvloop' (asyncio on uvloop)"
            )
        source = f"FLOWKIT_BACKEND={env!r}"
    if backend == "asyncio+uvloop":
        _check_uvloop(f"{owner}: {source}")
    return backend


def _check_uvloop(asked: str) -> None:
    """Import uvloop now, so that a missing one is said here rather than in a loop's thread."""
    if sys.platform == "win32":
        raise ModuleNotFoundError(
            f"{asked} asks for uvloop, which does not run on Windows; use 'asyncio'",
            name="uvloop",
        )
    try:
        importlib.import_module("uvloop")
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"{asked} asks for uvloop, which is not installed: pip install 'flowkit[uvloop]', "
            "or use 'asyncio'",
            name="uvloop",
        ) from None


def loop_args(backend: Backend) -> tuple[Literal["asyncio", "trio"], dict[str, Any]]:
    """anyio's ``backend`` and ``backend_options`` for a new event loop of ``backend``.

    A virtual clock's options (``clock.loop_options``) come last: its asyncio loop, a
    ``loop_factory``, is the one anyio starts, uvloop asked for or not (uvloop's time
    cannot be made virtual).
    """
    if backend == "asyncio+uvloop":
        return "asyncio", {"use_uvloop": True, **clock.loop_options("asyncio")}
    return backend, clock.loop_options(backend)


def running_backend() -> Backend:
    """The backend of the event loop running in this thread.

    Raises:
        sniffio.AsyncLibraryNotFoundError: No event loop runs here.
    """
    library = sniffio.current_async_library()
    if library == "trio":
        return "trio"
    uvloop: Any = sys.modules.get("uvloop")  # not imported: no uvloop loop runs anywhere
    if uvloop is not None and isinstance(current_token().native_token, uvloop.Loop):
        return "asyncio+uvloop"
    return "asyncio"


_Job = Callable[[], None]


class CallerThread(OnLoop):
    """A runner whose sync bodies run in the thread that made the sync call.

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
            with clock.thread_at_work(run.deadline):
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
    return consumed(run.definition.fn(*run.args, **run.kwargs), f"flow run {run.name!r}")


def flow_loop() -> EventLoopToken | None:
    """The loop of the current flow run, when this thread runs sync code of that flow
    (a sync flow's body, a sync task's body in a worker thread) and no loop of its own:
    an async task or flow called here runs on it, and the call returns its value."""
    run = current_run.get()
    flow_run = run.flow_run if run is not None else None
    nursery = flow_run.nursery if flow_run is not None else None
    if nursery is None or nursery.loop_thread == threading.get_ident():
        return None
    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        # Inside a sync task that async code called, the flow's loop waits for this
        # thread: the task's own loop runs the call instead.
        while run is not None and run is not flow_run:
            if run.own_loop is not None:
                return run.own_loop
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
    """Run ``make(runner)`` on an event loop while this thread serves its sync bodies.

    The loop is the current flow's, when this thread is one of its body threads; otherwise
    a new ``backend`` loop in a helper thread, for the duration of the call.
    """
    context = copy_context()
    # The body is sync code: the async library of the code that called it (trio, say)
    # must not be what the runs it starts on the flow's loop believe they run on.
    context.run(sniffio.current_async_library_cvar.set, None)
    runner = CallerThread(context)
    hosted = _Hosted()
    parent = current_run.get()
    flow_run: FlowRun | None = parent.flow_run if parent is not None else None
    nursery = flow_run.nursery if flow_run is not None else None
    if nursery is not None and nursery.loop_thread != threading.get_ident():
        anyio.from_thread.run_sync(
            nursery.task_group.start_soon, hosted.run, lambda: make(runner), token=nursery.token
        )
        # A sync task's thread that serves a subflow waits for the subflow's runs, which
        # may need the worker-thread slot it holds.
        with lending_slot():
            return runner.serve(hosted)
    if backend == "trio" and _runs_trio_task():
        # trio refuses every blocking call into a trio loop from a thread that runs a
        # trio task (this call blocks that task's loop anyway): serve from a helper.
        return _in_helper_thread(partial(_on_new_loop, runner, hosted, make, backend), hosted)
    return _on_new_loop(runner, hosted, make, backend)


def _on_new_loop(
    runner: CallerThread,
    hosted: _Hosted,
    make: Callable[[CallerThread], Coroutine[Any, Any, Any]],
    backend: Backend,
) -> Any:
    with anyio.from_thread.start_blocking_portal(*loop_args(backend)) as portal:
        portal.start_task_soon(hosted.run, lambda: make(runner))
        return runner.serve(hosted)


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
