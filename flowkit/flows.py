"""Flows: the runs that own task runs, with ``@flow``."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
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

from ._engine import policy
from ._engine.bridge import Backend, CallerThread, resolve_backend, run_in_caller_thread
from ._engine.definitions import (
    Runnable,
    instance_of_or_none,
    non_empty_str,
    positive_int_or_none,
    run_name_option,
)
from ._engine.engine import execute, finished, new_run
from ._engine.runners import ON_LOOP
from ._engine.runs import Definition, Run
from .states import State

__all__ = ["Flow", "FlowOptions", "FlowOptionsDict", "flow"]

P = ParamSpec("P")
# Covariant: pyright types an async function as returning CoroutineType, and the async
# overloads (submit, return_state) ask for a Runnable returning some Coroutine.
R = TypeVar("R", covariant=True)
T = TypeVar("T")

Hook = Callable[[Any, Any, State[Any]], object]


def _backend(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and value not in ("asyncio", "trio"):
        raise ValueError(f"backend must be 'asyncio', 'trio' or None, got {value!r}")


@attrs.frozen
class FlowOptions:
    """The settings of a flow: what ``@flow(...)`` and ``Flow.with_options`` accept.

    Attributes:
        name: The flow's name. Default: the function's name with ``_`` as ``-``.
        description: What the flow does. Default: the function's docstring.
        version: A version string of your choosing.
        flow_run_name: Names each run: a ``str.format`` template over the call's
            arguments, or a function of no arguments returning the name (it may read
            ``flowkit.runtime``). Default: a generated name such as ``"great-ammonite"``.
        log_prints: Whether ``print`` in the flow, and in tasks that do not say
            otherwise, becomes an INFO log record. ``None`` (the default) takes the
            setting of the parent run, if any.
        backend: The event loop a *sync* flow starts for its run when called outside
            any flow: ``"asyncio"`` or ``"trio"``. ``None`` (the default) reads the
            ``FLOWKIT_BACKEND`` environment variable, else asyncio. An async flow
            always runs on the loop that awaits it.
        max_concurrency: How many task runs the flow's body may have submitted and
            unfinished at once; ``None`` (the default) for no bound.
        thread_limit: How many sync task bodies of this flow may run in worker threads
            at once. ``None`` (the default) shares the parent flow's limit, or reads
            ``FLOWKIT_THREAD_LIMIT``, else 40.
        timeout_seconds: How long one attempt may run. Past it the run and its running
            task runs are stopped, the run ends ``TimedOut`` and the caller gets
            ``FlowTimeoutError``. ``None`` (the default): no limit.
        retries: How many times to run the flow again after a failure. Default 0.
        retry_delay_seconds: Seconds to wait before each retry. Default 0.
        on_completion: Functions ``fn(flow, flow_run, state)`` called when a run completes.
        on_failure: The same, called when a run fails (after its last retry).
        on_running: The same, called when an attempt starts running.
        on_cancellation: The same, called when a run is cancelled.
        on_crashed: The same, called when a run crashes.
    """

    name: str = attrs.field(validator=non_empty_str)
    description: str | None = attrs.field(default=None, validator=instance_of_or_none(str, "a str"))
    version: str | None = attrs.field(default=None, validator=instance_of_or_none(str, "a str"))
    flow_run_name: str | Callable[[], str] | None = attrs.field(
        default=None, validator=run_name_option
    )
    log_prints: bool | None = attrs.field(
        default=None, validator=instance_of_or_none(bool, "True or False")
    )
    backend: Backend | None = attrs.field(default=None, validator=_backend)
    max_concurrency: int | None = attrs.field(default=None, validator=positive_int_or_none)
    thread_limit: int | None = attrs.field(default=None, validator=positive_int_or_none)
    timeout_seconds: float | None = attrs.field(default=None, validator=policy.timeout)
    retries: int = attrs.field(default=0, validator=policy.retry_count)
    retry_delay_seconds: float = attrs.field(default=0, validator=policy.retry_delays)
    on_completion: tuple[Hook, ...] = attrs.field(default=(), converter=policy.hooks)
    on_failure: tuple[Hook, ...] = attrs.field(default=(), converter=policy.hooks)
    on_running: tuple[Hook, ...] = attrs.field(default=(), converter=policy.hooks)
    on_cancellation: tuple[Hook, ...] = attrs.field(default=(), converter=policy.hooks)
    on_crashed: tuple[Hook, ...] = attrs.field(default=(), converter=policy.hooks)


class FlowOptionsDict(TypedDict, total=False):
    """``FlowOptions`` as keyword arguments; see ``FlowOptions`` for what each one does."""

    name: str
    description: str | None
    version: str | None
    flow_run_name: str | Callable[[], str] | None
    log_prints: bool | None
    backend: Backend | None
    max_concurrency: int | None
    thread_limit: int | None
    timeout_seconds: float | None
    retries: int
    retry_delay_seconds: float
    on_completion: Iterable[Hook] | None
    on_failure: Iterable[Hook] | None
    on_running: Iterable[Hook] | None
    on_cancellation: Iterable[Hook] | None
    on_crashed: Iterable[Hook] | None


@attrs.frozen(eq=False)
class Flow(Runnable[P, R]):
    """A function whose calls are recorded as flow runs, each owning its task runs.

    A sync flow is called plainly; an async flow is awaited, on asyncio or trio. With
    ``return_state=True`` the call returns the run's final ``State`` instead of the value
    and does not raise the flow's exception.
    """

    kind: ClassVar[str] = "flow"
    run_name_option: ClassVar[str] = "flow_run_name"
    options_class: ClassVar[type] = FlowOptions

    @classmethod
    def default_name(cls, fn: Callable[..., Any]) -> str:
        return fn.__name__.replace("_", "-")

    def with_options(self, **changes: Unpack[FlowOptionsDict]) -> Flow[P, R]:
        """Return a copy of the flow with some options changed.

        Raises:
            TypeError: An option has a value of the wrong type.
            ValueError: An option has a value out of range.
        """
        return self._evolve_options(dict(changes))

    # See Task.__call__ for why the return_state overloads take any arguments.
    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...
    @overload
    def __call__(
        self: Flow[P, Coroutine[Any, Any, T]],
        *args: Any,
        return_state: Literal[True],
        **kwargs: Any,
    ) -> Coroutine[Any, Any, State[T]]: ...
    @overload
    def __call__(self, *args: Any, return_state: Literal[True], **kwargs: Any) -> State[R]: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the flow and return its value (or its final state, with ``return_state``).

        Raises:
            Exception: Whatever the flow's function raised, when ``return_state`` is false.
        """
        return_state = bool(kwargs.pop("return_state", False))
        if self.is_async:
            return self._call_async(args, kwargs, return_state)
        backend = resolve_backend(self.options.backend, owner=self.owner)
        run = self._new_run(args, kwargs)

        async def lifecycle(runner: CallerThread) -> State[Any]:
            return await execute(run, runner)

        return finished(run_in_caller_thread(lifecycle, backend), return_state)

    async def _call_async(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], return_state: bool
    ) -> Any:
        return finished(await execute(self._new_run(args, kwargs), ON_LOOP), return_state)

    def _new_run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Run:
        o: FlowOptions = self.options
        return new_run(
            cast("Definition", self), self.bound + args, kwargs, flow=True, skip=len(self.bound),
            run_name=o.flow_run_name, log_prints=o.log_prints,
            max_concurrency=o.max_concurrency, thread_limit=o.thread_limit,
        )  # fmt: skip


@overload
def flow(fn: Callable[P, R], /) -> Flow[P, R]: ...
@overload
def flow(**options: Unpack[FlowOptionsDict]) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(
    fn: Callable[P, R] | None = None, /, **options: Unpack[FlowOptionsDict]
) -> Flow[P, R] | Callable[[Callable[P, R]], Flow[P, R]]:
    """Turn a function into a flow: ``@flow`` or ``@flow(name=..., log_prints=True)``.

    See ``FlowOptions`` for the options.

    Raises:
        TypeError: Applied to something that is not a function, or an option has the wrong
            type.
        ValueError: An option has a bad value, e.g. a ``flow_run_name`` template that
            names a parameter the function does not have.
    """
    if fn is None:

        def decorate(fn: Callable[P, R]) -> Flow[P, R]:
            return Flow[P, R].wrap(fn, options)

        return decorate
    return Flow[P, R].wrap(fn, options)
