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

from collections.abc import Coroutine
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread

from .. import logging as flowkit_logging
from .. import states
from ..context import current_tags
from ..states import State
from . import events
from .naming import generate_name, render_run_name
from .runs import Definition, FlowRun, Run, TaskRun, current_run

__all__ = ["INLINE", "ON_LOOP", "Runner", "drive", "execute", "finished", "new_run"]

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


class _Inline:
    async def call(self, run: Run) -> Any:
        return run.definition.fn(*run.args, **run.kwargs)

    def shield(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def is_cancellation(self, exc: BaseException) -> bool:
        return False


class _OnLoop:
    async def call(self, run: Run) -> Any:
        fn = run.definition.fn
        if run.definition.is_async:
            return await fn(*run.args, **run.kwargs)
        return await anyio.to_thread.run_sync(partial(fn, *run.args, **run.kwargs))

    def shield(self) -> AbstractContextManager[Any]:
        return anyio.CancelScope(shield=True)

    def is_cancellation(self, exc: BaseException) -> bool:
        return isinstance(exc, anyio.get_cancelled_exc_class())


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
    """
    flowkit_logging.setup()
    parent = current_run.get()
    if log_prints is None:
        log_prints = parent.log_prints if parent is not None else False
    cls = FlowRun if flow else TaskRun
    run = cls(definition, args, kwargs, skip, "", parent, tags | current_tags(), log_prints)
    owner = f"{'flow' if flow else 'task'} {definition.name!r}"
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


def _set_state(run: Run, state: State[Any]) -> None:
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

    An exception from the body ends the run Failed and is kept in the state. Anything
    else that ends the run early (cancellation, ``KeyboardInterrupt``, an engine error)
    ends it Cancelled or Crashed, and is raised again: it is never swallowed.
    """
    token = current_run.set(run)
    try:
        async with run.scope():
            run.run_count += 1
            _set_state(run, states.Running())
            with flowkit_logging.printing_to_log(run.log_prints):
                try:
                    value = await runner.call(run)
                except Exception as exc:
                    final = run.failed_state(exc)
                else:
                    final = run.final_state(value)
    except BaseException as exc:
        with runner.shield():
            _set_state(run, _interrupted(run, exc, runner))
        raise
    finally:
        current_run.reset(token)
    _set_state(run, final)
    return final


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
