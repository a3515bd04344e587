"""Tasks: functions turned into observable runs with ``@task``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ClassVar, Literal, ParamSpec, TypedDict, TypeVar, Unpack, overload

import attrs

from ._engine.definitions import (
    Runnable,
    instance_of_or_none,
    non_empty_str,
    run_name_option,
    to_tags,
)
from ._engine.engine import INLINE, ON_LOOP, drive, execute, finished, new_run
from .states import State

__all__ = ["Task", "TaskOptions", "TaskOptionsDict", "task"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


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


class TaskOptionsDict(TypedDict, total=False):
    """``TaskOptions`` as keyword arguments; see ``TaskOptions`` for what each one does."""

    name: str
    description: str | None
    tags: Iterable[str] | None
    version: str | None
    task_run_name: str | Callable[[], str] | None
    log_prints: bool | None


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
        parts = (self.name, f"{fn.__module__}.{fn.__qualname__}", *sorted(self.tags))
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]

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
    def __call__(  # type: ignore[overload-overlap]
        self: Task[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, T]: ...
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

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task and return its value (or its final state, with ``return_state``).

        Raises:
            Exception: Whatever the task's function raised, when ``return_state`` is false.
        """
        return_state = bool(kwargs.pop("return_state", False))
        if self.is_async:
            return self._call_async(args, kwargs, return_state)
        return finished(drive(execute(self._new_run(args, kwargs), INLINE)), return_state)

    async def _call_async(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], return_state: bool
    ) -> Any:
        return finished(await execute(self._new_run(args, kwargs), ON_LOOP), return_state)

    def _new_run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        o: TaskOptions = self.options
        return new_run(
            self, self.bound + args, kwargs, flow=False, skip=len(self.bound),
            run_name=o.task_run_name, log_prints=o.log_prints, tags=o.tags,
        )  # fmt: skip


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
        return lambda fn: Task.wrap(fn, options)
    return Task.wrap(fn, options)
