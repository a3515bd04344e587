"""The one engine: every flow and task run goes through ``execute``.

``execute`` is written once, as async code; where the body runs, and how waiting,
sleeping and deadlines work there, is the business of a venue (see ``venues``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar, cast

import attrs

from ... import states
from ...exceptions import (
    CancelledRun,
    FlowTimeoutError,
    ParameterBindError,
    ParameterTypeError,
    TaskTimeoutError,
    UpstreamFailedError,
)
from ...states import State, StateType
from .. import events
from ..convert import snapshot
from ..definition.options import FlowOptions
from ..definition.policy import Policy
from ..definition.signature import Definition
from ..definition.validation import validated
from ..events import RunInfo, StateChanged, error_info
from ..ids import new_id
from ..limits import tag_slots
from ..naming import generate_name, render_run_name
from ..results import cache
from ..results.storage import results_of
from . import transactions
from .caching import from_cache, persisted, task_key_of
from .inputs import Upstream, as_wait_list, find_upstream, may_hold_upstream, resolve
from .prints import printing_to_log
from .readers import StreamDeadline, last_delivered, open_readers
from .records import run_record
from .returned import pending_futures
from .runs import (
    NOT_HANDED,
    Attempt,
    Call,
    FlowProgress,
    FlowRun,
    Progress,
    Run,
    TaskRun,
    current_run,
    current_tags,
    ended,
)  # fmt: skip
from .venue import Venue, interrupted_by

__all__ = ["execute", "finished", "new_run", "set_state"]

T = TypeVar("T")

_log = logging.getLogger("flowkit.engine")


def new_run(
    definition: Definition,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    flow: bool,
    skip: int = 0,
    wait_for: Iterable[Any] | None = None,
    submitted: bool = False,
) -> Run:
    """Create a Pending run in the caller's context, which gives it its parent and tags.

    Args:
        definition: The task or flow; its ``policy`` holds its run settings.
        args: Positional arguments of the call (a bound instance first).
        kwargs: Keyword arguments of the call.
        flow: Whether this is a flow run.
        skip: Leading positional arguments that are not parameters.
        wait_for: Futures and states the run waits for, besides those among its
            arguments (plain values in it are ignored).
        submitted: Whether the run is being submitted rather than called.

    Raises:
        ParameterBindError: The arguments do not fit the function's signature.
        TypeError: ``wait_for`` is not a list, or holds something that is not a future.
    """
    events.activate()
    parent = current_run.get()
    policy = definition.policy
    log_prints, tags, run_name = definition.log_prints, policy.tags, policy.run_name
    if log_prints is None:
        log_prints = parent.log_prints if parent is not None else False
    if outer_tags := current_tags.get():
        tags = tags | outer_tags
    owner = f"{'flow' if flow else 'task'} {definition.name!r}"
    call = Call(definition, skip, args, kwargs)
    try:
        parameters = call.parameters
    except TypeError as exc:
        raise ParameterBindError(
            f"{owner} cannot be called so: {exc}; call it as {_call_shape(definition, skip)}"
        ) from None
    upstream: Sequence[Upstream] = ()
    wait_list = None
    takes_inputs = wait_for is not None or may_hold_upstream(args, kwargs)
    if takes_inputs:
        if wait_for is not None:
            wait_list = as_wait_list(wait_for, owner=owner)
        upstream = find_upstream(parameters, wait_list)
    streamed_from = None
    if parent is not None and open_readers(parent):  # did a generator run stream a value?
        streamed_from = {
            name: producer.id
            for name, value in parameters.items()
            if (producer := last_delivered(parent, value)) is not None
        }
    run_id = new_id()
    key = str(run_id)
    if flow:
        dynamic_key = ""
        name = generate_name() if run_name is None else ""
    else:  # its occurrence under its root: Prefect's dynamic_key
        dynamic_key = str(parent.next_index(definition.name) if parent is not None else 0)
        name = f"{definition.name}-{dynamic_key}" if run_name is None else ""
    info = _info(definition, key, name, parent, flow, tags, submitted)
    shared = (definition, call, name, parent, tags, log_prints, run_id, info,
              submitted, upstream, wait_list, takes_inputs, streamed_from)  # fmt: skip
    run: Run
    if flow:
        run = FlowRun(
            *shared, progress=FlowProgress(call), thread_limit=policy.thread_limit,
            task_runner=_flow_options(definition).task_runner,
            # a subflow call: its key within the parent's attempt
            call_key=parent.next_call_key(definition.name)
            if isinstance(parent, FlowRun) else None,
        )  # fmt: skip
    else:
        run = TaskRun(*shared, transactions.get_transaction(), progress=Progress(call),
                      dynamic_key=dynamic_key)  # fmt: skip
    if run_name is not None:
        token = current_run.set(run)  # a naming function may read flowkit.runtime
        try:
            name = render_run_name(run_name, run.arguments, owner=owner)
        finally:
            current_run.reset(token)
        run = attrs.evolve(run, name=name, info=_info(definition, key, name, parent, flow,
                                                       tags, submitted))  # fmt: skip
    recorded = snapshot(parameters)  # what was passed, whatever the body does to it
    events.emit(StateChanged(run.info, run.state, parameters=recorded, task_inputs=_inputs(run)))
    return run


def _flow_options(definition: Definition) -> FlowOptions:
    """A flow's own options (the engine reads the ones tasks have too as ``Definition``)."""
    return cast("FlowOptions", definition)


