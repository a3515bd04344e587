"""Tasks: functions turned into observable runs with ``@task``."""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import (
    Any,
    ClassVar,
    Literal,
    ParamSpec,
    TypeVar,
    Unpack,
    cast,
    overload,
)

import anyio.from_thread
import attrs

from . import _defaults as _defaults  # console, store, limits: wired in as imported
from ._engine.definition import policy
from ._engine.definition.options import (
    NOT_SET,
    Options,
    TaskOptions,
    TaskOptionsDict,
    TransactionHook,
    check_transaction_hook,
)
from ._engine.definition.runnable import Runnable, introspected, refuse_assignment
from ._engine.definition.signature import Definition
from ._engine.execution import children
from ._engine.execution.bridge import flow_loop
from ._engine.execution.local import INLINE, ON_LOOP
from ._engine.lifecycle.caching import CacheExplanation, explain
from ._engine.lifecycle.engine import execute, finished, new_run
from ._engine.lifecycle.futures import TaskFuture, TaskFutureList
from ._engine.lifecycle.inputs import BaseAnnotation, allow_failure, quote, unmapped
from ._engine.lifecycle.runs import Run, TaskRun
from ._engine.loops import drive
from ._engine.results.policies import NO_CACHE, task_input_hash
from .exceptions import FutureDeadlockError
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
TH = TypeVar("TH", bound=TransactionHook)

exponential_backoff = policy.exponential_backoff

_log = logging.getLogger("flowkit.tasks")


