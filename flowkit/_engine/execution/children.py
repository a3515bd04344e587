"""Submitted runs: children in their flow run's task group.

``start`` puts a Pending task run into the task group of its flow run and returns its
future at once. The submitting run keeps the future in its ``children``, and does not
finish before they are all over (see ``engine.execute``). A run with ``max_concurrency``
has that many slots for its unfinished children: a thread that submits waits for a slot;
code on the event loop cannot wait in a sync call, so its children wait for a slot in
the task group instead.
"""

from __future__ import annotations

import logging
import threading
from contextvars import Context, copy_context
from functools import partial
from typing import Any, cast

import anyio
import anyio.from_thread
import anyio.lowlevel
import outcome
import sniffio

from ... import states
from ...exceptions import MissingContextError
from ...states import State
from ..lifecycle.engine import execute, set_state
from ..lifecycle.futures import Slot, TaskFuture, held_slot
from ..lifecycle.nursery import Nursery
from ..lifecycle.runs import FlowRun, Run, TaskRun, current_run, ended
from ..loops import call_soon_threadsafe, drive, loop_args, resolve_backend, running_backend
from .local import ON_LOOP, OnLoop, call_consumed
from .remote import Remote
from .streams import (
    ASYNC_STEPS,
    SYNC_STEPS,
    AsyncStream,
    BufferedAsyncStream,
    BufferedSyncStream,
    SyncStream,
)

__all__ = ["call_on_loop", "launch", "on_flow_loop", "start", "start_all", "stream"]


def start(run: TaskRun) -> TaskFuture[Any]:
    """Start ``run`` as a child in its flow run's task group and return its future.

    Raises:
        MissingContextError: There is no running flow to hold the run.
        RuntimeError: Called from a sync task that runs on the event loop's thread.
    """
    return start_all([run])[0]


def start_all(runs: list[TaskRun]) -> list[TaskFuture[Any]]:
    """Start runs of one parent as children in the flow's task group; return their futures.

    From a thread, all of them are started in one trip to the event loop.

    Raises:
        MissingContextError: There is no running flow to hold the runs.
        RuntimeError: Called from a sync task that runs on the event loop's thread.
    """
    if not runs:
        return []
    parent, flow_run = runs[0].parent, runs[0].flow_run
    owner = f"task {runs[0].definition.name!r}"
    if parent is None or flow_run is None or (nursery := flow_run.nursery) is None:
        raise MissingContextError(
            f"{owner}: .submit() and .map() need a running flow to hold the run; call them "
            "inside a @flow, or call the task directly"
        )
    if (remote := _remote(nursery)) is not None and runs[0].submitted:
        for run in runs:  # an argument that cannot reach a worker is refused here
            remote.prepare(run)
    futures: list[TaskFuture[Any]] = [
        TaskFuture(run, nursery.loop_thread, nursery.token) for run in runs
    ]
    context = copy_context()
    if _blocks_its_loop(parent):
        raise RuntimeError(
            f"{owner}: cannot be submitted from a run that async code called as a sync "
            "task: its flow's event loop waits for that call, and could not run this one; "
            "submit that task instead of calling it, or make it async"
        )
    if not nursery.runs_here():
        if parent.definition.max_concurrency is None:
            _spawn_soon(nursery, futures, context)
        else:  # the submitting thread waits for slots on the loop: backpressure
            anyio.from_thread.run(
                _start_from_thread, nursery, futures, context, held_slot(), token=nursery.token
            )
    elif isinstance(parent, TaskRun) and not parent.definition.is_async:
        # The parent is a sync task called from async code, running on the loop's thread:
        # it could not wait for its child without blocking the loop the child needs.
        raise RuntimeError(
            f"{owner}: cannot be submitted from sync task {parent.definition.name!r}, which "
            "runs on the event loop because async code called it; make that task async, "
            "or submit it instead of calling it"
        )
    else:
        if nursery.spawns:  # runs submitted from threads earlier start first
            _drain(nursery)
        for future in futures:
            launch(nursery, future, context)
    parent.attempt.adopt(futures)
    return futures


def on_flow_loop() -> bool:
    """Whether this thread runs the event loop of the current flow run."""
    run = current_run.get()
    nursery = run.nursery_around if run is not None else None
    return nursery is not None and nursery.runs_here()