def _call_shape(definition: Definition, skip: int) -> str:
    """``name(x, y=1, *, z)``: how to call the function, without its annotations."""
    sig = definition.signature
    params = [p.replace(annotation=p.empty) for p in list(sig.parameters.values())[skip:]]
    plain = sig.replace(parameters=params, return_annotation=sig.empty)
    return f"{getattr(definition.fn, '__name__', definition.name)}{plain}"


def _info(
    definition: Definition,
    key: str,
    name: str,
    parent: Run | None,
    flow: bool,
    tags: frozenset[str],
    submitted: bool,
) -> RunInfo:
    outer = parent.info if parent is not None else None
    return RunInfo(
        key, "flow" if flow else "task", name, definition.name, outer,
        in_flow=None if outer is None else (outer if outer.kind == "flow" else outer.in_flow),
        root_id=key if outer is None else outer.root_id,
        tags=tags, submitted=submitted,
        progress=_flow_options(definition).progress if flow else None,
        task_key=None if flow else task_key_of(definition),
    )  # fmt: skip


def _inputs(run: Run) -> dict[str, list[str]] | None:
    """The run's upstream run ids by parameter, if it has any."""
    if not (run.upstream or run.streamed_from):
        return None
    return {k: [str(i) for i in v] for k, v in run.task_inputs.items()}


def set_state(run: Run, state: State[Any]) -> State[Any]:
    """Move ``run`` to ``state`` and tell the event sinks; return the state as the run
    holds it (a state that ends the run says whose it is: ``state_details``)."""
    if over := ended(state):
        state = _stamped(run, state)
    progress = run.progress
    running = state.is_running()
    if progress.state.is_running():  # an attempt's time counts in total_run_time
        progress.run_time += state.timestamp - progress.state.timestamp
    progress.state = state
    # The wait for a worker thread, and the worker, belong to the attempt this ends.
    worker, wait = (None, None) if running else progress.attempt.took_back()
    if not over:
        if progress.start_time is None and running:
            progress.start_time = state.timestamp
        events.emit(StateChanged(run.info, state, progress.attempt.number, progress.start_time,
                                 thread_wait=wait, worker=worker))  # fmt: skip
        return state
    progress.end_time = state.timestamp
    children: dict[StateType, int] | None = None
    if isinstance(run, FlowRun):
        children = {}
        for kind in run.progress.child_states:
            children[kind] = children.get(kind, 0) + 1
    elif (flow_run := run.flow_run) is not None:
        flow_run.progress.child_states.append(state.type)
    exc = state.exception
    events.emit(
        StateChanged(
            run.info, state, progress.attempt.number, progress.start_time,
            # Upstream values were put in the arguments as the run started: record them.
            parameters=progress.resolved_inputs,
            task_inputs=_inputs(run) if run.takes_inputs else None,
            cache_note=progress.cache_note,
            error=None if exc is None else error_info(exc, with_traceback=_telling(state, exc)),
            children=children, result_location=progress.result_location, thread_wait=wait,
            worker=worker, ended=True,
        )
    )  # fmt: skip
    return state


def _stamped(run: Run, state: State[Any]) -> State[Any]:
    """``state`` as the state that ended ``run``: its ``state_details`` name the run."""
    flow_run = run.flow_run
    details = states.StateDetails(
        flow_run_id=flow_run.id if flow_run is not None else None,
        task_run_id=None if isinstance(run, FlowRun) else run.id,
    )
    return State(state.type, state.name, state.message, state.timestamp, state.data,
                 state.exception, details)  # fmt: skip


def _telling(state: State[Any], exc: BaseException) -> bool:
    """Whether the traceback of ``exc`` says anything: not for a run that was stopped
    (cancelled, interrupted by Ctrl-C or a shutdown), only for one that broke."""
    return state.type is not StateType.CANCELLED and not isinstance(
        exc, KeyboardInterrupt | SystemExit
    )


