"""A run's inputs: the futures and states among its arguments, found and resolved.

A task run may receive another run's future (or final state) as an argument, anywhere
inside lists, tuples, sets and dicts. It then waits for that run, receives its value,
and records it as an upstream input. ``wait_for`` adds upstream runs without passing
data. These are the only edges: flowkit never guesses a dependency from object identity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Self, TypeVar, cast

import attrs

from ...exceptions import UpstreamFailedError
from ...states import State
from .futures import TaskFuture

__all__ = [
    "BaseAnnotation",
    "Upstream",
    "allow_failure",
    "as_wait_list",
    "find_upstream",
    "may_hold_upstream",
    "quote",
    "resolve",
    "unmapped",
    "walk",
]

T = TypeVar("T")


@attrs.frozen
class BaseAnnotation(Generic[T]):
    """A wrapper around one argument of a run that changes how flowkit treats it.

    Two annotations are equal when they are of the same kind and wrap equal values.

    Attributes:
        value: The wrapped argument.
    """

    value: T

    def unwrap(self) -> T:
        """Return the wrapped argument."""
        return self.value

    def rewrap(self, value: T) -> Self:
        """Return an annotation of the same kind around ``value``."""
        return attrs.evolve(self, value=value)


@attrs.frozen
class allow_failure(BaseAnnotation[T]):
    """Run the downstream task even if this upstream run fails.

    The downstream run receives the upstream value, or its exception if it failed.
    Wrapping a future also marks its failure as seen: it no longer fails the flow.
    """

    def __attrs_post_init__(self) -> None:
        value: object = self.value
        if isinstance(value, TaskFuture):
            value._observed = True


@attrs.frozen
class unmapped(BaseAnnotation[T]):
    """Pass ``value`` whole to every run of ``Task.map`` instead of mapping over it."""


@attrs.frozen
class quote(BaseAnnotation[T]):
    """Pass ``value`` as it is: flowkit does not look inside it for futures or states.

    Looking inside a big argument (a large dict or list) costs time on every call;
    ``quote`` skips that, and with it the dependencies it would have found.
    """

    def unquote(self) -> T:
        """Return the wrapped argument (Prefect's name for ``unwrap``)."""
        return self.value


@attrs.frozen
class Upstream:
    """A future among a run's inputs.

    Attributes:
        future: The upstream run's future.
        parameter: The parameter it was passed in, or ``"wait_for"``.
        allow_failure: Whether the downstream run starts even if it fails.
    """

    future: TaskFuture[Any]
    parameter: str
    allow_failure: bool


_CONTAINERS = (list, tuple, set, frozenset, dict)
_LEAVES = (TaskFuture, State, BaseAnnotation)
_INSPECTED = (*_CONTAINERS, *_LEAVES)


def _is_future(value: object) -> bool:
    return isinstance(value, TaskFuture)


def may_hold_upstream(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """A quick look: whether any argument is a future, state, annotation, container or
    dataclass instance."""
    return any(isinstance(v, _INSPECTED) or _is_dataclass(v) for v in (*args, *kwargs.values()))


def _is_dataclass(value: object) -> bool:
    """Whether ``value`` is a dataclass instance (not a dataclass itself)."""
    return hasattr(type(value), "__dataclass_fields__") and not isinstance(value, type)


def walk(
    value: object,
    visit: Callable[[Any, bool], Any],
    allowed: bool = False,
    *,
    keep_annotations: bool = False,
) -> Any:
    """``value`` with ``visit(leaf, allowed)`` applied to its futures and states, found in
    lists, tuples, sets, dicts (values) and dataclass instances, as Prefect looks.

    A container in which nothing changed is returned as it is, the same object: a task
    that mutates a list it was given mutates the caller's list, as a plain call would.
    ``quote(...)`` is not looked into. Other annotations are unwrapped (the run gets the
    value), or, with ``keep_annotations``, kept around what their value became.
    """
    if _is_future(value) or isinstance(value, State):
        return visit(value, allowed)
    if issubclass(type(value), BaseAnnotation):
        annotation = cast("BaseAnnotation[Any]", value)
        if isinstance(annotation, quote):
            return annotation if keep_annotations else annotation.value
        allowed = allowed or isinstance(annotation, allow_failure)
        inner = walk(annotation.value, visit, allowed, keep_annotations=keep_annotations)
        if not keep_annotations:
            return inner
        return annotation if inner is annotation.value else annotation.rewrap(inner)
    # ``issubclass(type(...))``, not ``isinstance``: that would narrow ``value`` to generics
    # of unknown parameters, which strict pyright refuses.
    kind = type(value)
    if issubclass(kind, dict):
        pairs = cast("dict[Any, Any]", value)
        walked = {k: walk(v, visit, allowed, keep_annotations=keep_annotations)
                  for k, v in pairs.items()}  # fmt: skip
        if all(walked[k] is v for k, v in pairs.items()):
            return value
        return walked  # a dict subclass becomes a plain dict
    if issubclass(kind, list | tuple | set | frozenset):
        items = list(cast("Iterable[Any]", value))
        new = [walk(v, visit, allowed, keep_annotations=keep_annotations) for v in items]
        if all(a is b for a, b in zip(new, items, strict=True)):
            return value
        if issubclass(kind, list):
            return new  # a list subclass (a TaskFutureList) becomes a plain list
        build = cast("Any", kind)
        if hasattr(build, "_fields"):  # a namedtuple
            return build(*new)
        if kind not in _CONTAINERS:  # another subclass: its builtin
            return cast("Any", next(b for b in (tuple, frozenset, set) if issubclass(kind, b)))(new)
        return build(new)
    if _is_dataclass(value):
        fields = [f.name for f in dataclasses.fields(cast("Any", value)) if f.init]
        old = {name: getattr(value, name) for name in fields}
        changed = {
            name: new
            for name, item in old.items()
            if (new := walk(item, visit, allowed, keep_annotations=keep_annotations)) is not item
        }
        # A copy with the changed fields, as Prefect builds one; the caller's is untouched.
        return dataclasses.replace(cast("Any", value), **changed) if changed else value
    return value


def as_wait_list(wait_for: object, *, owner: str) -> list[Any]:
    """``wait_for=`` as a list: an iterable, or a lone ``allow_failure(...)``.

    Raises:
        TypeError: ``wait_for`` is neither.
    """
    if isinstance(wait_for, BaseAnnotation):
        return [wait_for]
    if isinstance(wait_for, str | bytes | Mapping) or not hasattr(wait_for, "__iter__"):
        raise TypeError(
            f"{owner}: wait_for takes a list (of futures, states or other values), got "
            f"{wait_for!r}; write wait_for=[{wait_for!r}]"
        )
    return list(cast("Iterable[Any]", wait_for))


def find_upstream(parameters: dict[str, Any], wait_for: Iterable[Any] | None) -> list[Upstream]:
    """The futures among ``parameters`` and ``wait_for``, each marked as observed.

    ``wait_for`` may hold futures, states, plain values (which it ignores) and
    ``allow_failure(...)`` of any of them, or of a list of them.
    """
    found: list[Upstream] = []
    for name, value in parameters.items():

        def visit(leaf: Any, allowed: bool, name: str = name) -> Any:
            if _is_future(leaf):
                found.append(Upstream(leaf, name, allowed))
            return leaf

        walk(value, visit)
    if wait_for is not None:

        def waited(leaf: Any, allowed: bool) -> Any:
            if _is_future(leaf):
                found.append(Upstream(leaf, "wait_for", allowed))
            return leaf

        walk(list(wait_for), waited)
    for upstream in found:
        upstream.future._observed = True
    return found


def resolve(value: Any, *, owner: str) -> Any:
    """Replace the futures and states in ``value`` by their results.

    A failed upstream wrapped in ``allow_failure`` gives its exception.

    Raises:
        UpstreamFailedError: An upstream run did not complete and was not wrapped in
            ``allow_failure``.
    """

    def visit(leaf: Any, allowed: bool) -> Any:
        state: State[Any] = leaf.state if _is_future(leaf) else leaf
        if state.is_completed() or allowed:
            return state.result(raise_on_failure=False)
        name = leaf._task_run.name if _is_future(leaf) else "an upstream run"
        raise UpstreamFailedError(
            f"{owner}: did not start because {name} ended in state {state}; wrap its future "
            "in flowkit.allow_failure(...) to run anyway"
        ) from state.exception

    return walk(value, visit)