def call_on_loop(run: TaskRun) -> State[Any]:
    """Run a sync task whose deadline, retries or hooks need the event loop; wait for it.

    In a flow, called from a thread, the run becomes a child in the flow's task group, as
    if submitted. Called on the flow loop's own thread (from async code), or outside any
    flow, it gets an event loop of its own, in a helper thread when this thread runs a
    loop: the call blocks its caller, loop included, as any sync call does.
    """
    nursery = run.nursery_around
    on_loop = nursery is not None and nursery.runs_here()
    if nursery is not None and not on_loop and not _blocks_its_loop(run.parent):
        future = start(run)
        future._observed = True  # the caller gets its value or exception
        future.wait()
        return run.state
    venue = DETACHED if nursery is None else BLOCKING
    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        backend, options = loop_args(resolve_backend(None, owner=f"task {run.definition.name!r}"))
        return anyio.run(execute, run, venue, backend=backend, backend_options=options)
    return _on_loop_of_its_own(run, venue)


def _blocks_its_loop(run: Run | None) -> bool:
    """Whether ``run`` or a run it is part of holds its flow's loop in a blocking call."""
    while run is not None and not isinstance(run, FlowRun):
        if run.attempt.blocks_loop:
            return True
        run = run.parent
    return False


def _on_loop_of_its_own(run: TaskRun, venue: _Detached) -> State[Any]:
    """Run ``run`` on a new loop in a helper thread, blocking this thread until it ends."""
    like_this_one = running_backend()
    context = copy_context()
    # The copy says which library runs this thread's loop; the helper runs another loop.
    context.run(sniffio.current_async_library_cvar.set, None)
    result: list[outcome.Outcome[State[Any]]] = []

    def run_to_end() -> State[Any]:
        backend, options = loop_args(like_this_one)
        return anyio.run(execute, run, venue, backend=backend, backend_options=options)

    def lifecycle() -> None:
        result.append(outcome.capture(context.run, run_to_end))

    helper = threading.Thread(target=lifecycle, name=f"flowkit {run.name}", daemon=True)
    helper.start()
    helper.join()
    return result[0].unwrap()


class _Detached(OnLoop):
    """A venue on a loop that is not its flow's: sync bodies take no slot of the flow's
    thread limiter, which belongs to the other loop.

    Args:
        blocks_loop: Whether the flow's loop waits for the run in a blocking call (async
            code of the flow called it).
    """

    def __init__(self, *, blocks_loop: bool) -> None:
        self.blocks_loop = blocks_loop

    async def call(self, run: Run) -> Any:
        if run.definition.is_async:
            return await super().call(run)
        run.attempt.hosted_on(anyio.lowlevel.current_token())  # for async tasks it calls
        return await self.in_thread(run, partial(call_consumed, run), None)


DETACHED = _Detached(blocks_loop=False)
BLOCKING = _Detached(blocks_loop=True)


def _spawn_soon(nursery: Nursery, futures: list[TaskFuture[Any]], context: Context) -> None:
    """Have the loop start ``futures``' runs soon, without waiting for it.

    A thread that waited for the loop at each submit would wait behind every run the loop
    is busy with; instead submissions queue up and one callback starts them all (or
    ``Nursery.close`` cancels them, if the flow's body ends first).
    """
    with nursery.spawn_lock:
        nursery.spawns.append(lambda: context.run(_start_in_callback, nursery, futures))
        if nursery.drain_scheduled:
            return
        nursery.drain_scheduled = True
    call_soon_threadsafe(nursery.token)(_drain, nursery)


def _drain(nursery: Nursery) -> None:
    """On the loop, outside any task: start the runs submitted from threads."""
    with nursery.spawn_lock:
        batch, nursery.spawns = nursery.spawns, []
        nursery.drain_scheduled = False
    for start_them in batch:
        start_them()


def _start_in_callback(nursery: Nursery, futures: list[TaskFuture[Any]]) -> None:
    # A loop callback runs in no task, where anyio cannot tell which library it is on.
    library = sniffio.current_async_library_cvar.set(nursery.library)
    try:
        for future in futures:  # the flow may have ended since: launch cancels them then
            launch(nursery, future, None)
    except Exception:  # an error here must not reach the loop's callback machinery
        logging.getLogger("flowkit.engine").exception("flowkit could not start submitted runs")
    finally:
        sniffio.current_async_library_cvar.reset(library)


