"""Runs: what the engine knows about one execution of a flow or task.

A run is created in the caller's thread and context (so it sees the caller's tags and
parent run), then taken through its states by ``_engine.lifecycle``. The current run is
kept in a contextvar, so it follows the run into worker threads and child tasks.
"""

from __future__ import annotations

import enum
import itertools
import math
import os
import threading
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn
from uuid import UUID

import anyio
import attrs
import sniffio

from ... import states
from ...exceptions import WorkerCrashedError
from ...states import State, StateType
from ..definition.signature import Definition, bind, parameters_of
from .nursery import Nursery
from .returned import decide, resolve

if TYPE_CHECKING:
    from anyio.lowlevel import EventLoopToken

    from ..definition.task_runner import TaskRunner
    from ..events import RunInfo
    from .futures import TaskFuture
    from .inputs import Upstream
    from .transactions import Transaction

__all__ = [
    "NOT_HANDED",
    "Attempt",
    "Call",
    "FlowProgress",
    "FlowRun",
    "Progress",
    "Run",
    "TaskRun",
    "current_run",
    "current_tags",
    "ended",
    "failed",
    "not_ready",
]


class _NoScope:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


_NO_SCOPE = _NoScope()

_FAILURES = frozenset({StateType.FAILED, StateType.CRASHED})


def ended(state: State[Any]) -> bool:
    """Whether a run in ``state`` is over: the state is final, or ``NotReady``."""
    return state.type.is_final or not_ready(state)


def failed(state: State[Any]) -> bool:
    """Whether a run in ``state`` ended without its value: it failed or crashed, or never
    started because a run it waited for did (``NotReady``)."""
    return state.type in _FAILURES or not_ready(state)


def not_ready(state: State[Any]) -> bool:
    """Whether ``state`` is ``NotReady``: the run ended without starting (a Pending state,
    as in Prefect), because a run it waited for did not complete."""
    return state.type is StateType.PENDING and state.name == "NotReady"


class _NotHanded(enum.Enum):
    NOT_HANDED = enum.auto()


NOT_HANDED = _NotHanded.NOT_HANDED
"""``Run.handed_back`` when the call hands back its final state's result."""