@attrs.frozen(init=False, eq=False, kw_only=True, slots=False)
class Task(Runnable[P, R], TaskOptions):  # type: ignore[override]  # attrs: __attrs_init__ gains the options
    """A function whose calls are recorded as task runs.

    Call it like the function: a sync task returns the value, an async task returns an
    awaitable of the value. With ``return_state=True`` the call returns the run's final
    ``State`` instead, and does not raise the task's exception.

    ``Task(fn, name=..., retries=...)`` is ``@task(name=..., retries=...)`` applied to
    ``fn``. Every option is an attribute (``task.retries``, ``task.on_failure_hooks``...);
    a task is an immutable value: change options with ``with_options``.
    """

    kind: ClassVar[str] = "task"
    options_type: ClassVar[type[Options]] = TaskOptions
    hook_names: ClassVar[tuple[str, ...]] = ("completion", "failure", "running", "commit",
                                             "rollback")  # fmt: skip
    kept_on_none: ClassVar[frozenset[str]] = frozenset({
        "name", "description", "tags", "cache_key_fn", "cache_expiration",
        "cache_result_in_memory", "timeout_seconds", "retry_condition_fn", "viz_return_value",
    })  # fmt: skip

    def __init__(self, fn: Callable[P, R], **options: Unpack[TaskOptionsDict]) -> None:
        """Make a task of ``fn``: a function, method, callable object or partial.

        Raises:
            TypeError: ``fn`` is not callable, has a parameter named ``return_state`` or
                ``wait_for``, has no name to take (pass ``name=``), or an option has the
                wrong type.
            ValueError: An option has a bad value, e.g. a ``task_run_name`` template that
                names a parameter the function does not have.
        """
        self._define(fn, options)

    def _settled(self, options: Options, fn: Callable[..., Any]) -> dict[str, Any]:
        given = cast("TaskOptions", options)
        cache_policy, persist = policy.resolve_caching(
            given.cache_policy, given.cache_key_fn, given.persist_result,
            stores=given.result_storage is not None or given.result_serializer is not None,
            storage_key=given.result_storage_key is not None,
        )  # fmt: skip
        asked = given.cache_key_fn is not None or given.cache_policy not in (
            NOT_SET, None, NO_CACHE,
        )  # fmt: skip
        if persist is False and asked:  # as Prefect: said, at definition, not silently
            _log.warning(
                "task %r: Ignoring `cache_policy` because `persist_result` is False (results "
                "that are not persisted are not cached; drop one of the two options)",
                given.name,
            )
        return {"cache_policy": cache_policy, "persist_result": persist}

    @functools.cached_property
    def task_key(self) -> str:
        """A key that identifies the task: a hash of its name, the fully qualified name of
        its function and its tags. Tasks that differ in any of them have different keys.

        Worked out once per task (every run reads it): a task is immutable, and
        ``with_options`` makes a new one."""
        fn: Any = introspected(self.fn)  # a task made of a flow: the flow's function
        qualified = getattr(fn, "__qualname__", type(fn).__qualname__)
        return _task_key(self.name, f"{fn.__module__}.{qualified}", self.tags)

    def on_commit(self, fn: TH) -> TH:
        """Decorator: call ``fn(transaction)`` when the transaction a completed run of
        this task took part in commits (see ``flowkit.transactions``). As with
        ``on_completion``, the hook is added to this task itself.

        Raises:
            TypeError: ``fn`` is not a plain (not async) function.
        """
        return self._add_transaction_hook("commit", fn)

    def on_rollback(self, fn: TH) -> TH:
        """Decorator: call ``fn(transaction)`` when the transaction a completed run of
        this task took part in rolls back: the run's work is to be undone. See
        ``on_commit``.

        Raises:
            TypeError: ``fn`` is not a plain (not async) function.
        """
        return self._add_transaction_hook("rollback", fn)

    def _add_transaction_hook(self, hook: str, fn: TH) -> TH:
        try:
            check_transaction_hook(fn)
        except TypeError as exc:
            raise TypeError(f"{self.owner}: @.on_{hook}: {exc}") from None
        self._add_hook(hook, fn)  # type: ignore[arg-type]  # a hook of another shape
        return fn

    def with_options(self, **changes: Unpack[TaskOptionsDict]) -> Task[P, R]:
        """Return a copy of the task with some options changed.

        Options left out keep their values, and so do hooks and ``name``,
        ``description``, ``tags``, ``cache_key_fn``, ``cache_expiration``,
        ``cache_result_in_memory``, ``timeout_seconds``, ``retry_condition_fn`` and
        ``viz_return_value`` given as ``None`` (as in Prefect); any other option given
        as ``None`` goes back to its default. A method task stays bound as it was.

        Raises:
            TypeError: An option has a value of the wrong type.
            ValueError: An option has a value out of range.
        """
        return self._evolve(changes)

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
        An async task called from sync code of a running flow (a sync flow's body, a
        sync task's body) runs on that flow's event loop, and the call returns its value.
        A sync task with a timeout, retries or hooks called from async code runs with
        them, blocking its caller as any sync call does.

        Raises:
            Exception: Whatever the task's function raised, when ``return_state`` is false.
            UpstreamFailedError: An upstream run did not complete.
        """
        return_state = bool(kwargs.pop("return_state", False))
        run = self._new_run(args, kwargs)
        if self.streams is not None and not return_state:
            return children.stream(run, self.buffer)
        if self.is_async or self.streams == "async":
            if (loop := flow_loop()) is not None:  # sync code of a flow: run it on its loop
                return anyio.from_thread.run(self._call_async, run, return_state, token=loop)
            return self._call_async(run, return_state)
        if self.policy.plain:
            return finished(run, drive(execute(run, INLINE)), return_state)
        return finished(run, children.call_on_loop(run), return_state)

    async def _call_async(self, run: Run, return_state: bool) -> Any:
        return finished(run, await execute(run, ON_LOOP), return_state)

    # The return_state overloads overlap these only for a function with its own
    # ``return_state`` parameter, which definitions refuse.
    @overload
    def submit(  # type: ignore[overload-overlap]
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
    @overload
    def submit(
        self: Task[P, Coroutine[Any, Any, T]],
        *args: Any,
        return_state: Literal[True],
        **kwargs: Any,
    ) -> State[T]: ...
    @overload
    def submit(self, *args: Any, return_state: Literal[True], **kwargs: Any) -> State[R]: ...

    def submit(self, *args: Any, **kwargs: Any) -> TaskFuture[Any] | State[Any]:
        """Start a run of the task concurrently and return its future at once.

        The run is a child in the task group of the current flow run; that flow (and the
        run that submitted it) does not finish before it. Futures and states among the
        arguments are waited for first, as with a call; so are those in ``wait_for``.
        With ``return_state=True`` the call waits for the run and returns its final
        ``State``, as Prefect's does; that wait blocks, so on the event loop's thread
        use ``await task.submit(...).wait_async()`` instead.

        Raises:
            MissingContextError: There is no running flow.
            TypeError: ``wait_for`` is not a list.
            FutureDeadlockError: ``return_state=True`` on the event loop's thread.
        """
        return_state = bool(kwargs.pop("return_state", False))
        if return_state and children.on_flow_loop():
            raise FutureDeadlockError(
                f"{self.owner}: submit(..., return_state=True) waits for the run, which "
                "would block the event loop that has to run it; in async code write "
                "`state = await task.submit(...).wait_async()`"
            )
        future = children.start(self._new_run(args, kwargs, submitted=True))
        if not return_state:
            return future
        future.wait()
        return future.state

    # As for submit: return_state and wait_for cannot follow *args: P.args, so map takes
    # any arguments (their elements, not the parameters' types, are what the runs get).
    @overload
    def map(
        self: Task[P, Coroutine[Any, Any, T]],
        *args: Any,
        return_state: Literal[True],
        **kwargs: Any,
    ) -> list[State[T]]: ...
    @overload
    def map(self, *args: Any, return_state: Literal[True], **kwargs: Any) -> list[State[R]]: ...
    @overload
    def map(
        self: Task[P, Coroutine[Any, Any, T]],
        *args: Any,
        return_state: Literal[False] = False,
        **kwargs: Any,
    ) -> TaskFutureList[T]: ...
    @overload
    def map(
        self, *args: Any, return_state: Literal[False] = False, **kwargs: Any
    ) -> TaskFutureList[R]: ...

    def map(
        self, *args: Any, return_state: bool = False, **kwargs: Any
    ) -> TaskFutureList[Any] | list[State[Any]]:
        """Submit one run per element of the iterable arguments; return their futures.

        Iterable arguments (except strings, bytes and mappings) are mapped over together
        and must have the same length; other arguments, and those wrapped in
        ``flowkit.unmapped(...)``, go whole to every run. A future or a state is mapped
        over its result (the call waits for it); ``quote(...)`` and ``allow_failure(...)``
        of an iterable are mapped over, each element wrapped alike. ``allow_failure`` of a
        future that failed goes whole to every run, which receives its exception. The
        values of ``*args`` and ``**kwargs`` parameters count one by one. ``wait_for``
        applies to every run. With ``return_state=True`` the call waits for the runs and
        returns their final states, in order, as Prefect's does; that wait blocks, so on
        the event loop's thread use ``[await f.wait_async() for f in task.map(...)]``.

        Raises:
            MissingContextError: There is no running flow.
            ValueError: No argument is iterable, or the iterables differ in length.
            FutureDeadlockError: A future to map over is not finished, and this thread
                runs the event loop (await the future first); or ``return_state=True``
                on the event loop's thread.
        """
        if return_state and children.on_flow_loop():
            raise FutureDeadlockError(
                f"{self.owner}: map(..., return_state=True) waits for the runs, which would "
                "block the event loop that has to run them; in async code write "
                "`states = [await f.wait_async() for f in task.map(...)]`"
            )
        wait_for = kwargs.pop("wait_for", None)
        signature = self.signature
        bound = signature.bind_partial(*self.bound, *args, **kwargs).arguments
        entries: dict[tuple[str, Any], Any] = {}  # (parameter, index or key) -> value
        for name, value in list(bound.items())[len(self.bound) :]:
            kind = signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                entries.update(((name, i), v) for i, v in enumerate(value))
            elif kind is inspect.Parameter.VAR_KEYWORD:
                entries.update(((name, k), v) for k, v in value.items())
            else:
                entries[(name, None)] = value
        mapped: dict[tuple[str, Any], list[Any]] = {}
        static: dict[tuple[str, Any], Any] = {}
        for key, value in entries.items():
            items = _map_items(value)
            if items is None:
                static[key] = _unwrapped(value)
            else:
                mapped[key] = items
        if not mapped:
            raise ValueError(
                f"{self.owner}: .map() needs at least one iterable argument to map over, "
                f"got {dict(bound)!r}; call .submit() for a single run"
            )
        lengths = {_key_name(k): len(v) for k, v in mapped.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(
                f"{self.owner}: .map() got iterables of different lengths {lengths}; "
                "give them the same length, or wrap the ones to pass whole in "
                "flowkit.unmapped(...)"
            )
        runs: list[Any] = []
        for i in range(next(iter(lengths.values()))):
            arguments: dict[str, Any] = dict(list(bound.items())[: len(self.bound)])
            for key in entries:
                name, sub = key
                value = mapped[key][i] if key in mapped else static[key]
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_POSITIONAL:
                    arguments[name] = (*arguments.get(name, ()), value)
                elif kind is inspect.Parameter.VAR_KEYWORD:
                    arguments[name] = {**arguments.get(name, {}), sub: value}
                else:
                    arguments[name] = value
            call = inspect.BoundArguments(signature, arguments)  # pyright: ignore[reportArgumentType]
            run = self._new_run(
                call.args[len(self.bound) :], {**call.kwargs, "wait_for": wait_for}, submitted=True
            )
            runs.append(run)
        futures = TaskFutureList[Any](children.start_all(runs))
        if not return_state:
            return futures
        futures.wait()
        return [future.state for future in futures]

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
    ) -> TaskRun:
        wait_for = kwargs.pop("wait_for", None)
        run = new_run(
            cast("Definition", self), self.bound + args, kwargs, flow=False, skip=len(self.bound),
            wait_for=wait_for, submitted=submitted,
        )  # fmt: skip
        return cast("TaskRun", run)


Task.__setattr__ = refuse_assignment  # type: ignore[assignment,method-assign]


@functools.lru_cache(maxsize=1024)
def _task_key(name: str, qualified_name: str, tags: frozenset[str]) -> str:
    parts = (name, qualified_name, *sorted(tags))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _map_items(value: object) -> list[Any] | None:
    """The elements ``.map()`` maps ``value`` over, or ``None`` to pass it whole."""
    wrapper: BaseAnnotation[Any] | None = None
    if isinstance(value, quote | allow_failure):
        wrapper = cast("BaseAnnotation[Any]", value)
        value = wrapper.value
    if issubclass(type(value), TaskFuture | State):  # mapped over its result
        upstream = cast("TaskFuture[Any] | State[Any]", value)
        # A failure that is allowed gives its exception, which is not iterable: every run
        # gets the whole allow_failure(future), and records the future as its upstream.
        value = upstream.result(raise_on_failure=not isinstance(wrapper, allow_failure))
    if isinstance(value, unmapped | str | bytes | Mapping) or not hasattr(value, "__iter__"):
        return None
    items: list[Any] = [*cast("Iterable[Any]", value)]
    return items if wrapper is None else [wrapper.rewrap(item) for item in items]


def _unwrapped(value: object) -> object:
    if isinstance(value, unmapped):
        return cast("unmapped[object]", value).value
    return value


def _key_name(key: tuple[str, Any]) -> str:
    name, sub = key
    return name if sub is None else f"{name}[{sub!r}]"


@overload
def task(fn: classmethod[Any, P, R], /) -> Task[P, R]: ...
@overload
def task(fn: staticmethod[P, R], /) -> Task[P, R]: ...
@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def task(**options: Unpack[TaskOptionsDict]) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    fn: Callable[P, R] | classmethod[Any, P, R] | staticmethod[P, R] | None = None,
    /,
    **options: Unpack[TaskOptionsDict],
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Turn a function into a task: ``@task`` or ``@task(name=..., tags=[...])``.

    Sync and async functions, generator functions, callable objects and methods are
    supported; ``@classmethod`` and ``@staticmethod`` may go above or below ``@task``.
    See ``TaskOptions`` for the options.

    Raises:
        TypeError: Applied to something that is not callable, or an option has the wrong
            type.
        ValueError: An option has a bad value, e.g. a ``task_run_name`` template that
            names a parameter the function does not have.
    """
    if fn is None:

        def decorate(fn: Callable[P, R]) -> Task[P, R]:
            return Task(fn, **options)

        return decorate
    return Task(cast("Callable[P, R]", fn), **options)