def launch(nursery: Nursery, future: TaskFuture[Any], context: Context | None) -> None:
    """On the loop: start ``future``'s run as a child in the nursery, or line it up.

    A sync run's task would mostly wait for a worker thread, holding a coroutine, a task
    and a cancel scope meanwhile; so while as many sync runs as there are threads wait
    for one, further ones wait in the flow run's backlog as plain objects, and each run
    that gets its thread (``Nursery.threaded``) starts the next. Runs start in the order
    they were submitted, so a run in the backlog never holds up one that started.

    Once the flow's body is over (``Nursery.close``), the run ends Cancelled instead:
    that is how the backlog is emptied, and how runs submitted from threads meanwhile
    end.
    """
    run = future._task_run
    if future.done():  # cancelled while it waited in the backlog
        return
    if nursery.closed:
        future._on_cancel = None
        _end_unstarted(future, "Its flow run ended before it started.")
        return
    if not run.definition.is_async:
        if len(nursery.unthreaded) >= nursery.limiter.total_tokens:
            future._on_cancel = partial(_cancel_unstarted, future)
            nursery.backlog.append(partial(launch, nursery, future, context))
            return
        future._on_cancel = None
        nursery.awaits_thread(run)
    _spawn(nursery, future, False, context)


def _spawn(
    nursery: Nursery, future: TaskFuture[Any], holds_slot: bool, context: Context | None
) -> None:
    # The task's handle is what cancels the run: anyio gives each task a cancel scope.
    child = _child(future, nursery, holds_slot)
    future._started(nursery.task_group.create_task(child, context=context))


def _cancel_unstarted(future: TaskFuture[Any]) -> None:
    _end_unstarted(future, "The run was cancelled before it started.")


def _end_unstarted(future: TaskFuture[Any], why: str) -> None:
    """End the run of ``future``, which never started, Cancelled for ``why``."""
    set_state(future._task_run, states.Cancelled(why))
    future._finish()


async def _start_from_thread(
    nursery: Nursery, futures: list[TaskFuture[Any]], context: Context, thread_slot: Slot | None
) -> None:
    """Start runs submitted from a thread, each once its parent has a slot for it.

    The submitting thread waits meanwhile (backpressure); if it holds a worker-thread
    slot, it lends it while it waits, since the runs that free the slots may need it.
    """
    assert futures[0]._task_run.parent is not None
    slots = futures[0]._task_run.parent.submit_slots()
    for future in futures:
        if slots is not None and not nursery.closed:
            try:
                slots.acquire_nowait()
            except anyio.WouldBlock:
                if thread_slot is not None:
                    thread_slot.lend()
                await slots.acquire()
            if nursery.closed:  # the flow's body ended while this thread waited
                slots.release()
        if nursery.closed:
            launch(nursery, future, context)  # which ends the run Cancelled
            continue
        _spawn(nursery, future, slots is not None, context)
    if thread_slot is not None:
        await thread_slot.take()


def _remote(nursery: Nursery) -> Remote | None:
    """The venue of the flow's submitted bodies on its task runner's workers, if it has
    one: made once per flow run (it packs each task's function once)."""
    if nursery.executor is None:
        return None
    if nursery.remote is None:
        with nursery.spawn_lock:  # submits come from threads too
            if nursery.remote is None:
                nursery.remote = Remote(nursery.executor)
    return cast("Remote", nursery.remote)


async def _child(future: TaskFuture[Any], nursery: Nursery, holds_slot: bool) -> None:
    run = future._task_run
    assert run.parent is not None
    slots = run.parent.submit_slots()
    try:
        if slots is not None and not holds_slot:
            await slots.acquire()
            holds_slot = True
        remote = _remote(nursery)
        # Only submitted runs go to the flow's task runner; plain calls run here.
        await execute(run, remote if remote is not None and run.submitted else ON_LOOP)
    finally:
        if holds_slot and slots is not None:
            slots.release()
        if not ended(run.state):  # cancelled before it started
            set_state(run, states.Cancelled("The run was cancelled before it started."))
        future._finish()
        nursery.threaded(run)  # if it ended before it got a thread: the next run may start


def stream(run: TaskRun, buffer: int | None) -> Any:
    """The iterator (sync) or async iterator over a generator task run's values.

    Without ``buffer`` the body runs one step per value the reader asks for; with it, a
    thread (sync generators) or a task of the flow's group (async generators, inside a
    flow's loop) produces up to ``buffer`` values ahead.
    """
    if run.definition.streams == "sync":
        if buffer:
            return BufferedSyncStream(run, buffer, lambda r, steps: drive(execute(r, steps)))
        return SyncStream(run, lambda: execute(run, SYNC_STEPS), _unread)
    nursery = run.nursery_around
    if buffer and nursery is not None and nursery.runs_here():
        reader = BufferedAsyncStream(run, buffer)
        copy_context().run(nursery.task_group.start_soon, reader.produce, execute)
        return reader
    return AsyncStream(run, lambda: execute(run, ASYNC_STEPS), _unread)


def _unread(run: Run) -> None:
    set_state(run, states.Cancelled("Closed before its first value was read; the body never ran."))
