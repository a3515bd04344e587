"""Tasks: functions turned into observable runs with ``@task``."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import PurePath
from typing import (
    Any,
    ClassVar,
    Literal,
    ParamSpec,
    TypedDict,
    TypeVar,
    Unpack,
    cast,
    overload,
)

import attrs

from ._engine import children, policy
from ._engine.cache_policies import (
    CacheContext,
    CacheExplanation,
    CachePolicy,
    explain,
    task_input_hash,
)
from ._engine.definitions import (
    Runnable,
    instance_of_or_none,
    non_empty_str,
    positive_int_or_none,
    run_name_option,
    to_tags,
)
from ._engine.engine import execute, finished, new_run
from ._engine.futures import TaskFuture, TaskFutureList
from ._engine.inputs import quote, unmapped
from ._engine.runners import INLINE, ON_LOOP, drive
from ._engine.runs import Definition
from .states import State

__all__ = [
    "Task",
    "TaskOptions",
    "TaskOptionsDict",
    "exponential_backoff",
    "task",
    "task_input_hash",
]

P = ParamSpec("P")
# Covariant: pyright types an async function as returning CoroutineType, and the async
# overloads (submit, return_state) ask for a Runnable returning some Coroutine.
R = TypeVar("R", covariant=True)
T = TypeVar("T")

exponential_backoff = policy.exponential_backoff

RetryDelays = float | Sequence[float] | Callable[[int], Sequence[float]]
RetryCondition = Callable[[Any, Any, State[Any]], bool]
Hook = Callable[[Any, Any, State[Any]], object]
CacheKeyFunction = Callable[[CacheContext, dict[str, Any]], str | None]


@attrs.frozen
class TaskOptions:
    """The settings of a task: what ``@task(...)`` and ``Task.with_options`` accept.

    Attributes:
        name: The task's name. Default: the function's name.
        description: What the task does. Default: the function's docstring.
        tags: Labels for the task's runs, added to those of enclosing ``tags()`` blocks.
        version: A version string of your choosing.
        task_run_name: Names each run: a ``str.format`` template over the call's
            arguments (``"fetch-{url}"``), or a function of no arguments returning the
            name (it may read ``flowkit.runtime``). Default: ``"<name>-<n>"``, with ``n``
            counting runs of the task from 0 in each flow run.
        log_prints: Whether ``print`` in the task becomes an INFO log record of the run.
            ``None`` (the default) takes the setting of the flow or task that calls it.
        max_concurrency: How many task runs submitted by one run of this task may be
            unfinished at once; ``None`` (the default) for no bound.
        timeout_seconds: How long one attempt may run. Past it the run ends ``TimedOut``
            and the caller gets ``TaskTimeoutError``. ``None`` (the default): no limit.
        retries: How many times to try again after a failure. Default 0.
        retry_delay_seconds: Seconds to wait before a retry: a number, a list with one
            delay per retry (the last repeats), or a function of ``retries`` returning
            such a list, such as ``exponential_backoff(backoff_factor=2)``. Default 0.
        retry_jitter_factor: Vary each delay at random by up to this fraction of it, so
            that many runs do not retry at the same instant. ``None``: exact delays.
        retry_condition_fn: ``fn(task, task_run, state) -> bool``; a failed attempt is
            retried only when it returns true. ``None``: every failure is retried.
        on_completion: Functions ``fn(task, task_run, state)`` called when a run completes.
        on_failure: The same, called when a run fails (after its last retry).
        on_running: The same, called when an attempt starts running.
        cache_key_fn: ``fn(context, parameters) -> str | None``. A call whose key matches
            a completed run of this task (not expired) returns that run's result without
            running, in state ``Cached``. ``None`` from the function: do not cache.
        cache_policy: What the cache key is made of, as a policy such as
            ``flowkit.cache_policies.INPUTS + TASK_SOURCE``. Not with ``cache_key_fn``.
        cache_expiration: How long a cached result may be reused. ``None``: for ever.
        refresh_cache: Run even on a cache hit, and overwrite the cached result.
        persist_result: Whether cached results are written to disk (they survive the
            process) or kept in memory. Default: written, when the task caches.
        result_serializer: ``"json"`` (through cattrs) or ``"pickle"``. Default: JSON
            when it holds the value exactly, else pickle.
        result_storage: The directory for result files. Default: ``$FLOWKIT_HOME/results``.
        buffer: For a generator task: how many values its body may produce ahead of the
            reader. ``None`` (the default): none, the body runs one step per value read.
    """

    name: str = attrs.field(validator=non_empty_str)
    description: str | None = attrs.field(default=None, validator=instance_of_or_none(str, "a str"))
    tags: frozenset[str] = attrs.field(default=frozenset(), converter=to_tags)
    version: str | None = attrs.field(default=None, validator=instance_of_or_none(str, "a str"))
    task_run_name: str | Callable[[], str] | None = attrs.field(
        default=None, validator=run_name_option
    )
    log_prints: bool | None = attrs.field(
        default=None, validator=instance_of_or_none(bool, "True or False")
    )
    max_concurrency: int | None = attrs.field(default=None, validator=positive_int_or_none)
    timeout_seconds: float | None = attrs.field(default=None, validator=policy.timeout)
    retries: int = attrs.field(default=0, validator=policy.retry_count)
    retry_delay_seconds: RetryDelays = attrs.field(default=0, validator=policy.retry_delays)
    retry_jitter_factor: float | None = attrs.field(default=None, validator=policy.jitter_factor)
    retry_condition_fn: RetryCondition | None = attrs.field(
        default=None, validator=policy.callable_or_none
    )
    on_completion: tuple[Hook, ...] = attrs.field(default=(), converter=policy.hooks)
    on_failure: tuple[Hook, ...] = attrs.field(default=(), converter=policy.hooks)
    on_running: tuple[Hook, ...] = attrs.field(default=(), converter=policy.hooks)
    cache_key_fn: CacheKeyFunction | None = attrs.field(
        default=None, validator=policy.callable_or_none
    )
    cache_policy: CachePolicy | None = attrs.field(default=None, validator=policy.cache_policy)
    cache_expiration: timedelta | None = attrs.field(
        default=None, validator=policy.cache_expiration
    )
    refresh_cache: bool | None = attrs.field(
        default=None, validator=instance_of_or_none(bool, "True or False")
    )
    persist_result: bool | None = attrs.field(
        default=None, validator=instance_of_or_none(bool, "True or False")
    )
    result_serializer: Literal["json", "pickle"] | None = attrs.field(
        default=None, validator=policy.serializer
    )
    result_storage: str | PurePath | None = attrs.field(default=None, validator=policy.storage)
    buffer: int | None = attrs.field(default=None, validator=positive_int_or_none)


class TaskOptionsDict(TypedDict, total=False):
    """``TaskOptions`` as keyword arguments; see ``TaskOptions`` for what each one does."""

    name: str
    description: str | None
    tags: Iterable[str] | None
    version: str | None
    task_run_name: str | Callable[[], str] | None
    log_prints: bool | None
    max_concurrency: int | None
    timeout_seconds: float | None
    retries: int
    retry_delay_seconds: RetryDelays
    retry_jitter_factor: float | None
    retry_condition_fn: RetryCondition | None
    on_completion: Iterable[Hook] | None
    on_failure: Iterable[Hook] | None
    on_running: Iterable[Hook] | None
    cache_key_fn: CacheKeyFunction | None
    cache_policy: CachePolicy | None
    cache_expiration: timedelta | None
    refresh_cache: bool | None
    persist_result: bool | None
    result_serializer: Literal["json", "pickle"] | None
    result_storage: str | PurePath | None
    buffer: int | None


@attrs.frozen(eq=False)
class Task(Runnable[P, R]):
    """A function whose calls are recorded as task runs.

    Call it like the function: a sync task returns the value, an async task returns an
    awaitable of the value. With ``return_state=True`` the call returns the run's final
    ``State`` instead, and does not raise the task's exception.
    """

    kind: ClassVar[str] = "task"
    run_name_option: ClassVar[str] = "task_run_name"
    options_class: ClassVar[type] = TaskOptions

    @property
    def tags(self) -> frozenset[str]:
        """The tags given to the decorator."""
        return self.options.tags  # type: ignore[no-any-return]

    @property
    def task_key(self) -> str:
        """A key that identifies the task: a hash of its name, the fully qualified name of
        its function and its tags. Tasks that differ in any of them have different keys."""
        fn = self.fn
        return _task_key(self.name, f"{fn.__module__}.{fn.__qualname__}", self.tags)

    def with_options(self, **changes: Unpack[TaskOptionsDict]) -> Task[P, R]:
        """Return a copy of the task with some options changed.

        Raises:
            TypeError: An option has a value of the wrong type.
            ValueError: An option has a value out of range.
        """
        return self._evolve_options(dict(changes))

    # A call with return_state=True cannot be typed through ParamSpec (no keyword may
    # follow *args: P.args), so those overloads accept any arguments; they overlap the
    # plain ones only for a function with its own ``return_state`` parameter.
    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...
    @overload
    def __call__(
        self: Task[P, Coroutine[Any, Any, T]],
        *args: Any,
        return_state: Literal[True],
        **kwargs: Any,
    ) -> Coroutine[Any, Any, State[T]]: ...
    @overload
    def __call__(self, *args: Any, return_state: Literal[True], **kwargs: Any) -> State[R]: ...
    @overload
    def __call__(self, *args: Any, wait_for: Iterable[Any], **kwargs: Any) -> R: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task and return its value (or its final state, with ``return_state``).

        A generator task returns an iterator over its values (an async iterator for an
        async generator) that runs the body as values are read; with ``return_state``
        it runs to its end and its state's result is the list of values.

        Futures and states among the arguments are waited for and replaced by their
        values; ``wait_for=[...]`` waits for more futures without passing their values.

        Raises:
            Exception: Whatever the task's function raised, when ``return_state`` is false.
            UpstreamFailedError: An upstream run did not complete.
        """
        return_state = bool(kwargs.pop("return_state", False))
        run = self._new_run(args, kwargs)
        if self.streams is not None and not return_state:
            return children.stream(run, self.options.buffer)
        if self.is_async or self.streams == "async":
            return self._call_async(run, return_state)
        if self.policy.plain:
            return finished(drive(execute(run, INLINE)), return_state)
        return finished(children.call_on_loop(run), return_state)

    async def _call_async(self, run: Any, return_state: bool) -> Any:
        return finished(await execute(run, ON_LOOP), return_state)

    @overload
    def submit(
        self: Task[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs
    ) -> TaskFuture[T]: ...
    @overload
    def submit(self, *args: P.args, **kwargs: P.kwargs) -> TaskFuture[R]: ...
    # wait_for cannot follow *args: P.args either (see __call__).
    @overload
    def submit(
        self: Task[P, Coroutine[Any, Any, T]],
        *args: Any,
        wait_for: Iterable[Any],
        **kwargs: Any,
    ) -> TaskFuture[T]: ...
    @overload
    def submit(self, *args: Any, wait_for: Iterable[Any], **kwargs: Any) -> TaskFuture[R]: ...

    def submit(self, *args: Any, **kwargs: Any) -> TaskFuture[Any]:
        """Start a run of the task concurrently and return its future at once.

        The run is a child in the task group of the current flow run; that flow (and the
        run that submitted it) does not finish before it. Futures among the arguments
        are waited for first, as with a call; so are those in ``wait_for=[...]``.

        Raises:
            MissingContextError: There is no running flow.
            TypeError: ``wait_for`` holds something that is not a future.
        """
        return children.start(self._new_run(args, kwargs, submitted=True))

    def map(self, *args: Any, **kwargs: Any) -> TaskFutureList[Any]:
        """Submit one run per element of the iterable arguments; return their futures.

        Iterable arguments (except strings, bytes and mappings) are mapped over together
        and must have the same length; other arguments, and those wrapped in
        ``flowkit.unmapped(...)``, go whole to every run. ``wait_for`` applies to every run.

        Raises:
            MissingContextError: There is no running flow.
            ValueError: No argument is iterable, or the iterables differ in length.
        """
        wait_for = kwargs.pop("wait_for", None)
        bound = self.signature.bind_partial(*self.bound, *args, **kwargs).arguments
        for key in list(bound)[: len(self.bound)]:
            del bound[key]
        mapped = {k: list(v) for k, v in bound.items() if _mappable(v)}
        if not mapped:
            raise ValueError(
                f"{self.owner}: .map() needs at least one iterable argument to map over, "
                f"got {bound!r}; call .submit() for a single run"
            )
        lengths = {k: len(v) for k, v in mapped.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(
                f"{self.owner}: .map() got iterables of different lengths {lengths}; "
                "give them the same length, or wrap the ones to pass whole in "
                "flowkit.unmapped(...)"
            )
        runs: list[Any] = []
        for i in range(next(iter(lengths.values()))):
            call = {k: mapped[k][i] if k in mapped else _unwrapped(v) for k, v in bound.items()}
            runs.append(self._new_run((), {**call, "wait_for": wait_for}, submitted=True))
        return TaskFutureList(children.start_all(runs))

    def explain_cache(self, *args: Any, **kwargs: Any) -> CacheExplanation:
        """Say whether calling the task with these arguments now would use a cached result:
        the key, each policy's part of it, and the record found or why there is none."""
        caching = self.policy.caching
        bound = self.signature.bind(*self.bound, *args, **kwargs)
        bound.apply_defaults()
        parameters = dict(list(bound.arguments.items())[len(self.bound) :])
        return explain(self, caching.key if caching is not None else None, parameters)

    def _new_run(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], submitted: bool = False
    ) -> Any:
        o: TaskOptions = self.options
        wait_for = kwargs.pop("wait_for", None)
        return new_run(
            cast("Definition", self), self.bound + args, kwargs, flow=False, skip=len(self.bound),
            run_name=o.task_run_name, log_prints=o.log_prints, tags=o.tags,
            wait_for=wait_for, max_concurrency=o.max_concurrency, submitted=submitted,
        )  # fmt: skip


@functools.lru_cache(maxsize=1024)
def _task_key(name: str, qualified_name: str, tags: frozenset[str]) -> str:
    parts = (name, qualified_name, *sorted(tags))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _mappable(value: object) -> bool:
    if isinstance(value, unmapped | quote | str | bytes | Mapping | TaskFuture):
        return False
    return isinstance(value, Iterable)


def _unwrapped(value: object) -> object:
    if isinstance(value, unmapped):
        return cast("unmapped[object]", value).value
    return value


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def task(**options: Unpack[TaskOptionsDict]) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    fn: Callable[P, R] | None = None, /, **options: Unpack[TaskOptionsDict]
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Turn a function into a task: ``@task`` or ``@task(name=..., tags=[...])``.

    Sync and async functions are supported, and so are methods: put ``@classmethod`` or
    ``@staticmethod`` above ``@task``. See ``TaskOptions`` for the options.

    Raises:
        TypeError: Applied to something that is not a function, or an option has the wrong
            type.
        ValueError: An option has a bad value, e.g. a ``task_run_name`` template that
            names a parameter the function does not have.
    """
    if fn is None:

        def decorate(fn: Callable[P, R]) -> Task[P, R]:
            return Task[P, R].wrap(fn, options)

        return decorate
    return Task[P, R].wrap(fn, options)
