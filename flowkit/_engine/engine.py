"""The one engine: every flow and task run goes through ``execute``.

``execute`` is written once, as async code. Where a run's body executes is the business
of a *runner*:

- ``ON_LOOP``: async bodies are awaited on the current event loop (asyncio or trio);
  sync bodies go to a worker thread through the shared limiter.
- ``INLINE``: a sync task body runs right here, in the calling thread. Every await in
  ``execute`` then completes without suspending, so ``drive`` runs the coroutine to its
  end with a single ``send``: a sync task called from sync code costs no event-loop hop.
- ``bridge.CallerThread``: a sync flow's body runs in the thread that called the flow,
  while the flow's own lifecycle lives on an event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread

from .. import logging as flowkit_logging
from .. import states
from ..context import current_tags
from ..exceptions import UpstreamFailedError
from ..states import State
from . import events
from .futures import TaskFuture, holding_slot
from .inputs import find_upstream, may_hold_upstream, resolve
from .naming import generate_name, render_run_name
from .runs import Definition, FlowRun, Run, TaskRun, current_run

__all__ = [
    "INLINE",
    "ON_LOOP",
    "Runner",
    "drive",
    "execute",
    "finished",
    "new_run",
    "set_state",
]

T = TypeVar("T")


class Runner(Protocol):
    """Where a run's body executes, and how the lifecycle protects its final writes."""

    async def call(self, run: Run) -> Any:
        """Run the body of ``run`` and return its value."""
        ...

    def shield(self) -> AbstractContextManager[Any]:
        """Protect the final state writes of an interrupted run from cancellation."""
        ...

    def is_cancellation(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the event loop's cancellation."""
        ...

    async def join(self, futures: Iterable[TaskFuture[Any]]) -> None:
        """Wait until every one of ``futures`` is over, without reading their results."""
        ...


class _Inline:
    async def call(self, run: Run) -> Any:
        return run.definition.fn(*run.args, **run.kwargs)

    async def join(self, futures: Iterable[TaskFuture[Any]]) -> None:
        for future in futures:
            future.wait()  # blocks this thread; the coroutine does not suspend

    def shield(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def is_cancellation(self, exc: BaseException) -> bool:
        return False


class _OnLoop:
    async def call(self, run: Run) -> Any:
        fn = run.definition.fn
        if run.definition.is_async:
            return await fn(*run.args, **run.kwargs)
        body = partial(fn, *run.args, **run.kwargs)
        flow_run = run.flow_run
        if flow_run is None or flow_run.limiter is None:
            return await anyio.to_thread.run_sync(body)
        # The run holds a slot of the flow's limiter while its body runs; the thread
        # itself comes from an unbounded limiter, so that threads which lent their slot
        # back while they wait (see futures.lending_slot) never starve the pool.
        limiter = flow_run.limiter
        await limiter.acquire_on_behalf_of(run)
        try:
            return await anyio.to_thread.run_sync(
                _holding, limiter, run, body, limiter=flow_run.threads
            )
        finally:
            limiter.release_on_behalf_of(run)

    async def join(self, futures: Iterable[TaskFuture[Any]]) -> None:
        for future in futures:
            await future.until_done()

    def shield(self) -> AbstractContextManager[Any]:
        return anyio.CancelScope(shield=True)

    def is_cancellation(self, exc: BaseException) -> bool:
        return isinstance(exc, anyio.get_cancelled_exc_class())


def _holding(limiter: anyio.CapacityLimiter, run: Run, body: Callable[[], T]) -> T:
    with holding_slot(limiter, run):
        return body()


INLINE: Runner = _Inline()
ON_LOOP: Runner = _OnLoop()


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends to its end, in this thread.

    Raises:
        RuntimeError: The coroutine tried to suspend, which only an engine bug can cause.
    """
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]  # the coroutine's own T
    coro.close()
    raise RuntimeError("flowkit engine bug: a run driven in its calling thread suspended")


def new_run(
    definition: Definition,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    flow: bool,
    skip: int = 0,
    run_name: Any = None,
    log_prints: bool | None = None,
    tags: frozenset[str] = frozenset(),
    wait_for: Iterable[Any] | None = None,
    max_concurrency: int | None = None,
    thread_limit: int | None = None,
    submitted: bool = False,
) -> Run:
    """Create a Pending run in the caller's context, which gives it its parent and tags.

    Args:
        definition: The task or flow.
        args: Positional arguments of the call (a bound instance first).
        kwargs: Keyword arguments of the call.
        flow: Whether this is a flow run.
        skip: Leading positional arguments that are not parameters.
        run_name: A ``str.format`` template or a callable naming the run; ``None`` for
            the default name.
        log_prints: The definition's own setting; ``None`` inherits the parent's.
        tags: The definition's own tags.
        wait_for: Futures the run waits for, besides those among its arguments.
        max_concurrency: Bound on the run's unfinished submitted runs.
        thread_limit: For a flow run: its worker-thread limit.
        submitted: Whether the run is being submitted rather than called.

    Raises:
        TypeError: ``wait_for`` holds something that is not a future.
    """
    flowkit_logging.setup()
    parent = current_run.get()
    if log_prints is None:
        log_prints = parent.log_prints if parent is not None else False
    tags = tags | current_tags()
    if flow:
        run: Run = FlowRun(definition, args, kwargs, skip, "", parent, tags, log_prints)
        run.thread_limit = thread_limit  # type: ignore[attr-defined]
    else:
        run = TaskRun(definition, args, kwargs, skip, "", parent, tags, log_prints)
    run.max_concurrency = max_concurrency
    run.submitted = submitted
    owner = f"{'flow' if flow else 'task'} {definition.name!r}"
    if wait_for is not None or may_hold_upstream(args, kwargs):
        run.upstream = find_upstream(run.parameters, wait_for, owner=owner)
    if run_name is not None:
        token = current_run.set(run)  # a naming function may read flowkit.runtime
        try:
            run.name = render_run_name(run_name, run.parameters, owner=owner)
        finally:
            current_run.reset(token)
    elif flow:
        run.name = generate_name()
    else:
        index = parent.next_index(definition.name) if parent is not None else 0
        run.name = f"{definition.name}-{index}"
    events.emit(run, run.state)
    return run


def set_state(run: Run, state: State[Any]) -> None:
    """Move ``run`` to ``state`` and tell the event sinks."""
    run.state = state
    if state.type.is_final:
        run.end_time = state.timestamp
        if isinstance(run, TaskRun) and (flow_run := run.flow_run) is not None:
            flow_run.child_states.append(state.type)
    elif run.start_time is None and state.is_running():
        run.start_time = state.timestamp
    events.emit(run, state)


async def execute(run: Run, runner: Runner) -> State[Any]:
    """Take a Pending run through Running to its final state, and return that state.

    The run first waits for its upstream runs, and ends ``NotReady`` without starting if
    one of them did not complete. An exception from the body ends the run Failed and is
    kept in the state; so does a submitted run that failed unobserved. Anything else that
    ends the run early (cancellation, ``KeyboardInterrupt``, an engine error) ends it
    Cancelled or Crashed, and is raised again: it is never swallowed.
    """
    final: State[Any] | None = None
    value: Any = None
    token = current_run.set(run)
    try:
        if run.upstream and (final := await _take_inputs(run, runner)) is not None:
            set_state(run, final)
            return final
        async with run.scope():
            run.run_count += 1
            set_state(run, states.Running())
            with flowkit_logging.printing_to_log(run.log_prints):
                try:
                    value = await runner.call(run)
                except Exception as exc:
                    final = run.failed_state(exc)
                    for child in run.children:  # nobody is left to use them
                        child.cancel()
            if run.children:
                await runner.join(run.children)
        if final is None:
            final = run.final_state(value)
    except BaseException as exc:
        with runner.shield():
            set_state(run, _interrupted(run, exc, runner))
        raise
    finally:
        current_run.reset(token)
    set_state(run, final)
    return final


async def _take_inputs(run: Run, runner: Runner) -> State[Any] | None:
    """Wait for the upstream runs and put their values in the arguments.

    Returns:
        ``None`` when the run may start; its final ``NotReady`` state when it may not.
    """
    await runner.join(u.future for u in run.upstream)
    owner = f"task run {run.name!r}"
    try:
        run.rebind(resolve(run.args, owner=owner), resolve(run.kwargs, owner=owner))
    except UpstreamFailedError as exc:
        return states.NotReady(str(exc), exception=exc)
    return None


def _interrupted(run: Run, exc: BaseException, runner: Runner) -> State[Any]:
    if runner.is_cancellation(exc):
        return states.Cancelled("The run was cancelled.", exception=exc)
    return states.Crashed(
        f"Execution was interrupted by {type(exc).__name__}: {exc}".rstrip(": "), exception=exc
    )


def finished(state: State[T], return_state: bool) -> T | State[T]:
    """What a call hands back: the final state itself, or its value (raising its error)."""
    if return_state:
        return state
    return state.result()