@attrs.frozen(eq=False)
class Call:
    """The arguments a run's body is called with.

    Attributes:
        definition: The ``Task`` or ``Flow`` called.
        skip: How many leading positional arguments are not parameters (1 for a bound
            method's ``self`` or ``cls``).
        args: Positional arguments (a bound method's instance first).
        kwargs: Keyword arguments.
    """

    definition: Definition
    skip: int
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    @cached_property
    def arguments(self) -> dict[str, Any]:
        """The arguments by parameter name, defaults filled in, with a bound method's
        ``self`` or ``cls`` (what run name templates and cache_key_fn see).

        Raises:
            TypeError: The arguments do not fit the function's signature.
        """
        definition = self.definition
        return bind(definition.signature, definition.plain_parameters, self.args, self.kwargs)

    @cached_property
    def parameters(self) -> dict[str, Any]:
        """The arguments by parameter name, defaults filled in."""
        return parameters_of(self.arguments, self.skip)

    def rebound(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        """The same call with other arguments (upstream values put in, or coerced)."""
        return Call(self.definition, self.skip, args, kwargs)

    def body(self) -> Any:
        """Call the function with these arguments; what it returns."""
        return self.definition.fn(*self.args, **self.kwargs)


@attrs.define(eq=False)
class Attempt:
    """What changes while one attempt of a run goes on: made complete as the attempt
    starts, then told by the venue what happens (``ran_in``, ``waited``, ``hosted_on``,
    ``handed``); only the lifecycle layer assigns its fields.

    Attributes:
        number: 1 for the first attempt, 2 for the first retry, ...; 0 before the first.
        deadline: When the attempt must end, on the event loop's clock: the earlier of
            its own timeout and its parent's deadline; ``None`` for never.
        blocks_loop: Whether async code called this sync run plainly: its flow's loop
            waits for it in a blocking call, so it and the runs it calls may not put
            work on that loop.
        worker: Who ran the body, when not the event loop: ``"thread"``, ``"process
            <pid>"`` or ``"dask <worker address>"``; the state that ends the attempt
            takes it.
        thread_wait: Seconds the sync body waited for a slot of its flow's worker-thread
            limiter; the state that ends the attempt takes it.
        own_loop: The loop of its own a ``blocks_loop`` run's body got (see
            ``children.call_on_loop``): async tasks its body calls run there.
        streamed: How many values a generator task's run handed to its reader.
        children: The futures of the runs the body submitted.
        handed_back: What a plain call of the run returns in place of its final state's
            result, when its body returned states (see ``returned``): a flow's return
            value with its futures resolved to states, a task's as it was.
    """

    number: int
    deadline: float | None = None
    blocks_loop: bool = False
    worker: str | None = None
    thread_wait: float | None = None
    own_loop: EventLoopToken | None = attrs.field(default=None, repr=False)
    streamed: int = 0
    children: list[TaskFuture[Any]] = attrs.field(factory=list, repr=False)
    handed_back: Any = attrs.field(default=NOT_HANDED, repr=False)

    def ran_in(self, worker: str | None) -> None:
        """Note who ran the body (``None``: a worker that could not say)."""
        self.worker = worker

    def waited(self, seconds: float) -> None:
        """Note how long the sync body waited for a slot of its flow's thread limiter."""
        self.thread_wait = seconds

    def hosted_on(self, loop: EventLoopToken) -> None:
        """Note the loop of its own that this attempt's sync body runs beside."""
        self.own_loop = loop

    def adopt(self, futures: list[TaskFuture[Any]]) -> None:
        """Note runs the body submitted."""
        self.children.extend(futures)

    def handed(self) -> None:
        """Count a value the body handed to the run's reader."""
        self.streamed += 1

    def took_back(self) -> tuple[str | None, float | None]:
        """The worker and thread wait, for the state that ends the attempt (once)."""
        taken = self.worker, self.thread_wait
        if taken != (None, None):
            self.worker = self.thread_wait = None
        return taken


_NO_ATTEMPT = Attempt(0)


@attrs.define(eq=False)
class Progress:
    """Where a run stands: written by the lifecycle layer only, read through the run.

    Attributes:
        state: The current state.
        attempt: The attempt under way, or the last one.
        call: The arguments the body gets: the call as made, until upstream values are
            put in and validation coerced them.
        start_time: When the run first entered Running.
        end_time: When the run reached its final state.
        run_time: The time spent in Running states, all attempts together (the attempt
            under way not included): Prefect's ``total_run_time``.
        cache_note: Why the run did or did not use a cached result, if it caches.
        result_location: Where its persisted result lives, once written (or found).
        resolved_inputs: Its parameters once upstream values were put in them, as
            recorded then.
        slots: Bounds its unfinished submitted runs, when ``max_concurrency`` is set;
            made on the loop when first needed.
        counters: How many task runs of each task name were named under this run, when
            it is the root that numbers them (a flow run, or a task run outside a flow).
    """

    call: Call
    state: State[Any] = attrs.field(factory=states.Pending)
    attempt: Attempt = _NO_ATTEMPT
    start_time: datetime | None = None
    end_time: datetime | None = None
    run_time: timedelta = timedelta(0)
    cache_note: str | None = None
    result_location: str | None = None
    resolved_inputs: dict[str, Any] | None = attrs.field(default=None, repr=False)
    slots: anyio.Semaphore | None = attrs.field(default=None, repr=False)
    counters: dict[str, Iterator[int]] | None = attrs.field(default=None, repr=False)


@attrs.define(eq=False)
class FlowProgress(Progress):
    """Where a flow run stands, and what its children leave with it.

    Attributes:
        nursery: The task group of its children and what goes with it, while that task
            group lives (closed once the body is over); ``None`` before and after.
        child_states: The final state type of each task run in this flow, in order.
        completed_subflows: The subflow runs of this run's attempts that completed with a
            persisted result, with their final states and attempts, by ``call_key``: a
            retry reuses them.
        subflow_calls: Subflow calls counted per (attempt, flow name), to make their
            ``call_key``.
    """

    nursery: Nursery | None = attrs.field(default=None, repr=False)
    child_states: list[StateType] = attrs.field(factory=list, repr=False)
    completed_subflows: dict[tuple[str, int], tuple[Run, State[Any], int]] = attrs.field(
        factory=dict, repr=False
    )
    subflow_calls: dict[tuple[int, str], Iterator[int]] = attrs.field(factory=dict, repr=False)


@attrs.frozen(eq=False)
class Run:
    """One execution of a flow or task: who it is and how it was called, complete at
    creation and never changed; where it stands is its ``progress``.

    Attributes:
        definition: The ``Task`` or ``Flow`` being run.
        given: The call as made (futures and all).
        name: The run's name.
        parent: The run that started this one, if any.
        tags: The run's tags: the definition's and those of enclosing ``tags()`` blocks.
        log_prints: Whether ``print`` in the body becomes a log record.
        id: Unique id.
        info: Who the run is, as every event of it says.
        submitted: Whether the run was started with ``submit`` or ``map``.
        upstream: The futures among the arguments and ``wait_for``: runs this one waits
            for before it starts.
        wait_for: What ``wait_for=`` gave: futures, states, plain values,
            ``allow_failure(...)``.
        takes_inputs: Whether arguments hold futures, states or wrappers to resolve
            before the run starts.
        streamed_from: Parameters that got a value streamed by a generator run: that
            run's id.
        transaction: For a task run: the transaction active where it was created (its
            own transaction's parent), if any.
        progress: Where the run stands; the lifecycle layer writes it.
    """

    definition: Definition
    given: Call
    name: str
    parent: Run | None
    tags: frozenset[str]
    log_prints: bool
    id: UUID
    info: RunInfo = attrs.field(repr=False)
    submitted: bool = False
    upstream: Sequence[Upstream] = attrs.field(default=(), repr=False)
    wait_for: list[Any] | None = attrs.field(default=None, repr=False)
    takes_inputs: bool = False
    streamed_from: dict[str, UUID] | None = attrs.field(default=None, repr=False)
    transaction: Transaction | None = attrs.field(default=None, repr=False)
    progress: Progress = attrs.field(kw_only=True, repr=False)

    @property
    def key(self) -> str:
        """The id as a string (its events' ``run.id``)."""
        return self.info.id

    @property
    def state(self) -> State[Any]:
        """The current state."""
        return self.progress.state

    @property
    def attempt(self) -> Attempt:
        """The attempt under way, or the last one."""
        return self.progress.attempt

    @property
    def run_count(self) -> int:
        """How many times the body has been started."""
        return self.progress.attempt.number

    @property
    def start_time(self) -> datetime | None:
        """When the run first entered Running."""
        return self.progress.start_time

    @property
    def call(self) -> Call:
        """The arguments the body gets."""
        return self.progress.call

    @property
    def arguments(self) -> dict[str, Any]:
        """The body's arguments by parameter name, defaults filled in, with a bound
        method's ``self`` or ``cls``."""
        return self.progress.call.arguments

    @property
    def parameters(self) -> dict[str, Any]:
        """The body's arguments by parameter name, defaults filled in."""
        return self.progress.call.parameters

    @property
    def task_inputs(self) -> dict[str, list[UUID]]:
        """The ids of the upstream runs, by the parameter they came in (or ``wait_for``)."""
        inputs: dict[str, list[UUID]] = {}
        for upstream in self.upstream:
            inputs.setdefault(upstream.parameter, []).append(upstream.future.task_run_id)
        for parameter, producer in (self.streamed_from or {}).items():
            inputs.setdefault(parameter, []).append(producer)
        return inputs

    @property
    def flow_run(self) -> FlowRun | None:
        """The nearest enclosing flow run (this run itself, for a flow run)."""
        run: Run | None = self
        while run is not None and not isinstance(run, FlowRun):
            run = run.parent
        return run

    @property
    def nursery_around(self) -> Nursery | None:
        """The nursery of the nearest enclosing flow run, while its body runs."""
        flow_run = self.flow_run
        return flow_run.progress.nursery if flow_run is not None else None

    def next_index(self, task_name: str) -> int:
        """Number the next task run of ``task_name`` under this run's root."""
        root: Run = self
        while not isinstance(root, FlowRun) and root.parent is not None:
            root = root.parent
        counters = root.progress.counters
        if counters is None:
            counters = root.progress.counters = {}
        counter = counters.get(task_name)
        if counter is None:
            counter = counters.setdefault(task_name, itertools.count())
        return next(counter)

    def submit_slots(self) -> anyio.Semaphore | None:
        """What bounds this run's unfinished submitted runs (on the loop), if anything."""
        bound = self.definition.max_concurrency
        if bound is None:
            return None
        progress = self.progress
        if progress.slots is None:
            progress.slots = anyio.Semaphore(bound)
        return progress.slots

    def scope(self) -> AbstractAsyncContextManager[None]:
        """Hold whatever the run owns while its body runs (a task run: nothing)."""
        return _NO_SCOPE

    def final_state(self, value: Any) -> State[Any]:
        """The state of a body that returned ``value``, its submitted runs all over.

        A returned state, or returned futures and states, decide it (see ``returned``),
        and the call will hand back what was returned (``Attempt.handed_back``);
        otherwise a submitted run that failed unobserved fails the run.
        """
        flow = isinstance(self, FlowRun)
        if flow:
            value = resolve(value)
        attempt = self.progress.attempt
        returned = decide(value, self)
        if returned is not None and (not flow or not issubclass(type(value), State)):
            attempt.handed_back = value
        if returned is not None and not returned.is_completed():
            return returned
        children = attempt.children
        unseen = [
            f._task_run.state.exception
            for f in children
            if not f._observed and failed(f._task_run.state)
        ]
        if not unseen:
            return returned if returned is not None else self.completed_state(value)
        attempt.handed_back = NOT_HANDED
        kind = "flow" if flow else "task"
        exc = unseen[0] if len(unseen) == 1 else None
        if exc is None:
            exc = ExceptionGroup(
                f"{kind} {self.definition.name!r}: {len(unseen)} task runs failed",
                [e if isinstance(e, Exception) else RuntimeError(e) for e in unseen],
            )
        return states.Failed(
            f"{len(unseen)} of {len(children)} submitted task runs failed and nobody "
            f"read their result: {type(exc).__name__}: {exc}",
            exception=exc,
        )

    def completed_state(self, value: Any) -> State[Any]:
        """The state of a body that returned ``value`` with nothing left failing."""
        return states.Completed(data=value)

    def failed_state(self, exc: Exception) -> State[Any]:
        """The state of a body that raised ``exc``."""
        kind = "Flow" if isinstance(self, FlowRun) else "Task"
        if isinstance(exc, WorkerCrashedError):  # not the body's doing; retried all the same
            return states.Crashed(str(exc), exception=exc)
        return states.Failed(
            f"{kind} run encountered an exception: {type(exc).__name__}: {exc}", exception=exc
        )


@attrs.frozen(eq=False)
class TaskRun(Run):
    """A run of a task.

    Attributes:
        dynamic_key: Its occurrence among the runs of its task under its root run
            (``"0"``, ``"1"``, ...): Prefect's ``dynamic_key``, and its default name's number.
    """

    dynamic_key: str = ""

    @property
    def task_name(self) -> str:
        return self.definition.name


@attrs.frozen(eq=False)
class FlowRun(Run):
    """A run of a flow. While its body runs, its nursery holds its children.

    Attributes:
        thread_limit: How many sync task bodies may run in worker threads at once; ``None``
            shares the parent flow's limiter, or reads ``FLOWKIT_THREAD_LIMIT``.
        task_runner: Where its submitted task runs execute; ``None``: worker threads.
        call_key: Which subflow call of its parent flow run's attempt this run is: the
            flow's name and how many calls of it came before in that attempt (``None``
            for a run that no flow run's body called).
    """

    progress: FlowProgress = attrs.field(kw_only=True, repr=False)
    thread_limit: int | None = None
    task_runner: TaskRunner | None = None
    call_key: tuple[str, int] | None = None

    @property
    def nursery(self) -> Nursery | None:
        """The nursery of its children while their task group lives; ``None`` before
        and after."""
        return self.progress.nursery

    def next_call_key(self, flow_name: str) -> tuple[str, int]:
        """Count a call of flow ``flow_name`` in this run's current attempt; its key.

        A retry's body calls its subflows in the order the failed attempt did, so the
        same call gets the same key in every attempt, as with Prefect's dynamic key.
        """
        calls = self.progress.subflow_calls
        counter = calls.setdefault((self.run_count, flow_name), itertools.count())
        return flow_name, next(counter)

    def reused_state(self) -> State[Any] | None:
        """For a subflow call that completed in an earlier attempt of its parent flow run,
        with a persisted result: a final state holding that result (it is not run again)."""
        parent = self.parent
        if self.call_key is None or not isinstance(parent, FlowRun):
            return None
        earlier = parent.progress.completed_subflows.get(self.call_key)
        if earlier is None:
            return None
        run, state, attempt = earlier
        where = f"subflow run {run.name!r} in attempt {attempt} of flow run {parent.name!r}"
        self.progress.cache_note = f"reused: the result of {where}"
        self.progress.result_location = run.progress.result_location
        return states.Completed(f"Reused the result of {where}; not run again.", data=state.data)

    def keep_for_retries(self, state: State[Any]) -> None:
        """Keep this subflow run's final ``state`` on its parent flow run, for a retry of
        the parent to reuse, if it completed with a persisted result."""
        parent = self.parent
        if (
            self.call_key is not None
            and isinstance(parent, FlowRun)
            and state.is_completed()
            and self.progress.result_location is not None
        ):
            parent.progress.completed_subflows[self.call_key] = (self, state, parent.run_count)

    @property
    def flow_name(self) -> str:
        return self.definition.name

    def scope(self) -> AbstractAsyncContextManager[None]:
        return self._task_group_scope()

    @asynccontextmanager
    async def _task_group_scope(self) -> AsyncGenerator[None, None]:
        task_runner = self.task_runner
        owner = f"flow {self.flow_name!r}"
        executor = None if task_runner is None else await task_runner.executor(owner)
        progress = self.progress
        try:
            async with anyio.create_task_group() as tg:
                loop_thread = threading.get_ident()
                limiter, threads = self._limiters(loop_thread)
                nursery = progress.nursery = Nursery(
                    tg, anyio.lowlevel.current_token(), loop_thread,
                    sniffio.current_async_library(), limiter, threads, executor,
                )  # fmt: skip
                try:
                    yield
                finally:
                    # The task group still waits for the children it has (cancelled, if
                    # the body was), and they need the nursery until they end; runs that
                    # have not started in it never will.
                    nursery.close()
        except BaseExceptionGroup as group:
            # The task group wraps whatever interrupted the body (KeyboardInterrupt, an
            # engine error); exception groups stay inside the engine, so a group of one
            # leaves as the exception it holds.
            if len(group.exceptions) != 1:
                raise
            raise_unwrapped(group.exceptions[0])
        finally:
            progress.nursery = None
            if executor is not None:  # its children are all over: release the workers
                with anyio.CancelScope(shield=True):
                    await executor.aclose()

    def _limiters(self, loop_thread: int) -> tuple[anyio.CapacityLimiter, anyio.CapacityLimiter]:
        outer = self.parent.flow_run if self.parent is not None else None
        nursery = outer.nursery if outer is not None else None
        if self.thread_limit is None and nursery is not None and nursery.loop_thread == loop_thread:
            return nursery.limiter, nursery.threads
        limit = self.thread_limit if self.thread_limit is not None else thread_limit_from_env()
        return anyio.CapacityLimiter(limit), anyio.CapacityLimiter(math.inf)

    def completed_state(self, value: Any) -> State[Any]:
        child_states = self.progress.child_states
        total = len(child_states)
        done = sum(1 for t in child_states if t is StateType.COMPLETED)
        if done == total:
            return states.Completed("All states completed.", data=value)
        return states.Completed(
            f"{total - done} of {total} task runs did not complete; the flow handled them.",
            data=value,
        )


DEFAULT_THREAD_LIMIT = 40


def thread_limit_from_env() -> int:
    """``FLOWKIT_THREAD_LIMIT``, or 40: enough threads for I/O-bound sync tasks.

    Raises:
        ValueError: The variable is not a positive integer.
    """
    raw = os.environ.get("FLOWKIT_THREAD_LIMIT")
    if raw is None:
        return DEFAULT_THREAD_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if limit < 1:
        raise ValueError(
            f"FLOWKIT_THREAD_LIMIT={raw!r} is not a positive integer; set it to the number "
            f"of sync task bodies that may run at once (default {DEFAULT_THREAD_LIMIT})"
        )
    return limit


def raise_unwrapped(exc: BaseException) -> NoReturn:
    """Raise ``exc`` out of an ``except`` block for its group, keeping its own context."""
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context


current_run: ContextVar[Run | None] = ContextVar("flowkit_current_run", default=None)
current_tags: ContextVar[frozenset[str]] = ContextVar("flowkit_tags", default=frozenset())
"""The tags of the enclosing ``flowkit.tags()`` blocks."""