async def execute(run: Run, venue: Venue) -> State[Any]:
    """Take a Pending run through its attempts to its final state, and return that state.

    The run first waits for its upstream runs, and ends ``NotReady`` without starting if
    one of them did not complete. An exception from the body fails the attempt; so does
    a submitted run that failed unobserved, and a deadline (``TimedOut``). A failed
    attempt is retried as the policy says. Anything else that ends the run early
    (cancellation, ``KeyboardInterrupt``, an engine error) ends it Cancelled, TimedOut or
    Crashed, and is raised again: it is never swallowed. Final states and hooks are
    written shielded from cancellation.
    """
    policy: Policy = run.definition.policy
    results = results_of(run)
    token = current_run.set(run)
    txn = transactions.begin(run) if isinstance(run, TaskRun) else None
    flight: tuple[str, str] | None = None  # the cache key whose computation is ours
    reused: State[Any] | None = None  # a subflow's result from an earlier parent attempt
    try:
        final = await _take_inputs(run, venue) if run.takes_inputs else None
        if isinstance(run, FlowRun) and final is None:
            if _flow_options(run.definition).validate_parameters:
                final = _validated(run)
            if final is None:
                final = reused = run.reused_state()
        caching = policy.caching if results.persist else None
        if final is None and caching is not None:
            final, flight = await from_cache(run, venue, caching, results)
        fresh = final is None
        while final is None:
            final = await _attempt(run, venue, policy)
            if (delay := await _retry_delay(run, policy, final)) is not None:
                set_state(
                    run,
                    states.AwaitingRetry(
                        f"Attempt {run.run_count} ended {final}; retry {run.run_count} of "
                        f"{run.definition.retries} in {delay:.3g} s"
                    ),
                )
                await venue.sleep(delay)
                final = None
        if fresh and results.persist and final.is_completed():
            final = persisted(run, final, results, caching, flight)
            if isinstance(run, FlowRun):
                run.keep_for_retries(final)
    except BaseException as exc:
        with venue.shield():
            state = set_state(run, _interrupted(run, exc, venue))
            if txn is not None:
                transactions.settle(txn, run, state)
            await _call_hooks(run, state, policy.final_hook(state), venue)
            await _wait_held(run, venue)
        raise
    finally:
        current_run.reset(token)
        if txn is not None:
            transactions.leave(txn)
        if flight is not None:
            cache.RESULTS.release(*flight)
    if final.is_cancelling():  # returned by the body: the run stops here, cancelled
        set_state(run, final)
        final = states.Cancelled(final.message, exception=CancelledRun(_stopped(run)))
    final = set_state(run, final)  # no await: nothing can cancel it
    if txn is not None:  # commit or roll back the run's transaction, with its hooks
        transactions.settle(txn, run, final)
    # A reused subflow did not run: its hooks ran when it completed, in the earlier attempt.
    if reused is None and (hooks := policy.final_hook(final)):
        with venue.shield():
            await _call_hooks(run, final, hooks, venue)
    await _wait_held(run, venue)
    return final


async def _wait_held(run: Run, venue: Venue) -> None:
    """For a root run: wait for what its sinks hold its call for (``events.hold``)."""
    if run.parent is None:
        for done, timeout in events.take_held(run.key):
            await venue.wait_event(done, timeout)


async def _attempt(run: Run, venue: Venue, policy: Policy) -> State[Any]:
    """Run the body once, with its children and deadline; return the attempt's state."""
    final: State[Any] | None = None
    value: Any = None
    number = run.run_count + 1
    slots = await _tag_slots(run, venue)  # tag limits: held for the attempt
    deadline = venue.deadline(run, run.definition.timeout_seconds)
    attempt = run.progress.attempt = Attempt(number, deadline, venue.blocks_loop)
    with slots, venue.attempt_scope(deadline) as scope:
        async with run.scope():
            running = states.Running() if number == 1 else states.Retrying()
            set_state(run, running)
            if hooks := policy.hooks.get("on_running"):
                await _call_hooks(run, running, hooks, venue)
            with printing_to_log(run.log_prints):
                try:
                    value = await venue.call(run)
                except StreamDeadline:
                    return _timed_out(run)
                except Exception as exc:
                    final = run.failed_state(exc)
                    for child in attempt.children:  # nobody is left to use them
                        child.cancel()
            for stream in open_readers(run):  # streams left open end with their reader
                await stream.finish_early()
            if attempt.children:
                await venue.join(attempt.children)
            if final is None and isinstance(run, FlowRun) and (returned := pending_futures(value)):
                await venue.join(returned)  # a returned future never outlives its run
    if scope.cancelled_caught:
        return _timed_out(run)
    return final if final is not None else run.final_state(value)


