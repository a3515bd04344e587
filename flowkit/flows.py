"""Flows: the runs that own task runs, with ``@flow``."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
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
from ._engine.definition.options import FlowOptions, FlowOptionsDict, Hook, Options
from ._engine.definition.runnable import Runnable, refuse_assignment, source_file_hash
from ._engine.definition.signature import Definition
from ._engine.execution.bridge import CallerThread, flow_loop, run_in_caller_thread
from ._engine.execution.local import ON_LOOP
from ._engine.lifecycle.engine import execute, finished, new_run
from ._engine.lifecycle.runs import Run
from ._engine.loops import resolve_backend
from .exceptions import InvalidNameError
from .states import State

__all__ = ["Flow", "FlowOptions", "FlowOptionsDict", "flow"]

_BANNED_CHARACTERS = ("/", "%", "&", ">", "<")
"""The characters a flow's name may not hold, as in Prefect (they break URLs and paths)."""

P = ParamSpec("P")
# Covariant: pyright types an async function as returning CoroutineType, and the async
# overloads (submit, return_state) ask for a Runnable returning some Coroutine.
R = TypeVar("R", covariant=True)
T = TypeVar("T")
H = TypeVar("H", bound=Hook)


@attrs.frozen(init=False, eq=False, kw_only=True, slots=False)
class Flow(Runnable[P, R], FlowOptions):  # type: ignore[override]  # attrs: __attrs_init__ gains the options
    """A function whose calls are recorded as flow runs, each owning its task runs.

    A sync flow is called plainly; an async flow is awaited, on asyncio or trio. With
    ``return_state=True`` the call returns the run's final ``State`` instead of the value
    and does not raise the flow's exception.

    ``Flow(fn, name=..., retries=...)`` is ``@flow(name=..., retries=...)`` applied to
    ``fn``. Every option is an attribute (``flow.retries``, ``flow.on_crashed_hooks``...);
    a flow is an immutable value: change options with ``with_options``.
    """

    kind: ClassVar[str] = "flow"
    options_type: ClassVar[type[Options]] = FlowOptions
    hook_names: ClassVar[tuple[str, ...]] = (
        "completion", "failure", "running", "cancellation", "crashed",
    )  # fmt: skip
    kept_on_none: ClassVar[frozenset[str]] = frozenset({
        "name", "description", "flow_run_name", "version", "retries", "retry_delay_seconds",
        "timeout_seconds", "validate_parameters", "cache_result_in_memory",
    })  # fmt: skip

    def __init__(self, fn: Callable[P, R], **options: Unpack[FlowOptionsDict]) -> None:
        """Make a flow of ``fn``: a function, method, callable object or partial.

        Raises:
            TypeError: ``fn`` is not callable, is a generator function, has a parameter
                named ``return_state`` or ``wait_for``, has no name to take (pass
                ``name=``), or an option has the wrong type.
            ValueError: An option has a bad value, e.g. a ``flow_run_name`` template that
                names a parameter the function does not have.
        """
        self._define(fn, options)

    @classmethod
    def default_name(cls, fn: Callable[..., Any]) -> str:
        # As in Prefect: a lambda's name would hold characters flow names may not.
        return super().default_name(fn).replace("_", "-").replace("<lambda>", "unknown-lambda")

    def _settled(self, options: Options, fn: Callable[..., Any]) -> dict[str, Any]:
        if any(c in options.name for c in _BANNED_CHARACTERS):
            raise InvalidNameError(
                f"Name {options.name!r} contains an invalid character. Must not contain any "
                f"of: {list(_BANNED_CHARACTERS)}. Pass a name without them."
            )
        settled = super()._settled(options, fn)
        if not options.version:  # as in Prefect: a hash of the file that defines the flow
            settled["version"] = source_file_hash(fn)
        return settled

    @property
    def should_validate_parameters(self) -> bool:
        """Prefect's name for ``validate_parameters``: whether calls check and coerce
        their arguments against the function's type hints."""
        return self.validate_parameters

    def with_options(self, **changes: Unpack[FlowOptionsDict]) -> Flow[P, R]:
        """Return a copy of the flow with some options changed.

        Options left out keep their values, and so do hooks and ``name``,
        ``description``, ``flow_run_name``, ``version``, ``retries``,
        ``retry_delay_seconds``, ``timeout_seconds``, ``validate_parameters`` and
        ``cache_result_in_memory`` given as ``None`` (as in Prefect); any other option
        given as ``None`` goes back to its default. A method flow stays bound as it was.

        Raises:
            TypeError: An option has a value of the wrong type.
            ValueError: An option has a value out of range.
        """
        return self._evolve(changes)

    def on_cancellation(self, fn: H) -> H:
        """Decorator: call ``fn(flow, flow_run, state)`` when a run is cancelled. See
        ``on_completion``.

        Raises:
            TypeError: ``fn`` is not callable.
        """
        self._add_hook("cancellation", fn)
        return fn

    def on_crashed(self, fn: H) -> H:
        """Decorator: call ``fn(flow, flow_run, state)`` when a run crashes. See
        ``on_completion``.

        Raises:
            TypeError: ``fn`` is not callable.
        """
        self._add_hook("crashed", fn)
        return fn

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
    @overload
    def __call__(self, *args: Any, wait_for: Iterable[Any], **kwargs: Any) -> R: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the flow and return its value (or its final state, with ``return_state``).

        An async flow called from sync code of a running flow (a sync flow's body) runs
        on that flow's event loop, and the call returns its value. ``wait_for=[...]``
        waits for futures first, as a task's does: a failed one ends the run
        ``NotReady`` unless wrapped in ``allow_failure``.

        Raises:
            Exception: Whatever the flow's function raised, when ``return_state`` is false.
            ParameterTypeError: An argument does not fit its type hint (with
                ``validate_parameters``, the default).
        """
        return_state = bool(kwargs.pop("return_state", False))
        if self.is_async:
            if (loop := flow_loop()) is not None:  # sync code of a flow: run it on its loop
                return anyio.from_thread.run(
                    self._call_async, args, kwargs, return_state, token=loop
                )
            return self._call_async(args, kwargs, return_state)
        backend = resolve_backend(self.backend, owner=self.owner)
        run = self._new_run(args, kwargs)

        async def lifecycle(venue: CallerThread) -> State[Any]:
            return await execute(run, venue)

        return finished(run, run_in_caller_thread(lifecycle, backend), return_state)

    async def _call_async(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], return_state: bool
    ) -> Any:
        run = self._new_run(args, kwargs)
        return finished(run, await execute(run, ON_LOOP), return_state)

    def _new_run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Run:
        wait_for = kwargs.pop("wait_for", None)
        return new_run(
            cast("Definition", self), self.bound + args, kwargs, flow=True,
            skip=len(self.bound), wait_for=wait_for,
        )  # fmt: skip


Flow.__setattr__ = refuse_assignment  # type: ignore[assignment,method-assign]


@overload
def flow(fn: classmethod[Any, P, R], /) -> Flow[P, R]: ...
@overload
def flow(fn: staticmethod[P, R], /) -> Flow[P, R]: ...
@overload
def flow(fn: Callable[P, R], /) -> Flow[P, R]: ...
@overload
def flow(**options: Unpack[FlowOptionsDict]) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(
    fn: Callable[P, R] | classmethod[Any, P, R] | staticmethod[P, R] | None = None,
    /,
    **options: Unpack[FlowOptionsDict],
) -> Flow[P, R] | Callable[[Callable[P, R]], Flow[P, R]]:
    """Turn a function into a flow: ``@flow`` or ``@flow(name=..., log_prints=True)``.

    ``@classmethod`` and ``@staticmethod`` may go above or below ``@flow``. See
    ``FlowOptions`` for the options.

    Raises:
        TypeError: Applied to something that is not callable, or an option has the wrong
            type.
        ValueError: An option has a bad value, e.g. a ``flow_run_name`` template that
            names a parameter the function does not have.
    """
    if fn is None:

        def decorate(fn: Callable[P, R]) -> Flow[P, R]:
            return Flow(fn, **options)

        return decorate
    return Flow(cast("Callable[P, R]", fn), **options)