async def _retry_delay(run: Run, policy: Policy, state: State[Any]) -> float | None:
    """Seconds to wait before trying ``run`` again, or ``None`` if it is over."""
    retryable = state.is_failed() or state.is_crashed()  # crashed: its worker died
    if not retryable or run.run_count > run.definition.retries:
        return None
    if streamed := run.attempt.streamed:
        _log.warning(
            "%r is not retried: it had handed %d values to its reader, which a retry "
            "would repeat", run.name, streamed,
        )  # fmt: skip
        return None
    condition = policy.retry_condition
    if condition is not None:
        try:
            verdict = condition(run.definition, run_record(run), state)
            if inspect.isawaitable(verdict):  # an async retry_condition_fn
                verdict = await verdict
            if not verdict:
                return None
        except Exception:
            _log.exception("retry_condition_fn of %r raised; not retrying", run.name)
            return None
    return policy.delay(run.run_count)


def _timed_out(run: Run) -> State[Any]:
    kind = "Flow" if isinstance(run, FlowRun) else "Task"
    error = FlowTimeoutError if isinstance(run, FlowRun) else TaskTimeoutError
    timeout = run.definition.timeout_seconds
    if timeout is not None and run.attempt.deadline is not None:
        why = f"exceeded its timeout of {timeout:g} s"
    else:
        why = "was stopped by the deadline of an enclosing run"
    message = f"{kind} run {run.name!r} {why}"
    return states.TimedOut(message, exception=error(message))


async def _call_hooks(
    run: Run, state: State[Any], hooks: tuple[Callable[..., Any], ...], venue: Venue
) -> None:
    record = run_record(run) if hooks else None  # made once, and only for hooks
    for hook in hooks:
        try:
            await venue.call_hook(hook, run.definition, record, state)
        except Exception:
            _log.exception(
                "Hook %r of run %r failed on state %s",
                getattr(hook, "__qualname__", hook), run.name, state,
            )  # fmt: skip


async def _take_inputs(run: Run, venue: Venue) -> State[Any] | None:
    """Wait for the upstream runs and put their values in the arguments.

    Returns:
        ``None`` when the run may start; its final ``NotReady`` state when it may not.
    """
    await venue.join(u.future for u in run.upstream)
    owner = f"{'flow' if isinstance(run, FlowRun) else 'task'} run {run.name!r}"
    try:
        if run.wait_for is not None:
            resolve(run.wait_for, owner=owner)
        given = run.given
        args, kwargs = resolve(given.args, owner=owner), resolve(given.kwargs, owner=owner)
    except UpstreamFailedError as exc:
        return states.NotReady(str(exc), exception=exc)
    if args is not given.args or kwargs is not given.kwargs:  # upstream values were put in
        progress = run.progress
        progress.call = given.rebound(args, kwargs)
        progress.resolved_inputs = snapshot(progress.call.parameters)  # as the run starts
    return None


def _interrupted(run: Run, exc: BaseException, venue: Venue) -> State[Any]:
    if venue.timed_out(run, exc):
        return _timed_out(run)
    exc = interrupted_by(exc)  # Ctrl-C reaches async code on asyncio as a cancellation
    if venue.is_cancellation(exc):
        # The state holds an Exception: whoever reads the result (``await future``) gets
        # CancelledRun, never the cancellation itself, which would cancel the reader.
        return states.Cancelled("The run was cancelled.", exception=CancelledRun(_stopped(run)))
    return states.Crashed(
        f"Execution was interrupted by {type(exc).__name__}: {exc}".rstrip(": "), exception=exc
    )


def _stopped(run: Run) -> str:
    kind = "flow" if isinstance(run, FlowRun) else "task"
    return f"{kind} run {run.name!r} was cancelled"


async def _tag_slots(run: Run, venue: Venue) -> AbstractContextManager[None]:
    """The slots of the tag limits of a task run, waiting ``AwaitingConcurrencySlot``."""
    if not run.tags or isinstance(run, FlowRun):
        return _NO_SLOTS

    def waiting(tag: str) -> None:
        set_state(run, states.AwaitingConcurrencySlot(f"Waiting for a slot of tag {tag!r}"))

    return await tag_slots(run.tags, venue.waits_in_thread, waiting)


_NO_SLOTS = nullcontext()


def _validated(run: Run) -> State[Any] | None:
    """``None`` when the run's arguments fit its type hints (coerced in place), else its
    final ``Failed`` state."""
    try:
        call = run.call
        if (bound := validated(run.definition, call.skip, call.arguments)) is not None:
            run.progress.call = call.rebound(bound.args, bound.kwargs)
    except ParameterTypeError as exc:
        return states.Failed(f"Validation of flow parameters failed: {exc}", exception=exc)
    return None


def finished(run: Run, state: State[T], return_state: bool) -> T | State[T]:
    """What a call hands back: the final state itself; what the body returned, when it
    returned states (``Attempt.handed_back``); else the state's value (raising its error)."""
    if return_state:
        return state
    if (returned := run.attempt.handed_back) is not NOT_HANDED:
        return returned  # type: ignore[no-any-return]
    return state.result()
